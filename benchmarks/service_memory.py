"""`facelens serve` holding one very large collection: storing it, the server's memory, and SearchFacesByImage.

    .venv/bin/python benchmarks/service_memory.py [--faces 20000000] [--requests 300] [--dataset DIR]

The collection: the LFW people with two or more usable photos enrolled (their first photo), then distractors
drawn from search.py's Gaussian fitted to the other LFW embeddings (realistic: clustered like faces), generated
chunk by chunk and stored with `collections.add_embeddings` (as `facelens index` stores faces) in a fresh data
directory, the default index chosen by size (`auto`). Reported: the insert rate per tenth of the fill, the data
directory's size, then `facelens serve` on it: seconds to healthy, VmRSS after start, and after --requests
SearchFacesByImage calls (the enrolled people's second photos through boto3, threshold 0, MaxFaces 1) the RSS,
the peak RSS (VmHWM) and the end-to-end p50/p99. No ground truth (search.py measures recall); this measures what
one machine needs to serve the collection. Skips when LFW is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
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
        data_dir = Path(tmp)
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
    print(f"\n| faces | server RSS after start MiB | RSS after {len(latencies)} searches MiB | peak RSS MiB | "
          "SearchFacesByImage p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.faces:,} | (above) | {rss:,.0f} | {peak:,.0f} | {np.percentile(latencies, 50):.1f} | "
          f"{np.percentile(latencies, 99):.1f} |")
    print(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
