"""PostgreSQL metadata store (psycopg 3 with a connection pool): the same schema and operations as the SQLite
store, for several `facelens serve` replicas sharing one database.

Each transaction is one `SqlSession` in the PostgreSQL dialect (`facelens.store.sql.dialect.POSTGRESQL`: `%s`
placeholders, the change log's sequence for the high-water mark, no pruning, jobs claimed `FOR UPDATE SKIP
LOCKED`). Concurrency: every write transaction first takes one transaction-scoped advisory lock, so writes are
serialized across all replicas exactly as SQLite serializes them: the change log's sequence numbers commit in
order (a replica's vector cache that has read up to change n has seen every change before n), and the audit
chain stays linear. Reads run at REPEATABLE READ: one snapshot. The change log is shared by every replica's
vector cache, so it is not pruned here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from facelens.store.base import MetadataStore
from facelens.store.jobs import LEASE_SECONDS
from facelens.store.sql import schema
from facelens.store.sql.dialect import POSTGRESQL
from facelens.store.sql.session import SqlSession

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresMetadataStore", "migrate"]

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
_FACE_COUNT_TRIGGERS = """
CREATE FUNCTION facelens_face_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN UPDATE collections SET face_count = face_count + 1 WHERE pk = NEW.collection;
    ELSE UPDATE collections SET face_count = face_count - 1 WHERE pk = OLD.collection; END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER faces_counted AFTER INSERT OR DELETE ON faces FOR EACH ROW EXECUTE FUNCTION facelens_face_counted();
"""
# Schema 10: the face triggers above fire per row; the counter's UPDATE of one collections row, repeated for
# each face of a transaction, walks that row's growing chain of versions (quadratic in the faces per transaction:
# docs/benchmarks.md). Once per statement, with the statement's rows as a transition table, instead.
_FACES_STATEMENT_TRIGGERS = """
DROP TRIGGER faces_added ON faces;
DROP TRIGGER faces_deleted ON faces;
DROP TRIGGER faces_counted ON faces;
DROP FUNCTION facelens_face_added, facelens_face_deleted, facelens_face_counted;
CREATE FUNCTION facelens_faces_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO changes (collection, face_seq, op) SELECT collection, seq, 1 FROM added ORDER BY seq;
    UPDATE collections c SET face_count = c.face_count + d.n
        FROM (SELECT collection, count(*) AS n FROM added GROUP BY collection) d WHERE c.pk = d.collection;
    RETURN NULL;
END $$;
CREATE FUNCTION facelens_faces_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO changes (collection, face_seq, op) SELECT collection, seq, -1 FROM removed ORDER BY seq;
    UPDATE collections c SET face_count = c.face_count - d.n
        FROM (SELECT collection, count(*) AS n FROM removed GROUP BY collection) d WHERE c.pk = d.collection;
    RETURN NULL;
END $$;
CREATE TRIGGER faces_added AFTER INSERT ON faces REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION facelens_faces_added();
CREATE TRIGGER faces_deleted AFTER DELETE ON faces REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION facelens_faces_deleted();
"""
_AUDIT_GUARD = """
CREATE FUNCTION facelens_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit FOR EACH ROW
    EXECUTE FUNCTION facelens_audit_append_only();
"""

# MIGRATIONS[v] takes the schema from version v to v + 1 (table facelens_schema); the same steps as SQLite's
# up to 9, then PostgreSQL's own.
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
    [*schema.FACE_COUNTS, _FACE_COUNT_TRIGGERS],
    schema.VIDEO_RESULT_PARTS,
    schema.STREAM_PROCESSORS,
    schema.face_crops("BYTEA"),
    [_FACES_STATEMENT_TRIGGERS],  # PostgreSQL only (SQLite's per-row UPDATE is in place): see above
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
    def transaction(self, write: bool = False) -> Iterator[SqlSession]:
        with self.pool.connection() as connection, connection.transaction():
            if write:
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            else:
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            session = SqlSession(connection, POSTGRESQL, self.lease_seconds)
            yield session
        self.committed(session.sealed)

    def reclaim(self) -> None:
        """PostgreSQL's autovacuum returns deleted rows' space; nothing to do per request."""

    def close(self) -> None:
        self.pool.close()
