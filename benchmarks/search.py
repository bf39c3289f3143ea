"""1:N search at scale with real probes: each index against exact Flat, on distractors that look like faces.

    .venv/bin/python benchmarks/search.py [--faces 1000000] [--distractors realistic|uniform]
        [--indexes "SQ8;PQ32x4fs,Refine(SQ8);IVF4096,PQ32x4fs"] [--candidates 64 256] [--queries 1000]
        [--nprobe 32 256] [--k-factor 16] [--service] [--dataset DIR]

Probes are real people (LFW through the service's face path, `facelens.eval.dataset.embed_with_pipeline`,
cached): the first usable photo of every person with two or more is enrolled, that person's second photo is a
**genuine** probe, and the photo of every person with only one is a **stranger** (never enrolled). The rest of
the gallery is distractors:
- `realistic`: drawn from a Gaussian fitted (mean and full covariance) to the SFace embeddings of the LFW photos
  that are not probes, then L2-normalised: clustered like faces, so an index must separate near neighbours;
- `uniform`: random unit vectors, the easy case for clustering indexes and the hard one for graphs.
Ground truth is the exact top-1 (Flat, batched) of each probe over the whole gallery. Each index (FAISS factory
strings, built as the service builds them: `facelens.store.vectors._new_index`, trained on at most 256k gallery
vectors, `add_with_ids`) is searched one probe at a time for each --candidates k (and each --nprobe for IVF, each
--k-factor for Refine indexes: the first stage proposes k x factor, the refinement codes keep k), and the k
candidates are re-ranked exactly in float64 as `SearchEngine.ranked` does; **recall** = the re-ranked
top-1 is the exact top-1. Latency = the index search plus the re-rank, p50 and p99, one FAISS thread (the
service's `FACELENS_FAISS_SEARCH_THREADS`). Memory = the index's serialized size (the floats for the re-rank
live in the metadata store, on disk). Flat is the exact baseline, measured in the same run.

--service also runs the genuine and stranger probes' images through a real `facelens serve` (SQLite + the
default index, the gallery stored with `collections.add_embeddings` beforehand) with boto3 SearchFacesByImage
(threshold 0, MaxFaces 1), and reports the end-to-end p50/p99 beside the index-only figures.
The run ends with one line per index and setting:
`index=<spec> faces=<N> p50_ms=<x> p99_ms=<y> recall_genuine=<r> recall_stranger=<s>`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from facelens.eval.dataset import Embedded, dataset_root, embed_with_pipeline
from facelens.store.index_choice import REFINE_K_FACTOR
from facelens.store.vectors import VectorConfig, _new_index

DIM = 128
TRAIN_MAX = 256_000
CHUNK = 200_000


@dataclass
class Probes:
    genuine: np.ndarray  # (g, 128) second photos of enrolled people
    mates: np.ndarray  # their enrolled photo's id in the gallery
    strangers: np.ndarray  # (s, 128) people never enrolled
    genuine_paths: list[Path]
    stranger_paths: list[Path]
    truth_genuine: np.ndarray | None = None  # exact top-1 gallery id of each probe, set once the gallery exists
    truth_stranger: np.ndarray | None = None


@dataclass
class Row:
    spec: str
    setting: str
    candidates: int
    p50: float
    p99: float
    recall_genuine: float
    recall_stranger: float
    memory_mb: float
    build_s: float


def split(embedded: Embedded, queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Probes]:
    """Enrolled vectors, the vectors the distractor Gaussian is fitted on (no probe among them), the probes."""
    dataset, found, vectors = embedded.dataset, embedded.embeddings.found, embedded.vectors
    enrolled, genuine, strangers, rest = [], [], [], []
    for label in range(len(dataset.names)):
        usable = [int(i) for i in np.flatnonzero(dataset.identities == label) if found[i]]
        if len(usable) >= 2:
            enrolled.append(usable[0])
            genuine.append(usable[1])
            rest += [usable[0], *usable[2:]]
        elif len(usable) == 1 and (dataset.identities == label).sum() == 1:
            strangers.append(usable[0])
    pick_g = rng.permutation(len(genuine))[:queries]
    pick_s = rng.permutation(len(strangers))[:queries]
    probes = Probes(vectors[[genuine[i] for i in pick_g]], pick_g.astype(np.int64),
                    vectors[[strangers[i] for i in pick_s]], [dataset.paths[genuine[i]] for i in pick_g],
                    [dataset.paths[strangers[i]] for i in pick_s])
    return vectors[enrolled], vectors[rest], probes


def distractors(count: int, fit: np.ndarray, kind: str, rng: np.random.Generator,
                chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """`count` unit distractor vectors in blocks of at most `chunk`: `realistic` from the Gaussian fitted to `fit`,
    `uniform` random directions."""
    mean = fit.mean(axis=0).astype(np.float64)
    factor = np.linalg.cholesky(np.cov(fit.astype(np.float64), rowvar=False) + 1e-9 * np.eye(DIM))
    for start in range(0, count, chunk):
        block = rng.standard_normal((min(chunk, count - start), DIM))
        if kind == "realistic":
            block = mean + block @ factor.T
        yield (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float32)


def gallery_of(size: int, enrolled: np.ndarray, fit: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Ids 0..len(enrolled)-1 are the enrolled photos (a probe's mate is its id); the rest are distractors."""
    gallery = np.empty((size, DIM), np.float32)
    gallery[:len(enrolled)] = enrolled
    start = len(enrolled)
    for block in distractors(size - len(enrolled), fit, kind, rng):
        gallery[start:start + len(block)] = block
        start += len(block)
    return gallery


def exact_top1(gallery: np.ndarray, queries: np.ndarray) -> np.ndarray:
    index = faiss.IndexFlatIP(DIM)
    best = np.full(len(queries), -np.inf, np.float32)
    ids = np.full(len(queries), -1, np.int64)
    for start in range(0, len(gallery), 4 * CHUNK):
        index.reset()
        index.add(gallery[start:start + 4 * CHUNK])
        scores, found = index.search(queries, 1)
        better = scores[:, 0] > best
        best[better], ids[better] = scores[better, 0], found[better, 0] + start
    return ids


def build(spec: str, gallery: np.ndarray, rng: np.random.Generator) -> tuple[faiss.Index | None, float, float]:
    """The index the service builds for `spec`, its build seconds and MiB (None: too few faces to train it)."""
    start = time.perf_counter()
    sample = gallery[np.sort(rng.choice(len(gallery), min(TRAIN_MAX, len(gallery)), replace=False))]
    index, built = _new_index(spec, DIM, sample)
    if built != spec:
        print(f"  {spec}: skipped, the service would build {built} for this gallery (too few faces to train)")
        return None, 0.0, 0.0
    for begin in range(0, len(gallery), CHUNK):
        index.add_with_ids(gallery[begin:begin + CHUNK], np.arange(begin, min(begin + CHUNK, len(gallery))))
    seconds = time.perf_counter() - start
    with tempfile.NamedTemporaryFile(suffix=".faiss") as handle:  # on disk: serializing would copy it in memory
        faiss.write_index(index, handle.name)
        size = os.path.getsize(handle.name) / 2**20
    return index, seconds, size


def searched(index: faiss.Index, gallery: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int,
             nprobe: int | None) -> tuple[np.ndarray, float]:
    """Latencies (ms) and re-rank recall of one-at-a-time searches for `k` candidates."""
    params = faiss.SearchParametersIVF(nprobe=nprobe) if nprobe else None
    latencies, right = np.empty(len(queries)), 0
    for row, query in enumerate(queries):
        start = time.perf_counter()
        _, found = index.search(query[None], k, params=params)
        candidates = found[0][found[0] >= 0]
        exact = gallery[candidates].astype(np.float64) @ query.astype(np.float64)
        best = candidates[int(np.argmax(exact))] if len(candidates) else -1
        latencies[row] = (time.perf_counter() - start) * 1000
        right += int(best == truth[row])
    return latencies, right / len(queries)


def measure(spec: str, gallery: np.ndarray, probes: Probes, truth: dict[str, np.ndarray],
            args: argparse.Namespace, rng: np.random.Generator) -> list[Row]:
    index, build_s, memory = build(spec, gallery, rng)
    if index is None:
        return []
    faiss.omp_set_num_threads(1)
    ivf = faiss.try_extract_index_ivf(index) is not None
    base = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    refine = isinstance(base, faiss.IndexRefine)
    rows = []
    for nprobe in (args.nprobe if ivf else [None]):
        for factor in (args.k_factor if refine else [None]):
            if factor:
                base.k_factor = factor  # the first stage proposes k x factor, the refinement codes keep k
            setting = " ".join(part for part in (f"nprobe={nprobe}" if nprobe else "",
                                                 f"k_factor={factor}" if factor else "") if part)
            for k in args.candidates if spec != "Flat" else [1]:
                index.search(probes.genuine[:10], k)  # warm-up
                count = args.flat_queries if spec == "Flat" else len(probes.genuine)  # Flat: exact by definition
                lat_g, rec_g = searched(index, gallery, probes.genuine[:count], truth["genuine"], k, nprobe)
                lat_s, rec_s = searched(index, gallery, probes.strangers[:count], truth["stranger"], k, nprobe)
                latencies = np.concatenate([lat_g, lat_s])
                rows.append(Row(spec, setting, k, float(np.percentile(latencies, 50)),
                                float(np.percentile(latencies, 99)), rec_g, rec_s, memory, build_s))
                print(f"  {spec} {setting} k={k}: p50 {rows[-1].p50:.2f} ms, recall {rec_g:.4f} / {rec_s:.4f}",
                      flush=True)
    faiss.omp_set_num_threads(args.threads)
    del index
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--distractors", choices=("realistic", "uniform"), default="realistic")
    parser.add_argument("--indexes", default=None, help="';'-separated FAISS factory strings (default: the "
                        "service's choice at this size, PQ32x4fs, PQ32x4fs,Refine(SQ8), IVF4096,PQ32x4fs)")
    parser.add_argument("--candidates", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--k-factor", type=int, nargs="+", default=[REFINE_K_FACTOR], help="Refine indexes: "
                        "first-stage candidates per candidate kept (default: the service's)")
    parser.add_argument("--queries", type=int, default=1000, help="probes of each kind (at most LFW's)")
    parser.add_argument("--flat-queries", type=int, default=1000, help="probes of each kind Flat's latency is "
                        "timed on (its recall is 1 by definition; at 10M faces each takes a second)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="FAISS threads for builds")
    parser.add_argument("--service", action="store_true", help="also run the probes through facelens serve")
    parser.add_argument("--no-flat-index", action="store_true", help="no Flat index row (ground truth is still "
                        "exact, computed in chunks): at 20M faces a Flat index would double the memory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default=None, help="LFW-like folder with pairs.txt (default: LFW)")
    args = parser.parse_args()
    root = dataset_root(args.dataset)
    if root is None:
        return 0
    rng = np.random.default_rng(args.seed)
    faiss.omp_set_num_threads(args.threads)
    embedded = embed_with_pipeline(root)
    enrolled, fit, probes = split(embedded, args.queries, rng)
    started = time.perf_counter()
    gallery = gallery_of(args.faces, enrolled, fit, args.distractors, rng)
    truth = {"genuine": exact_top1(gallery, probes.genuine), "stranger": exact_top1(gallery, probes.strangers)}
    probes.truth_genuine, probes.truth_stranger = truth["genuine"], truth["stranger"]
    default = VectorConfig().factory_for(args.faces)
    specs = args.indexes.split(";") if args.indexes else list(dict.fromkeys(
        ["Flat", default, "PQ32x4fs", "PQ32x4fs,Refine(SQ8)", "IVF4096,PQ32x4fs"]))
    if "Flat" not in specs and not args.no_flat_index:
        specs.insert(0, "Flat")
    if args.no_flat_index:
        specs = [spec for spec in specs if spec != "Flat"]
    print(f"{args.faces:,} faces ({len(enrolled):,} enrolled LFW people + {args.distractors} distractors fitted on "
          f"{len(fit):,} photos), {len(probes.genuine):,} genuine and {len(probes.strangers):,} stranger probes; "
          f"gallery and ground truth in {time.perf_counter() - started:.0f} s; {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.2f}; default index at this size: {default}")
    mate_top1 = float(np.mean(truth["genuine"] == probes.mates))
    print(f"exact search puts the genuine probe's own enrolled photo first for {mate_top1:.1%} of probes")
    rows = [row for spec in specs for row in measure(spec, gallery, probes, truth, args, rng)]
    flat = rows[0]  # the first row is the ratios' baseline: Flat, unless --no-flat-index
    print(f"\n| index | setting | candidates re-ranked | p50 ms | p99 ms | p50 vs {flat.spec} | recall genuine "
          "| recall stranger | index MiB | build s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row.spec} | {row.setting} | {row.candidates} | {row.p50:.2f} | {row.p99:.2f} | "
              f"{row.p50 / flat.p50:.3f} | {row.recall_genuine:.4f} | {row.recall_stranger:.4f} | "
              f"{row.memory_mb:,.0f} | {row.build_s:.0f} |")
    if args.service:
        from search_service import end_to_end  # benchmarks/search_service.py

        end_to_end(gallery, probes, default, rows)
    print()
    for row in rows:
        spec = row.spec + (f"/{row.setting}" if row.setting else "") + (f"/k{row.candidates}" if row.spec != "Flat"
                                                                          else "")
        print(f"index={spec} faces={args.faces} p50_ms={row.p50:.2f} p99_ms={row.p99:.2f} "
              f"recall_genuine={row.recall_genuine:.4f} recall_stranger={row.recall_stranger:.4f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
