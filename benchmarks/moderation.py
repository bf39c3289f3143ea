"""DetectModerationLabels: false positives on LFW's portraits, latency on a 1280x720 photo, load time and memory.

    .venv/bin/python benchmarks/moderation.py [--dataset DIR] [--limit N] [--threads N]

Everything goes through the service's own path (`ModerationService`: `facelens.imaging.decode_image`, each model's
reference preprocessing, open_nsfw and nsfwjs' MobileNetV2Mid). LFW (13,233 news photos of 5,749 people; none is
explicit, none is a drawing) is read in place from `lfw-deepfunneled` under FACELENS_LFW (default
../shared/data/lfw) or --dataset. The false-positive rate of a label is the share of images that get it at a
MinConfidence (50 is Rekognition's default), with its 95% Wilson interval; Explicit is given for each model alone,
for their mean (what the service returns) and their maximum, so the combination can be judged on the same images.
The latency table has open_nsfw alone (the service before nsfwjs was added) as the baseline of the same run. Prints
a SKIP line when LFW is absent (the latency and load figures are still measured). About 15 minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import memory_mib
from PIL import Image

from facelens.config import models_from_env
from facelens.context import RequestContext
from facelens.eval.dataset import lfw_root
from facelens.imaging import decode_image
from facelens.models.registry import ModelConfig
from facelens.recognition import moderation
from facelens.recognition.moderation import BATCH, ModerationService

LEVELS = (10.0, 20.0, 50.0, 80.0, 90.0)  # MinConfidence values the false-positive rate is given at


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


def timed(call, runs: int) -> np.ndarray:
    """Milliseconds of `runs` calls of `call`."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return np.array(times) * 1000


def latency(threads: int, cache: Path, runs: int = 200) -> None:
    """First call (conversion or cache read + load + one image) and per-call latency in process: open_nsfw alone
    (the baseline), nsfwjs alone, and DetectModerationLabels (decode + both)."""
    jpeg = photo_1280x720()
    pixels = [decode_image(jpeg).pixels]
    before = memory_mib()[0]
    service = ModerationService(ModelConfig(threads=threads, cache_dir=cache, npm_dir=models_from_env().npm_dir))
    started = time.perf_counter()
    service.detect_moderation_labels(image=jpeg, min_confidence=None, project_version=None, human_loop=False,
                                     context=RequestContext())
    first = time.perf_counter() - started
    after = memory_mib()[0]
    base = timed(lambda: service.classifier.scores(pixels), runs)
    js = timed(lambda: service.categoriser.probabilities(pixels), runs)
    both = timed(lambda: service.detect_moderation_labels(image=jpeg, min_confidence=None, project_version=None,
                                                          human_loop=False, context=RequestContext()), runs)
    p50 = np.percentile(base, 50)
    for name, ms in (("open_nsfw alone (baseline)", base), ("nsfwjs MobileNetV2Mid alone", js),
                     ("DetectModerationLabels (decode + both)", both)):
        print(f"| {threads} | {name} | {np.percentile(ms, 50):.1f} ms | {np.percentile(ms, 99):.1f} ms | "
              f"{np.percentile(ms, 50) / p50:.2f}x |")
    print(f"| {threads} | first call: {first * 1000:.0f} ms; RSS {after - before:+.0f} MiB (process {after:.0f} MiB) "
          "| | | |")


def rate_rows(name: str, confidence: np.ndarray) -> None:
    n = len(confidence)
    for level in LEVELS:
        k = int((confidence >= level).sum())
        low, high = wilson(k, n)
        print(f"| {name} | {level:g} | {k:,} | {100 * k / n:.3f}% | {100 * low:.3f}% - {100 * high:.3f}% |")


def false_positives(folder: Path, limit: int | None, threads: int, cache: Path) -> None:
    paths = sorted(p for p in folder.rglob("*.jpg"))[:limit]
    service = ModerationService(ModelConfig(threads=threads, cache_dir=cache, npm_dir=models_from_env().npm_dir))
    scores = np.empty(len(paths))
    classes = np.empty((len(paths), 5))
    started = time.perf_counter()
    for start in range(0, len(paths), BATCH):
        chunk = paths[start:start + BATCH]
        pixels = [decode_image(path.read_bytes()).pixels for path in chunk]
        scores[start:start + len(chunk)] = service.classifier.scores(pixels)
        classes[start:start + len(chunk)] = service.categoriser.probabilities(pixels)
    elapsed = time.perf_counter() - started
    n = len(paths)
    print(f"\nLFW ({folder}): {n:,} images in {elapsed:.0f} s ({n / elapsed:.1f} img/s, {threads} threads, batches "
          f"of {BATCH}); models {service.version}")
    js_explicit = 100 * np.clip(classes[:, moderation.PORN] + classes[:, moderation.HENTAI], 0, 1)
    rules = {
        "Explicit: open_nsfw alone": 100 * scores,
        "Explicit: nsfwjs Porn+Hentai alone": js_explicit,
        "**Explicit: mean of the two (returned)**": np.array([moderation.explicit(s, c) for s, c in zip(
            scores, classes, strict=True)]),
        "Explicit: max of the two": np.maximum(100 * scores, js_explicit),
        "**Suggestive: nsfwjs Sexy (returned)**": 100 * classes[:, moderation.SEXY],
        "**ContentType Illustrated: Drawing+Hentai (returned)**": 100 * np.clip(
            classes[:, moderation.DRAWING] + classes[:, moderation.HENTAI], 0, 1),
    }
    print("\n| what | MinConfidence | images | rate | 95% interval (Wilson) |\n|---|---:|---:|---:|---|")
    for name, confidence in rules.items():
        rate_rows(name, confidence)
    any_label = np.maximum(rules["**Explicit: mean of the two (returned)**"],
                           rules["**Suggestive: nsfwjs Sexy (returned)**"])
    rate_rows("any moderation label (Explicit or Suggestive)", any_label)
    for name, confidence in rules.items():
        print(f"\n{name.strip('*')}: median {np.median(confidence):.2f}, p99 {np.percentile(confidence, 99):.2f}, "
              f"max {confidence.max():.2f}; highest:")
        for i in np.argsort(-confidence)[:6]:
            print(f"  {confidence[i]:6.2f}  {paths[i].relative_to(folder)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="LFW folder (holding lfw-deepfunneled; default: LFW)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (default: all)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads for the LFW pass (0: all)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on "
          f"{os.cpu_count()} cores")
    cache = Path(tempfile.mkdtemp(prefix="facelens-moderation-"))  # the first call converts nsfwjs into it
    print("\nOn a 1280x720 JPEG, in process (the first row of each thread count: a fresh models cache for 1 "
          "thread, so its first call includes converting nsfwjs; the cache kept for 2):")
    print("| threads | what | p50 | p99 | p50 / baseline |\n|---:|---|---:|---:|---:|")
    latency(1, cache)  # what `facelens serve` runs with (FACELENS_THREADS=1)
    latency(2, cache)
    root = Path(args.dataset or lfw_root())
    folder = root / "lfw-deepfunneled" if (root / "lfw-deepfunneled").is_dir() else root
    if not any(folder.glob("*/*.jpg")):
        print(f"\nSKIP: LFW not found at {root} (set FACELENS_LFW or pass --dataset); no false-positive rate")
        return 0
    false_positives(folder, args.limit, args.threads, cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
