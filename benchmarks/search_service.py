"""`benchmarks/search.py --service`: the same gallery and probes through a real `facelens serve` and boto3.

The gallery is stored in a fresh data directory with `collections.add_embeddings` (as `facelens index` stores
faces; the vectors are not re-derived from images), then `facelens serve` opens it with the default index and
each probe's image is sent as SearchFacesByImage (FaceMatchThreshold 0, MaxFaces 1, so the collection's
size-aware floor decides what is answered). Reported beside the index-only rows: end-to-end p50/p99 per
request, the in-process detect+embed time of the same images (the part of a request that is not search), the
answer's agreement with the exact top-1 when it is above the floor, and how many requests the floor answered.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.config import Config

COLLECTION = "search-benchmark"
BATCH = 20_000


def _store(data_dir: Path, gallery: np.ndarray) -> list[str]:
    from facelens.config import ServerSettings
    from facelens.service import build

    face_ids: list[str] = []
    with build(ServerSettings(data_dir=data_dir)) as backend:
        backend.call("CreateCollection", {"CollectionId": COLLECTION})
        for start in range(0, len(gallery), BATCH):
            face_ids += backend.collections.add_embeddings(COLLECTION, gallery[start:start + BATCH])
        backend.vectors.flush()
    return face_ids


def _embed_ms(paths: list[Path]) -> float:
    """Median in-process detect + embed of one probe image (the service's analyzer, its settings)."""
    from facelens.config import ServerSettings
    from facelens.imaging import decode_image
    from facelens.pipeline import FaceAnalyzer

    analyzer = FaceAnalyzer(ServerSettings.from_env().models)
    analyzer.warmup()
    times = []
    for path in paths[:200]:
        start = time.perf_counter()
        image = decode_image(path.read_bytes(), 15 * 2**20).pixels
        analyzer.embed([image], analyzer.detect([image]))
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def end_to_end(gallery: np.ndarray, probes: Any, default: str, rows: list[Any]) -> None:
    from _common import memory_mib, tree_mib
    from service import KEY_ID, SECRET, start_server  # benchmarks/service.py

    from facelens.config import ServerSettings

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        face_ids = _store(data_dir, gallery)
        print(f"\nservice: stored {len(face_ids):,} faces in {time.perf_counter() - started:.0f} s; data directory "
              f"{tree_mib(data_dir):,.0f} MiB", flush=True)
        started = time.perf_counter()
        process, url = start_server(data_dir, ServerSettings.from_env().threads)
        print(f"service: healthy {time.perf_counter() - started:.1f} s after start; server RSS "
              f"{memory_mib(process.pid)[0]:,.0f} MiB", flush=True)
        try:
            client = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1",
                                  aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                  config=Config(retries={"max_attempts": 5, "mode": "standard"}))
            floor = None
            latencies, answered, agree = [], 0, 0
            for kind, paths, truth in (("genuine", probes.genuine_paths, probes.truth_genuine),
                                       ("stranger", probes.stranger_paths, probes.truth_stranger)):
                for path, expected in zip(paths, truth, strict=True):
                    body = path.read_bytes()
                    start = time.perf_counter()
                    response = client.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": body},
                                                            FaceMatchThreshold=0, MaxFaces=1)
                    latencies.append((time.perf_counter() - start) * 1000)
                    floor = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
                        "x-facelens-effective-threshold", floor)
                    matches = response["FaceMatches"]
                    if matches:
                        answered += 1
                        agree += int(matches[0]["Face"]["FaceId"] == face_ids[expected])
                print(f"  service {kind}: {len(paths)} requests", flush=True)
            rss, peak = memory_mib(process.pid)
        finally:
            process.terminate()
            process.wait(60)
    embed = _embed_ms(probes.genuine_paths)
    index = next(row for row in rows if row.spec == default and row.candidates == 64)
    p50, p99 = float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))
    print(f"\n| path | p50 ms | p99 ms |\n|---|---:|---:|\n| detect + embed in process | {embed:.1f} | |\n"
          f"| index {default}, 64 candidates re-ranked in process | {index.p50:.2f} | {index.p99:.2f} |\n"
          f"| boto3 SearchFacesByImage end to end | {p50:.1f} | {p99:.1f} |\n"
          f"| end to end minus (embed + index) | {p50 - embed - index.p50:.1f} | |")
    print(f"server memory after the requests: RSS {rss:,.0f} MiB, peak RSS {peak:,.0f} MiB")
    print(f"answered above the floor (effective threshold {floor}): {answered} of {len(latencies)}; of those, the "
          f"exact top-1: {agree}")
