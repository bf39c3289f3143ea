"""DetectModerationLabels: false positives on LFW's portraits, latency on a 1280x720 photo, load time and memory.

    .venv/bin/python benchmarks/moderation.py [--dataset DIR] [--limit N] [--threads N]

Everything goes through the service's own path (`ModerationService`: `facelens.imaging.decode_image`, the
reference preprocessing, the open_nsfw network). LFW (13,233 news photos of 5,749 people; none is explicit) is read
in place from `lfw-deepfunneled` under FACELENS_LFW (default ../shared/data/lfw) or --dataset; the false-positive
rate is the share of images that get a label ("Explicit") at MinConfidence 50 (Rekognition's default), with its
95% Wilson interval, and at other MinConfidence values. Prints a SKIP line when LFW is absent (the latency and load
figures are still measured). Takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facelens.context import RequestContext
from facelens.eval.dataset import lfw_root
from facelens.imaging import decode_image
from facelens.models.registry import ModelConfig
from facelens.recognition.moderation import BATCH, ModerationService

LEVELS = (10.0, 20.0, 50.0, 80.0, 90.0)  # MinConfidence values the false-positive rate is given at


def rss_mib() -> float:
    """Resident memory of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def photo_1280x720() -> bytes:
    """scikit-image's coffee photo resized to 1280x720, as a quality-90 JPEG."""
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.coffee()).resize((1280, 720), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def latency(threads: int, runs: int = 200) -> None:
    """First call (load + one image) and per-call latency of DetectModerationLabels in process."""
    jpeg = photo_1280x720()
    before = rss_mib()
    service = ModerationService(ModelConfig(threads=threads))
    started = time.perf_counter()
    service.detect_moderation_labels(image=jpeg, min_confidence=None, project_version=None, human_loop=False,
                                     context=RequestContext())
    first = time.perf_counter() - started
    after = rss_mib()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        service.detect_moderation_labels(image=jpeg, min_confidence=None, project_version=None, human_loop=False,
                                         context=RequestContext())
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    print(f"| {threads} | {first * 1000:.0f} ms | {np.percentile(ms, 50):.1f} ms | {np.percentile(ms, 99):.1f} ms | "
          f"{after - before:+.0f} MiB (process {after:.0f} MiB) |")


def false_positives(folder: Path, limit: int | None, threads: int) -> None:
    paths = sorted(p for p in folder.rglob("*.jpg"))[:limit]
    service = ModerationService(ModelConfig(threads=threads))
    scores = np.empty(len(paths))
    started = time.perf_counter()
    for start in range(0, len(paths), BATCH):
        chunk = paths[start:start + BATCH]
        scores[start:start + len(chunk)] = service.classifier.scores(
            [decode_image(path.read_bytes()).pixels for path in chunk])
    elapsed = time.perf_counter() - started
    confidence = 100 * scores
    n = len(paths)
    print(f"\nLFW ({folder}): {n:,} images in {elapsed:.0f} s ({n / elapsed:.1f} img/s, {threads} threads, batches "
          f"of {BATCH}); model {service.classifier.version}")
    print("\n| MinConfidence | images labelled Explicit | false-positive rate | 95% interval |\n|---:|---:|---:|---|")
    for level in LEVELS:
        k = int((confidence >= level).sum())
        low, high = wilson(k, n)
        print(f"| {level:g} | {k:,} | {100 * k / n:.3f}% | {100 * low:.3f}% - {100 * high:.3f}% |")
    print(f"\nConfidence over LFW: median {np.median(confidence):.2f}, p99 {np.percentile(confidence, 99):.2f}, "
          f"max {confidence.max():.2f}")
    print("Highest-scoring images:")
    for i in np.argsort(-confidence)[:10]:
        print(f"  {confidence[i]:6.2f}  {paths[i].relative_to(folder)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="LFW folder (holding lfw-deepfunneled; default: LFW)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (default: all)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads for the LFW pass (0: all)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on "
          f"{os.cpu_count()} cores")
    print("\nDetectModerationLabels on a 1280x720 JPEG (decode + preprocess + network), in process:")
    print("| threads | first call (load + 1 image) | p50 | p99 | RSS after loading |\n|---:|---:|---:|---:|---|")
    latency(1)  # what `facelens serve` runs with (FACELENS_THREADS=1)
    latency(2)
    root = Path(args.dataset or lfw_root())
    folder = root / "lfw-deepfunneled" if (root / "lfw-deepfunneled").is_dir() else root
    if not any(folder.glob("*/*.jpg")):
        print(f"\nSKIP: LFW not found at {root} (set FACELENS_LFW or pass --dataset); no false-positive rate")
        return 0
    false_positives(folder, args.limit, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
