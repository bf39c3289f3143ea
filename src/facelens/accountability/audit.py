"""The audit log's hash chain: canonical records, their SHA-256 links, verification and export.

Each record is a JSON object stored as canonical text (sorted keys, no spaces, ASCII). Record `n` holds its own
sequence number and time, and its hash is `SHA-256(hash of record n-1 + "\\n" + text of record n)`; the first
record links to 64 zeros. Editing, deleting, inserting or reordering any record breaks the link of the record
after it (or its own hash), and `verify` names the first record that no longer fits. Cutting records off the
*end* leaves a shorter valid chain: compare the head hash with one noted earlier (`verify(anchor=...)`).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from facelens.store.audit import GENESIS, AuditRow, canonical, face_ids, link, timestamp

CSV_COLUMNS = ("seq", "time", "operation", "collection", "key", "purpose", "outcome", "requested_threshold",
               "effective_threshold", "false_match_probability", "gallery", "face_model", "face_ids")


@dataclass(frozen=True)
class Verification:
    ok: bool
    records: int
    head: str  # hash of the last record checked (GENESIS for an empty log)
    broken_seq: int | None = None
    reason: str | None = None


def verify(rows: Iterable[AuditRow], anchor: str | None = None) -> Verification:
    """Walk the chain in sequence order; the first record that does not fit, and why.

    `anchor`: a head hash noted earlier, which must still be in the chain (catches records cut off the end)."""
    prev_hash, expected_seq, count, seen_anchor = GENESIS, 1, 0, anchor is None
    for row in rows:
        problem = None
        try:
            record = json.loads(row.text)
        except ValueError:
            record = None
        if row.seq != expected_seq:
            problem = f"sequence number {row.seq} where {expected_seq} was expected (a record is missing)"
        elif row.prev_hash != prev_hash:
            problem = "its link to the previous record does not match (a record before it was changed or removed)"
        elif link(row.prev_hash, row.text) != row.hash:
            problem = "its hash does not match its content (the record was edited)"
        elif not isinstance(record, dict) or record.get("seq") != row.seq:
            problem = "its content names another sequence number (records were swapped)"
        elif (record.get("collection"), record.get("operation")) != (row.collection, row.operation) \
                or record.get("time") != timestamp(row.time):
            problem = "its indexed columns disagree with its content (the row was edited)"
        if problem:
            return Verification(False, count, prev_hash, row.seq, problem)
        prev_hash, expected_seq, count = row.hash, row.seq + 1, count + 1
        seen_anchor = seen_anchor or row.hash == anchor
    if not seen_anchor:
        return Verification(False, count, prev_hash, expected_seq,
                            f"the anchor {anchor} is not in the chain (records were cut off its end)")
    return Verification(True, count, prev_hash)


def write_jsonl(rows: Iterable[AuditRow], out: TextIO) -> int:
    """Records as JSON Lines, each with its `prev_hash` and `hash` so an export can be verified on its own."""
    count = 0
    for row in rows:
        out.write(canonical({**row.record, "prev_hash": row.prev_hash, "hash": row.hash}) + "\n")
        count += 1
    return count


def write_csv(rows: Iterable[AuditRow], out: TextIO) -> int:
    """Records as CSV, one row each (FaceIds space-separated), with `prev_hash` and `hash`."""
    writer = csv.writer(out)
    writer.writerow([*CSV_COLUMNS, "prev_hash", "hash"])
    count = 0
    for row in rows:
        record = row.record
        cells = [record.get(column, "") for column in CSV_COLUMNS[:-1]]
        writer.writerow([*("" if c is None else c for c in cells), " ".join(face_ids(record)), row.prev_hash,
                         row.hash])
        count += 1
    return count


def rows_from_jsonl(lines: Iterable[str]) -> Iterator[AuditRow]:
    """Rows back from a JSON Lines export (for verifying an export away from the database)."""
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        prev_hash, hashed = record.pop("prev_hash"), record.pop("hash")
        when = dt.datetime.fromisoformat(record["time"]).timestamp()
        yield AuditRow(record["seq"], when, record.get("collection"), record["operation"], canonical(record),
                       prev_hash, hashed)
