"""The metadata store's interface: its records, the session protocols, and the store that hands out sessions.

A store hands out *sessions*: one session is one database transaction (`store.transaction(write=True)`), so a
backend operation composes several calls (check the collection, insert its faces, remember the idempotency token)
and they commit together or not at all. A session is a `Session` (`facelens.store.repos`: one small protocol per
concern, combined); `facelens.store.sql` implements it once, over SQLite or PostgreSQL. The database is the
source of truth, embeddings included; the vector index (`facelens.store.vectors`, `facelens.store.milvus`) is a
cache rebuilt from it and caught up through the change log, which the store writes in the same transaction as
every face insert and delete.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from facelens.store.audit import AuditRow
from facelens.store.records import (
    ADDED,
    DELETED,
    Change,
    CollectionRecord,
    FaceRecord,
    NewFace,
    UserRecord,
    net_changes,
)
from facelens.store.repos import Session

__all__ = ["ADDED", "DELETED", "Change", "CollectionRecord", "FaceRecord", "MetadataStore", "NewFace", "Session",
           "UserRecord", "net_changes"]


class MetadataStore(abc.ABC):
    """A durable, thread-safe metadata store.

    `audit_listener` (None: none) is called with the audit records a transaction sealed, after it committed and
    only then (`facelens.accountability.anchors` notes them outside the database)."""

    audit_listener: Callable[[Sequence[AuditRow]], None] | None = None

    def committed(self, sealed: Sequence[AuditRow]) -> None:
        """Stores call this after each commit with the records the transaction sealed."""
        if sealed and self.audit_listener is not None:
            self.audit_listener(sealed)

    @abc.abstractmethod
    def transaction(self, write: bool = False) -> AbstractContextManager[Session]:
        """One transaction: committed when the block ends, rolled back when it raises. Write transactions are
        serialized; read transactions see one consistent snapshot."""

    @abc.abstractmethod
    def reclaim(self) -> None:
        """Return the space of deleted rows to the file system (deleted faces leave the disk)."""

    @abc.abstractmethod
    def close(self) -> None: ...
