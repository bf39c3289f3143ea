"""The one SQL session: every `facelens.store.repos` protocol, over a connection and its `Dialect`.

A session is one transaction on one connection, begun and ended by its store (`sqlite.py`, `postgres.py`). Its
statements are written once with `?` placeholders and rendered by the dialect; the few that differ between
SQLite and PostgreSQL (high-water mark, change-log pruning, job claiming) are the dialect's. Faces' change-log
entries are written by triggers in the same transaction (see the stores' migrations), so no writer can change
faces without the vector caches learning of it. Driver errors (sqlite3.IntegrityError, psycopg.Error) pass
through unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from facelens.store import audit
from facelens.store.audit import AuditRow
from facelens.store.jobs import FAILED, LEASE_SECONDS, QUEUED, RUNNING, SUCCEEDED, JobRecord, JobResult
from facelens.store.records import Change, CollectionRecord, FaceRecord, NewFace, UserRecord
from facelens.store.sql.dialect import Connection, Cursor, Dialect
from facelens.store.sql.rows import (
    COLLECTION_COLUMNS,
    FACE_COLUMNS,
    FACE_FROM,
    FACE_ROWS,
    JOB_COLUMNS,
    chunks,
    collection_record,
    job_record,
    marks,
    stacked,
)


class SqlSession:
    """One transaction on one connection (a `facelens.store.repos.Session`)."""

    def __init__(self, connection: Connection, dialect: Dialect, lease_seconds: float = LEASE_SECONDS) -> None:
        self.db = connection
        self.dialect = dialect
        self.lease_seconds = lease_seconds
        self.sealed: list[AuditRow] = []  # audit records appended in this transaction, for the store's listener

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.db.execute(self.dialect.render(sql), tuple(params))

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        cursor = self.db.cursor()
        try:
            cursor.executemany(self.dialect.render(sql), [tuple(row) for row in rows])
        finally:
            cursor.close()

    # -- collections
    def create_collection(self, collection_id: str, arn: str, face_model_version: str,
                          tags: dict[str, str]) -> CollectionRecord | None:
        cursor = self._run(
            "INSERT INTO collections (collection_id, arn, face_model_version, created, tags, log_floor) "
            "VALUES (?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) FROM changes)) ON CONFLICT DO NOTHING",
            (collection_id, arn, face_model_version, time.time(), json.dumps(tags, sort_keys=True)))
        return self.get_collection(collection_id) if cursor.rowcount else None

    def get_collection(self, collection_id: str) -> CollectionRecord | None:
        row = self._run(f"SELECT {COLLECTION_COLUMNS} FROM collections WHERE collection_id = ?",
                        (collection_id,)).fetchone()
        return collection_record(row) if row else None

    def delete_collection(self, pk: int) -> None:
        """Delete a collection, its faces, users, tokens, and the face-search jobs run on it (their results name
        its faces)."""
        row = self._run("SELECT collection_id FROM collections WHERE pk = ?", (pk,)).fetchone()
        if row is not None:
            jobs = [job_id for job_id, request in self._run(
                        "SELECT job_id, request FROM video_jobs WHERE kind = ?", ("FaceSearch",))
                    if json.loads(request).get("CollectionId") == row[0]]
            for job_id in jobs:
                self._run("DELETE FROM video_results WHERE job_id = ?", (job_id,))
                self._run("DELETE FROM video_jobs WHERE job_id = ?", (job_id,))
        self._run("DELETE FROM faces WHERE collection = ?", (pk,))
        self._run("DELETE FROM collections WHERE pk = ?", (pk,))  # cascades to users and tokens
        self._run("DELETE FROM changes WHERE collection = ?", (pk,))

    def list_collections(self, after_pk: int, limit: int) -> list[CollectionRecord]:
        rows = self._run(f"SELECT {COLLECTION_COLUMNS} FROM collections WHERE pk > ? ORDER BY pk LIMIT ?",
                         (after_pk, limit))
        return [collection_record(row) for row in rows]

    def count_faces(self, pk: int) -> int:
        """The collection's face count, kept by triggers on `faces` in the transaction that adds or deletes a face
        (see the stores' migrations): one row read, whatever the collection's size (0: no such collection)."""
        row = self._run("SELECT face_count FROM collections WHERE pk = ?", (pk,)).fetchone()
        return int(row[0]) if row else 0

    def count_users(self, pk: int) -> int:
        return self._run("SELECT count(*) FROM users WHERE collection = ?", (pk,)).fetchone()[0]

    # -- faces
    def add_faces(self, pk: int, faces: Sequence[NewFace]) -> list[int]:
        """Their seqs, in the order given; one INSERT per `FACE_ROWS` faces (a statement per face copies each
        page it touches to SQLite's statement journal, per face: docs/benchmarks.md)."""
        now = time.time()
        seq_of: dict[str, int] = {}
        for chunk in chunks(faces, FACE_ROWS):
            params: list[Any] = []
            for face in chunk:
                params += (pk, face.face_id, face.image_id, face.external_image_id, json.dumps(face.bounding_box),
                           float(face.confidence), face.model_version, now,
                           np.ascontiguousarray(face.embedding, dtype="<f4").tobytes())
            rows = self._run(
                "INSERT INTO faces (collection, face_id, image_id, external_image_id, bounding_box, confidence, "
                f"model_version, created, embedding) VALUES {','.join(['(?, ?, ?, ?, ?, ?, ?, ?, ?)'] * len(chunk))} "
                "RETURNING seq, face_id", params).fetchall()
            seq_of.update((face_id, int(seq)) for seq, face_id in rows)  # RETURNING's row order is unspecified
        return [seq_of[face.face_id] for face in faces]

    def add_face_crops(self, crops: Sequence[tuple[int, bytes]]) -> None:
        self._run_many("INSERT INTO face_crops (face_seq, jpeg) VALUES (?, ?)", [(seq, jpeg) for seq, jpeg in crops])

    def face_crop(self, pk: int, face_id: str) -> bytes | None:
        row = self._run("SELECT c.jpeg FROM face_crops c JOIN faces f ON f.seq = c.face_seq "
                        "WHERE f.collection = ? AND f.face_id = ?", (pk, face_id)).fetchone()
        return bytes(row[0]) if row else None

    def crops_of(self, pk: int, face_ids: Sequence[str]) -> set[str]:
        return {row[0] for chunk in chunks(list(face_ids)) for row in self._run(
            "SELECT f.face_id FROM faces f JOIN face_crops c ON c.face_seq = f.seq WHERE f.collection = ? "
            f"AND f.face_id IN ({marks(chunk)})", (pk, *chunk))}

    def delete_faces(self, pk: int, seqs: Sequence[int]) -> None:
        for chunk in chunks(list(seqs)):
            self._run(f"DELETE FROM faces WHERE collection = ? AND seq IN ({marks(chunk)})", (pk, *chunk))

    def _faces(self, where: str, params: Sequence, embeddings: bool, tail: str = "") -> list[FaceRecord]:
        columns = FACE_COLUMNS + (", f.embedding" if embeddings else "")
        rows = self._run(f"SELECT {columns} {FACE_FROM} WHERE {where} {tail}", params)
        return [
            FaceRecord(seq, face_id, image_id, external, json.loads(box), confidence, version, user_pk, user_id,
                       np.frombuffer(rest[0], dtype="<f4") if rest else None)
            for seq, face_id, image_id, external, box, confidence, version, user_pk, user_id, *rest in rows
        ]

    def faces_by_id(self, pk: int, face_ids: Sequence[str], embeddings: bool = False) -> list[FaceRecord]:
        found = []
        for chunk in chunks(list(face_ids)):
            found += self._faces(f"f.collection = ? AND f.face_id IN ({marks(chunk)})", (pk, *chunk), embeddings)
        return found

    def faces_by_seq(self, pk: int, seqs: Sequence[int], embeddings: bool = False) -> list[FaceRecord]:
        found = []
        for chunk in chunks([int(s) for s in seqs]):
            found += self._faces(f"f.collection = ? AND f.seq IN ({marks(chunk)})", (pk, *chunk), embeddings)
        return found

    def list_faces(self, pk: int, after_seq: int, limit: int, user_pk: int | None = None,
                   face_ids: Sequence[str] | None = None, embeddings: bool = False) -> list[FaceRecord]:
        where, params = "f.collection = ? AND f.seq > ?", [pk, after_seq]
        if user_pk is not None:
            where += " AND f.user_pk = ?"
            params.append(user_pk)
        if face_ids is not None:  # at most 4096 (FaceIdList), under SQLite's 32766 bound parameters
            where += f" AND f.face_id IN ({marks(face_ids)})"
            params += list(face_ids)
        return self._faces(where, [*params, limit], embeddings, "ORDER BY f.seq LIMIT ?")

    def embeddings(self, pk: int, batch: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        after = 0
        while True:
            rows = self._run("SELECT seq, embedding FROM faces WHERE collection = ? AND seq > ? ORDER BY seq LIMIT ?",
                             (pk, after, batch)).fetchall()
            if not rows:
                return
            yield stacked(rows)
            after = int(rows[-1][0])

    def embeddings_of(self, pk: int, seqs: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        rows = [row for chunk in chunks(sorted(int(s) for s in seqs)) for row in self._run(
            f"SELECT seq, embedding FROM faces WHERE collection = ? AND seq IN ({marks(chunk)}) ORDER BY seq",
            (pk, *chunk))]
        return stacked(rows)

    # -- users
    def create_user(self, pk: int, user_id: str, status: str) -> UserRecord | None:
        row = self._run("INSERT INTO users (collection, user_id, status, created) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT DO NOTHING RETURNING pk", (pk, user_id, status, time.time())).fetchone()
        return UserRecord(int(row[0]), user_id, status) if row else None

    def get_user(self, pk: int, user_id: str) -> UserRecord | None:
        row = self._run("SELECT pk, user_id, status FROM users WHERE collection = ? AND user_id = ?",
                        (pk, user_id)).fetchone()
        return UserRecord(*row) if row else None

    def delete_user(self, user_pk: int) -> None:
        self._run("DELETE FROM users WHERE pk = ?", (user_pk,))  # faces: ON DELETE SET NULL

    def list_users(self, pk: int, after_pk: int, limit: int) -> list[UserRecord]:
        rows = self._run("SELECT pk, user_id, status FROM users WHERE collection = ? AND pk > ? ORDER BY pk LIMIT ?",
                         (pk, after_pk, limit))
        return [UserRecord(*row) for row in rows]

    def set_user_status(self, user_pk: int, status: str) -> None:
        self._run("UPDATE users SET status = ? WHERE pk = ?", (status, user_pk))

    def associate(self, seqs: Sequence[int], user_pk: int | None) -> None:
        for chunk in chunks(list(seqs)):
            self._run(f"UPDATE faces SET user_pk = ? WHERE seq IN ({marks(chunk)})", (user_pk, *chunk))

    # -- bulk imports
    def imported(self, pk: int, sources: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(list(sources)):
            rows = self._run(f"SELECT source FROM imports WHERE collection = ? AND source IN ({marks(chunk)})",
                             (pk, *chunk))
            found.update(row[0] for row in rows)
        return found

    def mark_imported(self, pk: int, sources: Sequence[tuple[str, str]]) -> None:
        self._run_many("INSERT INTO imports (collection, source, image_id) VALUES (?, ?, ?) "
                       "ON CONFLICT (collection, source) DO UPDATE SET image_id = excluded.image_id",
                       [(pk, source, image_id) for source, image_id in sources])

    # -- change log and shared vector stores' marks
    def high_water(self) -> int:
        row = self._run(self.dialect.high_water_sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def log_floor(self, pk: int) -> int:
        row = self._run("SELECT log_floor FROM collections WHERE pk = ?", (pk,)).fetchone()
        return int(row[0]) if row else 0

    def changes_since(self, pk: int, after_seq: int) -> list[Change]:
        rows = self._run("SELECT seq, face_seq, op FROM changes WHERE collection = ? AND seq > ? ORDER BY seq",
                         (pk, after_seq))
        return [Change(*row) for row in rows]

    def prune_changes(self, pk: int, upto_seq: int) -> None:
        if not self.dialect.prunes_changes:
            return
        self._run("DELETE FROM changes WHERE collection = ? AND seq <= ?", (pk, upto_seq))
        self._run("UPDATE collections SET log_floor = max(log_floor, ?) WHERE pk = ?", (upto_seq, pk))

    def vector_mark(self, pk: int) -> tuple[int, int] | None:
        row = self._run("SELECT watermark, count FROM vector_marks WHERE collection = ?", (pk,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def set_vector_mark(self, pk: int, watermark: int, count: int) -> None:
        self._run("DELETE FROM vector_marks WHERE collection = ?", (pk,))
        self._run("INSERT INTO vector_marks (collection, watermark, count) VALUES (?, ?, ?)", (pk, watermark, count))

    # -- retention
    def retention_policies(self) -> list[tuple[CollectionRecord, dict]]:
        rows = self._run("SELECT c.pk, c.collection_id, c.arn, c.face_model_version, c.created, c.tags, p.policy "
                         "FROM policies p JOIN collections c ON c.pk = p.collection ORDER BY c.pk").fetchall()
        found = [(collection_record(row[:6]), json.loads(row[6])) for row in rows]
        return [(collection, policy) for collection, policy in found if policy.get("retention_days")]

    def expired_faces(self, pk: int, before: dt.datetime, limit: int) -> list[FaceRecord]:
        return self._faces("f.collection = ? AND f.created < ?", (pk, before.timestamp(), limit), False,
                           "ORDER BY f.created, f.seq LIMIT ?")

    # -- policies
    def get_policy(self, pk: int) -> dict | None:
        row = self._run("SELECT policy FROM policies WHERE collection = ?", (pk,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_policy(self, pk: int, policy: dict) -> None:
        self._run("INSERT INTO policies (collection, policy, updated) VALUES (?, ?, ?) ON CONFLICT (collection) "
                  "DO UPDATE SET policy = excluded.policy, updated = excluded.updated",
                  (pk, json.dumps(policy, sort_keys=True), time.time()))

    # -- audit log
    def append_audit(self, record: dict) -> AuditRow:
        head = self._run("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, audit.GENESIS)
        row = audit.seal(record, seq, time.time(), prev_hash)
        self._run("INSERT INTO audit (seq, time, collection, operation, record, prev_hash, hash) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (row.seq, row.time, row.collection, row.operation, row.text, row.prev_hash, row.hash))
        self._run_many("INSERT INTO audit_faces (face_id, seq) VALUES (?, ?) ON CONFLICT DO NOTHING",
                       [(face_id, seq) for face_id in audit.face_ids(row.record)])
        self.sealed.append(row)
        return row

    def audit_head(self) -> AuditRow | None:
        row = self._run("SELECT seq, time, collection, operation, record, prev_hash, hash FROM audit "
                        "ORDER BY seq DESC LIMIT 1").fetchone()
        return AuditRow(*row) if row else None

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
        rows = self._run(
            f"SELECT a.seq, a.time, a.collection, a.operation, a.record, a.prev_hash, a.hash FROM {source} "
            f"WHERE {' AND '.join(where)} ORDER BY a.seq LIMIT ?", (*params, limit))
        return [AuditRow(*row) for row in rows]

    def audit_index(self, after_seq: int = 0, limit: int = 10_000) -> list[tuple[int, str]]:
        rows = self._run("SELECT seq, face_id FROM audit_faces WHERE seq IN (SELECT DISTINCT seq FROM audit_faces "
                         "WHERE seq > ? ORDER BY seq LIMIT ?) ORDER BY seq, face_id", (after_seq, limit))
        return [(int(seq), face_id) for seq, face_id in rows]

    # -- idempotency tokens and the secret
    def recall(self, operation: str, token: str) -> tuple[str, str] | None:
        row = self._run("SELECT digest, response FROM idempotency WHERE operation = ? AND token = ?",
                        (operation, token)).fetchone()
        return (row[0], row[1]) if row else None

    def remember(self, operation: str, token: str, digest: str, response: str, pk: int | None) -> None:
        self._run("INSERT INTO idempotency (operation, token, digest, response, collection, created) "
                  "VALUES (?, ?, ?, ?, ?, ?)", (operation, token, digest, response, pk, time.time()))

    def forget_tokens_before(self, when: dt.datetime) -> None:
        self._run("DELETE FROM idempotency WHERE created < ?", (when.timestamp(),))

    def secret(self) -> bytes:
        return bytes.fromhex(self._run("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0])

    # -- video jobs
    def create_job(self, job_id: str, kind: str, request: dict[str, Any], key_id: str,
                   purpose: str | None) -> JobRecord:
        self._run("INSERT INTO video_jobs (job_id, kind, status, request, key_id, purpose, created) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (job_id, kind, QUEUED, json.dumps(request, sort_keys=True), key_id, purpose, time.time()))
        job = self.get_job(job_id)
        assert job is not None
        return job

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._run(f"SELECT {JOB_COLUMNS} FROM video_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return job_record(row) if row else None

    def claim_job(self, job_id: str | None = None) -> JobRecord | None:
        where, params = ("status = ?", [QUEUED]) if job_id is None else ("status = ? AND job_id = ?",
                                                                         [QUEUED, job_id])
        row = self._run(f"SELECT job_id FROM video_jobs WHERE {where} ORDER BY created LIMIT 1"
                        f"{self.dialect.claim_lock}", params).fetchone()
        if row is None:
            return None
        self._run("UPDATE video_jobs SET status = ?, attempts = attempts + 1, lease_until = ? WHERE job_id = ?",
                  (RUNNING, time.time() + self.lease_seconds, row[0]))
        return self.get_job(row[0])

    def renew_job(self, job_id: str) -> None:
        self._run("UPDATE video_jobs SET lease_until = ? WHERE job_id = ? AND status = ?",
                  (time.time() + self.lease_seconds, job_id, RUNNING))

    def requeue_interrupted(self, expired_only: bool = True) -> int:
        if not expired_only:
            return self._run("UPDATE video_jobs SET status = ? WHERE status = ?", (QUEUED, RUNNING)).rowcount
        return self._run("UPDATE video_jobs SET status = ? WHERE status = ? AND lease_until < ?",
                         (QUEUED, RUNNING, time.time())).rowcount

    def set_job_metadata(self, job_id: str, metadata: dict[str, Any]) -> None:
        self._run("UPDATE video_jobs SET metadata = ? WHERE job_id = ?", (json.dumps(metadata), job_id))

    def finish_job(self, job_id: str, status: str, message: str | None, metadata: dict[str, Any] | None,
                   results: Sequence[JobResult]) -> None:
        assert status in (SUCCEEDED, FAILED)
        self._run("DELETE FROM video_results WHERE job_id = ?", (job_id,))
        self._run_many("INSERT INTO video_results (job_id, seq, timestamp, person, item, part) "
                       "VALUES (?, ?, ?, ?, ?, ?)", [(job_id, seq, r.timestamp, r.index, json.dumps(r.item), r.part)
                                                     for seq, r in enumerate(results)])
        self._run("UPDATE video_jobs SET status = ?, status_message = ?, metadata = coalesce(?, metadata), "
                  "finished = ?, result_count = ? WHERE job_id = ?",
                  (status, message, json.dumps(metadata) if metadata else None, time.time(), len(results), job_id))

    def job_results(self, job_id: str, offset: int, limit: int, by_index: bool = False,
                    part: int = 0) -> list[JobResult]:
        order = "person, timestamp, seq" if by_index else "timestamp, seq"
        rows = self._run(f"SELECT timestamp, person, item FROM video_results WHERE job_id = ? AND part = ? "
                         f"ORDER BY {order} LIMIT ? OFFSET ?", (job_id, part, limit, offset))
        return [JobResult(timestamp, person, json.loads(item), part) for timestamp, person, item in rows]
