"""DetectText: word recall/precision on rendered text, word-box IoU, latency on a 1280x720 image, load time, RSS.

    PYTHONPATH=src python benchmarks/text.py [--images 60] [--runs 30] [--det-limit max:960] [--out FILE]

Accuracy: --images 1280x720 PNGs, each with 3-5 lines of 2-6 words drawn from a fixed vocabulary (lower, Title and
UPPER case words, numbers, a few with punctuation), one font of matplotlib's bundled DejaVu family per image
(Sans, Sans Bold, Sans Oblique, Serif, Sans Mono), one size per image (16, 24, 36, 52 px), the whole text layer
rotated by -6, -3, 0, 3 or 6 degrees about the image centre; black or dark text on white or a light tint (seeded,
so every run draws the same images). Each image goes through what the adapter runs
(`TextService.detect_text` on the PNG bytes, then `wire_text.text_detections`), and its WORDs are matched to the
drawn words as multisets of exact strings: recall = matched / drawn, precision = matched / returned. Lines: the
share of drawn lines returned as one LINE with exactly their text. Word boxes (rotation 0 only, where the drawn
box is axis-aligned): the IoU of each matched WORD's BoundingBox with the box Pillow drew the word in
(`ImageDraw.textbbox`), median and 10th percentile.

Speed: one 1280x720 image with 9 lines of words at 28 px: the first call (engine made, sessions opened, first
image read) and then --runs timed calls, p50/p99; this process's VmRSS after the first call. The reader runs
with the threads FACELENS_THREADS gives (`ServerSettings.from_env().models`, onnxruntime's default: every core
when 0). The machine's load average is printed with the figures: the cores may be shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facelens.api.wire_text import text_detections
from facelens.config import ServerSettings
from facelens.context import RequestContext
from facelens.recognition.text import TextReader, TextService

FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
SIZES = (16, 24, 36, 52)
ANGLES = (-6, -3, 0, 3, 6)
SIZE = (1280, 720)
_WORDS = (
    "the quick brown fox jumps over lazy dog face lens reads text from images every line word service model "
    "coffee rocket camera street station north south market open closed exit entrance parking garden river "
    "Monday Friday London Paris Berlin Tokyo Amazon Python Rekognition Boston Harbor Ticket Platform Gate "
    "STOP EXIT SALE OPEN HOTEL TAXI POLICE 2026 1280 42 7 365 3.14 $19.99 10:30 A4 B-12 hello, world! (yes) "
    "e-mail x2"
)
VOCABULARY = tuple(_WORDS.split(" "))


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def render(rng: random.Random, lines: int | None = None, size: int | None = None, angle: int | None = None,
           face: str | None = None) -> tuple[bytes, list[str], list[tuple[str, tuple[int, int, int, int]]], dict]:
    """(PNG bytes, drawn lines, (word, box) at rotation 0, {"angle", "size", "font"})."""
    face = face or rng.choice(FACES)
    size = size or rng.choice(SIZES)
    angle = rng.choice(ANGLES) if angle is None else angle
    font = ImageFont.truetype(str(FONTS / face), size)
    background = rng.choice([(255, 255, 255), (250, 245, 230), (235, 242, 250)])
    ink = rng.choice([(0, 0, 0), (30, 30, 90), (70, 20, 20)])
    layer = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    drawn, boxes = [], []
    y = rng.randint(40, 80)
    for _ in range(lines or rng.randint(3, 5)):
        words = [rng.choice(VOCABULARY) for _ in range(rng.randint(2, 6))]
        x = rng.randint(60, 140)
        line_words = []
        for word in words:
            box = draw.textbbox((x, y), word, font=font)
            if box[2] > SIZE[0] - 60:
                break
            draw.text((x, y), word, font=font, fill=(*ink, 255))
            boxes.append((word, box))
            line_words.append(word)
            x = box[2] + int(size * rng.uniform(0.35, 0.6))  # about one space
        if line_words:
            drawn.append(" ".join(line_words))
        y += int(size * rng.uniform(1.8, 2.6))
        if y > SIZE[1] - 2 * size - 60:
            break
    image = Image.new("RGB", SIZE, background)
    image.paste(layer.rotate(angle, resample=Image.Resampling.BICUBIC), (0, 0), layer.rotate(angle))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), drawn, boxes, {"angle": angle, "size": size, "font": face.removesuffix(".ttf")}


def iou(a: dict, box: tuple[int, int, int, int]) -> float:
    w, h = SIZE
    ax0, ay0, ax1, ay1 = a["Left"] * w, a["Top"] * h, (a["Left"] + a["Width"]) * w, (a["Top"] + a["Height"]) * h
    bx0, by0, bx1, by1 = box
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def accuracy(service: TextService, count: int, seed: int) -> dict:
    rng = random.Random(seed)
    totals = Counter()
    by_group: dict[str, Counter] = {}
    ious: list[float] = []
    misread: list[tuple[list[str], list[str]]] = []
    for _ in range(count):
        data, drawn, boxes, drawing = render(rng)
        angle = drawing["angle"]
        shape = text_detections(service.detect_text(image=data, filters=None, context=RequestContext()))
        words = [d for d in shape["TextDetections"] if d["Type"] == "WORD"]
        lines = [d["DetectedText"] for d in shape["TextDetections"] if d["Type"] == "LINE"]
        truth = Counter(word for line in drawn for word in line.split())
        found = Counter(w["DetectedText"] for w in words)
        matched = sum((truth & found).values())
        lines_ok = sum((Counter(drawn) & Counter(lines)).values())
        if truth != found and len(misread) < 12:
            misread.append((sorted((truth - found).elements()), sorted((found - truth).elements())))
        for key in ("all", f"angle {angle:+d}", f"size {drawing['size']:02d}px", f"font {drawing['font']}"):
            group = by_group.setdefault(key, Counter())
            group.update(drawn=sum(truth.values()), returned=sum(found.values()), matched=matched,
                         lines=len(drawn), lines_ok=lines_ok)
        if angle == 0:  # the drawn box of each word is axis-aligned: compare
            pool = {}
            for word, box in boxes:
                pool.setdefault(word, []).append(box)
            for w in words:
                candidates = pool.get(w["DetectedText"])
                if candidates:
                    best = max(candidates, key=lambda b: iou(w["Geometry"]["BoundingBox"], b))
                    ious.append(iou(w["Geometry"]["BoundingBox"], best))
                    candidates.remove(best)
        totals.update(images=1)
    report = {key: {"word_recall": g["matched"] / g["drawn"], "word_precision": g["matched"] / max(g["returned"], 1),
                    "line_exact": g["lines_ok"] / g["lines"], "words_drawn": g["drawn"]}
              for key, g in sorted(by_group.items())}
    report["misread (drawn, returned)"] = misread
    report["word_box_iou_rotation0"] = {"median": statistics.median(ious) if ious else None,
                                        "p10": float(np.percentile(ious, 10)) if ious else None, "words": len(ious)}
    return report


def speed(det_limit: tuple[str, int], runs: int) -> dict:
    models = ServerSettings.from_env().models
    before = rss_bytes()
    data = render(random.Random(7), lines=9, size=28, angle=0, face="DejaVuSans.ttf")[0]
    started = time.perf_counter()
    service = TextService(TextReader(models, det_limit))
    shape = text_detections(service.detect_text(image=data, filters=None, context=RequestContext()))
    first = time.perf_counter() - started
    loaded = rss_bytes()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        service.detect_text(image=data, filters=None, context=RequestContext())
        times.append(time.perf_counter() - t)
    return {"first_call_s": first, "p50_s": float(np.percentile(times, 50)), "p99_s": float(np.percentile(times, 99)),
            "runs": runs, "rss_after_load_mib": loaded / 2**20, "rss_growth_mib": (loaded - before) / 2**20,
            "words_in_timed_image": sum(d["Type"] == "WORD" for d in shape["TextDetections"]),
            "threads": models.threads or "onnxruntime default", "service": service}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--det-limit", default="max:960", help="the detector's limit_type:limit_side_len")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    kind, side = args.det_limit.split(":")
    timing = speed((kind, int(side)), args.runs)  # first: the load time and RSS of a fresh process
    service = timing.pop("service")
    report = {"det_limit": args.det_limit, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
              "speed_1280x720": timing, "accuracy": accuracy(service, args.images, args.seed)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
