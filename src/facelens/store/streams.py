"""Stream processors in the metadata store (table `stream_processors`), over any `SqlSession`.

A processor's row is the source of truth: its Create request (as validated), tags, the key and purpose it was
created with (the purpose is fixed then), its status, and the session a Start began. A replica runs a processor
only while it holds the row's lease (`owner`, `lease_until`): `claim` takes a STARTING / RUNNING / STOPPING row
that nobody holds or whose lease expired, in one UPDATE whose WHERE is re-checked under the row lock (SQLite
serializes writers; PostgreSQL re-evaluates it after a concurrent update), so exactly one replica wins;
`renew` keeps it and tells the runner when it lost it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from facelens.store.sql.dialect import Cursor
from facelens.store.sql.session import SqlSession

STOPPED, STARTING, RUNNING, FAILED, STOPPING, UPDATING = "STOPPED", "STARTING", "RUNNING", "FAILED", "STOPPING", \
    "UPDATING"
ACTIVE = (STARTING, RUNNING, STOPPING)  # a replica should be running (or winding down) these
_COLUMNS = ("name, arn, status, status_message, request, tags, key_id, purpose, created, updated, session_id, "
            "selectors, started, owner, lease_until")


@dataclass(frozen=True)
class ProcessorRecord:
    name: str
    arn: str
    status: str
    status_message: str | None
    request: dict[str, Any]  # Input, Output, Settings, RoleArn, NotificationChannel, KmsKeyId, RegionsOfInterest, ...
    tags: dict[str, str]
    key_id: str
    purpose: str | None
    created: dt.datetime
    updated: dt.datetime
    session_id: str | None
    selectors: dict[str, Any]  # StartSelector / StopSelector of the current session
    started: float | None  # when the current session was started (epoch seconds)
    owner: str | None
    lease_until: float | None

    @property
    def camera(self) -> str:
        """The stream name of the input's Kinesis Video ARN (`...:stream/NAME/...`)."""
        return camera_name(self.request["Input"]["KinesisVideoStream"]["Arn"]) or ""

    @property
    def collection_id(self) -> str | None:
        return ((self.request.get("Settings") or {}).get("FaceSearch") or {}).get("CollectionId")


def camera_name(arn: str) -> str | None:
    """NAME of `arn:aws:kinesisvideo:REGION:ACCOUNT:stream/NAME[/...]`, or None when the ARN names no stream."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "kinesisvideo" or not parts[5].startswith("stream/"):
        return None
    return parts[5].split("/")[1] or None


def _time(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


class ProcessorRows:
    """The stream-processor statements, run in one session's transaction."""

    def __init__(self, session: SqlSession) -> None:
        self.session = session

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.session.db.execute(self.session.dialect.render(sql), tuple(params))

    @staticmethod
    def _record(row: Sequence[Any]) -> ProcessorRecord:
        (name, arn, status, message, request, tags, key_id, purpose, created, updated, session_id, selectors,
         started, owner, lease) = row
        return ProcessorRecord(name, arn, status, message, json.loads(request), json.loads(tags), key_id, purpose,
                               _time(created), _time(updated), session_id, json.loads(selectors or "{}"), started,
                               owner, lease)

    def create(self, name: str, arn: str, request: dict[str, Any], tags: dict[str, str], key_id: str,
               purpose: str | None) -> bool:
        """A new STOPPED processor; False when one of that name exists."""
        if self.get(name) is not None:
            return False
        now = time.time()
        self._run("INSERT INTO stream_processors (name, arn, status, request, tags, key_id, purpose, created, "
                  "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (name, arn, STOPPED, json.dumps(request, sort_keys=True), json.dumps(tags, sort_keys=True),
                   key_id, purpose, now, now))
        return True

    def get(self, name: str) -> ProcessorRecord | None:
        row = self._run(f"SELECT {_COLUMNS} FROM stream_processors WHERE name = ?", (name,)).fetchone()
        return self._record(row) if row else None

    def by_arn(self, arn: str) -> ProcessorRecord | None:
        row = self._run(f"SELECT {_COLUMNS} FROM stream_processors WHERE arn = ?", (arn,)).fetchone()
        return self._record(row) if row else None

    def list(self, after: str = "", limit: int = 10_000) -> list[ProcessorRecord]:
        """Processors in name order, names after `after`."""
        return [self._record(row) for row in self._run(
            f"SELECT {_COLUMNS} FROM stream_processors WHERE name > ? ORDER BY name LIMIT ?", (after, limit))]

    def delete(self, name: str) -> None:
        self._run("DELETE FROM stream_processors WHERE name = ?", (name,))

    def set_request(self, name: str, request: dict[str, Any]) -> None:
        self._run("UPDATE stream_processors SET request = ?, updated = ? WHERE name = ?",
                  (json.dumps(request, sort_keys=True), time.time(), name))

    def set_tags(self, name: str, tags: dict[str, str]) -> None:
        self._run("UPDATE stream_processors SET tags = ? WHERE name = ?", (json.dumps(tags, sort_keys=True), name))

    def start(self, name: str, session_id: str, selectors: dict[str, Any]) -> None:
        """STARTING, for a new session that no replica holds yet."""
        now = time.time()
        self._run("UPDATE stream_processors SET status = ?, status_message = NULL, session_id = ?, selectors = ?, "
                  "started = ?, owner = NULL, lease_until = NULL, updated = ? WHERE name = ?",
                  (STARTING, session_id, json.dumps(selectors, sort_keys=True), now, now, name))

    def set_status(self, name: str, status: str, message: str | None = None, *, owner: str | None = None) -> bool:
        """Set the status (and its message); with `owner`, only while that replica holds the lease. A final
        status (STOPPED, FAILED) releases the lease."""
        final = status in (STOPPED, FAILED)
        sql = ("UPDATE stream_processors SET status = ?, status_message = ?, updated = ?"
               + (", owner = NULL, lease_until = NULL" if final else "") + " WHERE name = ?")
        params: list[Any] = [status, message, time.time(), name]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        return self._run(sql, params).rowcount == 1

    def set_message(self, name: str, message: str | None, owner: str) -> None:
        """The StatusMessage alone (a RUNNING processor retrying its camera), while `owner` holds the lease."""
        self._run("UPDATE stream_processors SET status_message = ? WHERE name = ? AND owner = ?",
                  (message, name, owner))

    def claimable(self, now: float) -> list[str]:
        """Names of active processors nobody holds (or whose holder's lease expired), oldest start first."""
        marks = ",".join("?" * len(ACTIVE))
        return [row[0] for row in self._run(
            f"SELECT name FROM stream_processors WHERE status IN ({marks}) AND (owner IS NULL OR lease_until < ?) "
            "ORDER BY started", (*ACTIVE, now))]

    def claim(self, name: str, owner: str, lease_seconds: float) -> ProcessorRecord | None:
        """The processor, now held by `owner`, or None when another replica holds it (or it is not active)."""
        now = time.time()
        marks = ",".join("?" * len(ACTIVE))
        taken = self._run(f"UPDATE stream_processors SET owner = ?, lease_until = ? WHERE name = ? AND status IN "
                          f"({marks}) AND (owner IS NULL OR lease_until < ? OR owner = ?)",
                          (owner, now + lease_seconds, name, *ACTIVE, now, owner)).rowcount
        return self.get(name) if taken == 1 else None

    def renew(self, name: str, owner: str, session_id: str, lease_seconds: float) -> ProcessorRecord | None:
        """Extend `owner`'s lease of this session; the row as it stands, or None when the lease was lost (or the
        session replaced by another Start)."""
        taken = self._run("UPDATE stream_processors SET lease_until = ? WHERE name = ? AND owner = ? AND "
                          "session_id = ?", (time.time() + lease_seconds, name, owner, session_id)).rowcount
        return self.get(name) if taken == 1 else None

    def release_all(self, owner: str | None = None) -> int:
        """Forget the holders of active processors (all, or `owner`'s): a single server restarting after it died
        takes its processors back at once instead of waiting for their leases to expire."""
        marks = ",".join("?" * len(ACTIVE))
        sql = f"UPDATE stream_processors SET owner = NULL, lease_until = NULL WHERE status IN ({marks})"
        params: list[Any] = list(ACTIVE)
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        return self._run(sql, params).rowcount
