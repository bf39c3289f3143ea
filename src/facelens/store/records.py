"""The metadata store's records: what sessions take and return (plain frozen dataclasses, no SQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ADDED, DELETED = 1, -1  # change-log operations


@dataclass(frozen=True)
class CollectionRecord:
    pk: int  # internal, never reused: a re-created collection is a different one
    collection_id: str
    arn: str
    face_model_version: str
    created: dt.datetime
    tags: dict[str, str]


@dataclass(frozen=True)
class NewFace:
    face_id: str
    image_id: str
    external_image_id: str | None
    bounding_box: dict[str, float]
    confidence: float
    model_version: str
    embedding: np.ndarray  # float32, L2-normalised


@dataclass(frozen=True)
class FaceRecord:
    seq: int  # internal integer id, never reused: the vector index's id
    face_id: str
    image_id: str
    external_image_id: str | None
    bounding_box: dict[str, float]
    confidence: float
    model_version: str
    user_pk: int | None
    user_id: str | None
    embedding: np.ndarray | None = None  # only when asked for


@dataclass(frozen=True)
class UserRecord:
    pk: int
    user_id: str
    status: str


@dataclass(frozen=True)
class Change:
    seq: int  # global, monotonic
    face_seq: int
    op: int  # ADDED or DELETED


def net_changes(changes: Sequence[Change]) -> tuple[list[int], list[int]]:
    """What a run of change-log entries leaves for a vector index that has seen none of them: (face sequence
    numbers to add, those to remove). A face added and deleted within the run is neither; one whose first entry
    is a deletion was in the index before."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for change in changes:
        first.setdefault(change.face_seq, change.op)
        last[change.face_seq] = change.op
    added = [seq for seq, op in last.items() if op == ADDED]
    removed = [seq for seq, op in last.items() if op == DELETED and first[seq] == DELETED]
    return added, removed
