"""Rekognition `Quality` (Brightness, Sharpness, each 0..100) of a face crop. Deterministic and cheap.

Brightness = 100 * mean luma / 255 over the face box, luma Y = 0.299 R + 0.587 G + 0.114 B (BT.601, OpenCV's
RGB2GRAY).
Sharpness = 100 * (1 - exp(-v / SHARPNESS_SCALE)), v the variance of the 3x3 Laplacian of the luma crop
resized to 112x112 (area interpolation when shrinking, linear when enlarging): 0 for a flat patch, rising
steeply for a little detail and saturating towards 100. The fixed size makes v comparable across face sizes:
a small face upsampled to 112x112 is (and scores as) blurrier. SHARPNESS_SCALE is the median v of 1000 LFW
faces (1219), so LFW faces score 40 / 64 / 86 at the 10th / 50th / 90th percentile (docs/attributes.md).
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_SIZE = 112
SHARPNESS_SCALE = 1200.0


def luma_crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The face box (clipped to the image) as float32 luma; a 1x1 pixel when the box is outside."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)[:4]
    left, top = int(np.clip(np.floor(x1), 0, width - 1)), int(np.clip(np.floor(y1), 0, height - 1))
    right = int(np.clip(np.ceil(x2), left + 1, width))
    bottom = int(np.clip(np.ceil(y2), top + 1, height))
    crop = image[top:bottom, left:right]
    if crop.ndim == 3:
        crop = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    return crop.astype(np.float32)


def brightness(luma: np.ndarray) -> float:
    """100 * mean luma / 255."""
    return float(np.clip(100.0 * float(luma.mean()) / 255.0, 0.0, 100.0))


def laplacian_variance(luma: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of the luma crop resized to 112x112."""
    height, width = luma.shape[:2]
    shrinking = height * width >= CROP_SIZE * CROP_SIZE
    resized = cv2.resize(luma, (CROP_SIZE, CROP_SIZE),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return float(cv2.Laplacian(resized, cv2.CV_32F, ksize=3).var())


def sharpness(luma: np.ndarray) -> float:
    """100 * (1 - exp(-laplacian_variance(luma) / SHARPNESS_SCALE))."""
    return float(100.0 * (1.0 - np.exp(-laplacian_variance(luma) / SHARPNESS_SCALE)))


def face_quality(image: np.ndarray, box: np.ndarray) -> tuple[float, float]:
    """(Brightness, Sharpness), each 0..100, of the face in `box` (x1, y1, x2, y2 pixels) of an RGB or
    grayscale uint8 image."""
    luma = luma_crop(image, box)
    return brightness(luma), sharpness(luma)
