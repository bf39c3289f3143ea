"""The audit log's hash chain: canonical records, their SHA-256 links, verification and export.

Each record is a JSON object stored as canonical text (sorted keys, no spaces, ASCII). Record `n` holds its own
sequence number and time, and its hash is `SHA-256(hash of record n-1 + "\\n" + text of record n)`; the first
record links to 64 zeros. Editing, deleting, inserting or reordering any record breaks the link of the record
after it (or its own hash), and `verify` names the first record that no longer fits. Cutting records off the
*end* leaves a shorter valid chain: `verify` compares it with anchors kept outside the database
(`facelens.accountability.anchors`; or a head hash noted by hand, `anchor=`) and names the records missing.
The subject-access index (`audit_faces`) is a function of the hashed content (`face_ids(record)`): `verify`
recomputes it and names every record whose index entries were removed, added or changed.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from facelens.accountability.anchors import Anchor, highest
from facelens.store.audit import GENESIS, AuditRow, canonical, face_ids, link, timestamp

CSV_COLUMNS = ("seq", "time", "operation", "collection", "key", "purpose", "outcome", "requested_threshold",
               "effective_threshold", "false_match_probability", "gallery", "face_model", "face_ids")
SHOWN = 10  # index disagreements named in full; the rest are counted


@dataclass(frozen=True)
class Verification:
    ok: bool
    records: int
    head: str  # hash of the last record checked (GENESIS for an empty log)
    broken_seq: int | None = None
    reason: str | None = None
    anchor: Anchor | None = None  # the highest anchor the chain was checked against


def _row_problem(row: AuditRow, expected_seq: int, prev_hash: str) -> str | None:
    try:
        record = json.loads(row.text)
    except ValueError:
        record = None
    if row.seq != expected_seq:
        return f"sequence number {row.seq} where {expected_seq} was expected (a record is missing)"
    if row.prev_hash != prev_hash:
        return "its link to the previous record does not match (a record before it was changed or removed)"
    if link(row.prev_hash, row.text) != row.hash:
        return "its hash does not match its content (the record was edited)"
    if not isinstance(record, dict) or record.get("seq") != row.seq:
        return "its content names another sequence number (records were swapped)"
    if (record.get("collection"), record.get("operation")) != (row.collection, row.operation) \
            or record.get("time") != timestamp(row.time):
        return "its indexed columns disagree with its content (the row was edited)"
    return None


def _described(anchor: Anchor) -> str:
    return f"the anchor of {anchor.time} ({anchor.source})" if anchor.source else f"the anchor of {anchor.time}"


class _Index:
    """The subject-access index read alongside the chain (entries in seq order), and its disagreements."""

    def __init__(self, entries: Iterable[tuple[int, str]]) -> None:
        self._entries = iter(entries)
        self._next = next(self._entries, None)
        self.problems: list[tuple[int, str]] = []

    def check(self, row: AuditRow) -> None:
        filed: set[str] = set()
        while self._next is not None and self._next[0] <= row.seq:
            seq, face_id = self._next
            if seq == row.seq:
                filed.add(face_id)
            else:
                self.problems.append((seq, f"it files FaceId {face_id} under record {seq}, which is not in the log"))
            self._next = next(self._entries, None)
        named = set(face_ids(row.record))
        if named - filed:
            self.problems.append((row.seq, f"record {row.seq} names FaceId {', '.join(sorted(named - filed))} "
                                           "but the index lacks it"))
        if filed - named:
            self.problems.append((row.seq, f"it files FaceId {', '.join(sorted(filed - named))} under record "
                                           f"{row.seq}, which does not name it"))

    def reason(self) -> str:
        shown = "; ".join(text for _, text in self.problems[:SHOWN])
        more = f"; and {len(self.problems) - SHOWN} more" if len(self.problems) > SHOWN else ""
        return (f"the subject-access index (audit_faces) disagrees with the records: {shown}{more} "
                "(`facelens audit export --face-id` answers from that index)")


def verify(rows: Iterable[AuditRow], anchor: str | None = None, anchors: Sequence[Anchor] = (),
           index: Iterable[tuple[int, str]] | None = None) -> Verification:
    """Walk the chain in sequence order; the first record that does not fit, and why.

    `anchor`: a head hash noted earlier, which must still be in the chain (catches records cut off the end).
    `anchors`: (seq, hash) noted outside the database, read before `rows`; each must match the chain, and the
    chain must reach the highest (else the records after its end are named missing). `index`: the
    subject-access index's (seq, FaceId) entries in seq order, checked against what each record names (entries
    past the chain's end are records committed after it was read, or cut off: the anchors judge those)."""
    prev_hash, expected_seq, count, seen_anchor = GENESIS, 1, 0, anchor is None
    wanted: dict[int, list[Anchor]] = {}
    for noted in anchors:
        wanted.setdefault(noted.seq, []).append(noted)
    checked = _Index(index) if index is not None else None
    for row in rows:
        problem = _row_problem(row, expected_seq, prev_hash)
        for noted in wanted.get(row.seq, ()) if problem is None else ():
            if noted.hash != row.hash:
                problem = (f"its hash {row.hash} differs from {_described(noted)}, which names hash {noted.hash} "
                           "(the log was rewritten from this record or before)")
        if problem:
            return Verification(False, count, prev_hash, row.seq, problem)
        if checked is not None:
            checked.check(row)
        prev_hash, expected_seq, count = row.hash, row.seq + 1, count + 1
        seen_anchor = seen_anchor or row.hash == anchor
    if not seen_anchor:
        return Verification(False, count, prev_hash, expected_seq,
                            f"the anchor {anchor} is not in the chain (records were cut off its end)")
    best = highest(anchors)
    end = expected_seq - 1
    if best is not None and best.seq > end:
        missing = f"record {best.seq}" if best.seq == expected_seq else f"records {expected_seq}-{best.seq}"
        ends = f"the chain ends at record {end}" if end else "the log is empty"
        return Verification(False, count, prev_hash, expected_seq,
                            f"{missing} missing: {_described(best)} names seq {best.seq} with hash {best.hash}; "
                            f"{ends}", best)
    if checked is not None and checked.problems:
        return Verification(False, count, prev_hash, checked.problems[0][0], checked.reason(), best)
    return Verification(True, count, prev_hash, anchor=best)


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
