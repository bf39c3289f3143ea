"""Vector search at scale: the index FaceLens builds vs exact FAISS Flat, on synthetic 128-d unit vectors.

    .venv/bin/python benchmarks/search.py [--sizes 100000 1000000] [--queries 1000] [--threads 2]
                                          [--search-threads 1] [--alternatives HNSW32] [--extra-ef 256]
    .venv/bin/python benchmarks/search.py --quick        # 20,000 faces, 200 queries per kind: well under a minute

Data (seeded numpy RNG): N gallery "identities", random unit vectors in 128 dimensions (the SFace embedding
size). Two kinds of probe, --queries of each: "genuine" = a gallery vector plus Gaussian noise scaled so the
probe's cosine with its source is about --genuine-cosine (0.65: a second photo of the same person with SFace),
re-normalised; "stranger" = fresh random unit vectors not in the gallery. Random high-dimensional data has no
cluster structure: it is the hard case for HNSW, and the numbers are not tuned to look good.

For each size: the exact baseline (`Flat` via `facelens.store.vectors._new_index`, an IndexIDMap over an
inner-product IndexFlat), the index the service picks (`VectorConfig().factory_for(N)`: Flat below 50,000
faces, SQ8 from there) and --alternatives (opt-in factories, default HNSW32), all built with `add_with_ids` as
the service does. Ground truth = exact top-1 from
a batched search of the Flat baseline in the same run. Each probe is then searched one at a time (like an API
request) for k=64 candidates (backend.FIRST_CANDIDATES) with the service's search parameters
(HNSW: efSearch = max(128, k)); --extra-ef adds rows with a larger efSearch on the same HNSW index.
recall@1 = the index's own top-1 is the exact top-1; "re-rank@64" = the exact top-1 after re-ranking the 64
candidates exactly (float64, as backend._ranked does), i.e. the true neighbour is among them.
Memory: length of `faiss.serialize_index`, and VmRSS growth of this process across the build (both per
million faces). FAISS OpenMP threads: --threads for builds and ground truth; each --search-threads value gets
its own latency rows. The service searches with one thread per request (FACELENS_FAISS_SEARCH_THREADS=1) and
runs requests in parallel; a single-query HNSW search runs on one thread whatever the setting.
Latency ratios compare with Flat measured in the same run at the same search threads. The header prints the
load average: other processes on the cores delay FAISS's OpenMP threads and inflate the multi-thread latencies.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import time
from dataclasses import dataclass

import faiss
import numpy as np

from facelens.backend import FIRST_CANDIDATES
from facelens.store.vectors import EXACT, VectorConfig, _base, _new_index

DIM = 128
TARGET_SIZE = 1_000_000
TARGET_P99_MS = 50.0
TARGET_RECALL = 0.99
TARGET_BYTES_PER_MILLION = 1e9


@dataclass
class Row:
    """One index (and efSearch) measured at one size."""

    name: str
    ef: int | None
    threads: int
    build_s: float
    serialized: int
    rss_growth: int
    latencies_ms: np.ndarray
    recall: dict[str, float]
    reranked: dict[str, float]

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))


def rss_bytes() -> int:
    """This process's resident set size (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def unit(rng: np.random.Generator, count: int, chunk: int = 100_000) -> np.ndarray:
    """`count` random unit vectors (float32), generated in chunks to bound the float temporaries."""
    out = np.empty((count, DIM), np.float32)
    for start in range(0, count, chunk):
        block = rng.standard_normal((min(chunk, count - start), DIM), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def genuine(rng: np.random.Generator, gallery: np.ndarray, count: int, cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copies of `count` distinct gallery vectors with cosine about `cosine` to their source, and the sources."""
    sources = rng.choice(len(gallery), count, replace=False)
    sigma = np.sqrt(1.0 / cosine**2 - 1.0)  # |noise| ~ sigma, nearly orthogonal to the source in 128-d
    noisy = gallery[sources] + sigma * rng.standard_normal((count, DIM), dtype=np.float32) / np.sqrt(DIM)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32), sources


def build(factory: str, gallery: np.ndarray) -> tuple[faiss.Index, str, float, int]:
    """The index the service builds for `factory`, what was built, build seconds and RSS growth in bytes."""
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)  # hand freed heap back first, so that reused memory is not missed
    before = rss_bytes()
    start = time.perf_counter()
    index, kind = _new_index(factory, DIM, gallery)
    index.add_with_ids(gallery, np.arange(len(gallery), dtype=np.int64))
    seconds = time.perf_counter() - start
    return index, kind, seconds, rss_bytes() - before


def params_for(index: faiss.Index, ef: int | None) -> faiss.SearchParameters | None:
    """VectorCache's search parameters: HNSW efSearch (at least k), IVF nprobe, none for scans."""
    if ef is not None:
        return faiss.SearchParametersHNSW(efSearch=max(ef, FIRST_CANDIDATES))
    if faiss.try_extract_index_ivf(index) is not None:
        return faiss.SearchParametersIVF(nprobe=VectorConfig().nprobe)
    return None


def measure(
    index: faiss.Index,
    ef: int | None,
    gallery: np.ndarray,
    probes: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    threads: int,
) -> tuple[np.ndarray, dict[str, float], dict[str, float]]:
    """One query at a time: latencies (ms) over all probes, recall@1 and recall@1 after exact re-rank per kind."""
    params = params_for(index, ef)
    k = FIRST_CANDIDATES
    build_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    for query in next(iter(probes.values()))[:10]:  # warm-up
        index.search(query[None], k, params=params)
    latencies: list[float] = []
    recall: dict[str, float] = {}
    reranked: dict[str, float] = {}
    for kind, queries in probes.items():
        top1 = np.empty(len(queries), np.int64)
        best = np.empty(len(queries), np.int64)
        for i, query in enumerate(queries):
            start = time.perf_counter()
            _, found = index.search(query[None], k, params=params)
            latencies.append((time.perf_counter() - start) * 1000)
            candidates = found[0][found[0] >= 0]
            top1[i] = candidates[0] if len(candidates) else -1
            exact = gallery[candidates].astype(np.float64) @ query.astype(np.float64)
            best[i] = candidates[int(np.argmax(exact))] if len(candidates) else -1
        recall[kind] = float(np.mean(top1 == truth[kind]))
        reranked[kind] = float(np.mean(best == truth[kind]))
    faiss.omp_set_num_threads(build_threads)
    return np.asarray(latencies), recall, reranked


def run_size(size: int, args: argparse.Namespace) -> list[Row]:
    """Build and measure Flat and the service's index for `size` faces; print the table."""
    rng = np.random.default_rng(args.seed + size)
    gallery = unit(rng, size)
    probes: dict[str, np.ndarray] = {}
    probes["genuine"], sources = genuine(rng, gallery, args.queries, args.genuine_cosine)
    probes["stranger"] = unit(rng, args.queries)
    source_cosine = float(np.mean(np.sum(probes["genuine"] * gallery[sources], axis=1)))

    flat, _, flat_s, flat_rss = build(EXACT, gallery)
    truth: dict[str, np.ndarray] = {}
    for kind, queries in probes.items():
        truth[kind] = flat.search(queries, 1)[1][:, 0]
    source_top1 = float(np.mean(truth["genuine"] == sources))
    flat_bytes = len(faiss.serialize_index(flat))
    rows: list[Row] = []
    for threads in args.search_threads:
        latencies, recall, reranked = measure(flat, None, gallery, probes, truth, threads)
        rows.append(Row("Flat (exact)", None, threads, flat_s, flat_bytes, flat_rss, latencies, recall, reranked))
    del flat
    service = VectorConfig().factory_for(size)
    for factory in dict.fromkeys([service, *args.alternatives]):
        if factory == EXACT:
            continue
        index, kind, seconds, growth = build(factory, gallery)
        serialized = len(faiss.serialize_index(index))
        hnsw = isinstance(_base(index), faiss.IndexHNSW)
        efs: list[int | None] = [VectorConfig().ef_search, *args.extra_ef] if hnsw else [None]
        for ef in efs:
            for threads in args.search_threads:
                latencies, recall, reranked = measure(index, ef, gallery, probes, truth, threads)
                name = f"{kind} (service)" if factory == service and ef == efs[0] else kind
                rows.append(Row(name, ef, threads, seconds, serialized, growth, latencies, recall, reranked))
        del index
    print_table(size, rows, args, source_cosine, source_top1)
    return rows


def print_table(size: int, rows: list[Row], args: argparse.Namespace, source_cosine: float, source_top1: float) -> None:
    per_million = 1e6 / size
    print(f"\n### {size:,} faces — service picks {VectorConfig().factory_for(size)}")
    print(
        f"{args.queries} genuine probes (mean cosine to source {source_cosine:.3f}; exact top-1 is the source for "
        f"{source_top1:.3f}) + {args.queries} stranger probes; k={FIRST_CANDIDATES}, one query per search call"
    )
    print(
        "\n| index | efSearch | search threads | build s | serialized MB | MB / 1M faces (serialized) "
        "| MB / 1M faces (RSS growth) | p50 ms | p99 ms | p50 vs Flat | p99 vs Flat "
        "| recall@1 genuine | recall@1 stranger "
        "| re-rank@64 genuine | re-rank@64 stranger |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    flat = {row.threads: row for row in rows if row.name.startswith(EXACT)}
    for row in rows:
        ef = "-" if row.ef is None else str(max(row.ef, FIRST_CANDIDATES))
        base = flat[row.threads]
        print(
            f"| {row.name} | {ef} | {row.threads} | {row.build_s:.2f} | {row.serialized / 1e6:.1f} "
            f"| {row.serialized * per_million / 1e6:.0f} | {row.rss_growth * per_million / 1e6:.0f} "
            f"| {row.p(50):.3f} | {row.p(99):.3f} | {row.p(50) / base.p(50):.3f} | {row.p(99) / base.p(99):.3f} "
            f"| {row.recall['genuine']:.3f} | {row.recall['stranger']:.3f} "
            f"| {row.reranked['genuine']:.3f} | {row.reranked['stranger']:.3f} |"
        )
    sys.stdout.flush()


def print_targets(rows: list[Row], size: int) -> None:
    """PASS/FAIL of the 1M targets for each row of the service's index (Flat's when the service uses Flat)."""
    print(
        f"\n### Targets at {size:,} faces: p99 <= {TARGET_P99_MS:g} ms, recall@1 after re-rank >= {TARGET_RECALL}, "
        f"memory <= {TARGET_BYTES_PER_MILLION / 1e9:g} GB per million faces"
    )
    print("\n| index | efSearch | search threads | target | measured | result |")
    print("|---|---:|---:|---|---:|---|")
    per_million = 1e6 / size
    service = [row for row in rows if row.name.endswith("(service)")]
    for row in service or rows:
        ef = "-" if row.ef is None else str(max(row.ef, FIRST_CANDIDATES))
        checks = [
            ("p99 latency (ms)", f"{row.p(99):.3f}", row.p(99) <= TARGET_P99_MS),
            (
                "re-rank@64 recall@1, genuine",
                f"{row.reranked['genuine']:.3f}",
                row.reranked["genuine"] >= TARGET_RECALL,
            ),
            (
                "re-rank@64 recall@1, stranger",
                f"{row.reranked['stranger']:.3f}",
                row.reranked["stranger"] >= TARGET_RECALL,
            ),
            (
                "GB / 1M faces (serialized)",
                f"{row.serialized * per_million / 1e9:.3f}",
                row.serialized * per_million <= TARGET_BYTES_PER_MILLION,
            ),
            (
                "GB / 1M faces (RSS growth)",
                f"{row.rss_growth * per_million / 1e9:.3f}",
                row.rss_growth * per_million <= TARGET_BYTES_PER_MILLION,
            ),
        ]
        for target, measured, ok in checks:
            print(f"| {row.name} | {ef} | {row.threads} | {target} | {measured} | {'PASS' if ok else 'FAIL'} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="gallery sizes (default 100000 1000000)")
    parser.add_argument("--queries", type=int, default=None, help="probes of each kind (default 1000)")
    parser.add_argument("--threads", type=int, default=2, help="faiss threads for builds and ground truth")
    parser.add_argument("--search-threads", type=int, nargs="+", default=[1], help="faiss threads for searches")
    parser.add_argument("--alternatives", nargs="*", default=["HNSW32"], help="opt-in factories to compare")
    parser.add_argument("--extra-ef", type=int, nargs="*", default=[256], help="extra HNSW efSearch rows")
    parser.add_argument("--genuine-cosine", type=float, default=0.65, help="genuine probe cosine to its source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20,000 faces, 200 probes of each kind")
    args = parser.parse_args()
    args.sizes = args.sizes or ([20_000] if args.quick else [100_000, 1_000_000])
    args.queries = args.queries or (200 if args.quick else 1000)
    faiss.omp_set_num_threads(args.threads)
    print(
        f"FaceLens vector search, dim {DIM}, faiss {faiss.__version__}, {os.cpu_count()} cores, "
        f"faiss threads: {args.threads} for builds and ground truth, {' and '.join(map(str, args.search_threads))} "
        "for single-query searches (the service: 1); "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    results = {size: run_size(size, args) for size in args.sizes}
    if TARGET_SIZE in results:
        print_targets(results[TARGET_SIZE], TARGET_SIZE)
    else:
        print(f"\nTargets are checked at {TARGET_SIZE:,} faces: not measured in this run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
