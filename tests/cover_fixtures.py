"""Face covers drawn on a photo, for the FaceOccluded and DetectProtectiveEquipment tests and
benchmarks/mask_precision.py: a pleated surgical mask from the nose bridge down the jawline."""

from __future__ import annotations

import cv2
import numpy as np

from facelens.models.detector import YuNetDetector
from facelens.models.landmarks import DlibLandmarker

LIGHT_BLUE, WHITE, DARK = (190, 215, 235), (245, 245, 245), (40, 40, 60)  # RGB mask colours (docs/attributes.md)


def masked(image: np.ndarray, colour: tuple[int, int, int] = LIGHT_BLUE, *,
           detector: YuNetDetector | None = None, landmarker: DlibLandmarker | None = None) -> np.ndarray:
    """`image` with a pleated surgical mask drawn from the nose bridge down the jawline (dlib's 68 points) of its
    first detected face (`detector` and `landmarker`: models to reuse, else new ones)."""
    face = (detector or YuNetDetector()).detect([image])[0][0]
    points = (landmarker or DlibLandmarker()).landmarks68(image, face.box)
    bridge = points[28]
    outline = np.vstack([[points[1][0], bridge[1]], points[1:16], [points[15][0], bridge[1]]]).astype(np.int32)
    out = image.copy()
    cv2.fillPoly(out, [outline], colour)
    for k in range(1, 4):  # the pleats
        y = int(bridge[1] + k * (points[8][1] - bridge[1]) / 4)
        cv2.line(out, (int(points[2][0]), y), (int(points[14][0]), y), tuple(int(c * 0.85) for c in colour), 2)
    return out
