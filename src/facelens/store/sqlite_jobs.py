"""SQLite implementation of the video-job operations (`facelens.store.jobs`), mixed into SqliteSession."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from facelens.store.jobs import (
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobRecord,
    JobResult,
    JobsSession,
)

_COLUMNS = ("job_id, kind, status, status_message, request, key_id, purpose, created, attempts, metadata, "
            "result_count")


class SqliteJobs(JobsSession):
    db: sqlite3.Connection

    @staticmethod
    def _job(row: tuple) -> JobRecord:
        job_id, kind, status, message, request, key_id, purpose, created, attempts, metadata, count = row
        return JobRecord(job_id, kind, status, message, json.loads(request), key_id, purpose,
                         dt.datetime.fromtimestamp(created, tz=dt.UTC), attempts,
                         json.loads(metadata) if metadata else None, count)

    def create_job(self, job_id: str, kind: str, request: dict[str, Any], key_id: str,
                   purpose: str | None) -> JobRecord:
        self.db.execute("INSERT INTO video_jobs (job_id, kind, status, request, key_id, purpose, created) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (job_id, kind, QUEUED, json.dumps(request, sort_keys=True), key_id, purpose, time.time()))
        job = self.get_job(job_id)
        assert job is not None
        return job

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM video_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def claim_job(self, job_id: str | None = None) -> JobRecord | None:
        if job_id is None:
            row = self.db.execute("SELECT job_id FROM video_jobs WHERE status = ? ORDER BY created LIMIT 1",
                                  (QUEUED,)).fetchone()
        else:
            row = self.db.execute("SELECT job_id FROM video_jobs WHERE status = ? AND job_id = ?",
                                  (QUEUED, job_id)).fetchone()
        if row is None:
            return None
        self.db.execute("UPDATE video_jobs SET status = ?, attempts = attempts + 1, lease_until = ? "
                        "WHERE job_id = ?", (RUNNING, time.time() + self.lease_seconds, row[0]))
        return self.get_job(row[0])

    def renew_job(self, job_id: str) -> None:
        self.db.execute("UPDATE video_jobs SET lease_until = ? WHERE job_id = ? AND status = ?",
                        (time.time() + self.lease_seconds, job_id, RUNNING))

    def requeue_interrupted(self, expired_only: bool = True) -> int:
        if not expired_only:
            return self.db.execute("UPDATE video_jobs SET status = ? WHERE status = ?", (QUEUED, RUNNING)).rowcount
        return self.db.execute("UPDATE video_jobs SET status = ? WHERE status = ? AND lease_until < ?",
                               (QUEUED, RUNNING, time.time())).rowcount

    def set_job_metadata(self, job_id: str, metadata: dict[str, Any]) -> None:
        self.db.execute("UPDATE video_jobs SET metadata = ? WHERE job_id = ?", (json.dumps(metadata), job_id))

    def finish_job(self, job_id: str, status: str, message: str | None, metadata: dict[str, Any] | None,
                   results: Sequence[JobResult]) -> None:
        assert status in (SUCCEEDED, FAILED)
        self.db.execute("DELETE FROM video_results WHERE job_id = ?", (job_id,))
        self.db.executemany(
            "INSERT INTO video_results (job_id, seq, timestamp, person, item) VALUES (?, ?, ?, ?, ?)",
            [(job_id, seq, r.timestamp, r.index, json.dumps(r.item)) for seq, r in enumerate(results)])
        self.db.execute("UPDATE video_jobs SET status = ?, status_message = ?, metadata = coalesce(?, metadata), "
                        "finished = ?, result_count = ? WHERE job_id = ?",
                        (status, message, json.dumps(metadata) if metadata else None, time.time(), len(results),
                         job_id))

    def job_results(self, job_id: str, offset: int, limit: int, by_index: bool = False) -> list[JobResult]:
        order = "person, timestamp, seq" if by_index else "timestamp, seq"
        rows = self.db.execute(f"SELECT timestamp, person, item FROM video_results WHERE job_id = ? "
                               f"ORDER BY {order} LIMIT ? OFFSET ?", (job_id, limit, offset))
        return [JobResult(timestamp, person, json.loads(item)) for timestamp, person, item in rows]
