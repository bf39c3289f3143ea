"""`facelens audit verify` and `facelens audit export`: the data directory's audit log, read as the server
reads it (its settings: the store, the anchor file beside it, the S3 witness).

`verify` reads the anchors first, then the chain and the subject-access index (one read transaction per batch of
10,000), so a server appending meanwhile is never mistaken for a truncation (anchors only name committed
records). Exit status: 0 intact, 1 broken (the reason on standard error).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from facelens.accountability import audit
from facelens.accountability.anchors import ANCHOR_FILE, Anchor, S3Witness, read_file
from facelens.config import ServerSettings
from facelens.store.audit import AuditRow
from facelens.store.base import MetadataStore
from facelens.store.repos import Session

BATCH = 10_000


def _open_store(settings: ServerSettings) -> MetadataStore:
    from facelens.store.open import open_store

    return open_store(settings.store.database_url, settings.collections_dir, settings.store.job_lease_seconds)


def _paged(store: MetadataStore, fetch: Callable[[Session, int], list], seq_of: Callable[[Any], int]) -> Iterator:
    """Everything `fetch(session, after_seq)` pages through, in order, one read transaction per batch."""
    after = 0
    while True:
        with store.transaction() as session:
            batch = fetch(session, after)
        yield from batch
        if not batch:
            return
        after = seq_of(batch[-1])


def _rows(store: MetadataStore, **filters: Any) -> Iterator[AuditRow]:
    return _paged(store, lambda session, after: session.audit_rows(after, BATCH, **filters), lambda row: row.seq)


def anchors(settings: ServerSettings, files: list[Path],
            witness: bool = True) -> tuple[list[Anchor], list[str]]:
    """The highest anchor of each anchor file and of the S3 witness (when `witness` and configured), and notes
    on what could not be read."""
    from facelens.s3 import S3Reader

    found: list[Anchor] = []
    notes: list[str] = []
    for path in files:
        best, skipped = read_file(path)
        if best is not None:
            found.append(best)
        elif not path.exists():
            notes.append(f"no anchor file at {path}")
        if skipped:
            notes.append(f"{path}: {skipped} unreadable line(s) skipped (a torn write)")
    if witness and settings.audit.witness_s3:
        try:
            best = S3Witness(S3Reader(settings.s3).client, settings.audit.witness_s3).latest()
        except Exception as exc:  # an unreachable witness weakens the check: said, not fatal
            notes.append(f"S3 witness {settings.audit.witness_s3} unreadable: {exc}")
        else:
            if best is None:
                notes.append(f"S3 witness {settings.audit.witness_s3} holds no anchor")
            else:
                found.append(best)
    return found, notes


def check_store(settings: ServerSettings, store: MetadataStore, others: list[Path] | None = None,
                anchor: str | None = None) -> tuple[audit.Verification, list[str]]:
    """The chain and subject-access index of `store` checked against the data directory's anchor file, the S3
    witness and `others`; with notes on anchors that could not be read (the CLI and the console both ask)."""
    noted, notes = anchors(settings, [settings.collections_dir / ANCHOR_FILE, *(others or [])])
    index = _paged(store, lambda session, after: session.audit_index(after, BATCH), lambda item: item[0])
    return audit.verify(_rows(store), anchor=anchor, anchors=noted, index=index), notes


def verify(args: argparse.Namespace, settings: ServerSettings) -> int:
    """Check the chain, the subject-access index and the anchors; print the verdict."""
    others = [Path(path) for path in args.anchors or ()]
    if args.export:  # an export away from the server: only the anchors named on the command line
        noted, notes = anchors(settings, others, witness=False)
        with open(args.export, encoding="utf-8") as handle:
            result = audit.verify(audit.rows_from_jsonl(handle), anchor=args.anchor, anchors=noted)
    else:
        store = _open_store(settings)
        try:
            result, notes = check_store(settings, store, others, args.anchor)
        finally:
            store.close()
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not result.ok:
        print(f"audit log BROKEN at record {result.broken_seq}: {result.reason} "
              f"({result.records} records before it verified)", file=sys.stderr)
        return 1
    print(f"audit log intact: {result.records} records, head {result.head}")
    if result.anchor is not None:
        print(f"anchored: seq {result.anchor.seq} with hash {result.anchor.hash} "
              f"(the anchor of {result.anchor.time}, {result.anchor.source})")
    elif not args.export:
        print("no anchor found: records cut off the end could not be detected")
    return 0


def export(args: argparse.Namespace, settings: ServerSettings) -> int:
    """Records as JSON Lines or CSV, filtered by time, collection or FaceId (subject access)."""
    since = dt.datetime.fromisoformat(args.since) if args.since else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    store = _open_store(settings)
    try:
        rows = _rows(store, since=since, collection_id=args.collection, face_id=args.face_id)
        write = audit.write_csv if args.format == "csv" else audit.write_jsonl
        if args.output in (None, "-"):
            count = write(rows, sys.stdout)
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as handle:
                count = write(rows, handle)
    finally:
        store.close()
    print(f"exported {count} records", file=sys.stderr)
    return 0
