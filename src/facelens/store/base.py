"""The metadata store's interface: records, and the abstract store a SQLite or PostgreSQL implementation fills.

A store hands out *sessions*: one session is one database transaction (`store.transaction(write=True)`), so a
backend operation composes several calls (check the collection, insert its faces, remember the idempotency token)
and they commit together or not at all. The database is the source of truth, embeddings included; the vector
index (`facelens.store.vectors`) is a cache rebuilt from it and caught up through the change log, which the
store writes in the same transaction as every face insert and delete.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np

from facelens.store.audit import AuditRow
from facelens.store.jobs import JobsSession

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


class Session(JobsSession):
    """The operations of one transaction. Methods take the collection's internal `pk`."""

    # -- collections
    @abc.abstractmethod
    def create_collection(self, collection_id: str, arn: str, face_model_version: str,
                          tags: dict[str, str]) -> CollectionRecord | None:
        """The new collection, or None when one with this id exists."""

    @abc.abstractmethod
    def get_collection(self, collection_id: str) -> CollectionRecord | None: ...

    @abc.abstractmethod
    def delete_collection(self, pk: int) -> None:
        """Delete the collection with its faces, users, change log and idempotency records."""

    @abc.abstractmethod
    def list_collections(self, after_pk: int, limit: int) -> list[CollectionRecord]:
        """Collections in creation order with `pk > after_pk`."""

    @abc.abstractmethod
    def count_faces(self, pk: int) -> int: ...

    @abc.abstractmethod
    def count_users(self, pk: int) -> int: ...

    # -- faces
    @abc.abstractmethod
    def add_faces(self, pk: int, faces: Sequence[NewFace]) -> list[int]:
        """Insert faces (logging one ADDED change each); their sequence numbers, in order."""

    @abc.abstractmethod
    def delete_faces(self, pk: int, seqs: Sequence[int]) -> None:
        """Delete faces (logging one DELETED change each)."""

    @abc.abstractmethod
    def faces_by_id(self, pk: int, face_ids: Sequence[str], embeddings: bool = False) -> list[FaceRecord]: ...

    @abc.abstractmethod
    def faces_by_seq(self, pk: int, seqs: Sequence[int], embeddings: bool = False) -> list[FaceRecord]: ...

    @abc.abstractmethod
    def list_faces(self, pk: int, after_seq: int, limit: int, user_pk: int | None = None,
                   face_ids: Sequence[str] | None = None, embeddings: bool = False) -> list[FaceRecord]:
        """Faces in index order with `seq > after_seq`, optionally of one user and/or among `face_ids`."""

    @abc.abstractmethod
    def embeddings(self, pk: int, batch: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (seqs int64, embeddings float32 (n, d)) of a collection, in batches."""

    # -- bulk imports
    @abc.abstractmethod
    def imported(self, pk: int, sources: Sequence[str]) -> set[str]:
        """Which of `sources` (bulk-import keys, e.g. file paths) the collection already holds."""

    @abc.abstractmethod
    def mark_imported(self, pk: int, sources: Sequence[tuple[str, str]]) -> None:
        """Record (source, ImageId) pairs as imported, in the transaction that stores their faces."""

    # -- users
    @abc.abstractmethod
    def create_user(self, pk: int, user_id: str, status: str) -> UserRecord | None:
        """The new user, or None when the collection has one with this id."""

    @abc.abstractmethod
    def get_user(self, pk: int, user_id: str) -> UserRecord | None: ...

    @abc.abstractmethod
    def delete_user(self, user_pk: int) -> None:
        """Delete a user; its faces stay, unassociated."""

    @abc.abstractmethod
    def list_users(self, pk: int, after_pk: int, limit: int) -> list[UserRecord]: ...

    @abc.abstractmethod
    def set_user_status(self, user_pk: int, status: str) -> None: ...

    @abc.abstractmethod
    def associate(self, seqs: Sequence[int], user_pk: int | None) -> None:
        """Set (or, with None, clear) the user of faces."""

    # -- change log
    @abc.abstractmethod
    def high_water(self) -> int:
        """The last change sequence number ever assigned (all collections)."""

    @abc.abstractmethod
    def log_floor(self, pk: int) -> int:
        """Changes of the collection up to this sequence number were pruned from the log."""

    @abc.abstractmethod
    def changes_since(self, pk: int, after_seq: int) -> list[Change]: ...

    @abc.abstractmethod
    def prune_changes(self, pk: int, upto_seq: int) -> None:
        """Drop the collection's changes up to `upto_seq` (a persisted index reflects them)."""

    @abc.abstractmethod
    def expired_faces(self, pk: int, before: dt.datetime, limit: int) -> list[FaceRecord]:
        """Faces of a collection indexed before `before`, oldest first (retention)."""

    # -- policies
    @abc.abstractmethod
    def get_policy(self, pk: int) -> dict | None:
        """The collection's own policy settings (snake_case), or None when it follows the server's."""

    @abc.abstractmethod
    def put_policy(self, pk: int, policy: dict) -> None: ...

    @abc.abstractmethod
    def retention_policies(self) -> list[tuple[CollectionRecord, dict]]:
        """Collections whose own policy sets `retention_days`, with that policy."""

    # -- audit log (append-only, hash-chained: `facelens.accountability.audit`)
    @abc.abstractmethod
    def append_audit(self, record: dict) -> AuditRow:
        """Seal `record` onto the chain, in this transaction (which must be a write transaction)."""

    @abc.abstractmethod
    def audit_rows(self, after_seq: int = 0, limit: int = 10_000, since: dt.datetime | None = None,
                   collection_id: str | None = None, face_id: str | None = None) -> list[AuditRow]:
        """Records in chain order with `seq > after_seq`, optionally from a time on, of one collection, or
        naming one FaceId."""

    # -- shared vector stores (Milvus): how far a collection's vectors have been caught up
    @abc.abstractmethod
    def vector_mark(self, pk: int) -> tuple[int, int] | None:
        """(change-log sequence number the shared vector store reflects, vectors it holds), or None."""

    @abc.abstractmethod
    def set_vector_mark(self, pk: int, watermark: int, count: int) -> None: ...

    # -- idempotency and secrets
    @abc.abstractmethod
    def recall(self, operation: str, token: str) -> tuple[str, str] | None:
        """(parameter digest, response JSON) stored for a ClientRequestToken."""

    @abc.abstractmethod
    def remember(self, operation: str, token: str, digest: str, response: str, pk: int | None) -> None: ...

    @abc.abstractmethod
    def forget_tokens_before(self, when: dt.datetime) -> None: ...

    @abc.abstractmethod
    def secret(self) -> bytes:
        """A random key made when the store was created (signs pagination tokens)."""


class MetadataStore(abc.ABC):
    """A durable, thread-safe metadata store."""

    @abc.abstractmethod
    def transaction(self, write: bool = False) -> AbstractContextManager[Session]:
        """One transaction: committed when the block ends, rolled back when it raises. Write transactions are
        serialized; read transactions see one consistent snapshot."""

    @abc.abstractmethod
    def reclaim(self) -> None:
        """Return the space of deleted rows to the file system (deleted faces leave the disk)."""

    @abc.abstractmethod
    def close(self) -> None: ...
