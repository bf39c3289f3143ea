"""The vector index file: `MAGIC`, a JSON header (watermark, factory, size, dimension, SHA-256 of the payload),
then the FAISS-serialized index. Written to a temporary file, fsynced, and renamed over the old one, so a crash
leaves either the old file or the new one; a damaged file fails its checks on reading.

Both directions stream in `CHUNK`-byte pieces, so saving or loading an index holds the index and one chunk, not
copies of a file that is 3.2 GB at 20M faces. Writing reserves the header with a placeholder digest of the same
length and fills it in once the payload is written; reading hashes the whole payload before FAISS parses a byte
of it (a damaged file must not reach the deserializer), then deserializes from the same open file."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from pathlib import Path
from typing import Any, BinaryIO

import faiss

MAGIC = b"FLVX1\n"
CHUNK = 4 << 20
_PLACEHOLDER = "0" * 64  # a SHA-256 hex digest's length


def write(path: Path, index: faiss.Index, header: dict[str, Any]) -> None:
    def text(digest: str) -> bytes:
        return json.dumps({**header, "dim": index.d, "count": index.ntotal, "sha256": digest}).encode()

    reserved = text(_PLACEHOLDER)
    digest = hashlib.sha256()
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(MAGIC + struct.pack("<I", len(reserved)) + reserved)

        def sink(chunk: bytes) -> None:
            digest.update(chunk)
            handle.write(chunk)

        faiss.write_index(index, faiss.PyCallbackIOWriter(sink, CHUNK))
        final = text(digest.hexdigest())
        assert len(final) == len(reserved)
        handle.seek(len(MAGIC) + 4)
        handle.write(final)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)  # make the rename durable
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read(path: Path) -> tuple[faiss.Index, dict[str, Any]] | None:
    """The index and its header; None when there is no file; ValueError (or FAISS's error) when damaged."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; the rename-over writer never touches this inode
    except FileNotFoundError:
        return None
    with handle:
        start = handle.read(len(MAGIC) + 4)
        if len(start) < len(MAGIC) + 4 or not start.startswith(MAGIC):
            raise ValueError("not a FaceLens index file")
        (size,) = struct.unpack_from("<I", start, len(MAGIC))
        header = json.loads(handle.read(size))
        payload = handle.tell()
        if _sha256(handle) != header["sha256"]:
            raise ValueError("checksum mismatch")
        handle.seek(payload)
        index = faiss.read_index(faiss.PyCallbackIOReader(handle.read, CHUNK))
        if handle.read(1):
            raise ValueError("bytes after the index")
    if index.ntotal != header["count"] or index.d != header["dim"]:
        raise ValueError("size or dimension mismatch")
    return index, header


def _sha256(handle: BinaryIO) -> str:
    digest, buffer = hashlib.sha256(), bytearray(CHUNK)
    view = memoryview(buffer)
    while count := handle.readinto(view):
        digest.update(view[:count])
    return digest.hexdigest()


def sweep_temporaries(directory: Path) -> None:
    """Remove temporary files of processes that died while writing (they may hold deleted faces' vectors)."""
    for path in directory.glob("*.faiss.*.tmp"):
        pid = path.name.split(".")[2]
        if pid.isdigit() and not _running(int(pid)):
            path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
