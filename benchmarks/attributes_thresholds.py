"""Measure the distributions behind FaceLens' geometric attribute thresholds on LFW.

Prints, for a seeded random sample of LFW images (one face each: the detection nearest the centre):
eye aspect ratio and mouth opening (quantiles, histogram, counts either side of the thresholds in
`facelens.geometry`, the most extreme files to inspect by eye), head pose, the Laplacian variance behind
Sharpness, age-range widths for several probability masses, the YuNet -> dlib-HOG box relation used by
`facelens.models.landmarks`, and per-face timings of landmarks68 and age/gender.

    .venv/bin/python benchmarks/attributes_thresholds.py [--lfw DIR] [--count 400] [--seed 0]

LFW (research use) is read in place, never copied.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import cv2
import dlib
import numpy as np

from facelens import geometry, quality
from facelens.models.attributes import AgeGenderEstimator, age_range
from facelens.models.detector import YuNetDetector
from facelens.models.landmarks import DlibLandmarker

LFW = Path("/work/shared/data/lfw/lfw-deepfunneled")
QUANTILES = (0, 1, 2, 5, 10, 25, 50, 75, 90, 95, 98, 99, 100)


def describe(name: str, values: np.ndarray, threshold: float | None = None) -> None:
    """Quantiles, a text histogram and the counts either side of `threshold`."""
    q = np.percentile(values, QUANTILES)
    print(f"\n{name}: n={len(values)} mean={values.mean():.4f} std={values.std():.4f}")
    print("  " + "  ".join(f"p{p}={v:.3f}" for p, v in zip(QUANTILES, q, strict=True)))
    counts, edges = np.histogram(values, bins=16)
    for count, left, right in zip(counts, edges[:-1], edges[1:], strict=True):
        print(f"  [{left:8.3f}, {right:8.3f}) {count:4d} {'#' * int(60 * count / max(counts.max(), 1))}")
    if threshold is not None:
        below = int((values < threshold).sum())
        print(f"  threshold {threshold}: below {below}, at or above {len(values) - below}")


def sample(lfw: Path, count: int, seed: int) -> list[Path]:
    files = sorted(lfw.glob("*/*.jpg"))
    random.Random(seed).shuffle(files)
    return files[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extremes", type=int, default=8, help="files to list at each tail")
    args = parser.parse_args()

    detector, landmarker = YuNetDetector(), DlibLandmarker()
    estimator = AgeGenderEstimator(landmarker)
    hog = dlib.get_frontal_face_detector()
    rows: list[dict[str, float | str]] = []
    box_rows: list[tuple[float, float, float]] = []
    age_probs: list[np.ndarray] = []
    t_landmarks = t_attributes = 0.0
    for path in sample(args.lfw, args.count, args.seed):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        height, width = image.shape[:2]
        faces = detector.detect([image])[0]
        if not faces:
            continue
        centre = np.array([width / 2, height / 2])
        face = min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))
        start = time.perf_counter()
        points = landmarker.landmarks68(image, face.box)
        t_landmarks += time.perf_counter() - start
        start = time.perf_counter()
        estimator.predict(image, [face.box])
        t_attributes += time.perf_counter() - start
        chips = landmarker.face_chips(image, face.box, (estimator.age_size, estimator.gender_size))
        age_probs.append(estimator.probabilities([chips[0]], [chips[1]])[0][0])
        roll, yaw, pitch = geometry.head_pose(points, width, height)
        rows.append({
            "file": f"{path.parent.name}/{path.name}", "ear": geometry.eye_aspect_ratio(points),
            "mouth": geometry.mouth_opening(points), "roll": roll, "yaw": yaw, "pitch": pitch,
            "laplacian": quality.laplacian_variance(quality.luma_crop(image, face.box)),
        })
        x1, y1, x2, y2 = face.box
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        hits = [r for r in hog(image, 0) if r.left() < cx < r.right() and r.top() < cy < r.bottom()]
        if hits:
            r = hits[0]
            box_rows.append((((r.left() + r.right()) / 2 - cx) / w, ((r.top() + r.bottom()) / 2 - cy) / h,
                             (r.right() - r.left()) / np.sqrt(w * h)))

    n = len(rows)
    print(f"{n} faces from {args.count} LFW images (seed {args.seed})")
    for key, threshold, reverse in (("ear", geometry.EYE_THRESHOLD, False),
                                    ("mouth", geometry.MOUTH_THRESHOLD, True)):
        values = np.array([float(r[key]) for r in rows])
        describe(key, values, threshold)
        order = np.argsort(values)
        tail = order[::-1] if reverse else order
        label = "highest" if reverse else "lowest"
        print(f"  {label} {args.extremes}: " + ", ".join(
            f"{rows[i]['file']}={values[i]:.3f}" for i in tail[: args.extremes]))
    for key in ("roll", "yaw", "pitch", "laplacian"):
        describe(key, np.array([float(r[key]) for r in rows]))
    ages = np.asarray(estimator.ages)
    print("\nage range width (High - Low) by central probability mass:")
    for mass in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        widths = np.array([np.subtract(*age_range(p, ages, mass)[::-1]) for p in age_probs])
        print(f"  mass {mass:.1f}: median {np.median(widths):.1f}  p10 {np.percentile(widths, 10):.1f}"
              f"  p90 {np.percentile(widths, 90):.1f}")
    if box_rows:
        b = np.array(box_rows)
        print(f"\nYuNet -> dlib HOG box on {len(b)} faces: centre shift x/w median {np.median(b[:, 0]):.3f}, "
              f"y/h median {np.median(b[:, 1]):.3f}; side/sqrt(w*h) median {np.median(b[:, 2]):.3f}")
    print(f"\nper face: landmarks68 {1000 * t_landmarks / n:.2f} ms, "
          f"age+gender (5-point shape, 2 chips, 2 ONNX runs) {1000 * t_attributes / n:.2f} ms")


if __name__ == "__main__":
    main()
