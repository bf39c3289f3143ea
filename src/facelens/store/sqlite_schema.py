"""The SQLite store's schema: versioned migrations (`PRAGMA user_version`), applied in one transaction."""

from __future__ import annotations

import sqlite3

from facelens.store import schema

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
