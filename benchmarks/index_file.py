"""What saving and loading a collection's vector index file costs in time and memory: the streamed
`facelens.store.indexfile` against the whole-file version it replaced (kept below as the baseline), same file,
same run.

    .venv/bin/python benchmarks/index_file.py [--faces 20000000] [--factory auto] [--rounds 2]

Builds the index `auto` picks for --faces (or --factory) over random unit vectors (a file's size and the work to
save or load it do not depend on where the vectors lie; `search.py` measures recall on realistic ones), writes it
once, frees it, then measures each way in a fresh process, alternating ways each round:
- save: the child loads the file (streamed), resets its peak RSS (`/proc/self/clear_refs`), saves to a second file;
- load cold: the file's pages are first dropped from the page cache (`posix_fadvise(DONTNEED)`), as after a reboot;
- load warm: straight after, from the page cache.
Memory is VmHWM (peak resident) minus VmRSS before the step, in MiB; the index itself is in "resident after".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from _common import load_average, memory_mib

from facelens.store import indexfile
from facelens.store.index_choice import VectorConfig, _new_index

WAYS = ("whole", "stream")


def whole_write(path: Path, index: faiss.Index, header: dict) -> None:
    """indexfile.write before streaming: serialize to an array, copy it to bytes, write header + payload."""
    payload = faiss.serialize_index(index).tobytes()
    text = json.dumps({**header, "dim": index.d, "count": index.ntotal,
                       "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    with open(path, "wb") as handle:
        handle.write(indexfile.MAGIC + struct.pack("<I", len(text)) + text + payload)
        handle.flush()
        os.fsync(handle.fileno())


def whole_read(path: Path) -> tuple[faiss.Index, dict]:
    """indexfile.read before streaming: read the file whole, slice the payload, hash it, deserialize it."""
    data = path.read_bytes()
    (size,) = struct.unpack_from("<I", data, len(indexfile.MAGIC))
    start = len(indexfile.MAGIC) + 4
    header = json.loads(data[start:start + size])
    payload = data[start + size:]
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise ValueError("checksum mismatch")
    return faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8)), header


def evict(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def child(step: str, way: str, path: Path) -> dict[str, float]:
    """One step in this (fresh) process: its seconds, peak MiB over the resident before it, resident after."""
    read = indexfile.read if way == "stream" else whole_read
    if step == "save":
        index, header = indexfile.read(path)
        target = path.with_name(path.name + ".saved")
        write = indexfile.write if way == "stream" else whole_write
        reset_peak()
        before = memory_mib()[0]
        started = time.perf_counter()
        write(target, index, {key: header[key] for key in ("watermark", "factory", "kind")})
        seconds = time.perf_counter() - started
        target.unlink()
    else:
        if step == "cold":
            evict(path)
        reset_peak()
        before = memory_mib()[0]
        started = time.perf_counter()
        index, _ = read(path)
        seconds = time.perf_counter() - started
    resident, peak = memory_mib()
    return {"seconds": seconds, "peak": peak - before, "resident": resident}


def build(path: Path, faces: int, factory: str, train: int, seed: int) -> float:
    rng = np.random.default_rng(seed)

    def unit(count: int) -> np.ndarray:
        vectors = rng.standard_normal((count, 128), dtype=np.float32)
        faiss.normalize_L2(vectors)
        return vectors

    started = time.perf_counter()
    index, built = _new_index(factory, 128, unit(min(train, faces)))
    for start in range(0, faces, 1_000_000):
        count = min(1_000_000, faces - start)
        index.add_with_ids(unit(count), np.arange(start, start + count, dtype=np.int64))
    seconds = time.perf_counter() - started
    indexfile.write(path, index, {"watermark": faces, "factory": built, "kind": built})
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=20_000_000)
    parser.add_argument("--factory", default="auto", help="a FAISS factory string, or auto: what auto picks")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--train", type=int, default=VectorConfig().train_sample)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", help="where to write the file (default: a temporary directory)")
    parser.add_argument("--child", nargs=3, metavar=("STEP", "WAY", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], Path(args.child[2]))))
        return
    factory = VectorConfig().factory_for(args.faces) if args.factory == "auto" else args.factory
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        path = Path(directory) / "1.faiss"
        print(f"building {factory} over {args.faces:,} random unit vectors (load average {load_average()})")
        seconds = build(path, args.faces, factory, args.train, args.seed)
        mib = path.stat().st_size / 2**20
        print(f"built in {seconds:.0f} s; file {mib:,.0f} MiB")
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for round_ in range(args.rounds):
            for way in WAYS if round_ % 2 == 0 else WAYS[::-1]:
                for step in ("save", "cold", "warm"):
                    out = subprocess.run([sys.executable, __file__, "--child", step, way, str(path)],
                                         check=True, capture_output=True, text=True).stdout
                    results.setdefault((way, step), []).append(json.loads(out.splitlines()[-1]))
            print(f"round {round_ + 1} done (load average {load_average()})")
    print(f"\n{factory}, {args.faces:,} faces, file {mib:,.0f} MiB, median of {args.rounds} rounds\n")
    print("| way | save s | save peak MiB | load cold s | load warm s | load peak MiB | resident after MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    lines = []
    for way in WAYS:
        m = {step: {key: statistics.median(r[key] for r in results[(way, step)]) for key in ("seconds", "peak",
             "resident")} for step in ("save", "cold", "warm")}
        load_peak = max(m["cold"]["peak"], m["warm"]["peak"])
        print(f"| {way} | {m['save']['seconds']:.1f} | {m['save']['peak']:,.0f} | {m['cold']['seconds']:.1f} | "
              f"{m['warm']['seconds']:.1f} | {load_peak:,.0f} | {m['warm']['resident']:,.0f} |")
        lines.append(f"way={way} faces={args.faces} file_mib={mib:.0f} save_s={m['save']['seconds']:.2f} "
                     f"save_peak_mib={m['save']['peak']:.0f} load_cold_s={m['cold']['seconds']:.2f} "
                     f"load_warm_s={m['warm']['seconds']:.2f} load_peak_mib={load_peak:.0f}")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
