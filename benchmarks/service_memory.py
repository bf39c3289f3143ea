"""`facelens serve` holding one very large collection: storing it, the server's memory, and SearchFacesByImage.

    .venv/bin/python benchmarks/service_memory.py [--faces 20000000] [--requests 300] [--dataset DIR]
        [--data-dir DIR] [--breakdown]

The collection: the LFW people with two or more usable photos enrolled (their first photo), then distractors
drawn from search.py's Gaussian fitted to the other LFW embeddings (realistic: clustered like faces), generated
chunk by chunk and stored with `collections.add_embeddings` (as `facelens index` stores faces) in a fresh data
directory, the default index chosen by size (`auto`). Reported: the insert rate per tenth of the fill, the data
directory's size, then `facelens serve` on it: seconds to healthy, VmRSS after start, and after --requests
SearchFacesByImage calls (the enrolled people's second photos through boto3, threshold 0, MaxFaces 1) the RSS,
the peak RSS (VmHWM), the first search's time and the end-to-end p50/p99 of the rest. No ground truth (search.py
measures recall); this measures what one machine needs to serve the collection. Skips when LFW is absent.

--data-dir keeps the store there (23.7 GB at 20M faces) and reuses it when it already holds --faces faces, so a
later run measures the server alone. --breakdown then opens the same data directory in process (the server
stopped) and times each part of the same requests: the whole SearchFacesByImage call, detect + embed, the gate's
admission (policy, face count, floors), the vector index's candidates, the exact re-rank's read of their
embeddings from the store, and the audit record; p50 of each.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
from _common import load_average, memory_mib, tree_mib
from botocore.config import Config
from search import CHUNK, distractors, split
from service import KEY_ID, SECRET, start_server

from facelens.eval.dataset import dataset_root, embed_with_pipeline

COLLECTION = "memory-benchmark"


def fill(data_dir: Path, faces: int, enrolled: np.ndarray, fit: np.ndarray, rng: np.random.Generator) -> None:
    from facelens.config import ServerSettings
    from facelens.service import build

    tenth, mark, started = max(1, faces // 10), time.perf_counter(), time.perf_counter()
    with build(ServerSettings(data_dir=data_dir)) as backend:
        backend.call("CreateCollection", {"CollectionId": COLLECTION})
        backend.collections.add_embeddings(COLLECTION, enrolled)
        stored = len(enrolled)
        for block in distractors(faces - stored, fit, "realistic", rng, CHUNK // 10):
            backend.collections.add_embeddings(COLLECTION, block)
            before, stored = stored, stored + len(block)
            if stored // tenth != before // tenth:
                now = time.perf_counter()
                print(f"  {stored:,} faces: {tenth / (now - mark):,.0f} faces/s over the last tenth, load "
                      f"{load_average()}", flush=True)
                mark = now
        backend.vectors.flush()
    print(f"stored {faces:,} faces in {time.perf_counter() - started:.0f} s; data directory "
          f"{tree_mib(data_dir):,.0f} MiB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=20_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="keep the store here, and reuse it when it already holds --faces faces")
    parser.add_argument("--breakdown", action="store_true", help="then time each part of a search in process")
    args = parser.parse_args()
    root = dataset_root(args.dataset)
    if root is None:
        return 0
    from facelens.config import ServerSettings

    rng = np.random.default_rng(args.seed)
    enrolled, fit, probes = split(embed_with_pipeline(root), args.requests, rng)
    print(f"{args.faces:,} faces ({len(enrolled):,} enrolled LFW people + realistic distractors); load "
          f"{load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(args.data_dir or tmp)
        if stored(data_dir) == args.faces:
            print(f"reusing the {args.faces:,} faces stored in {data_dir} ({tree_mib(data_dir):,.0f} MiB)")
        else:
            fill(data_dir, args.faces, enrolled, fit, rng)
        started = time.perf_counter()
        process, url = start_server(data_dir, ServerSettings.from_env().threads)
        try:
            print(f"server healthy after {time.perf_counter() - started:.1f} s, RSS "
                  f"{memory_mib(process.pid)[0]:,.0f} MiB", flush=True)
            client = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1",
                                  aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                  config=Config(retries={"max_attempts": 5, "mode": "standard"}))
            latencies = []
            for path in probes.genuine_paths:
                body = path.read_bytes()
                start = time.perf_counter()
                client.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": body},
                                             FaceMatchThreshold=0, MaxFaces=1)
                latencies.append((time.perf_counter() - start) * 1000)
            rss, peak = memory_mib(process.pid)
        finally:
            process.terminate()
            process.wait(60)
        first, rest = latencies[0], latencies[1:]
        print(f"\n| faces | server RSS after start MiB | RSS after {len(latencies)} searches MiB | peak RSS MiB | "
              "first search ms | SearchFacesByImage p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {args.faces:,} | (above) | {rss:,.0f} | {peak:,.0f} | {first:,.0f} | "
              f"{np.percentile(rest, 50):.1f} | {np.percentile(rest, 99):.1f} |")
        print(f"load average at end: {load_average()}", flush=True)
        if args.breakdown:
            breakdown(data_dir, probes.genuine_paths)
    return 0


def stored(data_dir: Path) -> int:
    """Faces in the benchmark's collection of `data_dir` (0 when there is none)."""
    from facelens.config import ServerSettings
    from facelens.service import build

    if not (data_dir / "collections").is_dir():
        return 0
    with build(ServerSettings(data_dir=data_dir, warmup=False)) as backend, backend.store.transaction() as session:
        collection = session.get_collection(COLLECTION)
        return 0 if collection is None else session.count_faces(collection.pk)


def breakdown(data_dir: Path, paths: list[Path]) -> None:
    """p50 of each part of SearchFacesByImage, in process on `data_dir`, for the same probe images."""
    from facelens.analysis import find_faces_in
    from facelens.config import ServerSettings
    from facelens.context import RequestContext
    from facelens.domain.common import default
    from facelens.domain.search import FIRST_CANDIDATES
    from facelens.service import build

    parts: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def timer(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        parts.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    with build(ServerSettings(data_dir=data_dir)) as backend:
        backend.analyzer.warmup()
        request = {"CollectionId": COLLECTION, "FaceMatchThreshold": 0, "MaxFaces": 1}
        level = default("SearchFacesByImage", "QualityFilter", None)  # as the service reads it
        backend.call("SearchFacesByImage", {**request, "Image": {"Bytes": paths[0].read_bytes()}})  # index loads
        for path in paths:
            body, context = path.read_bytes(), RequestContext()
            with timer("SearchFacesByImage, in process"):
                backend.call("SearchFacesByImage", {**request, "Image": {"Bytes": body}})
            with timer("gate: admission (policy, face count, floor)"):
                collection, ruling, _ = backend.gate.admit_search(context, "SearchFacesByImage", COLLECTION, 0, 1,
                                                                  "FaceMatchThreshold", "MaxFaces")
            with timer("detect + embed"):
                found = find_faces_in(backend.analyzer, body, None, 1, None, quality_filter=level, embed=1)
            query = np.asarray(found.passed[0].embedding, np.float32)[None, :]
            with timer(f"vector index: {FIRST_CANDIDATES} candidates"):
                seqs, _, _ = backend.vectors.search(collection.pk, query, FIRST_CANDIDATES)
            wanted = sorted(int(s) for s in seqs.ravel() if s >= 0)
            with timer("exact re-rank: read the candidates' embeddings"), backend.store.transaction() as session:
                session.faces_by_seq(collection.pk, wanted, embeddings=True)
            with timer("gate: audit record"):
                backend.gate.record_search(context, "SearchFacesByImage", collection, ruling, [])
    whole = "SearchFacesByImage, in process"
    print(f"\nin process on the same data directory, {len(paths)} requests (load average {load_average()})\n")
    print("| part | p50 ms | p99 ms |\n|---|---:|---:|")
    for name, values in parts.items():
        print(f"| {name} | {np.percentile(values, 50):.2f} | {np.percentile(values, 99):.2f} |")
    rest = np.percentile(parts[whole], 50) - sum(np.percentile(v, 50) for n, v in parts.items() if n != whole)
    print(f"| rest of the call (validation, shaping, p50 differences) | {rest:.2f} | |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
