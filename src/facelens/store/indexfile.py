"""The vector index file: `MAGIC`, a JSON header (watermark, factory, size, dimension, SHA-256 of the payload),
then the FAISS-serialized index. Written to a temporary file, fsynced, and renamed over the old one, so a crash
leaves either the old file or the new one; a damaged file fails its checks on reading."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np

MAGIC = b"FLVX1\n"


def write(path: Path, index: faiss.Index, header: dict[str, Any]) -> None:
    payload = faiss.serialize_index(index).tobytes()
    text = json.dumps({**header, "dim": index.d, "count": index.ntotal,
                       "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(MAGIC + struct.pack("<I", len(text)) + text + payload)
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
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data.startswith(MAGIC):
        raise ValueError("not a FaceLens index file")
    (size,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start:start + size])
    payload = data[start + size:]
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise ValueError("checksum mismatch")
    index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
    if index.ntotal != header["count"] or index.d != header["dim"]:
        raise ValueError("size or dimension mismatch")
    return index, header


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
