"""Table definitions both metadata stores share, in SQL that SQLite and PostgreSQL read alike (BIGINT, DOUBLE
PRECISION and TEXT columns; SQLite maps them to its INTEGER, REAL and TEXT affinities). Dialect-specific parts
(identity columns, triggers) stay in `sqlite.py` and `postgres.py`."""

from __future__ import annotations

POLICIES = [
    """CREATE TABLE policies (
        collection BIGINT PRIMARY KEY REFERENCES collections (pk) ON DELETE CASCADE,
        policy TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL)""",
]
AUDIT = [
    """CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,
        time DOUBLE PRECISION NOT NULL,
        collection TEXT,
        operation TEXT NOT NULL,
        record TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    "CREATE INDEX audit_by_time ON audit (time)",
    "CREATE INDEX audit_by_collection ON audit (collection, seq)",
    "CREATE TABLE audit_faces (face_id TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (face_id, seq))",
    "CREATE INDEX faces_by_age ON faces (collection, created)",
]
VIDEO_JOBS = [
    """CREATE TABLE video_jobs (
        job_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        status_message TEXT,
        request TEXT NOT NULL,
        key_id TEXT NOT NULL,
        purpose TEXT,
        created DOUBLE PRECISION NOT NULL,
        finished DOUBLE PRECISION,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_until DOUBLE PRECISION,
        metadata TEXT,
        result_count INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX video_jobs_by_status ON video_jobs (status, created)",
    """CREATE TABLE video_results (
        job_id TEXT NOT NULL REFERENCES video_jobs (job_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        timestamp BIGINT NOT NULL,
        person INTEGER NOT NULL,
        item TEXT NOT NULL,
        PRIMARY KEY (job_id, seq))""",
    "CREATE INDEX video_results_by_person ON video_results (job_id, person, timestamp, seq)",
]
# a job's results may come in parts: 0 per timestamp, 1 aggregated (GetLabelDetection AggregateBy SEGMENTS)
VIDEO_RESULT_PARTS = [
    "ALTER TABLE video_results ADD COLUMN part INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX video_results_by_part ON video_results (job_id, part, person, timestamp, seq)",
]
VECTOR_MARKS = [
    """CREATE TABLE vector_marks (
        collection BIGINT PRIMARY KEY REFERENCES collections (pk) ON DELETE CASCADE,
        watermark BIGINT NOT NULL,
        count BIGINT NOT NULL)""",
]
FACE_COUNTS = [  # each collection's face count (the dialects add the triggers that keep it)
    "ALTER TABLE collections ADD COLUMN face_count BIGINT NOT NULL DEFAULT 0",
    "UPDATE collections SET face_count = (SELECT count(*) FROM faces WHERE faces.collection = collections.pk)",
]
STREAM_PROCESSORS = [
    """CREATE TABLE stream_processors (
        name TEXT PRIMARY KEY,
        arn TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        status_message TEXT,
        request TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        key_id TEXT NOT NULL,
        purpose TEXT,
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        session_id TEXT,
        selectors TEXT,
        started DOUBLE PRECISION,
        owner TEXT,
        lease_until DOUBLE PRECISION)""",
    "CREATE INDEX stream_processors_by_status ON stream_processors (status, lease_until)",
]


def face_crops(blob: str) -> list[str]:
    """Face thumbnails (a collection policy's KeepFaceCrops): one small JPEG per face, written in the face's own
    transaction and deleted with it by the foreign key's cascade, whatever deletes the face (DeleteFaces,
    DeleteCollection, retention). `blob` is the dialect's binary type (SQLite BLOB, PostgreSQL BYTEA)."""
    return [f"""CREATE TABLE face_crops (
        face_seq BIGINT PRIMARY KEY REFERENCES faces (seq) ON DELETE CASCADE,
        jpeg {blob} NOT NULL)"""]
