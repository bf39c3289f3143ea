"""What the SQL session shares between its statements: column lists, parameter chunking, and the conversion of
rows to records. Rows hold times as POSIX seconds, JSON as text and embeddings as little-endian float32 bytes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from facelens.store.jobs import JobRecord
from facelens.store.records import CollectionRecord

CHUNK = 900  # bound parameters per IN (...) list
FACE_ROWS = 1000  # faces per INSERT: 9,000 bound parameters (SQLite allows 32,766, psycopg 65,535)
COLLECTION_COLUMNS = "pk, collection_id, arn, face_model_version, created, tags"
FACE_COLUMNS = ("f.seq, f.face_id, f.image_id, f.external_image_id, f.bounding_box, f.confidence, "
                "f.model_version, f.user_pk, u.user_id")
FACE_FROM = "FROM faces f LEFT JOIN users u ON u.pk = f.user_pk"
JOB_COLUMNS = ("job_id, kind, status, status_message, request, key_id, purpose, created, attempts, metadata, "
               "result_count")


def timestamp(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def chunks(items: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def marks(items: Sequence) -> str:
    return ",".join("?" * len(items))


def stacked(rows: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(seq, embedding) rows as (seqs int64 (n,), embeddings float32 (n, d)); (0, 0) when there are none."""
    seqs = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4")
    return seqs, vectors.reshape(len(rows), -1) if rows else vectors.reshape(0, 0)


def collection_record(row: Sequence) -> CollectionRecord:
    pk, collection_id, arn, version, created, tags = row
    return CollectionRecord(pk, collection_id, arn, version, timestamp(created), json.loads(tags))


def job_record(row: Sequence) -> JobRecord:
    job_id, kind, status, message, request, key_id, purpose, created, attempts, metadata, count = row
    return JobRecord(job_id, kind, status, message, json.loads(request), key_id, purpose, timestamp(created),
                     attempts, json.loads(metadata) if metadata else None, count)
