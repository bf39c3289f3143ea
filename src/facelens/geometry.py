"""Face geometry from landmarks: head pose, eyes/mouth open, and Rekognition `Landmarks` entries.

Pure numpy/cv2 functions on landmark arrays in pixels; no model is loaded here. 68-point arrays use the
dlib/iBUG order (0-based): jaw 0-16, image-left brow 17-21, image-right brow 22-26, nose 27-35, image-left
eye 36-41, image-right eye 42-47, outer lips 48-59, inner lips 60-67. 5-point arrays use the detector's
order: image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
Thresholds were measured on LFW with `benchmarks/attributes_thresholds.py`; docs/attributes.md has the
numbers.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Mean 3D face for dlib points 27-47 (nose and eyes: the parts that expressions barely move), in mm, in a
# camera-aligned frame (x to the image's right, y down, z away from the camera) so that the zero pose is the
# identity. Fitted on 1500 LFW faces by rank-3 factorization of their landmarks, symmetrized, with the zero
# pose = LFW's average pose and the depth scale set to put the nose tip 41 mm in front of the outer eye
# corners (`benchmarks/attributes_thresholds.py --fit-head-model --count 1500`; docs/attributes.md).
HEAD_MODEL_INDICES = tuple(range(27, 48))
HEAD_MODEL_POINTS = np.array(
    [
        (0.0, -38.7, 19.3), (0.0, -26.0, 13.3), (0.0, -13.2, 6.6), (0.0, 0.0, 0.0),  # 27-30 nose bridge, tip
        (-15.2, 9.3, 19.2), (-7.9, 12.2, 15.3), (0.0, 14.5, 13.2), (7.9, 12.2, 15.3), (15.2, 9.3, 19.2),  # 31-35
        (-45.0, -35.8, 41.0), (-37.1, -40.3, 35.9), (-27.9, -40.3, 34.4),  # 36-38 image-left eye
        (-19.7, -34.8, 35.9), (-28.4, -33.2, 34.7), (-37.5, -33.1, 36.3),  # 39-41
        (19.7, -34.8, 35.9), (27.9, -40.3, 34.4), (37.1, -40.3, 35.9),  # 42-44 image-right eye
        (45.0, -35.8, 41.0), (37.5, -33.1, 36.3), (28.4, -33.2, 34.7),  # 45-47
    ],
    dtype=np.float64,
)
_EYE_SPAN_MM = 90.0  # distance between points 36 and 45 in the model

# Eye aspect ratio (Soukupová & Čech 2016) at which eyes count as closed, and the logistic scale that
# turns the distance from it into a confidence (measured on LFW; docs/attributes.md).
EYE_THRESHOLD = 0.13
EYE_SCALE = 0.02
# Inner-lip opening / inter-ocular distance at which the mouth counts as open, and its logistic scale.
MOUTH_THRESHOLD = 0.10
MOUTH_SCALE = 0.015

LANDMARKS_5 = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
# Rekognition landmark type -> dlib 68 indices averaged to place it. "left"/"Left" is the image's left
# (smaller X), as for Rekognition's eyeLeft. The 5 core types come from the 5-point detector instead.
LANDMARKS_68: dict[str, tuple[int, ...]] = {
    "leftEyeBrowLeft": (17,),
    "leftEyeBrowRight": (21,),
    "leftEyeBrowUp": (19,),
    "rightEyeBrowLeft": (22,),
    "rightEyeBrowRight": (26,),
    "rightEyeBrowUp": (24,),
    "leftEyeLeft": (36,),
    "leftEyeRight": (39,),
    "leftEyeUp": (37, 38),
    "leftEyeDown": (40, 41),
    "rightEyeLeft": (42,),
    "rightEyeRight": (45,),
    "rightEyeUp": (43, 44),
    "rightEyeDown": (46, 47),
    "noseLeft": (31,),
    "noseRight": (35,),
    "mouthUp": (51,),
    "mouthDown": (57,),
    "leftPupil": (36, 37, 38, 39, 40, 41),
    "rightPupil": (42, 43, 44, 45, 46, 47),
    "upperJawlineLeft": (0,),
    "midJawlineLeft": (4,),
    "chinBottom": (8,),
    "midJawlineRight": (12,),
    "upperJawlineRight": (16,),
}


def _wrap(degrees: float) -> float:
    """Angle in (-180, 180]."""
    wrapped = (degrees + 180.0) % 360.0 - 180.0
    return 180.0 if wrapped == -180.0 else wrapped


def head_pose(landmarks68: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """(Roll, Yaw, Pitch) in degrees, each in -180..180, from a PnP fit of the mean 3D face (nose and eyes).

    Camera: focal length = image width in pixels, principal point at the image centre, no distortion.
    Signs (FaceLens' convention, see docs/attributes.md): Roll > 0 when the face is rotated clockwise as
    the image is displayed; Yaw > 0 when the face turns towards the image's right (the subject's left);
    Pitch > 0 when the face tilts up. A frontal face gives (0, 0, 0).
    """
    points = np.asarray(landmarks68, dtype=np.float64)[list(HEAD_MODEL_INDICES)]
    focal = float(width)
    camera = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    eye_span = float(np.linalg.norm(points[45 - 27] - points[36 - 27]))
    depth = focal * _EYE_SPAN_MM / max(eye_span, 1e-6)
    # Start from a frontal face at the depth the eye span implies, nose tip on the detected nose tip, so the
    # iterative solver does not settle on the mirrored (face-away) solution.
    nose = points[30 - 27]
    tvec = np.array([[(nose[0] - width / 2.0) * depth / focal], [(nose[1] - height / 2.0) * depth / focal],
                     [depth]])
    rvec = np.zeros((3, 1))
    ok, rvec, tvec = cv2.solvePnP(HEAD_MODEL_POINTS, points, camera, None, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return 0.0, 0.0, 0.0
    rotation, _ = cv2.Rodrigues(rvec)
    # rotation = Rz(roll) @ Ry(a) @ Rx(b) in the camera frame (x right, y down, z forward).
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    about_y = math.degrees(math.asin(float(np.clip(-rotation[2, 0], -1.0, 1.0))))
    about_x = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    # +a about the downward y axis turns the nose to the image's left; +b about x tilts it down.
    return _wrap(roll), _wrap(-about_y), _wrap(-about_x)


def _confidence(value: float, threshold: float, scale: float) -> tuple[bool, float]:
    """(value >= threshold, 0..100 confidence): logistic in the distance from the threshold, 50 at it."""
    probability = 1.0 / (1.0 + math.exp(-(value - threshold) / scale))
    decided = value >= threshold
    return decided, 100.0 * (probability if decided else 1.0 - probability)


def eye_aspect_ratio(landmarks68: np.ndarray) -> float:
    """Mean over both eyes of (|p2-p6| + |p3-p5|) / (2 |p1-p4|) on the 6-point eye contours."""
    points = np.asarray(landmarks68, dtype=np.float64)
    ratios = []
    for start in (36, 42):
        p = points[start:start + 6]
        vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        ratios.append(vertical / max(2.0 * float(np.linalg.norm(p[0] - p[3])), 1e-6))
    return float(np.mean(ratios))


def mouth_opening(landmarks68: np.ndarray) -> float:
    """Mean inner-lip gap (61-67, 62-66, 63-65) divided by the distance between the eye centres."""
    points = np.asarray(landmarks68, dtype=np.float64)
    gap = np.mean([np.linalg.norm(points[a] - points[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    interocular = np.linalg.norm(points[36:42].mean(axis=0) - points[42:48].mean(axis=0))
    return float(gap / max(float(interocular), 1e-6))


def eyes_open(landmarks68: np.ndarray) -> tuple[bool, float]:
    """Rekognition `EyesOpen`: (Value, Confidence 0..100) from the eye aspect ratio."""
    return _confidence(eye_aspect_ratio(landmarks68), EYE_THRESHOLD, EYE_SCALE)


def mouth_open(landmarks68: np.ndarray) -> tuple[bool, float]:
    """Rekognition `MouthOpen`: (Value, Confidence 0..100) from the inner-lip opening."""
    return _confidence(mouth_opening(landmarks68), MOUTH_THRESHOLD, MOUTH_SCALE)


def rekognition_landmarks(landmarks5: np.ndarray, landmarks68: np.ndarray | None, width: int,
                          height: int) -> list[dict[str, float | str]]:
    """Rekognition `Landmarks`: `{"Type", "X", "Y"}` with X, Y as ratios of the image width and height.

    The 5 core types always come from the detector's 5 points, so DEFAULT and ALL responses agree on them;
    with 68 points the other 25 types follow `LANDMARKS_68`. Ratios are not clipped: a face cut by the image
    border can have landmarks outside 0..1, as Rekognition's bounding boxes can.
    """
    scale = np.array([float(width), float(height)])
    entries: list[dict[str, float | str]] = []
    for name, point in zip(LANDMARKS_5, np.asarray(landmarks5, dtype=np.float64).reshape(5, 2), strict=True):
        x, y = point / scale
        entries.append({"Type": name, "X": float(x), "Y": float(y)})
    if landmarks68 is not None:
        points = np.asarray(landmarks68, dtype=np.float64).reshape(68, 2)
        for name, indices in LANDMARKS_68.items():
            x, y = points[list(indices)].mean(axis=0) / scale
            entries.append({"Type": name, "X": float(x), "Y": float(y)})
    return entries


def relative_box(box: np.ndarray, width: int, height: int) -> dict[str, float]:
    """A pixel box (x1, y1, x2, y2) as ratios of the image size, in the form the store keeps a face's box
    (`NewFace.bounding_box`, Rekognition's BoundingBox keys); may reach slightly outside 0..1, as AWS's do."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return {"Width": (x2 - x1) / width, "Height": (y2 - y1) / height, "Left": x1 / width, "Top": y1 / height}
