"""`benchmarks/search.py`'s realistic workload on a real Milvus server, beside FAISS Flat measured in the same run.

    PYTHONPATH=src:. .venv/bin/python benchmarks/search_milvus.py [--faces 100000] [--distractors realistic]
        [--milvus-index "IVF_SQ8&nlist=1024;HNSW&M=16&efConstruction=200"] [--nprobe 16 64 256] [--ef 64 128 256]
        [--search-list 64 128 256] [--candidates 64] [--queries 1000] [--milvus-url milvus://host:19530]

The gallery, probes and ground truth are search.py's (`split`, `gallery_of`, `exact_top1`; LFW people through
the service's face path, genuine probes = their second photo, strangers = people never enrolled, distractors
from a Gaussian fitted to real SFace embeddings). FAISS rows are search.py's `measure` (Flat, and the service's
default FAISS index at this size). Milvus rows: a Milvus standalone server (the `milvus` package's Milvus 2.3.5
binary, started here on free ports in a temporary directory; or --milvus-url, a server or cluster you run), one
collection per --milvus-index entry with the schema and index `facelens.store.milvus.MilvusVectors` creates
(`index_of` parses each entry as the query string of a FACELENS_VECTOR_URL, so unnamed parameters take
`INDEX_DEFAULTS`), the gallery inserted in batches of 2,000, then:
- **growing**: searched at once, before any flush: the rows sit in growing segments, which Milvus searches with
  its interim index (`queryNode.segcore.interimIndex`, IVF nlist 128 / nprobe 16), whatever index was asked;
- **sealed**: after `flush`, the index built on every row (`indexed_rows`), release and load: searched at each
  --nprobe (IVF), --ef (HNSW) or --search-list (DISKANN) setting.
A server started here gets `queryNode.enableDisk: true` when an entry is DISKANN (the query node loads disk
indexes only with it). Milvus retries an index build that fails, forever, and its DescribeIndex names no reason
(it shows the rows pending), so the wait for the index reads the reason from the log of a server started here and
stops at the first failure: the entry is reported as not built (the bundled 2.3.5 binary has no DiskANN,
docs/scaling.md), and the other entries go on.
Consistency: the service searches at Strong (a face written through any replica is found at once), and Milvus
answers a Strong search once its time tick (`proxy.timeTickInterval`, 200 ms) has passed the request: the
growing rows and one sealed row per index (the index's default setting) are Strong, on --strong-queries
probes of each kind. The sweeps are Bounded: every row is flushed, indexed and loaded by then, so Bounded sees
the same data and its latency is the index's own.
Each probe is one `client.search` call (limit = --candidates) and
the candidates are re-ranked exactly in float64, as `SearchEngine.ranked` does; recall = the re-ranked top-1 is
the exact top-1. Latency includes the gRPC round trip. Memory = the server's VmRSS after loading (a server this
script started). Build s = inserting + flush + index build + load.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import memory_mib
from search import Probes, Row, exact_top1, gallery_of, measure, split

from facelens.eval.dataset import dataset_root, embed_with_pipeline
from facelens.store.milvus import MilvusIndex, client_uri, index_of
from facelens.store.vectors import VectorConfig

BATCH = 2000
NAME = "facelens_benchmark"
SWEEP = {"nprobe": "nprobe", "ef": "ef", "search_list": "search_list"}
FAILED = re.compile(r'"fail reason"="([^"]+)"')  # datacoord's line for a build it will retry


def rss_mib(pid: int | None) -> float:
    """The Milvus server's VmRSS; NaN for a server run elsewhere (no pid)."""
    return float("nan") if pid is None else memory_mib(pid)[0]


def create(client: Any, index: MilvusIndex) -> None:
    """The collection `MilvusVectors._create` makes (loaded)."""
    from pymilvus import DataType

    if client.has_collection(NAME):
        client.drop_collection(NAME)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=128)
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type=index.type, metric_type="IP", params=index.build)
    client.create_collection(NAME, schema=schema, index_params=params, consistency_level="Strong")
    client.load_collection(NAME)


def searched(client: Any, index: MilvusIndex, gallery: np.ndarray, queries: np.ndarray, truth: np.ndarray,
             k: int, consistency: str) -> tuple[np.ndarray, float]:
    """Latencies (ms) and re-rank recall of one-at-a-time searches for `k` candidates."""
    params = index.search_params(k)
    latencies, right = np.empty(len(queries)), 0
    for row, query in enumerate(queries):
        start = time.perf_counter()
        hits = client.search(NAME, data=[query.tolist()], limit=k, search_params=params,
                             consistency_level=consistency)[0]
        candidates = np.array([int(hit["id"]) for hit in hits], np.int64)
        exact = gallery[candidates].astype(np.float64) @ query.astype(np.float64)
        best = candidates[int(np.argmax(exact))] if len(candidates) else -1
        latencies[row] = (time.perf_counter() - start) * 1000
        right += int(best == truth[row])
    return latencies, right / len(queries)


def row_of(client: Any, index: MilvusIndex, setting: str, gallery: np.ndarray, probes: Probes,
           truth: dict[str, np.ndarray], k: int, memory: float, build_s: float, consistency: str = "Bounded",
           queries: int | None = None) -> Row:
    """One table row: every probe (or the first `queries` of each kind) searched at `consistency`."""
    n = queries or len(probes.genuine)
    searched(client, index, gallery, probes.genuine[:20], truth["genuine"][:20], k, consistency)  # warm-up
    lat_g, rec_g = searched(client, index, gallery, probes.genuine[:n], truth["genuine"][:n], k, consistency)
    lat_s, rec_s = searched(client, index, gallery, probes.strangers[:n], truth["stranger"][:n], k, consistency)
    latencies = np.concatenate([lat_g, lat_s])
    setting = f"{setting}, {consistency}" + (f", {min(n, len(probes.genuine))} probes per kind" if queries else "")
    row = Row(f"milvus:{index.type}", setting, k, float(np.percentile(latencies, 50)),
              float(np.percentile(latencies, 99)), rec_g, rec_s, memory, build_s)
    print(f"  {row.spec} {setting} k={k}: p50 {row.p50:.2f} / p99 {row.p99:.2f} ms, recall {rec_g:.4f} / "
          f"{rec_s:.4f}", flush=True)
    return row


class ServerLog:
    """The stdout log of a Milvus server started here (None: a server run elsewhere, whose log is not read)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.start = self.size()

    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None and self.path.exists() else 0

    def mark(self) -> None:
        """Read only what is logged from now on."""
        self.start = self.size()

    def build_failure(self) -> str | None:
        """The first index-build failure logged since `mark`, or None."""
        if self.path is None or not self.path.exists():
            return None
        with self.path.open("rb") as log:
            log.seek(self.start)
            found = FAILED.search(log.read().decode(errors="replace"))
        return found.group(1).replace("\\n", " ") if found else None


def wait_indexed(client: Any, total: int, log: ServerLog, timeout: float = 3600.0) -> None:
    """Until every row is indexed; RuntimeError with the server's reason once it logs a failed build."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = client.describe_index(NAME, "vector")
        if int(described.get("indexed_rows", 0)) >= total and not int(described.get("pending_index_rows", 0)):
            return
        reason = log.build_failure()
        if reason:
            raise RuntimeError(f"index build failed (Milvus retries it forever): {reason}; {described}")
        time.sleep(1)
    raise TimeoutError(f"Milvus did not index {total:,} rows in {timeout:g} s: {described}")


def measure_milvus(client: Any, pid: int | None, log: ServerLog, entry: str, gallery: np.ndarray, probes: Probes,
                   truth: dict[str, np.ndarray], args: argparse.Namespace, failures: list[str]) -> list[Row]:
    """The entry's rows; an index the server could not build is appended to `failures` (with its reason)."""
    index = index_of("milvus://benchmark?index=" + entry)
    print(f"Milvus {index.type} build {index.build} search {index.search}", flush=True)
    log.mark()
    started = time.perf_counter()
    create(client, index)
    for first in range(0, len(gallery), BATCH):
        block = gallery[first:first + BATCH]
        client.insert(NAME, [{"id": first + i, "vector": vector.tolist()} for i, vector in enumerate(block)])
    inserted = time.perf_counter() - started
    rows = [row_of(client, index, "growing, before flush", gallery, probes, truth, k, rss_mib(pid), inserted,
                   "Strong", args.strong_queries) for k in args.candidates] if not args.skip_growing else []
    client.flush(NAME)
    try:
        wait_indexed(client, len(gallery), log)
    except RuntimeError as error:
        failures.append(f"milvus:{index.type} {index.build} at {len(gallery):,} faces, not built after "
                        f"{time.perf_counter() - started:.0f} s: {error}")
        print(f"  {failures[-1]}", flush=True)
        client.drop_collection(NAME)  # which ends Milvus's retries: no later entry sees them
        return rows
    client.release_collection(NAME)
    client.load_collection(NAME)
    build_s = time.perf_counter() - started
    memory = rss_mib(pid)
    sweep = next((key for key in SWEEP if key in index.search), None)
    values = {"nprobe": args.nprobe, "ef": args.ef, "search_list": args.search_list}.get(sweep or "", [None])
    label = "sealed" + "".join(f" {key}={val}" for key, val in index.build.items())
    rows += [row_of(client, index, label + "".join(f" {key}={val}" for key, val in index.search.items()), gallery,
                    probes, truth, k, memory, build_s, "Strong", args.strong_queries) for k in args.candidates]
    for value in values:
        setting = MilvusIndex(index.type, index.build, {**index.search, **({sweep: value} if sweep else {})})
        named = label + "".join(f" {key}={val}" for key, val in setting.search.items())
        rows += [row_of(client, setting, named, gallery, probes, truth, k, memory, build_s) for k in args.candidates]
    client.drop_collection(NAME)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--distractors", choices=("realistic", "uniform"), default="realistic")
    parser.add_argument("--milvus-index", default="FLAT;IVF_SQ8;HNSW", help="';'-separated index entries: TYPE "
                        "then &key=value Milvus parameters (unnamed ones: facelens.store.milvus.INDEX_DEFAULTS)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--search-list", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--candidates", type=int, nargs="+", default=[64])
    parser.add_argument("--queries", type=int, default=1000, help="probes of each kind (at most LFW's)")
    parser.add_argument("--milvus-url", default=None, help="a running Milvus (default: start a standalone here)")
    parser.add_argument("--strong-queries", type=int, default=200, help="probes of each kind for the Strong "
                        "rows (as the service searches: each waits for Milvus's time tick)")
    parser.add_argument("--time-tick-ms", type=int, default=None, help="proxy.timeTickInterval of the server "
                        "started here (Milvus's default: 200)")
    parser.add_argument("--server-setting", action="append", default=[], metavar="KEY=VALUE", help="a "
                        "milvus.yaml key of the server started here, e.g. queryNode.segcore.interimIndex.nprobe=128")
    parser.add_argument("--skip-growing", action="store_true", help="measure only after the index is built")
    parser.add_argument("--no-faiss-default", action="store_true", help="FAISS Flat only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default=None, help="LFW-like folder with pairs.txt (default: LFW)")
    args = parser.parse_args()
    root = dataset_root(args.dataset)
    if root is None:
        return 0
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    rng = np.random.default_rng(args.seed)
    embedded = embed_with_pipeline(root)
    enrolled, fit, probes = split(embedded, args.queries, rng)
    gallery = gallery_of(args.faces, enrolled, fit, args.distractors, rng)
    truth = {"genuine": exact_top1(gallery, probes.genuine), "stranger": exact_top1(gallery, probes.strangers)}
    default = VectorConfig().factory_for(args.faces)
    print(f"{args.faces:,} faces ({len(enrolled):,} enrolled LFW people + {args.distractors} distractors), "
          f"{len(probes.genuine):,} genuine and {len(probes.strangers):,} stranger probes; {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}; FAISS default at this size: {default}", flush=True)
    faiss_args = argparse.Namespace(nprobe=[32, 256], k_factor=[16], candidates=args.candidates, threads=2,
                                    flat_queries=args.queries)
    specs = ["Flat"] + ([] if args.no_faiss_default or default == "Flat" else [default])
    rows = [row for spec in specs for row in measure(spec, gallery, probes, truth, faiss_args, rng)]
    from pymilvus import MilvusClient

    entries, failures = args.milvus_index.split(";"), []
    with tempfile.TemporaryDirectory(prefix="facelens-milvus-") as tmp:
        if args.milvus_url:
            server, pid, uri = None, None, client_uri(args.milvus_url)[0]
        else:
            from tests.milvus_fixtures import MilvusStandalone

            settings: dict[str, Any] = {"proxy.timeTickInterval": args.time_tick_ms} if args.time_tick_ms else {}
            if any(index_of("milvus://benchmark?index=" + entry).type == "DISKANN" for entry in entries):
                settings["queryNode.enableDisk"] = "true"
            settings.update(setting.split("=", 1) for setting in args.server_setting)
            server = MilvusStandalone(Path(tmp), settings=settings).__enter__()
            pid, uri = server.server.server_proc.pid, client_uri(server.url)[0]
        log = ServerLog(server.data_dir / "logs" / "milvus-stdout.log" if server is not None else None)
        try:
            client = MilvusClient(uri=uri)
            print(f"Milvus at {uri}, server VmRSS {rss_mib(pid):.0f} MiB before any collection", flush=True)
            for entry in entries:
                rows += measure_milvus(client, pid, log, entry, gallery, probes, truth, args, failures)
        finally:
            if server is not None:
                server.__exit__()
    flat = rows[0]
    print("\n| index | setting | candidates re-ranked | p50 ms | p99 ms | p50 vs FAISS Flat | recall genuine "
          "| recall stranger | MiB (FAISS: index; Milvus: server RSS) | build s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row.spec} | {row.setting} | {row.candidates} | {row.p50:.2f} | {row.p99:.2f} | "
              f"{row.p50 / flat.p50:.3f} | {row.recall_genuine:.4f} | {row.recall_stranger:.4f} | "
              f"{row.memory_mb:,.0f} | {row.build_s:.0f} |")
    print()
    for failure in failures:
        print(f"not built: {failure}")
    for row in rows:
        setting = "/" + row.setting.replace(" ", "_").replace(",", "") if row.setting else ""
        print(f"index={row.spec}{setting}/k{row.candidates} faces={args.faces} p50_ms={row.p50:.2f} "
              f"p99_ms={row.p99:.2f} recall_genuine={row.recall_genuine:.4f} "
              f"recall_stranger={row.recall_stranger:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
