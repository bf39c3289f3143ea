"""Vector search at scale: the index FaceLens builds vs exact FAISS Flat, on synthetic 128-d unit vectors.

    .venv/bin/python benchmarks/search_milvus_lite.py [--sizes 100000 1000000] [--queries 1000] [--threads 2]
        [--search-threads 1] [--alternatives HNSW32] [--extra-ef 256] [--milvus [--milvus-index FLAT,IVF_SQ8,HNSW]]
    .venv/bin/python benchmarks/search_milvus_lite.py --quick  # 20,000 faces, 200 queries per kind: under a minute

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
request) for k=64 candidates (facelens.domain.search.FIRST_CANDIDATES) with the service's search parameters
(HNSW: efSearch = max(128, k)); --extra-ef adds rows with a larger efSearch on the same HNSW index.
recall@1 = the index's own top-1 is the exact top-1; "re-rank@64" = the exact top-1 after re-ranking the 64
candidates exactly (float64, as SearchEngine.ranked does), i.e. the true neighbour is among them.
Memory: length of `faiss.serialize_index`, and VmRSS growth of this process across the build (both per
million faces). FAISS OpenMP threads: --threads for builds and ground truth; each --search-threads value gets
its own latency rows. The service searches with one thread per request (FACELENS_FAISS_SEARCH_THREADS=1) and
runs requests in parallel; a single-query HNSW search runs on one thread whatever the setting.
Latency ratios compare with Flat measured in the same run at the same search threads. The header prints the
load average: other processes on the cores delay FAISS's OpenMP threads and inflate the multi-thread latencies.

--milvus runs the same gallery, probes and ground truth on Milvus Lite, FaceLens's shared vector store, the way
`facelens.store.milvus` reaches a Milvus cluster: for each --milvus-index type (comma-separated, default
FLAT,IVF_SQ8,HNSW) a fresh `python -m milvus_lite server --data-dir <tmp> --host 127.0.0.1 --port <free port>`
subprocess, a `pymilvus.MilvusClient(uri="http://127.0.0.1:<port>")`, a collection with the service's schema
(INT64 primary key `id` = row number, FLOAT_VECTOR `vector` of 128, metric IP, Milvus's default index parameters,
Strong consistency, loaded), upserts in batches of 2,000, and one `client.search(..., limit=64,
search_params={"metric_type": "IP"})` per probe (no ef or nprobe, as the service sends none). A 1,000-face trial
collection is created, searched and dropped first, so that an index type Milvus Lite does not build is reported
in one line and skipped within seconds. Build s = upserting every face + flush + the server's background
compaction and index builds (until its CPU goes quiet) + release and load. Memory: the server's VmRSS after
loading (and its growth from before the collection was created) and the size of its data directory on disk.
Search threads read "server": Milvus Lite searches on its own threads. recall@1 and re-rank@64 are computed as
for the FAISS rows, against the same exact top-1, and latency ratios against Flat at one search thread.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from facelens.domain.search import FIRST_CANDIDATES
from facelens.store.vectors import EXACT, VectorConfig, _base, _new_index

DIM = 128
TARGET_SIZE = 1_000_000
TARGET_P99_MS = 50.0
TARGET_RECALL = 0.99
TARGET_BYTES_PER_MILLION = 1e9


@dataclass
class Row:
    """One index (and efSearch) measured at one size.

    FAISS rows: `threads` = FAISS threads per search, `serialized` = `faiss.serialize_index` length, `rss_growth` =
    this process's VmRSS growth across the build. Milvus Lite rows: `threads` is None (the server's own threads),
    `serialized` = the server's data directory on disk, `rss_growth` = the server's VmRSS after loading minus its
    VmRSS before the collection was created, `server_rss` = the server's VmRSS after loading.
    """

    name: str
    ef: int | None
    threads: int | None
    build_s: float
    serialized: int
    rss_growth: int
    latencies_ms: np.ndarray
    recall: dict[str, float]
    reranked: dict[str, float]
    server_rss: int | None = None

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


# -- Milvus Lite: the same workload through FaceLens's shared vector store client

MILVUS_INDEXES = ("FLAT", "IVF_SQ8", "HNSW")
MILVUS_BATCH = 2000  # facelens.store.milvus._BATCH
MILVUS_COLLECTION = "facelens_benchmark"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status(pid: int, field: str) -> int:
    """A `VmRSS:`-style field of /proc/<pid>/status in bytes (0 when the process is gone)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far, its threads included."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_bytes(path: Path) -> int:
    """Total size of the files under `path`."""
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


class MilvusServer:
    """`python -m milvus_lite server` as a subprocess on a free local port, with its own data directory."""

    def __init__(self, data_dir: Path, start_timeout: float = 120.0) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "server.log"
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MilvusServer:
        command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir),
                   "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"milvus_lite server exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return self
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"milvus_lite server did not listen on port {self.port} in {self.start_timeout:g} s")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> int:
        return proc_status(self.pid, "VmRSS")

    def peak_rss(self) -> int:
        return proc_status(self.pid, "VmHWM")

    def wait_idle(self, quiet_s: float = 3.0, timeout: float = 3600.0) -> float:
        """Wait until the server has used under 5% of a core for `quiet_s` seconds (its background compaction and
        index builds are done); the seconds from the call until it last worked (the quiet wait not counted)."""
        start = time.monotonic()
        last, busy_until = cpu_seconds(self.pid), start
        while time.monotonic() - start < timeout:
            time.sleep(0.5)
            now = cpu_seconds(self.pid)
            if now - last > 0.025:
                busy_until = time.monotonic()
            last = now
            if time.monotonic() - busy_until >= quiet_s:
                break
        return busy_until - start

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""


def milvus_create(client: Any, index_type: str, name: str = MILVUS_COLLECTION) -> None:
    """The collection `facelens.store.milvus.MilvusVectors._create` makes: INT64 primary key `id`, FLOAT_VECTOR
    `vector`, inner-product index of `index_type` with Milvus's default parameters, Strong consistency, loaded."""
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type=index_type, metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    client.load_collection(name)


def milvus_preflight(client: Any, server: MilvusServer, index_type: str, gallery: np.ndarray) -> None:
    """Create, fill (1,000 faces), flush, reload, search and drop a small collection of `index_type`, so that an
    index type Milvus Lite does not build fails in a second, before the full upsert. Milvus Lite accepts an index
    type it does not know at create time and fails when it first builds a sealed segment's index. This also makes
    the server import its index and storage code before the memory baseline is taken. The reload waits for the
    server's background index build: a load while it is still writing the index file can fail to read it."""
    name = f"{MILVUS_COLLECTION}_preflight"
    try:
        milvus_create(client, index_type, name)
        client.upsert(name, [{"id": i, "vector": vector.tolist()} for i, vector in enumerate(gallery[:1000])])
        client.flush(name)
        server.wait_idle(quiet_s=1.0)
        client.release_collection(name)
        client.load_collection(name)
        client.search(name, data=gallery[:1].tolist(), limit=1, search_params={"metric_type": "IP"},
                      consistency_level="Strong")
    finally:
        with contextlib.suppress(Exception):
            client.drop_collection(name)


def milvus_search(client: Any, query: np.ndarray, k: int) -> list[dict[str, Any]]:
    """One query as `MilvusVectors._search` sends it."""
    return client.search(MILVUS_COLLECTION, data=query[None].tolist(), limit=k,
                         search_params={"metric_type": "IP"}, consistency_level="Strong")[0]


def measure_milvus(
    client: Any, gallery: np.ndarray, probes: dict[str, np.ndarray], truth: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, float], dict[str, float]]:
    """`measure` for a Milvus collection: one query per search call, k candidates, the hits in Milvus's order."""
    k = min(FIRST_CANDIDATES, len(gallery))
    for query in next(iter(probes.values()))[:10]:  # warm-up
        milvus_search(client, query, k)
    latencies: list[float] = []
    recall: dict[str, float] = {}
    reranked: dict[str, float] = {}
    for kind, queries in probes.items():
        top1 = np.full(len(queries), -1, np.int64)
        best = np.full(len(queries), -1, np.int64)
        for i, query in enumerate(queries):
            start = time.perf_counter()
            hits = milvus_search(client, query, k)
            latencies.append((time.perf_counter() - start) * 1000)
            if not hits:
                continue
            candidates = np.array([int(hit["id"]) for hit in hits], np.int64)
            scores = np.array([float(hit["distance"]) for hit in hits])
            if np.any(np.diff(scores) > 1e-5):
                raise RuntimeError("Milvus returned IP hits out of order (expected largest inner product first)")
            top1[i] = candidates[0]
            exact = gallery[candidates].astype(np.float64) @ query.astype(np.float64)
            best[i] = candidates[int(np.argmax(exact))]
        recall[kind] = float(np.mean(top1 == truth[kind]))
        reranked[kind] = float(np.mean(best == truth[kind]))
    return np.asarray(latencies), recall, reranked


def milvus_row(
    index_type: str, gallery: np.ndarray, probes: dict[str, np.ndarray], truth: dict[str, np.ndarray]
) -> Row | None:
    """Fill a fresh Milvus Lite server with the gallery through pymilvus (ids = row numbers) and measure it;
    None, with a line saying why, when Milvus Lite does not support `index_type` or building it fails."""
    from pymilvus import MilvusClient

    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # failures are reported here, in one line

    with tempfile.TemporaryDirectory(prefix="facelens-milvus-") as tmp, MilvusServer(Path(tmp) / "data") as server:
        client = MilvusClient(uri=server.uri)
        try:
            try:
                milvus_preflight(client, server, index_type, gallery)
                server.wait_idle(quiet_s=1.0)
                idle_rss = server.rss()
                start = time.perf_counter()
                milvus_create(client, index_type)
            except Exception as error:  # pymilvus raises MilvusException; anything else is a failure all the same
                unknown = "unknown index_type" in str(error) or "reserved for a future phase" in str(error)
                reason = "is not supported by Milvus Lite" if unknown else "could not be created"
                print(f"Milvus Lite: index type {index_type} {reason}, skipped ({type(error).__name__}: {error})",
                      flush=True)
                return None
            try:
                for first in range(0, len(gallery), MILVUS_BATCH):
                    block = gallery[first : first + MILVUS_BATCH]
                    rows = [{"id": first + i, "vector": vector.tolist()} for i, vector in enumerate(block)]
                    client.upsert(MILVUS_COLLECTION, rows)
                upserted = time.perf_counter()
                client.flush(MILVUS_COLLECTION)  # seal the last rows into a segment so that they are indexed too
                flushed = time.perf_counter()
                settle = server.wait_idle()  # background compaction and index builds: until the server went quiet
                loading = time.perf_counter()
                client.release_collection(MILVUS_COLLECTION)
                client.load_collection(MILVUS_COLLECTION)  # builds or loads the index of every segment, synchronously
                end = time.perf_counter()
                build_s = (flushed - start) + settle + (end - loading)
                count = int(client.get_collection_stats(MILVUS_COLLECTION)["row_count"])
                if count != len(gallery):
                    raise RuntimeError(f"the collection holds {count:,} rows, not {len(gallery):,}")
                rss = server.rss()
                on_disk = disk_bytes(server.data_dir)
                print(
                    f"Milvus Lite {index_type}: create + upsert {upserted - start:.1f} s, "
                    f"flush {flushed - upserted:.1f} s, background compaction/index builds {settle:.1f} s, "
                    f"release + load {end - loading:.1f} s; "
                    f"server RSS {idle_rss / 1e6:.0f} MB idle, {rss / 1e6:.0f} MB loaded; data dir "
                    f"{on_disk / 1e6:.0f} MB",
                    flush=True,
                )
                latencies, recall, reranked = measure_milvus(client, gallery, probes, truth)
            except Exception as error:
                print(f"Milvus Lite: {index_type} failed, skipped: {type(error).__name__}: {error} "
                      f"(server log: {server.log_tail()})", flush=True)
                return None
            print(f"Milvus Lite {index_type}: searched, server peak RSS {server.peak_rss() / 1e6:.0f} MB", flush=True)
        finally:
            client.close()
    ef = 64 if index_type == "HNSW" else None  # Milvus Lite's HNSW default ef (FaceLens passes no search params)
    return Row(f"Milvus Lite {index_type}", ef, None, build_s, on_disk, rss - idle_rss, latencies, recall,
               reranked, rss)


def run_size(size: int, args: argparse.Namespace) -> list[Row]:
    """Build and measure Flat, the service's index, the alternatives and (--milvus) Milvus Lite for `size` faces;
    print the table."""
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
    for index_type in args.milvus_index if args.milvus else []:
        row = milvus_row(index_type, gallery, probes, truth)
        if row is not None:
            rows.append(row)
    print_table(size, rows, args, source_cosine, source_top1)
    return rows


def print_table(size: int, rows: list[Row], args: argparse.Namespace, source_cosine: float, source_top1: float) -> None:
    """The rows of one size as a Markdown table; Milvus rows' latency ratios are against Flat at one search thread
    (the service's setting), or the first --search-threads value when 1 is not among them."""
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
    flat[None] = flat.get(1, flat[args.search_threads[0]])
    for row in rows:
        ef = "-" if row.ef is None else str(max(row.ef, FIRST_CANDIDATES))
        base = flat[row.threads]
        print(
            f"| {row.name} | {ef} | {'server' if row.threads is None else row.threads} | {row.build_s:.2f} "
            f"| {row.serialized / 1e6:.1f} "
            f"| {row.serialized * per_million / 1e6:.0f} | {row.rss_growth * per_million / 1e6:.0f} "
            f"| {row.p(50):.3f} | {row.p(99):.3f} | {row.p(50) / base.p(50):.3f} | {row.p(99) / base.p(99):.3f} "
            f"| {row.recall['genuine']:.3f} | {row.recall['stranger']:.3f} "
            f"| {row.reranked['genuine']:.3f} | {row.reranked['stranger']:.3f} |"
        )
    milvus = [row for row in rows if row.server_rss is not None]
    if milvus:
        print(
            "\nMilvus Lite rows: build s = upsert of every face in batches of "
            f"{MILVUS_BATCH} + flush + background index builds + release and load; search threads = the server's own; "
            "serialized = the server's data directory on disk; RSS growth = the server's VmRSS after loading minus "
            "before the collection was created (after a 1,000-face trial collection was dropped); server VmRSS "
            "after loading: "
            + ", ".join(f"{row.name} {row.server_rss / 1e6:.0f} MB" for row in milvus if row.server_rss)
            + f". Latency ratios against Flat at {flat[None].threads} search thread(s)."
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
    parser.add_argument("--milvus", action="store_true", help="also run the workload on a Milvus Lite server")
    parser.add_argument(
        "--milvus-index",
        type=lambda value: [part.strip().upper() for part in value.split(",") if part.strip()],
        default=list(MILVUS_INDEXES),
        help=f"comma-separated Milvus index types for --milvus (default {','.join(MILVUS_INDEXES)})",
    )
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
    if args.milvus:
        from importlib.metadata import version

        print(f"Milvus Lite {version('milvus-lite')} server (subprocess), pymilvus {version('pymilvus')}, "
              f"index types {','.join(args.milvus_index)}")
    results = {size: run_size(size, args) for size in args.sizes}
    if TARGET_SIZE in results:
        print_targets(results[TARGET_SIZE], TARGET_SIZE)
    else:
        print(f"\nTargets are checked at {TARGET_SIZE:,} faces: not measured in this run.")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
