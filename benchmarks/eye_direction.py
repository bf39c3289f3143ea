"""EyeDirection (MediaPipe Iris on dlib's eye corners): what can be checked without gaze ground truth.

    .venv/bin/python benchmarks/eye_direction.py [--dataset DIR] [--images N] [--fit-dy0]

No data set with gaze labels installs from a registry, so these are consistency checks on LFW (read in place from
FACELENS_LFW or --dataset; SKIP line when absent), one face per image (the largest), images drawn with a fixed
seed:

1. Orientation: the model's two eye-corner points against dlib's, with each eye given as is or mirrored (the model
   was trained on one orientation; the service uses the better one).
2. Looking at the camera: news photos are mostly taken of people looking at or near the camera, so the eyes
   should turn against the head: eye Yaw close to -(head Yaw), i.e. a slope near -1 of eye Yaw on head Yaw, and
   eye Yaw near 0 for frontal heads. The people whose names start with A-L are the fit half (only DY0, the
   iris centre's resting offset across the corner axis, is fitted there, and only with --fit-dy0); M-Z are
   reported.
3. Mirror: the mirrored image must give the opposite Yaw and the same Pitch.
4. Roll: the image rotated by +-15 degrees must give the same Yaw and Pitch (the method works in the eye's axis).
5. Rendered gaze: inside each eye's opening (the model's eyelid contour) the pixels are moved along the
   corner axis by +-15% of the eye's width, eyelids and corners left in place, as an eye turning by
   asin(0.15 / K) would move its iris; the slope of the measured iris offset on the rendered one should be 1.
6. Speed of the iris model per face (two eyes in one batch).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import cv2
import numpy as np

from facelens.config import models_from_env
from facelens.eval.dataset import lfw_root
from facelens.imaging import decode_image
from facelens.models import iris
from facelens.pipeline import FaceAnalyzer


def face_of(analyzer: FaceAnalyzer, image: np.ndarray):
    faces = analyzer.detect([image])[0]
    if not faces:
        return None
    face = max(faces, key=lambda f: f.area)
    analyzer.describe(image, [face], {"Pose"})
    return face


SHIFT = 0.15  # rendered iris shift, in eye widths


def render_shift(image: np.ndarray, eyes: list[np.ndarray], fraction: float) -> np.ndarray:
    """The image with each eye's opening (contour points 0-15) moved by `fraction` of its width along its axis."""
    out = image.copy()
    for points in eyes:
        a, b = points[iris.CORNERS[0]], points[iris.CORNERS[1]]
        axis = (b - a) if b[0] >= a[0] else (a - b)
        shift = axis * fraction
        moved = cv2.warpAffine(image, np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float64),
                               (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(points[:16] * 4).astype(np.int32)], 1, shift=2)
        out[mask > 0] = moved[mask > 0]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--images", type=int, default=1500, help="LFW images drawn (default 1500)")
    parser.add_argument("--fit-dy0", action="store_true", help="print DY0 fitted on the A-L half")
    args = parser.parse_args()
    root = Path(args.dataset or lfw_root())
    folder = root / "lfw-deepfunneled" if (root / "lfw-deepfunneled").is_dir() else root
    paths = sorted(folder.glob("*/*.jpg"))
    if not paths:
        print(f"SKIP: LFW not found at {root} (set FACELENS_LFW or pass --dataset)")
        return 0
    config = models_from_env()
    analyzer, model = FaceAnalyzer(config), iris.IrisModel(config)
    random.Random(15).shuffle(paths)
    paths = paths[:args.images]
    rows, corner, timings = [], {"as is": [], "mirrored": []}, []
    for path in paths:
        image = decode_image(path.read_bytes()).pixels
        face = face_of(analyzer, image)
        if face is None:
            continue
        started = time.perf_counter()
        eyes = model.eyes(image, [face.landmarks68])[0]
        timings.append(time.perf_counter() - started)
        for index, (first, second) in enumerate(iris.EYES):  # 1. the service's orientation, and the other one
            for name, mirror in (("as is", False), ("mirrored", True)):
                patch, back = iris.eye_crop(image, face.landmarks68[first], face.landmarks68[second], mirror)
                raw = model.session.run(None, {model.input: patch[None]})[0].reshape(76, 3)[:, :2]
                pts = np.c_[raw, np.ones(76)] @ back.T
                ends = sorted((pts[iris.CORNERS[0]], pts[iris.CORNERS[1]]), key=lambda p: p[0])
                dlib = sorted((face.landmarks68[first], face.landmarks68[second]), key=lambda p: p[0])
                width = float(np.linalg.norm(dlib[1] - dlib[0]))
                error = sum(float(np.linalg.norm(a - b)) for a, b in zip(ends, dlib, strict=True)) / 2
                corner[name].append((index, error / width))
        offsets = [iris.eye_offset(points) for points in eyes]
        yaw, pitch = iris.eye_direction(eyes)
        mirrored = face_of(analyzer, np.ascontiguousarray(image[:, ::-1]))
        flip = model.predict(np.ascontiguousarray(image[:, ::-1]), [mirrored.landmarks68])[0] if mirrored else None
        rolled = []
        for angle in (-15, 15):
            matrix = cv2.getRotationMatrix2D((image.shape[1] / 2, image.shape[0] / 2), angle, 1.0)
            turned = cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)
            other = face_of(analyzer, turned)
            rolled.append(model.predict(turned, [other.landmarks68])[0] if other else None)
        rendered = []
        for fraction in (-SHIFT, SHIFT):
            shifted = model.eyes(render_shift(image, eyes, fraction), [face.landmarks68])[0]
            rendered.append((fraction, float(np.mean([iris.eye_offset(p)[0] for p in shifted])),
                             iris.eye_direction(shifted)[0]))
        rows.append({"rendered": rendered, "dx": float(np.mean([o[0] for o in offsets])),
                     "fit": path.parent.name[0].upper() <= "L", "head_yaw": face.pose[1], "head_pitch": face.pose[2],
                     "dy": float(np.mean([o[1] for o in offsets])), "yaw": yaw, "pitch": pitch, "flip": flip,
                     "rolled": rolled})
    print(f"LFW {folder}: {len(rows)} faces of {len(paths)} images; K={iris.K}, DY0={iris.DY0}; {model.version}")
    print("\n1. corner points of the model vs dlib's (mean distance per corner / eye width):")
    print("| eye | as is | mirrored |\n|---|---:|---:|")
    for index, name in enumerate(("image-left (subject's right)", "image-right (subject's left)")):
        med = {k: np.median([e for i, e in v if i == index]) for k, v in corner.items()}
        print(f"| {name} | {med['as is']:.3f} | {med['mirrored']:.3f} |")
    fit = [r for r in rows if r["fit"]]
    test = [r for r in rows if not r["fit"]]
    if args.fit_dy0:
        print(f"\nDY0 fitted on the A-L half ({len(fit)} faces): median dy {np.median([r['dy'] for r in fit]):.4f}")
    head, eye = np.array([r["head_yaw"] for r in test]), np.array([r["yaw"] for r in test])
    slope, intercept = np.polyfit(head, eye, 1)
    frontal = np.abs(head) < 5
    print(f"\n2. M-Z half, {len(test)} faces: eye Yaw = {slope:.2f} x head Yaw + {intercept:.2f} deg "
          f"(correlation {np.corrcoef(head, eye)[0, 1]:.2f}; -1 expected for gaze at the camera)")
    for name, key in (("Yaw", "yaw"), ("Pitch", "pitch")):
        values = np.array([r[key] for r in test])
        print(f"   eye {name}, heads within 5 deg of frontal ({int(frontal.sum())}): "
              f"median {np.median(values[frontal]):+.1f}, "
              f"median |.| {np.median(np.abs(values[frontal])):.1f}, 90th pct |.| "
              f"{np.percentile(np.abs(values[frontal]), 90):.1f} deg")
    pitch_head = np.array([r["head_pitch"] for r in test])
    pitch_eye = np.array([r["pitch"] for r in test])
    print(f"   eye Pitch = {np.polyfit(pitch_head, pitch_eye, 1)[0]:.2f} x head Pitch + "
          f"{np.polyfit(pitch_head, pitch_eye, 1)[1]:.2f} deg")
    flips = [(r["yaw"], r["pitch"], *r["flip"]) for r in test if r["flip"] is not None]
    print(f"\n3. mirror ({len(flips)} faces): median |Yaw + Yaw mirrored| "
          f"{np.median([abs(a + c) for a, _, c, _ in flips]):.1f} deg, median |Pitch - Pitch mirrored| "
          f"{np.median([abs(b - d) for _, b, _, d in flips]):.1f} deg (0 for a consistent method); median |Yaw| "
          f"{np.median([abs(a) for a, _, _, _ in flips]):.1f}")
    rolls = [(r["yaw"], r["pitch"], *t) for r in test for t in r["rolled"] if t is not None]
    print(f"4. roll +-15 deg ({len(rolls)} images): median |dYaw| {np.median([abs(a - c) for a, _, c, _ in rolls]):.1f}"
          f", median |dPitch| {np.median([abs(b - d) for _, b, _, d in rolls]):.1f} deg")
    shifts = [(f, dx - r["dx"], yaw - r["yaw"]) for r in test for f, dx, yaw in r["rendered"]]
    fractions, measured = np.array([s[0] for s in shifts]), np.array([s[1] for s in shifts])
    slope = float(fractions @ measured / (fractions @ fractions))
    print(f"5. rendered iris shift of +-{SHIFT:.2f} eye widths ({len(shifts)} renders): measured shift = "
          f"{slope:.2f} x rendered; Yaw change median {np.median([abs(s[2]) for s in shifts]):.1f} deg (the rendered "
          f"shift is {np.degrees(np.arcsin(SHIFT / iris.K)):.1f} deg at K={iris.K})")
    ms = np.array(timings) * 1000
    print(f"6. iris model per face (2 eyes): p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
