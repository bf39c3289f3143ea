"""The audit log's rows: canonical records and their SHA-256 links (the storage half of the hash chain).

Each record is a JSON object stored as canonical text (sorted keys, no spaces, ASCII). Record `n` holds its own
sequence number and time, and its hash is `SHA-256(hash of record n-1 + "\\n" + text of record n)`; the first
record links to 64 zeros (`GENESIS`). The stores append rows with `seal`; `facelens.accountability.audit`
verifies and exports them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRow:
    """One stored record: its position, indexed columns, canonical text and links."""

    seq: int
    time: float  # epoch seconds
    collection: str | None
    operation: str
    text: str
    prev_hash: str
    hash: str

    @property
    def record(self) -> dict[str, Any]:
        return json.loads(self.text)


def canonical(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def link(prev_hash: str, text: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()


def timestamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat(timespec="microseconds")


def seal(record: Mapping[str, Any], seq: int, when: float, prev_hash: str) -> AuditRow:
    """The row that appends `record` after a chain whose head is (`seq - 1`, `prev_hash`)."""
    when = round(when, 6)
    full = {**record, "seq": seq, "time": timestamp(when)}
    text = canonical(full)
    return AuditRow(seq, when, full.get("collection"), str(full["operation"]), text, prev_hash, link(prev_hash, text))


def face_ids(record: Mapping[str, Any]) -> list[str]:
    """Every FaceId a record names (returned matches, indexed, deleted or expired faces, faces associated with,
    refused for, or disassociated from a user, or reviewed by a person)."""
    found: list[str] = []
    for key in ("matches", "indexed", "deleted", "associated", "refused", "disassociated", "reviewed"):
        for item in record.get(key) or ():
            face_id = item.get("FaceId") if isinstance(item, Mapping) else item
            if isinstance(face_id, str):
                found.append(face_id)
    return found
