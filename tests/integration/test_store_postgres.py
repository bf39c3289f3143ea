"""The PostgreSQL store shared by several backends ("replicas" in one process, each with its own vector cache):
a face written through one is found through another at once, the audit chain stays linear under concurrent
writers, a video job is claimed by exactly one worker and taken over when its worker's claim expires, and the
schema is versioned."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from facelens.accountability import audit
from facelens.service import Backend
from facelens.store.jobs import QUEUED, RUNNING, SUCCEEDED
from facelens.store.sql.postgres import SCHEMA_VERSION, PostgresMetadataStore
from tests.collections_fakes import DIM, make_backend, unit
from tests.pg_fixtures import postgres_url  # noqa: F401 - fixture


@pytest.fixture
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[list[Backend]]:  # noqa: F811
    backends = [make_backend(tmp_path / f"replica-{i}", store=PostgresMetadataStore(postgres_url))
                for i in range(3)]
    yield backends
    for backend in backends:
        backend.close()


def test_a_face_written_through_one_replica_is_found_through_the_others(replicas: list[Backend]) -> None:
    first, second, third = replicas
    first.call("CreateCollection", {"CollectionId": "c"})
    people = unit(np.random.default_rng(1).standard_normal((4, DIM)))
    for backend in replicas:  # every cache is warm before the writes it has to learn of
        assert backend.search.by_embedding("c", people[0], threshold=90) == []
    face_ids = second.collections.add_embeddings("c", people)
    for backend in replicas:
        found = backend.search.by_embedding("c", people[2], threshold=90)
        assert [m.face.face_id for m in found] == [face_ids[2]]
    third.call("DeleteFaces", {"CollectionId": "c", "FaceIds": [face_ids[2]]})
    for backend in replicas:  # a deleted face is never returned, whatever a cache still holds
        assert backend.search.by_embedding("c", people[2], threshold=90) == []
    assert first.call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == 3


def test_the_audit_chain_stays_linear_under_concurrent_writers(replicas: list[Backend]) -> None:
    replicas[0].call("CreateCollection", {"CollectionId": "c"})
    rng = np.random.default_rng(2)
    vectors = unit(rng.standard_normal((60, DIM)))
    errors: list[BaseException] = []

    def write(backend: Backend, part: np.ndarray) -> None:
        try:
            for vector in part:
                backend.collections.add_embeddings("c", vector[None, :])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(backend, vectors[i::3])) for i, backend in enumerate(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with replicas[1].store.transaction() as session:
        rows = session.audit_rows(0, 1000)
    assert len(rows) == 61 and [row.seq for row in rows] == list(range(1, 62))
    assert audit.verify(rows).ok
    assert replicas[2].call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == 60


def test_a_job_is_claimed_once_and_taken_over_when_its_claim_expires(replicas: list[Backend],
                                                                      postgres_url: str) -> None:  # noqa: F811
    with replicas[0].store.transaction(write=True) as session:
        for i in range(5):
            session.create_job(f"job-{i}", "FaceDetection", {"Video": {}}, "k", None)
    claimed: list[str] = []
    lock = threading.Lock()

    def claim(backend: Backend) -> None:
        while True:
            with backend.store.transaction(write=True) as session:
                job = session.claim_job()
            if job is None:
                return
            with lock:
                claimed.append(job.job_id)

    threads = [threading.Thread(target=claim, args=(backend,)) for backend in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == [f"job-{i}" for i in range(5)]  # each exactly once

    with replicas[1].store.transaction(write=True) as session:
        assert session.requeue_interrupted(expired_only=True) == 0  # claims are fresh: nobody takes them over
    with psycopg.connect(postgres_url, autocommit=True) as db:  # the worker of job-3 died a minute ago
        db.execute("UPDATE video_jobs SET lease_until = %s WHERE job_id = 'job-3'", (time.time() - 1,))
    with replicas[2].store.transaction(write=True) as session:
        assert session.requeue_interrupted(expired_only=True) == 1
        assert session.get_job("job-3").status == QUEUED and session.get_job("job-2").status == RUNNING
        job = session.claim_job()
    assert job is not None and job.job_id == "job-3" and job.attempts == 2
    with replicas[0].store.transaction(write=True) as session:
        session.finish_job("job-3", SUCCEEDED, None, {"Codec": "h264"}, [])
        assert session.get_job("job-3").status == SUCCEEDED


def test_schema_is_versioned_and_migrated_once(postgres_url: str) -> None:  # noqa: F811
    stores = [PostgresMetadataStore(postgres_url) for _ in range(2)]  # the second finds it done
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT version FROM facelens_schema").fetchall() == [(SCHEMA_VERSION,)]
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            db.execute("INSERT INTO audit VALUES (1, 0, NULL, 'x', '{}', '', '')")
            db.execute("UPDATE audit SET record = '{}'")
    for store in stores:
        store.close()


def test_a_schema_9_database_moves_to_statement_triggers(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    """Schema 10 replaces the per-row face triggers (change log, face count) with per-statement ones: faces
    written under schema 9 stay counted, and every later add or delete is counted and logged exactly once."""
    from facelens.store.sql.postgres import MIGRATIONS

    people = unit(np.random.default_rng(3).standard_normal((6, DIM)))
    with psycopg.connect(postgres_url, autocommit=True) as db:  # what FaceLens with schema 9 left
        db.execute("CREATE TABLE facelens_schema (version INTEGER NOT NULL)")
        for step in MIGRATIONS[:9]:
            for statement in step:
                db.execute(statement)
        db.execute("INSERT INTO facelens_schema (version) VALUES (9)")
        db.execute("INSERT INTO meta (key, value) VALUES ('secret', %s)", ("00" * 32,))
        db.execute("INSERT INTO collections (collection_id, arn, face_model_version, created) "
                   "VALUES ('old', 'arn', 'synthetic', 0)")
        for i in range(2):
            db.execute("INSERT INTO faces (collection, face_id, image_id, bounding_box, confidence, model_version, "
                       "created, embedding) VALUES (1, %s, 'i', '{}', 99.0, 'synthetic', 0, %s)",
                       (f"00000000-0000-4000-8000-00000000000{i}", people[i].astype("<f4").tobytes()))
    backend = make_backend(tmp_path, store=PostgresMetadataStore(postgres_url))
    assert backend.call("DescribeCollection", {"CollectionId": "old"})["FaceCount"] == 2
    added = backend.collections.add_embeddings("old", people[2:])
    assert backend.call("DescribeCollection", {"CollectionId": "old"})["FaceCount"] == 6
    backend.call("DeleteFaces", {"CollectionId": "old", "FaceIds": [added[0], "00000000-0000-4000-8000-000000000000"]})
    assert backend.call("DescribeCollection", {"CollectionId": "old"})["FaceCount"] == 4
    assert [m.face.face_id for m in backend.search.by_embedding("old", people[3], threshold=90)] == [added[1]]
    assert backend.search.by_embedding("old", people[2], threshold=90) == []
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT version FROM facelens_schema").fetchall() == [(SCHEMA_VERSION,)] == [(10,)]
        assert db.execute("SELECT op, count(*) FROM changes GROUP BY op ORDER BY op").fetchall() == [(-1, 2), (1, 6)]
        seqs = [row[0] for row in db.execute("SELECT face_seq FROM changes WHERE op = 1 ORDER BY seq")]
        assert seqs == sorted(seqs)  # the log lists a statement's faces in their order
    backend.close()
