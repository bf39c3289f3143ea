"""What a metadata-store session offers, one small protocol per concern; `Session` combines them.

A session is one database transaction (`MetadataStore.transaction()`); methods take a collection's internal
`pk`. Every session implements every protocol (`facelens.store.sql.session.SqlSession`, over SQLite or
PostgreSQL), and a caller that needs one concern may say so in its annotation: the vector caches need only the
`ChangeLog` (and faces), retention only `Retention`, `Faces` and the `AuditLog`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from facelens.store.audit import AuditRow
from facelens.store.jobs import JobRecord, JobResult
from facelens.store.records import Change, CollectionRecord, FaceRecord, NewFace, UserRecord


@runtime_checkable
class Collections(Protocol):
    def create_collection(self, collection_id: str, arn: str, face_model_version: str,
                          tags: dict[str, str]) -> CollectionRecord | None:
        """The new collection, or None when one with this id exists."""
        ...

    def get_collection(self, collection_id: str) -> CollectionRecord | None: ...

    def delete_collection(self, pk: int) -> None:
        """Delete the collection with its faces, users, change log and idempotency records."""
        ...

    def list_collections(self, after_pk: int, limit: int) -> list[CollectionRecord]:
        """Collections in creation order with `pk > after_pk`."""
        ...

    def count_faces(self, pk: int) -> int: ...

    def count_users(self, pk: int) -> int: ...


@runtime_checkable
class Faces(Protocol):
    def add_faces(self, pk: int, faces: Sequence[NewFace]) -> list[int]:
        """Insert faces (logging one ADDED change each); their sequence numbers, in order."""
        ...

    def delete_faces(self, pk: int, seqs: Sequence[int]) -> None:
        """Delete faces (logging one DELETED change each)."""
        ...

    def faces_by_id(self, pk: int, face_ids: Sequence[str], embeddings: bool = False) -> list[FaceRecord]: ...

    def faces_by_seq(self, pk: int, seqs: Sequence[int], embeddings: bool = False) -> list[FaceRecord]: ...

    def list_faces(self, pk: int, after_seq: int, limit: int, user_pk: int | None = None,
                   face_ids: Sequence[str] | None = None, embeddings: bool = False) -> list[FaceRecord]:
        """Faces in index order with `seq > after_seq`, optionally of one user and/or among `face_ids`."""
        ...

    def embeddings(self, pk: int, batch: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (seqs int64, embeddings float32 (n, d)) of a collection, in batches."""
        ...

    def embeddings_of(self, pk: int, seqs: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(seqs int64, embeddings float32 (n, d)) of those of `seqs` still stored, in seq order: what catching a
        vector index up needs, without building face records."""
        ...


@runtime_checkable
class FaceCrops(Protocol):
    """Face thumbnails, kept where a collection's policy opts in (KeepFaceCrops); a crop goes with its face."""

    def add_face_crops(self, crops: Sequence[tuple[int, bytes]]) -> None:
        """(face seq, JPEG bytes) pairs, in the transaction that added the faces."""
        ...

    def face_crop(self, pk: int, face_id: str) -> bytes | None:
        """The JPEG kept for a face of collection `pk`, or None (no such face, or none kept)."""
        ...

    def crops_of(self, pk: int, face_ids: Sequence[str]) -> set[str]:
        """Which of these faces of collection `pk` have a crop."""
        ...


@runtime_checkable
class Users(Protocol):
    def create_user(self, pk: int, user_id: str, status: str) -> UserRecord | None:
        """The new user, or None when the collection has one with this id."""
        ...

    def get_user(self, pk: int, user_id: str) -> UserRecord | None: ...

    def delete_user(self, user_pk: int) -> None:
        """Delete a user; its faces stay, unassociated."""
        ...

    def list_users(self, pk: int, after_pk: int, limit: int) -> list[UserRecord]: ...

    def set_user_status(self, user_pk: int, status: str) -> None: ...

    def associate(self, seqs: Sequence[int], user_pk: int | None) -> None:
        """Set (or, with None, clear) the user of faces."""
        ...


@runtime_checkable
class Imports(Protocol):
    """Bulk imports (`facelens index`): which sources a collection already holds, for resuming."""

    def imported(self, pk: int, sources: Sequence[str]) -> set[str]:
        """Which of `sources` (bulk-import keys, e.g. file paths) the collection already holds."""
        ...

    def mark_imported(self, pk: int, sources: Sequence[tuple[str, str]]) -> None:
        """Record (source, ImageId) pairs as imported, in the transaction that stores their faces."""
        ...


@runtime_checkable
class ChangeLog(Protocol):
    """The change log every face insert and delete appends to, and how far a shared vector store (Milvus) has
    caught up with it."""

    def high_water(self) -> int:
        """The last change sequence number ever assigned (all collections)."""
        ...

    def log_floor(self, pk: int) -> int:
        """Changes of the collection up to this sequence number were pruned from the log."""
        ...

    def changes_since(self, pk: int, after_seq: int) -> list[Change]: ...

    def prune_changes(self, pk: int, upto_seq: int) -> None:
        """Drop the collection's changes up to `upto_seq` (a persisted index reflects them)."""
        ...

    def vector_mark(self, pk: int) -> tuple[int, int] | None:
        """(change-log sequence number the shared vector store reflects, vectors it holds), or None."""
        ...

    def set_vector_mark(self, pk: int, watermark: int, count: int) -> None: ...


@runtime_checkable
class Retention(Protocol):
    def retention_policies(self) -> list[tuple[CollectionRecord, dict]]:
        """Collections whose own policy sets `retention_days`, with that policy."""
        ...

    def expired_faces(self, pk: int, before: dt.datetime, limit: int) -> list[FaceRecord]:
        """Faces of a collection indexed before `before`, oldest first."""
        ...


@runtime_checkable
class Policies(Protocol):
    def get_policy(self, pk: int) -> dict | None:
        """The collection's own policy settings (snake_case), or None when it follows the server's."""
        ...

    def put_policy(self, pk: int, policy: dict) -> None: ...


@runtime_checkable
class AuditLog(Protocol):
    """The append-only, hash-chained audit log (`facelens.store.audit`; verified by
    `facelens.accountability.audit`)."""

    def append_audit(self, record: dict) -> AuditRow:
        """Seal `record` onto the chain, in this transaction (which must be a write transaction)."""
        ...

    def audit_rows(self, after_seq: int = 0, limit: int = 10_000, since: dt.datetime | None = None,
                   collection_id: str | None = None, face_id: str | None = None) -> list[AuditRow]:
        """Records in chain order with `seq > after_seq`, optionally from a time on, of one collection, or
        naming one FaceId."""
        ...

    def audit_head(self) -> AuditRow | None:
        """The newest record (None for an empty log)."""
        ...

    def audit_index(self, after_seq: int = 0, limit: int = 10_000) -> list[tuple[int, str]]:
        """The subject-access index (`audit_faces`): (seq, FaceId) of the first `limit` records after `after_seq`
        that it names, ordered by seq then FaceId."""
        ...


@runtime_checkable
class Tokens(Protocol):
    """Idempotency tokens (ClientRequestToken) and the store's secret."""

    def recall(self, operation: str, token: str) -> tuple[str, str] | None:
        """(parameter digest, response JSON) stored for a ClientRequestToken."""
        ...

    def remember(self, operation: str, token: str, digest: str, response: str, pk: int | None) -> None: ...

    def forget_tokens_before(self, when: dt.datetime) -> None: ...

    def secret(self) -> bytes:
        """A random key made when the store was created (signs pagination tokens)."""
        ...


@runtime_checkable
class Jobs(Protocol):
    """Video jobs (`facelens.store.jobs`): queued, claimed by one worker, renewed, finished with all their
    results at once."""

    # How long a claim lasts unrenewed (seconds): the store gives each session its constructor's `lease_seconds`
    # (`StoreSettings.job_lease_seconds`, FACELENS_VIDEO_LEASE_SECONDS).
    lease_seconds: float

    def create_job(self, job_id: str, kind: str, request: dict[str, Any], key_id: str,
                   purpose: str | None) -> JobRecord: ...

    def get_job(self, job_id: str) -> JobRecord | None: ...

    def claim_job(self, job_id: str | None = None) -> JobRecord | None:
        """The oldest queued job (or the job `job_id` if it is queued), now marked IN_PROGRESS (attempts + 1);
        None when there is none to claim."""
        ...

    def renew_job(self, job_id: str) -> None:
        """Extend the claim of a running job (its worker is alive)."""
        ...

    def requeue_interrupted(self, expired_only: bool = True) -> int:
        """Running jobs whose worker stopped renewing its claim (or, with `expired_only=False`, every running job:
        a single server starting on its own data) go back to the queue; how many."""
        ...

    def finish_job(self, job_id: str, status: str, message: str | None, metadata: dict[str, Any] | None,
                   results: Sequence[JobResult]) -> None:
        """Record the outcome and, for a success, every result (one transaction)."""
        ...

    def set_job_metadata(self, job_id: str, metadata: dict[str, Any]) -> None: ...

    def job_results(self, job_id: str, offset: int, limit: int, by_index: bool = False,
                    part: int = 0) -> list[JobResult]:
        """Results of one part (`facelens.store.jobs.TIMESTAMPS` or `SEGMENTS`) in time order (or index, then
        time), from position `offset`."""
        ...


CONCERNS: tuple[type, ...] = (Collections, Faces, Users, Imports, ChangeLog, Retention, Policies, AuditLog, Tokens,
                              Jobs, FaceCrops)


@runtime_checkable
class Session(Collections, Faces, Users, Imports, ChangeLog, Retention, Policies, AuditLog, Tokens, Jobs,
              FaceCrops, Protocol):
    """Every concern, in one transaction: what `MetadataStore.transaction()` yields."""
