"""Anchors: the audit chain's head, kept outside the database, so records cut off its end are noticed.

A hash chain cannot show that its newest records were deleted: what remains is a shorter valid chain. So every
record a transaction commits is also noted, as `{"seq", "hash", "time"}` (canonical JSON, one line), in the
data directory's append-only anchor file (`collections/audit-anchors.jsonl`, beside the SQLite database; each
replica sharing a PostgreSQL database has its own). Lines are appended with one `write` on an `O_APPEND`
descriptor after the commit, so a killed process leaves at most a torn last line, which readers skip; the file
is fsynced every `FACELENS_AUDIT_ANCHOR_INTERVAL` seconds (default 60). At that interval the server also logs
the database's head and, when configured, sends it to external witnesses: an S3 object per head under
`FACELENS_AUDIT_WITNESS_S3` (`s3://bucket/prefix`, through the configured S3 endpoint) and/or a JSON POST to
`FACELENS_AUDIT_WITNESS_URL`. `facelens audit verify` checks the chain against the highest anchor it finds.

Invariant: an anchor names a record only after that record committed, so a chain read after its anchors were
read reaches at least every anchored seq unless records were removed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelens.store.audit import AuditRow, canonical, timestamp

log = logging.getLogger("facelens.accountability")

ANCHOR_FILE = "audit-anchors.jsonl"


@dataclass(frozen=True)
class Anchor:
    """A (seq, hash) of the chain noted outside the database, when, and where it was read from."""

    seq: int
    hash: str
    time: str  # ISO 8601, UTC: when it was noted
    source: str = ""  # the anchor file's path, an s3:// URL, "--anchor"

    def text(self) -> str:
        return canonical({"seq": self.seq, "hash": self.hash, "time": self.time})

    @classmethod
    def parse(cls, text: str, source: str) -> Anchor | None:
        """The anchor a line or object holds; None for anything else (a torn line)."""
        try:
            item = json.loads(text)
            anchor = cls(int(item["seq"]), str(item["hash"]), str(item["time"]), source)
        except (ValueError, TypeError, KeyError):
            return None
        return anchor if len(anchor.hash) == 64 and anchor.seq > 0 else None


def highest(anchors: Iterable[Anchor | None]) -> Anchor | None:
    found = [anchor for anchor in anchors if anchor is not None]
    return max(found, key=lambda anchor: anchor.seq) if found else None


def read_file(path: Path) -> tuple[Anchor | None, int]:
    """The highest anchor of an anchor file (None when absent or empty), and how many lines were unreadable."""
    best, skipped = None, 0
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None, 0
    with handle:
        for line in handle:
            if not line.strip():
                continue
            anchor = Anchor.parse(line, str(path))
            if anchor is None:
                skipped += 1
            elif best is None or anchor.seq > best.seq:
                best = anchor
    return best, skipped


class AnchorFile:
    """The append-only anchor file; `append` is thread-safe and one `write` per committed transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()
        size = os.fstat(self._fd).st_size
        if size:  # a torn last line (a crash mid-write) gets its own line; the next anchor starts a fresh one
            with path.open("rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def append(self, anchors: Sequence[Anchor]) -> None:
        data = "".join(anchor.text() + "\n" for anchor in anchors).encode()
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, data)

    def sync(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1


def split_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket[/prefix]`; the prefix, when given, ends with "/"; ValueError otherwise."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ValueError(f"an S3 witness must be s3://bucket[/prefix], not {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, (prefix.rstrip("/") + "/") if prefix.strip("/") else ""


class S3Witness:
    """One object per head, `<prefix><seq, 20 digits>-<hash[:16]>.json`, so listing in key order ends at the
    highest; objects are never overwritten with another head."""

    def __init__(self, client: Callable[[], Any], url: str) -> None:
        self.client = client  # the configured S3 endpoint's boto3 client (`facelens.s3.S3Reader.client`)
        self.bucket, self.prefix = split_s3_url(url)

    def put(self, anchor: Anchor) -> None:
        key = f"{self.prefix}{anchor.seq:020d}-{anchor.hash[:16]}.json"
        self.client().put_object(Bucket=self.bucket, Key=key, Body=anchor.text().encode(),
                                 ContentType="application/json")

    def latest(self) -> Anchor | None:
        """The highest head witnessed (by any replica)."""
        last, token = None, None
        while True:
            page = self.client().list_objects_v2(Bucket=self.bucket, Prefix=self.prefix,
                                                 **({"ContinuationToken": token} if token else {}))
            keys = [item["Key"] for item in page.get("Contents", ()) if item["Key"].endswith(".json")]
            last = max([*keys, *([last] if last else [])], default=None)
            token = page.get("NextContinuationToken")
            if not token:
                break
        if last is None:
            return None
        body = self.client().get_object(Bucket=self.bucket, Key=last)["Body"].read().decode()
        return Anchor.parse(body, f"s3://{self.bucket}/{last}")


class WebhookWitness:
    """POSTs each head as JSON (`{"seq", "hash", "time"}`) to a URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def put(self, anchor: Anchor) -> None:
        request = urllib.request.Request(self.url, data=anchor.text().encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10):
            pass


Witness = S3Witness | WebhookWitness
HeadReader = Callable[[], AuditRow | None]


class Anchoring:
    """A data directory's anchors: the file every commit appends to, and (`start`) the periodic head in the log
    and at the witnesses. `committed` is the store's audit listener; it never raises into a request."""

    def __init__(self, directory: Path, witnesses: Sequence[Witness] = (), interval: float = 60.0) -> None:
        self.file = AnchorFile(directory / ANCHOR_FILE)
        self.witnesses = list(witnesses)
        self.interval = interval
        self._best, _ = read_file(self.file.path)  # the highest head this data directory ever noted
        self._sent: Anchor | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._head: HeadReader | None = None

    def committed(self, rows: Sequence[AuditRow]) -> None:
        now = timestamp(time.time())
        anchors = [Anchor(row.seq, row.hash, now) for row in rows]
        try:
            self.file.append(anchors)
        except OSError:
            log.exception("audit anchor file %s: append failed", self.file.path)
        with self._lock:
            self._best = highest([self._best, *anchors])

    def start(self, head: HeadReader) -> None:
        """Check the database's head against the anchors now, then every `interval` seconds log it, fsync the
        file and send it to the witnesses, on a daemon thread until `close()`."""
        self._head = head
        self.tick()

        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.tick()

        self._thread = threading.Thread(target=loop, name="facelens-audit-anchors", daemon=True)
        self._thread.start()

    def tick(self) -> None:
        try:
            self.file.sync()
            row = self._head() if self._head else None
        except Exception:
            log.exception("audit anchors: reading the head failed")
            return
        with self._lock:
            best = self._best
        if best is not None and (row is None or row.seq < best.seq):
            log.error("audit log TRUNCATED: the database's head is seq %s but %s names seq %d with hash %s "
                      "(run `facelens audit verify`)", row.seq if row else 0, best.source or self.file.path,
                      best.seq, best.hash)
        if row is None:
            return
        head = Anchor(row.seq, row.hash, timestamp(time.time()))
        if self._sent is not None and (self._sent.seq, self._sent.hash) == (head.seq, head.hash):
            return
        log.info("audit head: seq %d hash %s", head.seq, head.hash)
        sent = True
        for witness in self.witnesses:
            try:
                witness.put(head)
            except Exception as exc:  # retried at the next tick
                sent = False
                log.warning("audit witness %s failed: %s", type(witness).__name__, exc)
        if sent:
            self._sent = head

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self.tick()  # the last head
        self.file.close()
