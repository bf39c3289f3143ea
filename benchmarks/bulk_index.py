"""`facelens index` throughput on LFW: batches one after another (before) against overlapped batches (now).

    .venv/bin/python benchmarks/bulk_index.py [--images 2000] [--batch 16] [--dataset DIR]

`--images` LFW files (seeded choice) are indexed twice, each time into a fresh data directory built as
`facelens index` builds it (`service.build(ServerSettings(data_dir=...))`: SQLite, FAISS, one onnxruntime
thread per session, the shipped runtime setting): "before" is the loop `facelens index` ran until now (read a
batch, `CollectionService.index_images` it, then the next: commit 0f2fafd's `bulk.index_files`, kept below),
"now" is `bulk.index_files` (two batches through the models at once while the finished ones are stored). The
files go in two halves, before/now on the first and now/before on the second, so that both see the same load
drift. Reports images/s and indexed faces/s of each, the ratio, the process's CPU use, the faces each indexed (they
must agree) and the load average. Skips when LFW is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from _common import cpu_seconds, lfw_sample, load_average

from facelens import bulk
from facelens.config import ServerSettings
from facelens.service import build


def sequential_index(collections: object, collection_id: str, files: Sequence[Path], batch: int) -> tuple[int, int]:
    """The batch loop of `bulk.index_files` before the overlap (commit 0f2fafd): (images indexed, faces)."""
    images = faces = 0
    for start in range(0, len(files), batch):
        items = [(str(path), path.read_bytes(), bulk.external_id(path, "parent"))
                 for path in files[start:start + batch]]
        for result in collections.index_images(collection_id, items, "AUTO", None):  # type: ignore[attr-defined]
            if result is not None and not hasattr(result, "code"):
                images += 1
                faces += len(result.indexed)
    return images, faces


def overlapped_index(collections: object, collection_id: str, files: Sequence[Path], batch: int) -> tuple[int, int]:
    report = bulk.index_files(collections, collection_id, files, external_id_from="parent", batch=batch)  # type: ignore[arg-type]
    return report.indexed_images, report.faces


def timed(run: Callable[[object, str, Sequence[Path], int], tuple[int, int]], files: Sequence[Path],
          batch: int) -> tuple[float, int, int, float]:
    """(seconds, images, faces, CPU seconds of this process) for all but the first batch (the warm-up)."""
    with tempfile.TemporaryDirectory() as data, build(ServerSettings(data_dir=Path(data))) as backend:
        backend.call("CreateCollection", {"CollectionId": "lfw"})
        run(backend.collections, "lfw", files[:batch], batch)  # warm-up: models loaded, first batch stored
        start, cpu = time.perf_counter(), cpu_seconds()
        images, faces = run(backend.collections, "lfw", files[batch:], batch)
        return time.perf_counter() - start, images, faces, cpu_seconds() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dataset", default=None)
    args = parser.parse_args()
    files = lfw_sample(args.dataset, args.images)
    if files is None:
        return 0
    halves = [files[: len(files) // 2], files[len(files) // 2:]]
    print(f"load average at start: {load_average()}; {os.cpu_count()} cores; "
          f"{args.images} LFW files, batches of {args.batch}")
    totals = {"before": [0.0, 0, 0, 0.0], "now": [0.0, 0, 0, 0.0]}
    runs = {"before": sequential_index, "now": overlapped_index}
    for half, order in zip(halves, (("before", "now"), ("now", "before")), strict=True):
        for name in order:
            measured = timed(runs[name], half, args.batch)
            for i, value in enumerate(measured):
                totals[name][i] += value
            seconds, images, faces, cpu = measured
            print(f"  {name}: {images} images, {faces} faces in {seconds:.1f} s, CPU {100 * cpu / seconds:.0f}%")
            sys.stdout.flush()
    print("\n| facelens index | images | faces | seconds | CPU of 200% | images/s | faces/s | vs before |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = totals["before"][2] / totals["before"][0]
    for name in ("before", "now"):
        seconds, images, faces, cpu = totals[name]
        print(f"| {name} | {images} | {faces} | {seconds:.1f} | {100 * cpu / seconds:.0f}% | {images / seconds:.1f} "
              f"| {faces / seconds:.1f} | {faces / seconds / base:.2f} |")
    print(f"\nload average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
