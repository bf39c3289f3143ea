"""SQLite metadata store: collections, faces (embeddings included), users, idempotency tokens, change log.

Durability: WAL journal with `synchronous=FULL` (a committed transaction survives power loss), foreign keys on,
`secure_delete` on (freed pages are zeroed) and `auto_vacuum=INCREMENTAL` (`reclaim()` returns them to the file
system), so a deleted face's embedding leaves the disk. Every face insert and delete appends to the change log
through triggers, inside the same transaction, so no writer, not even a hand-written SQL statement, can change
faces without the vector cache learning of it.

Concurrency: a pool of connections, one per concurrent caller; write transactions are `BEGIN IMMEDIATE` (SQLite
serializes them; the busy timeout queues the others), read transactions see one WAL snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from facelens.store import audit
from facelens.store.audit import AuditRow
from facelens.store.base import (
    Change,
    CollectionRecord,
    FaceRecord,
    MetadataStore,
    NewFace,
    Session,
    UserRecord,
)
from facelens.store.jobs import LEASE_SECONDS
from facelens.store.sqlite_jobs import SqliteJobs
from facelens.store.sqlite_schema import SCHEMA_VERSION, migrate

DATABASE = "facelens.db"
__all__ = ["DATABASE", "SCHEMA_VERSION", "SqliteMetadataStore", "SqliteSession", "migrate"]
_CHUNK = 900  # bound parameters per IN (...) list

def _timestamp(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


_FACE_COLUMNS = ("f.seq, f.face_id, f.image_id, f.external_image_id, f.bounding_box, f.confidence, "
                 "f.model_version, f.user_pk, u.user_id")
_FACE_FROM = "FROM faces f LEFT JOIN users u ON u.pk = f.user_pk"


class SqliteSession(SqliteJobs, Session):
    """One transaction on one connection. Its SQL is also PostgreSQL's (`?` placeholders aside: upserts with
    ON CONFLICT, RETURNING), so `facelens.store.postgres` overrides only what differs."""

    def __init__(self, connection: sqlite3.Connection, lease_seconds: float = LEASE_SECONDS) -> None:
        self.db = connection
        self.lease_seconds = lease_seconds

    # -- collections
    def _collection(self, row: tuple) -> CollectionRecord:
        pk, collection_id, arn, version, created, tags = row
        return CollectionRecord(pk, collection_id, arn, version, _timestamp(created), json.loads(tags))

    def create_collection(self, collection_id: str, arn: str, face_model_version: str,
                          tags: dict[str, str]) -> CollectionRecord | None:
        cursor = self.db.execute(
            "INSERT INTO collections (collection_id, arn, face_model_version, created, tags, log_floor) "
            "VALUES (?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) FROM changes)) ON CONFLICT DO NOTHING",
            (collection_id, arn, face_model_version, time.time(), json.dumps(tags, sort_keys=True)))
        return self.get_collection(collection_id) if cursor.rowcount else None

    def get_collection(self, collection_id: str) -> CollectionRecord | None:
        row = self.db.execute(
            "SELECT pk, collection_id, arn, face_model_version, created, tags FROM collections "
            "WHERE collection_id = ?", (collection_id,)).fetchone()
        return self._collection(row) if row else None

    def delete_collection(self, pk: int) -> None:
        self.db.execute("DELETE FROM faces WHERE collection = ?", (pk,))
        self.db.execute("DELETE FROM collections WHERE pk = ?", (pk,))  # cascades to users and tokens
        self.db.execute("DELETE FROM changes WHERE collection = ?", (pk,))

    def list_collections(self, after_pk: int, limit: int) -> list[CollectionRecord]:
        rows = self.db.execute(
            "SELECT pk, collection_id, arn, face_model_version, created, tags FROM collections WHERE pk > ? "
            "ORDER BY pk LIMIT ?", (after_pk, limit))
        return [self._collection(row) for row in rows]

    def count_faces(self, pk: int) -> int:
        return self.db.execute("SELECT count(*) FROM faces WHERE collection = ?", (pk,)).fetchone()[0]

    def count_users(self, pk: int) -> int:
        return self.db.execute("SELECT count(*) FROM users WHERE collection = ?", (pk,)).fetchone()[0]

    # -- faces
    def add_faces(self, pk: int, faces: Sequence[NewFace]) -> list[int]:
        now = time.time()
        seqs = []
        for face in faces:
            row = self.db.execute(
                "INSERT INTO faces (collection, face_id, image_id, external_image_id, bounding_box, confidence, "
                "model_version, created, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (pk, face.face_id, face.image_id, face.external_image_id, json.dumps(face.bounding_box),
                 float(face.confidence), face.model_version, now,
                 np.ascontiguousarray(face.embedding, dtype="<f4").tobytes())).fetchone()
            seqs.append(int(row[0]))
        return seqs

    def delete_faces(self, pk: int, seqs: Sequence[int]) -> None:
        for chunk in _chunks(list(seqs)):
            marks = ",".join("?" * len(chunk))
            self.db.execute(f"DELETE FROM faces WHERE collection = ? AND seq IN ({marks})", (pk, *chunk))

    def _faces(self, where: str, params: Sequence, embeddings: bool, tail: str = "") -> list[FaceRecord]:
        columns = _FACE_COLUMNS + (", f.embedding" if embeddings else "")
        rows = self.db.execute(f"SELECT {columns} {_FACE_FROM} WHERE {where} {tail}", params)
        return [
            FaceRecord(seq, face_id, image_id, external, json.loads(box), confidence, version, user_pk, user_id,
                       np.frombuffer(rest[0], dtype="<f4") if rest else None)
            for seq, face_id, image_id, external, box, confidence, version, user_pk, user_id, *rest in rows
        ]

    def faces_by_id(self, pk: int, face_ids: Sequence[str], embeddings: bool = False) -> list[FaceRecord]:
        found = []
        for chunk in _chunks(list(face_ids)):
            where = f"f.collection = ? AND f.face_id IN ({','.join('?' * len(chunk))})"
            found += self._faces(where, (pk, *chunk), embeddings)
        return found

    def faces_by_seq(self, pk: int, seqs: Sequence[int], embeddings: bool = False) -> list[FaceRecord]:
        found = []
        for chunk in _chunks([int(s) for s in seqs]):
            where = f"f.collection = ? AND f.seq IN ({','.join('?' * len(chunk))})"
            found += self._faces(where, (pk, *chunk), embeddings)
        return found

    def list_faces(self, pk: int, after_seq: int, limit: int, user_pk: int | None = None,
                   face_ids: Sequence[str] | None = None, embeddings: bool = False) -> list[FaceRecord]:
        where, params = "f.collection = ? AND f.seq > ?", [pk, after_seq]
        if user_pk is not None:
            where += " AND f.user_pk = ?"
            params.append(user_pk)
        if face_ids is not None:  # at most 4096 (FaceIdList), under SQLite's 32766 bound parameters
            where += f" AND f.face_id IN ({','.join('?' * len(face_ids))})"
            params += list(face_ids)
        return self._faces(where, [*params, limit], embeddings, "ORDER BY f.seq LIMIT ?")

    def embeddings(self, pk: int, batch: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        after = 0
        while True:
            rows = self.db.execute("SELECT seq, embedding FROM faces WHERE collection = ? AND seq > ? "
                                   "ORDER BY seq LIMIT ?", (pk, after, batch)).fetchall()
            if not rows:
                return
            seqs = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
            yield seqs, np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(len(rows), -1)
            after = int(seqs[-1])

    # -- users
    def create_user(self, pk: int, user_id: str, status: str) -> UserRecord | None:
        row = self.db.execute("INSERT INTO users (collection, user_id, status, created) VALUES (?, ?, ?, ?) "
                              "ON CONFLICT DO NOTHING RETURNING pk", (pk, user_id, status, time.time())).fetchone()
        return UserRecord(int(row[0]), user_id, status) if row else None

    def get_user(self, pk: int, user_id: str) -> UserRecord | None:
        row = self.db.execute("SELECT pk, user_id, status FROM users WHERE collection = ? AND user_id = ?",
                              (pk, user_id)).fetchone()
        return UserRecord(*row) if row else None

    def delete_user(self, user_pk: int) -> None:
        self.db.execute("DELETE FROM users WHERE pk = ?", (user_pk,))  # faces: ON DELETE SET NULL

    def list_users(self, pk: int, after_pk: int, limit: int) -> list[UserRecord]:
        rows = self.db.execute("SELECT pk, user_id, status FROM users WHERE collection = ? AND pk > ? "
                               "ORDER BY pk LIMIT ?", (pk, after_pk, limit))
        return [UserRecord(*row) for row in rows]

    def set_user_status(self, user_pk: int, status: str) -> None:
        self.db.execute("UPDATE users SET status = ? WHERE pk = ?", (status, user_pk))

    def associate(self, seqs: Sequence[int], user_pk: int | None) -> None:
        for chunk in _chunks(list(seqs)):
            self.db.execute(f"UPDATE faces SET user_pk = ? WHERE seq IN ({','.join('?' * len(chunk))})",
                            (user_pk, *chunk))

    # -- change log
    def high_water(self) -> int:
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return int(row[0]) if row else 0

    def log_floor(self, pk: int) -> int:
        row = self.db.execute("SELECT log_floor FROM collections WHERE pk = ?", (pk,)).fetchone()
        return int(row[0]) if row else 0

    def changes_since(self, pk: int, after_seq: int) -> list[Change]:
        rows = self.db.execute("SELECT seq, face_seq, op FROM changes WHERE collection = ? AND seq > ? "
                               "ORDER BY seq", (pk, after_seq))
        return [Change(*row) for row in rows]

    def prune_changes(self, pk: int, upto_seq: int) -> None:
        self.db.execute("DELETE FROM changes WHERE collection = ? AND seq <= ?", (pk, upto_seq))
        self.db.execute("UPDATE collections SET log_floor = max(log_floor, ?) WHERE pk = ?", (upto_seq, pk))

    def expired_faces(self, pk: int, before: dt.datetime, limit: int) -> list[FaceRecord]:
        return self._faces("f.collection = ? AND f.created < ?", (pk, before.timestamp(), limit), False,
                           "ORDER BY f.created, f.seq LIMIT ?")

    # -- policies
    def get_policy(self, pk: int) -> dict | None:
        row = self.db.execute("SELECT policy FROM policies WHERE collection = ?", (pk,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_policy(self, pk: int, policy: dict) -> None:
        self.db.execute("INSERT INTO policies (collection, policy, updated) VALUES (?, ?, ?) ON CONFLICT "
                        "(collection) DO UPDATE SET policy = excluded.policy, updated = excluded.updated",
                        (pk, json.dumps(policy, sort_keys=True), time.time()))

    def retention_policies(self) -> list[tuple[CollectionRecord, dict]]:
        rows = self.db.execute(
            "SELECT c.pk, c.collection_id, c.arn, c.face_model_version, c.created, c.tags, p.policy "
            "FROM policies p JOIN collections c ON c.pk = p.collection ORDER BY c.pk").fetchall()
        found = [(self._collection(row[:6]), json.loads(row[6])) for row in rows]
        return [(collection, policy) for collection, policy in found if policy.get("retention_days")]

    # -- audit log
    def append_audit(self, record: dict) -> AuditRow:
        head = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, audit.GENESIS)
        row = audit.seal(record, seq, time.time(), prev_hash)
        self.db.execute("INSERT INTO audit (seq, time, collection, operation, record, prev_hash, hash) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (row.seq, row.time, row.collection, row.operation, row.text, row.prev_hash, row.hash))
        self.db.executemany("INSERT INTO audit_faces (face_id, seq) VALUES (?, ?) ON CONFLICT DO NOTHING",
                            [(face_id, seq) for face_id in audit.face_ids(row.record)])
        return row

    def audit_rows(self, after_seq: int = 0, limit: int = 10_000, since: dt.datetime | None = None,
                   collection_id: str | None = None, face_id: str | None = None) -> list[AuditRow]:
        where, params = ["a.seq > ?"], [after_seq]
        source = "audit a"
        if face_id is not None:
            source = "audit_faces x JOIN audit a ON a.seq = x.seq"
            where.append("x.face_id = ?")
            params.append(face_id)
        if since is not None:
            where.append("a.time >= ?")
            params.append(since.timestamp())
        if collection_id is not None:
            where.append("a.collection = ?")
            params.append(collection_id)
        rows = self.db.execute(
            f"SELECT a.seq, a.time, a.collection, a.operation, a.record, a.prev_hash, a.hash FROM {source} "
            f"WHERE {' AND '.join(where)} ORDER BY a.seq LIMIT ?", (*params, limit))
        return [AuditRow(*row) for row in rows]

    # -- shared vector stores
    def vector_mark(self, pk: int) -> tuple[int, int] | None:
        row = self.db.execute("SELECT watermark, count FROM vector_marks WHERE collection = ?", (pk,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def set_vector_mark(self, pk: int, watermark: int, count: int) -> None:
        self.db.execute("DELETE FROM vector_marks WHERE collection = ?", (pk,))
        self.db.execute("INSERT INTO vector_marks (collection, watermark, count) VALUES (?, ?, ?)",
                        (pk, watermark, count))

    # -- idempotency and secrets
    def recall(self, operation: str, token: str) -> tuple[str, str] | None:
        row = self.db.execute("SELECT digest, response FROM idempotency WHERE operation = ? AND token = ?",
                              (operation, token)).fetchone()
        return (row[0], row[1]) if row else None

    def remember(self, operation: str, token: str, digest: str, response: str, pk: int | None) -> None:
        self.db.execute("INSERT INTO idempotency (operation, token, digest, response, collection, created) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (operation, token, digest, response, pk, time.time()))

    def forget_tokens_before(self, when: dt.datetime) -> None:
        self.db.execute("DELETE FROM idempotency WHERE created < ?", (when.timestamp(),))

    def imported(self, pk: int, sources: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(sources)):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT source FROM imports WHERE collection = ? AND source IN ({marks})",
                                   (pk, *chunk))
            found.update(row[0] for row in rows)
        return found

    def mark_imported(self, pk: int, sources: Sequence[tuple[str, str]]) -> None:
        self.db.executemany("INSERT INTO imports (collection, source, image_id) VALUES (?, ?, ?) "
                            "ON CONFLICT (collection, source) DO UPDATE SET image_id = excluded.image_id",
                            [(pk, source, image_id) for source, image_id in sources])

    def secret(self) -> bytes:
        return bytes.fromhex(self.db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0])


class SqliteMetadataStore(MetadataStore):
    """The default store: one SQLite file under the data directory."""

    def __init__(self, data_dir: str | Path, busy_timeout: float = 60.0, lease_seconds: float = LEASE_SECONDS) -> None:
        self.lease_seconds = lease_seconds  # video job claims (StoreSettings.job_lease_seconds)
        self.directory = Path(data_dir)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DATABASE
        self.busy_timeout = busy_timeout
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        connection = self._acquire()
        try:
            migrate(connection)
        finally:
            self._release(connection)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new, empty database only
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA secure_delete = ON")
        return connection

    def _acquire(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError("the metadata store is closed")
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _release(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            if self._closed:
                connection.close()
            else:
                self._idle.append(connection)

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[SqliteSession]:
        connection = self._acquire()
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield SqliteSession(connection, self.lease_seconds)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        finally:
            self._release(connection)

    def reclaim(self) -> None:
        connection = self._acquire()
        try:
            connection.executescript("PRAGMA incremental_vacuum;")  # run to the end (execute() frees one page)
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            self._release(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
