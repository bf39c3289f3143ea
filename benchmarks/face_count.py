"""What the size-aware floor costs per search, what the face-count triggers cost per insert, and whether bulk
adds stay fast as the store grows (SQLite store).

    .venv/bin/python benchmarks/face_count.py [--faces 1000000] [--batch 1000] [--reads 200]
    .venv/bin/python benchmarks/face_count.py --growth [before,now] [--faces 1000000] [--batch 1000]
        [--postgres ADMIN_URL]

Two data directories in one run, each filled with --faces synthetic 128-d faces in one collection, --batch faces
per transaction through `SqlSession.add_faces` (as IndexFaces and `facelens index` write them):
- "counter": the store as shipped, whose triggers keep `collections.face_count` in the inserting transaction;
- "baseline": the same store with those two triggers dropped (the store before the counter).
Reported: insert rate per tenth of the fill (faces/s; does it fall as the file grows?), the database size, and
the per-search read of the collection's size: `count_faces` (one row) against the `SELECT count(*)` every
search ran before (on the baseline directory), each timed --reads times after a warm-up, p50 and p99 in ms.

With --growth, the store as it was against the store now, filled in lockstep (batch by batch, each store
first in turn, so the machine's load falls on all alike): "before" makes random (version 4) FaceIds and inserts
one face per statement (`legacy_add_faces`, the add_faces of before; on PostgreSQL with schema 9's per-row
face triggers too); "now" makes the service's time-ordered
FaceIds (`facelens.store.ids`) and calls `SqlSession.add_faces`; "ordered-ids" and "multi-row" make one of the
two changes each. A "control" store, filled like "now" but emptied every 50,000 faces, never grows: its rate is
what the machine gives a small store at that moment. Reported by tenth of the fill: faces/s, the rate over the
control's, and from /proc/self/io the read syscalls per face (SQLite reads each page missing from its cache with
one pread) and the bytes passed to write() per face (WAL frames, checkpoints, statement journal).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from store_growth import growth

from facelens.store.ids import time_ordered_uuid
from facelens.store.records import NewFace
from facelens.store.sql.sqlite import DATABASE, SqliteMetadataStore


def fill(root: Path, faces: int, batch: int, counter: bool) -> tuple[int, list[float]]:
    store = SqliteMetadataStore(root)
    if not counter:
        with sqlite3.connect(root / DATABASE) as db:
            db.execute("DROP TRIGGER faces_counted")
            db.execute("DROP TRIGGER faces_uncounted")
    with store.transaction(write=True) as session:
        pk = session.create_collection("c", "arn:c", "synthetic", {}).pk
    rng = np.random.default_rng(1)
    rates, tenth, started, done = [], max(batch, faces // 10), time.perf_counter(), 0
    while done < faces:
        vectors = rng.standard_normal((batch, 128)).astype(np.float32)
        new = [NewFace(time_ordered_uuid(), str(uuid.uuid4()), None, {"Width": 0.5, "Height": 0.5, "Left": 0.1,
                       "Top": 0.1}, 99.9, "synthetic", vector) for vector in vectors]
        with store.transaction(write=True) as session:
            session.add_faces(pk, new)
        done += batch
        if done % tenth == 0:
            now = time.perf_counter()
            rates.append(tenth / (now - started))
            started = now
    store.close()
    return pk, rates


def timed(read, reads: int) -> tuple[float, float]:
    for _ in range(5):
        read()
    times = []
    for _ in range(reads):
        start = time.perf_counter()
        read()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--growth", nargs="?", const="before,now", metavar="STORES",
                        help="compare the insert rate by tenth of the fill: before,now (default) or any of "
                        "before, ordered-ids, multi-row, now")
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="with --growth: fill fresh databases on this "
                        "PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/postgres) instead of SQLite")
    args = parser.parse_args()
    if args.growth:
        growth(args.faces, args.batch, args.growth.split(","), args.postgres)
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, counter in (("counter", True), ("baseline", False)):
            root = Path(tmp) / name
            pk, rates = fill(root, args.faces, args.batch, counter)
            size = (root / DATABASE).stat().st_size / 2**20
            results[name] = (pk, rates, size, root)
        pk, _, _, root = results["counter"]
        store = SqliteMetadataStore(root)
        with store.transaction() as session:
            assert session.count_faces(pk) == args.faces
            new = timed(lambda: session.count_faces(pk), args.reads)
        store.close()
        pk, _, _, root = results["baseline"]
        with sqlite3.connect(root / DATABASE) as db:
            old = timed(lambda: db.execute("SELECT count(*) FROM faces WHERE collection = ?", (pk,)).fetchone(),
                        args.reads)
    print(f"faces={args.faces} batch={args.batch}")
    print("| store | insert faces/s by tenth of the fill | database MiB |")
    print("|---|---|---|")
    for name, (_, rates, size, _) in results.items():
        print(f"| {name} | {' '.join(f'{rate:,.0f}' for rate in rates)} | {size:,.0f} |")
    print("\n| collection size read per search | p50 ms | p99 ms | p50 ratio to count(*) |")
    print("|---|---|---|---|")
    print(f"| count(*) (before) | {old[0]:.3f} | {old[1]:.3f} | 1.00 |")
    print(f"| face_count row (now) | {new[0]:.4f} | {new[1]:.4f} | {new[0] / old[0]:.5f} |")


if __name__ == "__main__":
    main()
