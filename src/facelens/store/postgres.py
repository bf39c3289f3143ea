"""PostgreSQL metadata store (psycopg 3 with a connection pool): the same schema and operations as the SQLite
store, for several `facelens serve` replicas sharing one database.

The session reuses the SQLite session's queries through a small adapter (`?` placeholders become `%s`) and
overrides the statements whose dialect differs. Concurrency: every write transaction first takes one
transaction-scoped advisory lock, so writes are serialized across all replicas exactly as SQLite serializes
them: the change log's sequence numbers commit in order (a replica's vector cache that has read up to change n
has seen every change before n), and the audit chain stays linear. Reads run at REPEATABLE READ: one snapshot.
Video jobs are claimed with `FOR UPDATE SKIP LOCKED`. The change log is shared by every replica's vector cache,
so it is not pruned here.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from facelens.store import schema
from facelens.store.base import MetadataStore
from facelens.store.jobs import LEASE_SECONDS, QUEUED, RUNNING, JobRecord
from facelens.store.metadata import SqliteSession

WRITE_LOCK = 0x46616365  # pg_advisory_xact_lock key serializing writers ("Face")
MIGRATION_LOCK = 0x46616366

_FACES_TRIGGERS = """
CREATE FUNCTION facelens_face_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO changes (collection, face_seq, op) VALUES (NEW.collection, NEW.seq, 1); RETURN NULL; END $$;
CREATE FUNCTION facelens_face_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO changes (collection, face_seq, op) VALUES (OLD.collection, OLD.seq, -1); RETURN NULL; END $$;
CREATE TRIGGER faces_added AFTER INSERT ON faces FOR EACH ROW EXECUTE FUNCTION facelens_face_added();
CREATE TRIGGER faces_deleted AFTER DELETE ON faces FOR EACH ROW EXECUTE FUNCTION facelens_face_deleted();
"""
_AUDIT_GUARD = """
CREATE FUNCTION facelens_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit FOR EACH ROW
    EXECUTE FUNCTION facelens_audit_append_only();
"""

# MIGRATIONS[v] takes the schema from version v to v + 1 (table facelens_schema); the same steps as SQLite's.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE collections (
            pk BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            collection_id TEXT NOT NULL UNIQUE,
            arn TEXT NOT NULL,
            face_model_version TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            tags TEXT NOT NULL DEFAULT '{}',
            log_floor BIGINT NOT NULL DEFAULT 0)""",
        """CREATE TABLE users (
            pk BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            collection BIGINT NOT NULL REFERENCES collections (pk) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            status TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            UNIQUE (collection, user_id))""",
        """CREATE TABLE faces (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            collection BIGINT NOT NULL REFERENCES collections (pk) ON DELETE CASCADE,
            face_id TEXT NOT NULL UNIQUE,
            image_id TEXT NOT NULL,
            external_image_id TEXT,
            bounding_box TEXT NOT NULL,
            confidence DOUBLE PRECISION NOT NULL,
            model_version TEXT NOT NULL,
            user_pk BIGINT REFERENCES users (pk) ON DELETE SET NULL,
            created DOUBLE PRECISION NOT NULL,
            embedding BYTEA NOT NULL)""",
        "CREATE INDEX faces_by_collection ON faces (collection, seq)",
        "CREATE INDEX faces_by_user ON faces (user_pk, seq)",
        """CREATE TABLE changes (
            seq BIGSERIAL PRIMARY KEY,
            collection BIGINT NOT NULL,
            face_seq BIGINT NOT NULL,
            op INTEGER NOT NULL)""",
        "CREATE INDEX changes_by_collection ON changes (collection, seq)",
        _FACES_TRIGGERS,
        """CREATE TABLE idempotency (
            operation TEXT NOT NULL,
            token TEXT NOT NULL,
            digest TEXT NOT NULL,
            response TEXT NOT NULL,
            collection BIGINT REFERENCES collections (pk) ON DELETE CASCADE,
            created DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (operation, token))""",
        "CREATE INDEX idempotency_by_age ON idempotency (created)",
    ],
    [
        """CREATE TABLE imports (
            collection BIGINT NOT NULL REFERENCES collections (pk) ON DELETE CASCADE,
            source TEXT NOT NULL,
            image_id TEXT NOT NULL,
            PRIMARY KEY (collection, source))""",
    ],
    [*schema.POLICIES, *schema.AUDIT, _AUDIT_GUARD],
    schema.VIDEO_JOBS,
    schema.VECTOR_MARKS,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: psycopg.Connection) -> int:
    """Bring the database to SCHEMA_VERSION (once, whatever the number of replicas starting); the version it
    was at."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS facelens_schema (version INTEGER NOT NULL)")
        row = connection.execute("SELECT version FROM facelens_schema").fetchone()
        if row is None:
            connection.execute("INSERT INTO facelens_schema (version) VALUES (0)")
        version = row[0] if row else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"database schema {version} is newer than this FaceLens ({SCHEMA_VERSION})")
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                connection.execute(statement)
            if step == 0:
                connection.execute("INSERT INTO meta (key, value) VALUES ('secret', %s)", (secrets.token_hex(32),))
            connection.execute("UPDATE facelens_schema SET version = %s", (step + 1,))
    return version


class _Cursor:
    """What SqliteSession reads of a sqlite3 cursor."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fetchall())


_PLACEHOLDER = re.compile(r"\?")


class _Connection:
    """sqlite3-style `execute` / `executemany` with `?` placeholders over a psycopg connection."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        return _Cursor(self.connection.execute(_PLACEHOLDER.sub("%s", sql), tuple(params)))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.connection.cursor() as cursor:
                cursor.executemany(_PLACEHOLDER.sub("%s", sql), [tuple(row) for row in rows])


class PostgresSession(SqliteSession):
    """One PostgreSQL transaction; the SQLite session's queries, with PostgreSQL's dialect where it differs."""

    def __init__(self, connection: psycopg.Connection, lease_seconds: float = LEASE_SECONDS) -> None:
        super().__init__(_Connection(connection), lease_seconds)  # type: ignore[arg-type]

    def high_water(self) -> int:
        row = self.db.execute("SELECT pg_sequence_last_value('changes_seq_seq')").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def prune_changes(self, pk: int, upto_seq: int) -> None:
        """Kept: every replica's vector cache catches up from the one shared change log."""

    def claim_job(self, job_id: str | None = None) -> JobRecord | None:
        where, params = ("status = ?", [QUEUED]) if job_id is None else ("status = ? AND job_id = ?",
                                                                         [QUEUED, job_id])
        row = self.db.execute(f"SELECT job_id FROM video_jobs WHERE {where} ORDER BY created LIMIT 1 "
                              "FOR UPDATE SKIP LOCKED", params).fetchone()
        if row is None:
            return None
        self.db.execute("UPDATE video_jobs SET status = ?, attempts = attempts + 1, lease_until = ? "
                        "WHERE job_id = ?", (RUNNING, time.time() + self.lease_seconds, row[0]))
        return self.get_job(row[0])


class PostgresMetadataStore(MetadataStore):
    """Metadata in a PostgreSQL database shared by any number of FaceLens processes."""

    def __init__(self, url: str, min_size: int = 1, max_size: int = 16, lease_seconds: float = LEASE_SECONDS) -> None:
        self.url = url
        self.lease_seconds = lease_seconds  # video job claims (StoreSettings.job_lease_seconds)
        self.pool = ConnectionPool(url, min_size=min_size, max_size=max_size, open=True,
                                   kwargs={"autocommit": True})
        with self.pool.connection() as connection:
            migrate(connection)

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[PostgresSession]:
        with self.pool.connection() as connection, connection.transaction():
            if write:
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            else:
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresSession(connection, self.lease_seconds)

    def reclaim(self) -> None:
        """PostgreSQL's autovacuum returns deleted rows' space; nothing to do per request."""

    def close(self) -> None:
        self.pool.close()
