"""Durability and the vector cache: concurrency, exactness of the approximate path, catch-up, disk hygiene."""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facelens import errors
from facelens.service import Backend
from facelens.store.sql.sqlite import SCHEMA_VERSION, SqliteMetadataStore
from facelens.store.vectors import VectorConfig
from tests.collections_fakes import CALIBRATION, identities, unit
from tests.collections_fakes import make_backend as fake_backend
from tests.conftest import pages


def make_backend(path: Path | str, **options: object) -> Backend:
    """Engine tests: searches at exactly the requested threshold (floors are tested in test_accountability)."""
    return fake_backend(Path(path), floors=False, **options)


def exact_search(backend: Backend, collection_id: str, face_id: str, threshold: float,
                 limit: int) -> list[tuple[str, float]]:
    """Brute force over every embedding in the database: what SearchFaces must answer."""
    with backend.store.transaction() as session:
        collection = session.get_collection(collection_id)
        seqs, vectors = (np.concatenate(parts) for parts in zip(*session.embeddings(collection.pk), strict=True))
        (query,) = session.faces_by_id(collection.pk, [face_id], embeddings=True)
        ids = {f.seq: f.face_id for f in session.faces_by_seq(collection.pk, seqs.tolist())}
    cosines = vectors.astype(np.float64) @ query.embedding.astype(np.float64)
    order = sorted((i for i in range(len(seqs)) if seqs[i] != query.seq), key=lambda i: (-cosines[i], seqs[i]))
    similarities = CALIBRATION.similarity(cosines)
    return [(ids[int(seqs[i])], float(similarities[i])) for i in order if similarities[i] >= threshold][:limit]


def searched(backend: Backend, face_id: str, threshold: float, limit: int) -> list[tuple[str, float]]:
    result = backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_id, "FaceMatchThreshold": threshold,
                                   "MaxFaces": limit})
    return [(m["Face"]["FaceId"], m["Similarity"]) for m in result["FaceMatches"]]


def assert_exact(backend: Backend, face_ids: list[str], queries: int = 12) -> None:
    for face_id in face_ids[:: max(1, len(face_ids) // queries)]:
        for threshold, limit in ((80.0, 50), (0.0, 15)):
            got, want = searched(backend, face_id, threshold, limit), exact_search(backend, "c", face_id, threshold,
                                                                                 limit)
            assert [f for f, _ in got] == [f for f, _ in want]
            assert np.allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=1e-9)


@pytest.mark.parametrize("background", [False, True])
def test_hnsw_path_answers_exactly_after_inserts_and_deletes(tmp_path: Path, background: bool) -> None:
    config = VectorConfig.parse("auto:100:HNSW32", rebuild_min=50, rebuild_fraction=0.05)
    backend = make_backend(tmp_path, vector_config=config, background_rebuilds=background)
    backend.call("CreateCollection", {"CollectionId": "c"})
    vectors, _ = identities(150, 4, noise=0.07)
    face_ids = backend.collections.add_embeddings("c", vectors[:500])
    pk = 1  # the first collection of a fresh data directory
    backend.vectors.wait()
    assert backend.vectors.info(pk)["factory"] == "HNSW32"
    backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": face_ids[::3][:40]})  # below the rebuild threshold
    assert backend.vectors.info(pk)["tombstones"] == 40
    live = [f for f in face_ids if f not in set(face_ids[::3][:40])]
    assert_exact(backend, live)
    live += backend.collections.add_embeddings("c", vectors[500:])
    gone = live[1::4]
    backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": gone})  # past it: rebuilt (maybe in the background)
    live = [f for f in live if f not in set(gone)]
    assert_exact(backend, live)
    backend.vectors.wait()
    info = backend.vectors.info(pk)
    assert info["tombstones"] == 0 and info["count"] == len(live) and info["file"]
    assert_exact(backend, live)
    backend.close()


def test_flat_path_is_exact_and_shrinks_by_remove_ids(tmp_path: Path) -> None:
    backend = make_backend(tmp_path, vector_config=VectorConfig.parse("auto"))
    backend.call("CreateCollection", {"CollectionId": "c"})
    face_ids = backend.collections.add_embeddings("c", identities(60, 3)[0])
    backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": face_ids[:30]})
    info = backend.vectors.info(1)
    assert info["factory"] == "Flat" and info["tombstones"] == 0 and info["count"] == 150
    assert_exact(backend, face_ids[30:])
    backend.close()


def test_quantized_path_is_exact_after_inserts_and_deletes(tmp_path: Path) -> None:
    backend = make_backend(tmp_path, vector_config=VectorConfig.parse("auto:100"), background_rebuilds=False)
    backend.call("CreateCollection", {"CollectionId": "c"})
    vectors, _ = identities(100, 4, noise=0.07)
    face_ids = backend.collections.add_embeddings("c", vectors[:300])
    assert backend.vectors.info(1)["factory"] == "SQ8" and backend.vectors.info(1)["kind"] == "SQ8"
    face_ids += backend.collections.add_embeddings("c", vectors[300:])  # added to the trained index
    gone = face_ids[::5]
    backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": gone})
    live = [f for f in face_ids if f not in set(gone)]
    assert backend.vectors.info(1)["count"] == len(live) and backend.vectors.info(1)["tombstones"] == 0
    assert_exact(backend, live, queries=30)
    backend.close()


def test_large_tier_is_exact_after_inserts_deletes_and_a_streamed_rebuild(tmp_path: Path) -> None:
    """The fast-scan tier (here from 300 faces) proposes candidates the exact re-rank orders: searches stay exact
    after adds, after deletes it cannot remove (tombstones), and after a rebuild that streams the faces past a
    training sample of 200."""
    config = VectorConfig.parse("auto:100", large_min=300, train_sample=200, rebuild_min=20)
    backend = make_backend(tmp_path, vector_config=config, background_rebuilds=False)
    backend.call("CreateCollection", {"CollectionId": "c"})
    vectors, _ = identities(120, 4, noise=0.07)
    face_ids = backend.collections.add_embeddings("c", vectors[:250])
    assert backend.vectors.info(1)["factory"] == "SQ8"
    face_ids += backend.collections.add_embeddings("c", vectors[250:])  # 480 faces: rebuilt as the large tier
    assert backend.vectors.info(1)["factory"] == backend.vectors.info(1)["kind"] == "PQ64x4fs,Refine(SQ8)"
    assert_exact(backend, face_ids, queries=30)
    gone = face_ids[::7]
    backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": gone})  # 69 tombstones: past rebuild_min
    live = [f for f in face_ids if f not in set(gone)]
    assert backend.vectors.info(1)["count"] == len(live) and backend.vectors.info(1)["tombstones"] == 0
    assert_exact(backend, live, queries=30)
    backend.close()


def test_exact_counts_under_concurrent_index_delete_search(tmp_path: Path) -> None:
    backend = make_backend(tmp_path, vector_config=VectorConfig.parse("auto:150", rebuild_min=20))
    backend.call("CreateCollection", {"CollectionId": "c"})
    seed_ids = backend.collections.add_embeddings("c", identities(40, 2, seed=1)[0])
    added: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(work: object) -> None:
        try:
            work()  # type: ignore[operator]
        except BaseException as error:  # surfaced below
            failures.append(error)

    def indexer(seed: int) -> None:
        for batch in range(8):
            ids = backend.collections.add_embeddings("c", identities(5, 1, seed=100 * seed + batch)[0])
            with lock:
                added.extend(ids)

    def deleter(part: list[str]) -> None:
        for start in range(0, len(part), 5):
            assert len(backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": part[start:start + 5]})[
                "DeletedFaces"]) == len(part[start:start + 5])

    def searcher() -> None:
        for face_id in seed_ids[60:70]:
            backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_id, "FaceMatchThreshold": 0,
                                         "MaxFaces": 20})
            backend.call("DescribeCollection", {"CollectionId": "c"})

    threads = [threading.Thread(target=run, args=(lambda s=s: indexer(s),)) for s in range(3)]
    threads += [threading.Thread(target=run, args=(lambda p=p: deleter(p),)) for p in (seed_ids[:30], seed_ids[30:60])]
    threads += [threading.Thread(target=run, args=(searcher,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    expected = len(seed_ids) - 60 + len(added)
    assert len(added) == 120
    assert backend.call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == expected
    listed = backend.call("ListFaces", {"CollectionId": "c"})["Faces"]
    assert sorted(f["FaceId"] for f in listed) == sorted(seed_ids[60:] + added)
    backend.vectors.wait()
    assert backend.vectors.count(1) == expected
    everything = backend.call("SearchFaces", {"CollectionId": "c", "FaceId": seed_ids[60], "FaceMatchThreshold": 0})
    assert len(everything["FaceMatches"]) == expected - 1
    backend.close()


def test_cache_is_rebuilt_when_its_file_is_missing_or_corrupt(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    backend.call("CreateCollection", {"CollectionId": "c"})
    face_ids = backend.collections.add_embeddings("c", identities(10, 3)[0])
    want = searched(backend, face_ids[0], 0, 10)
    backend.close()
    index_file = tmp_path / "collections" / "vectors" / "1.faiss"
    assert index_file.is_file()
    for damage in (lambda: index_file.unlink(), lambda: index_file.write_bytes(index_file.read_bytes()[:-100]),
                   lambda: index_file.write_bytes(b"garbage")):
        damage()
        reopened = make_backend(tmp_path)
        assert searched(reopened, face_ids[0], 0, 10) == want
        assert reopened.vectors.info(1)["count"] == 30
        reopened.close()
        assert index_file.is_file()


def test_cache_catches_up_with_rows_written_behind_its_back(tmp_path: Path) -> None:
    writer = make_backend(tmp_path)
    writer.call("CreateCollection", {"CollectionId": "c"})
    first = writer.collections.add_embeddings("c", identities(5, 2)[0])
    reader = make_backend(tmp_path)  # another process on the same data directory
    assert len(searched(reader, first[0], 0, 100)) == 9
    later = writer.collections.add_embeddings("c", identities(5, 2, seed=7)[0])
    writer.call("DeleteFaces", {"CollectionId": "c", "FaceIds": first[5:]})
    got = {f for f, _ in searched(reader, first[0], 0, 100)}  # the reader's open index catches up
    assert got == set(first[1:5] + later)
    reader.close()  # saves its index at its watermark
    # rows inserted by hand still reach the change log
    with sqlite3.connect(tmp_path / "collections" / "facelens.db") as db:
        row = db.execute("SELECT collection, image_id, bounding_box, confidence, model_version, created, embedding "
                         "FROM faces LIMIT 1").fetchone()
        db.execute("INSERT INTO faces (collection, face_id, image_id, bounding_box, confidence, model_version, "
                   "created, embedding) VALUES (?, '00000000-0000-4000-8000-000000000001', ?, ?, ?, ?, ?, ?)", row)
    reopened = make_backend(tmp_path)  # loads the reader's file and catches it up from the log
    rebuilds = []
    original = reopened.vectors._rebuild
    reopened.vectors._rebuild = lambda entry: (rebuilds.append(entry.pk), original(entry))[-1]  # type: ignore[method-assign]
    assert reopened.vectors.info(1)["count"] == 5 + 10 + 1 and rebuilds == []
    writer.collections.add_embeddings("c", identities(2, 1, seed=9)[0])
    writer.vectors.flush()  # saves and prunes the change log: the reopened index is now behind the log's floor
    assert len(searched(reopened, first[0], 0, 100)) == 5 + 10 + 1 + 2 - 1
    assert rebuilds == [1]
    for backend in (writer, reopened):
        backend.close()


def test_deleted_faces_leave_the_disk(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    backend.call("CreateCollection", {"CollectionId": "c"})
    vectors = unit(np.random.default_rng(3).standard_normal((2000, 128)))
    face_ids = backend.collections.add_embeddings("c", vectors)
    with backend.store.transaction() as session:  # the bytes as stored
        vectors = np.concatenate([batch for _, batch in session.embeddings(1)])
    backend.vectors.flush()
    backend.store.reclaim()

    def on_disk(vector: np.ndarray) -> bool:
        needle = vector.astype("<f4").tobytes()[:64]
        return any(needle in path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())

    size = (tmp_path / "collections" / "facelens.db").stat().st_size
    assert on_disk(vectors[0]) and on_disk(vectors[1999])
    backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": face_ids[:1990]})
    assert not any(on_disk(v) for v in vectors[:1990:97])
    assert on_disk(vectors[1999])
    # incremental_vacuum gave the embeddings' pages back (the audit log keeps the deleted FaceIds, not vectors)
    assert size - (tmp_path / "collections" / "facelens.db").stat().st_size > 0.9 * 1990 * vectors.shape[1] * 4
    backend.vectors.flush()
    assert not any(on_disk(v) for v in vectors[:1990:97])  # nor did the re-saved index bring them back
    backend.call("DeleteCollection", {"CollectionId": "c"})
    assert not on_disk(vectors[1999]) and not list((tmp_path / "collections" / "vectors").iterdir())
    backend.close()


def test_schema_is_versioned(tmp_path: Path) -> None:
    store = SqliteMetadataStore(tmp_path / "collections")
    store.close()
    with sqlite3.connect(tmp_path / "collections" / "facelens.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        SqliteMetadataStore(tmp_path / "collections")


def test_an_older_data_dir_is_upgraded_in_place(tmp_path: Path) -> None:
    """A data directory written by the previous release (schema 2: collections, faces, users, imports) opens
    with this one: migrated to the current schema, its faces kept and searchable, the new tables usable."""
    from facelens.store.sql.sqlite import MIGRATIONS

    (tmp_path / "collections").mkdir()
    with sqlite3.connect(tmp_path / "collections" / "facelens.db", isolation_level=None) as db:
        db.execute("PRAGMA journal_mode = WAL")
        for step in MIGRATIONS[:2]:
            for statement in step:
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute("INSERT INTO collections (collection_id, arn, face_model_version, created) "
                   "VALUES ('old', 'arn', 'synthetic', 0)")
        vector = identities(1, 1)[0][0]
        db.execute("INSERT INTO faces (collection, face_id, image_id, bounding_box, confidence, model_version, "
                   "created, embedding) VALUES (1, '00000000-0000-4000-8000-000000000009', 'i', '{}', 99.0, "
                   "'synthetic', 0, ?)", (vector.astype("<f4").tobytes(),))
    backend = make_backend(tmp_path)
    with sqlite3.connect(tmp_path / "collections" / "facelens.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    found = backend.search.by_embedding("old", vector, threshold=90)
    assert [m.face.face_id for m in found] == ["00000000-0000-4000-8000-000000000009"]
    assert backend.call("DescribeCollection", {"CollectionId": "old"})["FaceCount"] == 1  # counted by the upgrade
    backend.call("DeleteFaces", {"CollectionId": "old", "FaceIds": ["00000000-0000-4000-8000-000000000009"]})
    assert backend.call("DescribeCollection", {"CollectionId": "old"})["FaceCount"] == 0
    assert backend.call("ListAuditRecords", {})["AuditRecords"]  # the audit table arrived with the upgrade
    backend.close()


def test_a_write_is_one_transaction(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    backend.call("CreateCollection", {"CollectionId": "c"})
    vectors = identities(3, 1)[0]
    with pytest.raises(sqlite3.IntegrityError), backend.store.transaction(write=True) as session:
        from facelens.store.base import NewFace

        pk = session.get_collection("c").pk
        face = NewFace("00000000-0000-4000-8000-000000000001", "i", None, {}, 99.0, "synthetic", vectors[0])
        session.add_faces(pk, [face, face])  # the second violates FaceId uniqueness: neither is kept
    assert backend.call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == 0
    assert backend.vectors.count(1) == 0
    with pytest.raises(errors.ResourceNotFoundException):
        backend.collections.add_embeddings("missing", vectors)
    backend.close()


def test_vector_index_configuration_strings() -> None:
    assert VectorConfig.parse("auto").factory_for(49_999) == "Flat"
    assert VectorConfig.parse("auto").factory_for(50_000) == "SQ8"
    assert VectorConfig.parse("auto").factory_for(999_999) == "SQ8"
    assert VectorConfig.parse("auto").factory_for(20_000_000) == "PQ64x4fs,Refine(SQ8)"
    assert VectorConfig.parse("auto:100:HNSW32").factory_for(20_000_000) == "HNSW32"  # that factory from 100 up
    auto = VectorConfig.parse("auto")  # a smaller tier is rebuilt to only below half of the larger's threshold
    assert auto.stays("PQ64x4fs,Refine(SQ8)", 600_000) and not auto.stays("PQ64x4fs,Refine(SQ8)", 499_999)
    assert auto.stays("SQ8", 25_000) and not auto.stays("SQ8", 24_999) and not auto.stays("SQ8", 60_000)
    assert VectorConfig.parse("auto:100:HNSW32").factory_for(100) == "HNSW32"
    assert VectorConfig.parse("auto:10:IVF4,Flat").factory_for(10) == "IVF4,Flat"
    assert VectorConfig.parse("HNSW16").factory_for(1) == "HNSW16"


def test_ivf_falls_back_to_flat_until_it_can_train(tmp_path: Path) -> None:
    backend = make_backend(tmp_path, vector_config=VectorConfig.parse("IVF4,Flat"), background_rebuilds=False)
    backend.call("CreateCollection", {"CollectionId": "c"})
    face_ids = backend.collections.add_embeddings("c", identities(20, 3)[0])
    assert backend.vectors.info(1)["kind"] == "Flat"
    face_ids += backend.collections.add_embeddings("c", identities(40, 3, seed=4)[0])
    assert backend.vectors.info(1)["kind"] == "IVF4,Flat"
    backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": face_ids[:10]})
    assert backend.vectors.info(1)["count"] == 170
    assert_exact(backend, face_ids[10:], queries=4)
    backend.close()


CRASHING_WRITER = """
import sys
from tests.collections_fakes import identities, make_backend
backend = make_backend(sys.argv[1])
backend.call("CreateCollection", {"CollectionId": "c"})
print("ready", flush=True)
for batch in range(100000):
    backend.collections.add_embeddings("c", identities(5, 1, seed=batch)[0])  # one image: five faces, one transaction
    if batch % 7 == 3:
        backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": [
            f["FaceId"] for f in backend.call("ListFaces", {"CollectionId": "c", "MaxResults": 5})["Faces"]]})
    if batch % 20 == 0:
        backend.vectors.flush()
"""


def test_a_killed_writer_leaves_whole_images_and_a_consistent_cache(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(tmp_path)], cwd=root,
                              stdout=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
    time.sleep(1.5)
    writer.send_signal(signal.SIGKILL)  # no close(), no flush: mid-transaction, mid-save, wherever it was
    writer.wait()
    backend = make_backend(tmp_path)
    with sqlite3.connect(tmp_path / "collections" / "facelens.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        images = collections.Counter(image for (image,) in db.execute("SELECT image_id FROM faces"))
    # every page: a fast machine writes more than one page (4,096) in the time
    faces = pages(lambda **params: backend.call("ListFaces", {"CollectionId": "c", **params}), "Faces")[0]
    assert len(faces) > 20
    assert set(images.values()) == {5}  # whole images only (the deletes remove the oldest image's five)
    assert backend.call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == len(faces) == sum(images.values())
    assert backend.vectors.count(1) == len(faces)
    got = searched(backend, faces[-1]["FaceId"], 0, 4096)  # MaxFaces' maximum
    assert len(got) == min(len(faces) - 1, 4096)
    backend.close()


def test_a_growing_index_is_saved_a_logarithmic_number_of_times_and_a_restart_finds_every_face(
        tmp_path: Path) -> None:
    """A bulk fill must not rewrite the whole index file every `save_every` faces (at 20M faces that was 2,000
    saves of a file growing to 3.2 GB): saves wait for `save_fraction` of the index too, and the faces not yet in
    the file are replayed from the change log by the next process."""
    config = VectorConfig.parse("auto", save_every=20, save_fraction=0.5)
    backend = make_backend(tmp_path, vector_config=config)
    backend.call("CreateCollection", {"CollectionId": "c"})
    index_file = tmp_path / "collections" / "vectors" / "1.faiss"
    face_ids: list[str] = []
    versions = set()
    for seed in range(40):  # 400 faces, 10 per write
        face_ids += backend.collections.add_embeddings("c", identities(5, 2, seed=seed)[0])
        assert backend.vectors.info(1)["count"] == len(face_ids)
        if index_file.exists():
            stat = index_file.stat()
            versions.add((stat.st_ino, stat.st_mtime_ns, stat.st_size))
    assert 3 <= len(versions) <= 7  # at 20, 40, 80, 160, 320 faces; every 20 changes would be 20 saves
    reopened = make_backend(tmp_path, vector_config=config)  # before the first closes, as after a kill
    assert reopened.vectors.info(1)["count"] == 400
    # SearchFaces leaves the probe out: each face's nearest is its person's other sample, whether it was in the
    # file (the first) or replayed from the change log (the last)
    assert searched(reopened, face_ids[0], 0, 1)[0][0] == face_ids[1]
    assert searched(reopened, face_ids[-1], 0, 1)[0][0] == face_ids[-2]
    for opened in (backend, reopened):
        opened.close()
