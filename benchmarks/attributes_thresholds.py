"""Measure the distributions behind FaceLens' geometric attribute thresholds on LFW.

Prints, for a seeded random sample of LFW images (one face each: the detection nearest the centre):
eye aspect ratio and mouth opening (quantiles, histogram, counts either side of the thresholds in
`facelens.geometry`, the most extreme files to inspect by eye), head pose, the Laplacian variance behind
Sharpness, the spread of the age distributions and the AgeRange widths, the YuNet -> dlib-HOG box relation used by
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
from facelens.models.attributes import AgeGender, AgeGenderEstimator, age_range
from facelens.models.detector import Detection, YuNetDetector
from facelens.models.landmarks import DlibLandmarker

LFW = Path("/work/shared/data/lfw/lfw-deepfunneled")
QUANTILES = (0, 1, 2, 5, 10, 25, 50, 75, 90, 95, 98, 99, 100)
# dlib 68-point index of each point's mirror image.
MIRROR_68 = np.array([*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
                      45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57,
                      56, 55, 64, 63, 62, 61, 60, 67, 66, 65])
EYE_SPAN_MM, NOSE_DEPTH_MM = 90.0, 41.0


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


def fit_head_model(landmarks: np.ndarray) -> np.ndarray:
    """Mean 3D shape (68, 3) of many faces' 2D landmarks (F, 68, 2) by rank-3 factorization.

    Tomasi-Kanade under scaled orthography: centre each face, divide by its inter-ocular distance, factor
    the 2F x 68 matrix to rank 3, upgrade to a metric shape (each face's two camera rows orthogonal and of
    equal norm), rotate into the mean camera frame of the sample (x right, y down, z away from the camera:
    zero pose = the sample's average pose), choose the depth sign that puts the nose in front, and average
    with the mirror image. Orthographic factorization leaves the depth scale poorly determined (bas-relief
    ambiguity), so depth is rescaled to put the nose tip NOSE_DEPTH_MM in front of the outer eye corners,
    for an outer-eye-corner span of EYE_SPAN_MM.
    """
    points = landmarks.astype(np.float64)
    centred = points - points.mean(axis=1, keepdims=True)
    interocular = np.linalg.norm(points[:, 36:42].mean(axis=1) - points[:, 42:48].mean(axis=1), axis=1)
    centred /= interocular[:, None, None]
    count = len(points)
    matrix = np.empty((2 * count, 68))
    matrix[0::2], matrix[1::2] = centred[:, :, 0], centred[:, :, 1]
    u, sv, vt = np.linalg.svd(matrix, full_matrices=False)
    motion, shape = u[:, :3] * np.sqrt(sv[:3]), np.sqrt(sv[:3])[:, None] * vt[:3]

    def quad(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # coefficients of a^T L b in L's 6 unknowns
        return np.array([a[0] * b[0], a[0] * b[1] + a[1] * b[0], a[0] * b[2] + a[2] * b[0], a[1] * b[1],
                         a[1] * b[2] + a[2] * b[1], a[2] * b[2]])

    rows = [quad(a, a) - quad(b, b) for a, b in zip(motion[0::2], motion[1::2], strict=True)]
    rows += [quad(a, b) for a, b in zip(motion[0::2], motion[1::2], strict=True)]
    rows.append(np.mean([quad(a, a) for a in motion[0::2]], axis=0) * count)
    targets = np.zeros(len(rows))
    targets[-1] = count
    q = np.linalg.lstsq(np.array(rows), targets, rcond=None)[0]
    gram = np.array([[q[0], q[1], q[2]], [q[1], q[3], q[4]], [q[2], q[4], q[5]]])
    upgrade = np.linalg.cholesky(gram)
    motion, shape = motion @ upgrade, np.linalg.inv(upgrade) @ shape
    rotations = []
    for a, b in zip(motion[0::2], motion[1::2], strict=True):
        a = a / np.linalg.norm(a)
        b = b - a * (a @ b)
        b = b / np.linalg.norm(b)
        rotations.append(np.stack([a, b, np.cross(a, b)]))
    left, _, right = np.linalg.svd(np.sum(rotations, axis=0))
    mean_rotation = left @ np.diag([1.0, 1.0, np.linalg.det(left @ right)]) @ right
    model = (mean_rotation @ shape).T
    if model[30, 2] > model[36:48, 2].mean():
        model[:, 2] *= -1
    mirrored = model[MIRROR_68] * np.array([-1.0, 1.0, 1.0])
    model = (model + mirrored) / 2 - (model[30] + mirrored[30]) / 2
    model *= EYE_SPAN_MM / np.linalg.norm(model[45] - model[36])
    model[:, 2] *= NOSE_DEPTH_MM / ((model[36, 2] + model[45, 2]) / 2)
    return model


def sample(lfw: Path, count: int, seed: int) -> list[Path]:
    files = sorted(lfw.glob("*/*.jpg"))
    random.Random(seed).shuffle(files)
    return files[:count]


def central(faces: list[Detection], image: np.ndarray) -> Detection:
    """The detection whose box centre is nearest the image centre (LFW's subject)."""
    centre = np.array([image.shape[1] / 2, image.shape[0] / 2])
    return min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extremes", type=int, default=8, help="files to list at each tail")
    parser.add_argument("--fit-head-model", action="store_true",
                        help="print the mean 3D face (dlib points 27-47) fitted on the sample, then stop")
    args = parser.parse_args()
    if args.fit_head_model:
        detector, landmarker = YuNetDetector(), DlibLandmarker()
        shapes = []
        for path in sample(args.lfw, args.count, args.seed):
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            faces = detector.detect([image])[0]
            if faces:
                shapes.append(landmarker.landmarks68(image, central(faces, image).box))
        model = fit_head_model(np.array(shapes))
        print(f"mean 3D face from {len(shapes)} LFW faces (x right, y down, z away from the camera, mm):")
        for index in range(27, 48):
            print(f"    ({model[index, 0]:.1f}, {model[index, 1]:.1f}, {model[index, 2]:.1f}),  # {index}")
        return

    detector, landmarker = YuNetDetector(), DlibLandmarker()
    estimator = AgeGenderEstimator(landmarker)
    hog = dlib.get_frontal_face_detector()
    rows: list[dict[str, float | str]] = []
    box_rows: list[tuple[float, float, float]] = []
    age_probs: list[np.ndarray] = []
    genders: list[AgeGender] = []
    t_landmarks = t_attributes = 0.0
    for path in sample(args.lfw, args.count, args.seed):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        height, width = image.shape[:2]
        faces = detector.detect([image])[0]
        if not faces:
            continue
        face = central(faces, image)
        start = time.perf_counter()
        points = landmarker.landmarks68(image, face.box)
        t_landmarks += time.perf_counter() - start
        start = time.perf_counter()
        genders.append(estimator.predict(image, [face.box])[0])
        t_attributes += time.perf_counter() - start
        chips = landmarker.face_chips(image, face.box, (estimator.age_size, estimator.gender_size))
        age_probs.append(estimator.probabilities([chips[0]], [chips[1]])[0][0])
        roll, yaw, pitch = geometry.head_pose(points, width, height)
        rows.append({
            "file": f"{path.parent.name}/{path.name}", "ear": geometry.eye_aspect_ratio(points),
            "mouth": geometry.mouth_opening(points), "roll": roll, "yaw": yaw, "pitch": pitch,
            "laplacian": quality.laplacian_variance(quality.luma_crop(image, face.box)),
            "brightness": quality.face_quality(image, face.box)[0],
            "sharpness": quality.face_quality(image, face.box)[1],
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
    for key in ("roll", "yaw", "pitch", "laplacian", "brightness", "sharpness"):
        describe(key, np.array([float(r[key]) for r in rows]))
    ages = np.asarray(estimator.ages)
    probs = np.array(age_probs)
    expected = probs @ ages
    spread = np.sqrt(np.maximum(probs @ ages**2 - expected**2, 0.0))
    describe("age: expected age", expected)
    describe("age: top-class probability", probs.max(axis=1))
    describe("age: standard deviation of the predicted distribution (years)", spread)
    ranges = np.array([age_range(p, ages) for p in probs])
    describe("age: AgeRange width High - Low (FaceLens rule)", (ranges[:, 1] - ranges[:, 0]).astype(float))
    male = np.array([g.gender == "Male" for g in genders])
    print(f"\ngender: {male.mean():.3f} of faces predicted Male (LFW's images are about 77% men)")
    describe("gender confidence", np.array([g.gender_confidence for g in genders]))
    if box_rows:
        b = np.array(box_rows)
        print(f"\nYuNet -> dlib HOG box on {len(b)} faces: centre shift x/w median {np.median(b[:, 0]):.3f}, "
              f"y/h median {np.median(b[:, 1]):.3f}; side/sqrt(w*h) median {np.median(b[:, 2]):.3f}")
    print(f"\nper face: landmarks68 {1000 * t_landmarks / n:.2f} ms, "
          f"age+gender (5-point shape, 2 chips, 2 ONNX runs) {1000 * t_attributes / n:.2f} ms")


if __name__ == "__main__":
    main()
