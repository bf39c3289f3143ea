"""EyeDirection from Google's MediaPipe Iris landmark model (in npm `@vladmandic/human` 3.3.6 as TF.js `iris.json`).

The model: 64x64 RGB eye crop in [0, 1] -> 71 eye-contour and eyebrow points and 5 iris points (centre, then four on
the iris edge), x/y in crop pixels (z unused). Weights: Google's MediaPipe Iris (Apache-2.0), as `@vladmandic/human`
(MIT) ships them; converted once by `facelens.models.tfjs_onnx` from the tarball `make install` packs and kept in
the models cache. The model was trained on one eye orientation: the eye seen on the image's left (the subject's
right eye); the other eye is mirrored before and after (on 200 LFW faces this orientation puts the model's eye
corners closest to dlib's: docs/attributes.md).

Crops follow `@vladmandic/human` (`iris.getEyeBox`): the square centred on the two corners of an eye (dlib points
36/39 and 42/45), 2.3 times their larger extent, resized bilinearly to 64x64.

Gaze (`eye_direction`): eye-in-head rotation, as Rekognition's EyeDirection is "independent of the head pose". In
each eye the iris centre is compared with the midpoint of the model's own two corner points (contour points 0 and
8): along the corner-to-corner axis and across it, as fractions of the corner distance seen in the image. An
eyeball rotating by angle a moves the iris centre by R sin(a) where R (the iris centre's distance from the centre of
rotation, about 10-11 mm) is about K = 0.36 of the corner distance (palpebral fissure, about 30 mm): Yaw =
asin(dx / K), Pitch = asin(-(dy - DY0) / K). DY0 is where the iris centre sits across the axis when looking
straight ahead. Both eyes are averaged, weighted by their width in the image (a foreshortened eye counts less).
Dividing by the width seen in the image cancels the head's foreshortening to first order; head pose is not
otherwise used. Signs follow FaceLens' Pose: Yaw > 0 towards the image's right, Pitch > 0 up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from facelens.models.npm import tarball
from facelens.models.registry import ModelConfig
from facelens.models.runtime import converted, make_session

PACKAGE, VERSION = "@vladmandic/human", "3.3.6"
SHA256 = "425e9c51dbbca0c8934362b170cb0d54c2529c11c654b3c03092b16e9d6ad3f7"  # of vladmandic-human-3.3.6.tgz (npmjs.org)
FOLDER, MODEL = "package/models", "iris.json"
RECIPE = "tfjs-onnx-v1"
SIZE = 64
SCALE = 2.3  # crop side / corner extent (human's iris.scale default)
EYES = ((36, 39), (42, 45))  # dlib 68 corners: the subject's right eye (image left), left eye (image right)
CORNERS = (0, 8)  # contour points of the two corners (EyeLower0's ends)
IRIS = 71  # the iris centre; 72..75 its edge
K = 0.36  # iris-centre rotation radius / corner distance (about 10.5 mm / 29 mm, adult averages)
DY0 = -0.05  # iris centre across the corner axis at straight gaze (above it), in corner distances: fitted on LFW A-L


def eye_crop(image: np.ndarray, first: np.ndarray, second: np.ndarray, mirror: bool) -> tuple[np.ndarray, np.ndarray]:
    """The 64x64 float crop around two eye corners and the 2x3 affine map from crop pixels back to the image."""
    centre = (np.asarray(first, np.float64) + np.asarray(second, np.float64)) / 2
    side = max(SCALE * float(np.abs(np.asarray(second, np.float64) - first).max()), 4.0)
    scale = SIZE / side
    x0, y0 = centre - side / 2
    forward = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float64)
    if mirror:
        forward = np.array([[-1, 0, SIZE], [0, 1, 0]], np.float64) @ np.vstack([forward, [0, 0, 1]])
    patch = cv2.warpAffine(image, forward, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    back = cv2.invertAffineTransform(forward)
    return patch.astype(np.float32) / np.float32(255.0), back


def eye_offset(points: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, width) of one eye's 76 image points: the iris centre's offset from the corners' midpoint along the
    image-rightward corner axis and across it (downwards), in corner distances, and the corner distance in pixels."""
    a, b = points[CORNERS[0]], points[CORNERS[1]]
    left, right = (a, b) if a[0] <= b[0] else (b, a)
    axis = right - left
    width = float(np.hypot(*axis))
    if width < 1e-6:
        return 0.0, 0.0, 0.0
    u = axis / width
    v = np.array([-u[1], u[0]])  # u turned clockwise on screen: points down for a level eye
    d = points[IRIS] - (left + right) / 2
    return float(d @ u) / width, float(d @ v) / width, width


def eye_direction(eyes: Sequence[np.ndarray]) -> tuple[float, float]:
    """(Yaw, Pitch) in degrees from the image points of a face's eyes (see the module docstring)."""
    offsets = [eye_offset(points) for points in eyes]
    total = sum(width for _, _, width in offsets)
    if total <= 0:
        return 0.0, 0.0
    dx = sum(x * width for x, _, width in offsets) / total
    dy = sum(y * width for _, y, width in offsets) / total
    yaw = math.degrees(math.asin(float(np.clip(dx / K, -1.0, 1.0))))
    pitch = math.degrees(math.asin(float(np.clip(-(dy - DY0) / K, -1.0, 1.0))))
    return yaw, pitch


class IrisModel:
    """The MediaPipe Iris network; all eyes of an image in one batch."""

    version = f"mediapipe-iris/human-{VERSION}"

    def __init__(self, config: ModelConfig | None = None) -> None:
        from facelens.models.tfjs_onnx import convert_files, tar_reader

        config = config or ModelConfig()
        source = tarball(PACKAGE, VERSION, config.npm_dir, SHA256)
        graph = converted(source, f"iris-{RECIPE}", lambda path: convert_files(tar_reader(path, FOLDER), MODEL),
                          config.cache_dir)
        self.session = make_session(graph, config)
        self.input = self.session.get_inputs()[0].name

    def eyes(self, image: np.ndarray, faces68: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """For each face's 68 landmarks, its two eyes' 76 points (x, y) in image pixels."""
        if not faces68:
            return []
        crops, maps = [], []
        for landmarks in faces68:
            for index, (first, second) in enumerate(EYES):
                patch, back = eye_crop(image, landmarks[first], landmarks[second], mirror=index == 1)
                crops.append(patch)
                maps.append(back)
        raw = self.session.run(None, {self.input: np.stack(crops)})[0].reshape(len(crops), 76, 3)[:, :, :2]
        points = [np.c_[xy, np.ones(len(xy))] @ back.T for xy, back in zip(raw.astype(np.float64), maps, strict=True)]
        return [points[i:i + 2] for i in range(0, len(points), 2)]

    def predict(self, image: np.ndarray, faces68: Sequence[np.ndarray]) -> list[tuple[float, float]]:
        """(Yaw, Pitch) of each face's eyes, in degrees."""
        return [eye_direction(eyes) for eyes in self.eyes(image, faces68)]
