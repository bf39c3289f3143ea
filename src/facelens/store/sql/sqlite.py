"""SQLite metadata store: one file under the data directory, its connections and its migrations.

Durability: WAL journal with `synchronous=FULL` (a committed transaction survives power loss), foreign keys on,
`secure_delete` on (freed pages are zeroed) and `auto_vacuum=INCREMENTAL` (`reclaim()` returns them to the file
system), so a deleted face's embedding leaves the disk. The WAL still holds the pages from before a delete until a
`wal_checkpoint(TRUNCATE)` succeeds, which it cannot while any reader holds an older snapshot: `reclaim()` tries
at once and, while busy, a background thread retries every `CHECKPOINT_RETRY_SECONDS` (for up to
`CHECKPOINT_RETRY_FOR_SECONDS`), so the bytes leave the WAL within that interval of the last such reader ending
(docs/accountability.md states the bound). Every face insert and delete appends to the change log
through triggers, inside the same transaction, so no writer, not even a hand-written SQL statement, can change
faces without the vector cache learning of it.

Concurrency: a pool of connections, one per concurrent caller; write transactions are `BEGIN IMMEDIATE` (SQLite
serializes them; the busy timeout queues the others), read transactions see one WAL snapshot. Each transaction is
one `SqlSession` in the SQLite dialect.

Schema: versioned migrations (`PRAGMA user_version`), applied in one transaction when the store opens.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facelens.store.base import MetadataStore
from facelens.store.jobs import LEASE_SECONDS
from facelens.store.sql import schema
from facelens.store.sql.dialect import SQLITE
from facelens.store.sql.session import SqlSession

DATABASE = "facelens.db"
__all__ = ["DATABASE", "MIGRATIONS", "SCHEMA_VERSION", "SqliteMetadataStore", "migrate"]
CHECKPOINT_RETRY_SECONDS = 0.25  # between tries of a checkpoint a reader's snapshot kept from finishing
CHECKPOINT_RETRY_FOR_SECONDS = 3600.0  # then a warning is logged; the next reclaim() (or open) tries again
CHECKPOINT_BUSY_MS = 100  # how long one try waits for readers (it holds off writers meanwhile)

log = logging.getLogger(__name__)

# MIGRATIONS[v] takes the schema from version v to v + 1 (`PRAGMA user_version`).
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('secret', hex(randomblob(32)))",
        """CREATE TABLE collections (
            pk INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id TEXT NOT NULL UNIQUE,
            arn TEXT NOT NULL,
            face_model_version TEXT NOT NULL,
            created REAL NOT NULL,
            tags TEXT NOT NULL DEFAULT '{}',
            log_floor INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE users (
            pk INTEGER PRIMARY KEY AUTOINCREMENT,
            collection INTEGER NOT NULL REFERENCES collections (pk) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            status TEXT NOT NULL,
            created REAL NOT NULL,
            UNIQUE (collection, user_id))""",
        """CREATE TABLE faces (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            collection INTEGER NOT NULL REFERENCES collections (pk) ON DELETE CASCADE,
            face_id TEXT NOT NULL UNIQUE,
            image_id TEXT NOT NULL,
            external_image_id TEXT,
            bounding_box TEXT NOT NULL,
            confidence REAL NOT NULL,
            model_version TEXT NOT NULL,
            user_pk INTEGER REFERENCES users (pk) ON DELETE SET NULL,
            created REAL NOT NULL,
            embedding BLOB NOT NULL)""",
        "CREATE INDEX faces_by_collection ON faces (collection, seq)",
        "CREATE INDEX faces_by_user ON faces (user_pk, seq)",
        """CREATE TABLE changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            collection INTEGER NOT NULL,
            face_seq INTEGER NOT NULL,
            op INTEGER NOT NULL)""",
        "CREATE INDEX changes_by_collection ON changes (collection, seq)",
        """CREATE TRIGGER faces_added AFTER INSERT ON faces BEGIN
            INSERT INTO changes (collection, face_seq, op) VALUES (NEW.collection, NEW.seq, 1); END""",
        """CREATE TRIGGER faces_deleted AFTER DELETE ON faces BEGIN
            INSERT INTO changes (collection, face_seq, op) VALUES (OLD.collection, OLD.seq, -1); END""",
        """CREATE TABLE idempotency (
            operation TEXT NOT NULL,
            token TEXT NOT NULL,
            digest TEXT NOT NULL,
            response TEXT NOT NULL,
            collection INTEGER REFERENCES collections (pk) ON DELETE CASCADE,
            created REAL NOT NULL,
            PRIMARY KEY (operation, token))""",
        "CREATE INDEX idempotency_by_age ON idempotency (created)",
    ],
    [  # bulk imports (`facelens index`): which source files a collection already holds, for resuming
        """CREATE TABLE imports (
            collection INTEGER NOT NULL REFERENCES collections (pk) ON DELETE CASCADE,
            source TEXT NOT NULL,
            image_id TEXT NOT NULL,
            PRIMARY KEY (collection, source))""",
    ],
    [  # accountability: per-collection policy, the hash-chained audit log and its FaceId index
        *schema.POLICIES,
        *schema.AUDIT,
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
            SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN
            SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    ],
    schema.VIDEO_JOBS,  # stored-video jobs and their results
    schema.VECTOR_MARKS,  # a shared vector store's (Milvus) position in the change log, per collection
    [  # the face count the size-aware floor reads on every search, kept by triggers instead of a count(*)
        *schema.FACE_COUNTS,
        """CREATE TRIGGER faces_counted AFTER INSERT ON faces BEGIN
            UPDATE collections SET face_count = face_count + 1 WHERE pk = NEW.collection; END""",
        """CREATE TRIGGER faces_uncounted AFTER DELETE ON faces BEGIN
            UPDATE collections SET face_count = face_count - 1 WHERE pk = OLD.collection; END""",
    ],
    schema.VIDEO_RESULT_PARTS,  # a video job's results per timestamp and aggregated into segments
    schema.STREAM_PROCESSORS,  # live-video stream processors, their sessions and the replica running each
    schema.face_crops("BLOB"),  # face thumbnails, kept only where the collection's policy opts in
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema to `SCHEMA_VERSION` in one transaction; the version it was at."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"database schema {version} is newer than this FaceLens ({SCHEMA_VERSION})")
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {step + 1}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return version


class Checkpointer:
    """`wal_checkpoint(TRUNCATE)` until it succeeds: tried at once by `request()`, then retried on a daemon thread
    every `CHECKPOINT_RETRY_SECONDS` while readers keep it busy, for up to `CHECKPOINT_RETRY_FOR_SECONDS` after
    the latest request. Invariant: once a try succeeds, no WAL frame written before the request is left on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # one try at a time, on one connection
        self._connection: sqlite3.Connection | None = None
        self._deadline = 0.0  # monotonic time after which retries stop; 0: nothing pending
        self._requests = 0  # requests that found the checkpoint busy (a retry clears only what it began after)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _try(self) -> bool:
        with self._lock:
            if self._connection is None:
                self._connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._connection.execute(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_MS}")
            try:
                busy = self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.OperationalError:  # locked by a writer past the busy timeout
                return False
            return busy == 0

    def request(self) -> bool:
        """Checkpoint now, or keep retrying in the background; whether it is done already."""
        if self._try():
            return True
        self._deadline = time.monotonic() + CHECKPOINT_RETRY_FOR_SECONDS
        self._requests += 1
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._retry, name="facelens-checkpoint", daemon=True)
                self._thread.start()
        self._wake.set()
        return False

    def _retry(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while self._deadline and not self._stop.wait(CHECKPOINT_RETRY_SECONDS):
                begun = self._requests
                if self._try():
                    if begun == self._requests:  # no request found it busy since this try began
                        self._deadline = 0.0
                elif time.monotonic() > self._deadline:
                    log.warning("WAL checkpoint still busy after %.0f s (a reader holds an old snapshot): deleted "
                                "rows may remain in %s-wal until the next delete or restart",
                                CHECKPOINT_RETRY_FOR_SECONDS, self.path)
                    self._deadline = 0.0

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


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
        self._checkpoints = Checkpointer(self.path)
        self._checkpoints.request()  # what a crash left in the WAL

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
    def transaction(self, write: bool = False) -> Iterator[SqlSession]:
        connection = self._acquire()
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            session = SqlSession(connection, SQLITE, self.lease_seconds)
            try:
                yield session
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        finally:
            self._release(connection)
        self.committed(session.sealed)

    def reclaim(self) -> None:
        connection = self._acquire()
        try:
            connection.executescript("PRAGMA incremental_vacuum;")  # run to the end (execute() frees one page)
        finally:
            self._release(connection)
        self._checkpoints.request()  # the WAL still holds the deleted rows' old pages

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        self._checkpoints.close()
