"""The vector index file: it round-trips, refuses damage before FAISS parses it, reads files the whole-file
writer made, and streams (saving or loading never holds the file's bytes whole)."""

from __future__ import annotations

import hashlib
import json
import struct
import tracemalloc
from pathlib import Path

import faiss
import numpy as np
import pytest

from facelens.store import indexfile

DIM = 128


def an_index(count: int, seed: int = 0) -> faiss.Index:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    faiss.normalize_L2(vectors)
    index = faiss.IndexIDMap(faiss.IndexFlatIP(DIM))
    index.add_with_ids(vectors, np.arange(10, 10 + count, dtype=np.int64))
    return index


def same_answers(one: faiss.Index, other: faiss.Index) -> bool:
    queries = np.random.default_rng(1).standard_normal((5, DIM)).astype(np.float32)
    first, second = one.search(queries, 10), other.search(queries, 10)
    return bool(np.array_equal(first[1], second[1]) and np.allclose(first[0], second[0]))


def test_an_index_round_trips_with_its_header(tmp_path: Path) -> None:
    index, path = an_index(1000), tmp_path / "1.faiss"
    indexfile.write(path, index, {"watermark": 41, "factory": "Flat", "kind": "Flat"})
    loaded, header = indexfile.read(path)
    assert same_answers(index, loaded)
    assert header["watermark"] == 41 and header["count"] == 1000 and header["dim"] == DIM
    assert header["sha256"] != "0" * 64
    assert not list(tmp_path.glob("*.tmp"))


def test_a_missing_file_is_none(tmp_path: Path) -> None:
    assert indexfile.read(tmp_path / "absent.faiss") is None


def test_a_file_written_whole_before_streaming_still_reads(tmp_path: Path) -> None:
    """The format did not change: a file of the earlier whole-file writer loads."""
    index, path = an_index(500), tmp_path / "1.faiss"
    payload = faiss.serialize_index(index).tobytes()
    text = json.dumps({"watermark": 7, "factory": "Flat", "kind": "Flat", "dim": DIM, "count": 500,
                       "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    path.write_bytes(indexfile.MAGIC + struct.pack("<I", len(text)) + text + payload)
    loaded, header = indexfile.read(path)
    assert same_answers(index, loaded) and header["watermark"] == 7


@pytest.mark.parametrize("damage", ["flipped", "truncated", "appended", "magic", "empty"])
def test_damage_is_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "1.faiss"
    indexfile.write(path, an_index(300), {"watermark": 1, "factory": "Flat", "kind": "Flat"})
    data = bytearray(path.read_bytes())
    if damage == "flipped":
        data[-5000] ^= 0x40
    elif damage == "truncated":
        del data[-100:]
    elif damage == "appended":
        data += b"\0" * 8
    elif damage == "magic":
        data[:3] = b"XXX"
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        indexfile.read(path)


def test_the_header_count_must_match_the_index(tmp_path: Path) -> None:
    """A file whose checksum holds but whose header disagrees with its payload is refused."""
    path = tmp_path / "1.faiss"
    indexfile.write(path, an_index(300), {"watermark": 1, "factory": "Flat", "kind": "Flat"})
    data = path.read_bytes()
    (size,) = struct.unpack_from("<I", data, len(indexfile.MAGIC))
    start = len(indexfile.MAGIC) + 4
    header = json.loads(data[start:start + size])
    text = json.dumps({**header, "count": 299}).encode()
    path.write_bytes(indexfile.MAGIC + struct.pack("<I", len(text)) + text + data[start + size:])
    with pytest.raises(ValueError, match="size"):
        indexfile.read(path)


def test_saving_and_loading_stream(tmp_path: Path) -> None:
    """Python-side memory while writing and reading a 41 MB index stays a few chunks, not the file: the whole-file
    version peaked at twice the file here (FAISS's serialized array, then its bytes)."""
    index, path = an_index(80_000), tmp_path / "1.faiss"
    tracemalloc.start()
    try:
        indexfile.write(path, index, {"watermark": 1, "factory": "Flat", "kind": "Flat"})
        _, written = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        loaded, _ = indexfile.read(path)
        _, read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert size > 40_000_000
    assert written < 4 * indexfile.CHUNK < size / 2
    assert read < 4 * indexfile.CHUNK
    assert same_answers(index, loaded)


@pytest.mark.parametrize("warmup", [True, False])
def test_a_server_start_loads_every_collections_index(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      warmup: bool) -> None:
    """With warmup (the default), starting the backend reads each collection's index file in the background, so
    the first search does not; without it, nothing is read until a search asks."""
    from facelens.config import ServerSettings
    from tests.collections_fakes import make_backend, unit

    vectors = unit(np.random.default_rng(3).standard_normal((300, DIM)))
    with make_backend(tmp_path) as backend:
        for name in ("one", "two"):
            backend.call("CreateCollection", {"CollectionId": name})
            backend.collections.add_embeddings(name, vectors)
    assert len(list((tmp_path / "collections" / "vectors").glob("*.faiss"))) == 2
    caplog.set_level("INFO", logger="facelens.store.vectors")
    with make_backend(tmp_path, settings=ServerSettings(data_dir=tmp_path, warmup=warmup)) as backend:
        backend.start()
        backend.vectors.wait()
        loaded = [r.getMessage() for r in caplog.records if "vectors loaded" in r.getMessage()]
        assert len(loaded) == (2 if warmup else 0)
        (match,) = backend.search.by_embedding("two", vectors[7], threshold=0, max_faces=1)
        assert match.similarity > 99
