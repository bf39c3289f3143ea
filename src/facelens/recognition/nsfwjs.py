"""nsfwjs' MobileNetV2 "mid" classifier (npm `nsfwjs` 4.3.0, MIT; weights from GantMan/nsfw_model, MIT) on onnxruntime.

The package ships three TF.js models as JavaScript modules (model JSON as a JS literal, weights as base64 shards,
uint8-quantized): MobileNetV2 (layers model, 224 px, "~90%" by its README), MobileNetV2Mid (graph model, 224 px,
"~93%") and InceptionV3 (layers model, 299 px). FaceLens runs MobileNetV2Mid: the most accurate of the two the
converter covers (InceptionV3's Concatenate layers are not converted). It is read from the tarball `make install`
packs (`facelens.models.npm`), converted once by `facelens.models.tfjs_onnx` and kept in the models cache.

Input, as nsfwjs' `infer` prepares it: RGB / 255, resized to 224x224 by bilinear interpolation with
align_corners=True (TF.js `resizeBilinear(..., true)`: no antialiasing, aspect not kept). Output: the softmax over
CLASSES for the whole image; it locates nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import cv2
import numpy as np

from facelens.models.npm import tarball
from facelens.models.registry import ModelConfig
from facelens.models.runtime import converted, make_session

PACKAGE, VERSION = "nsfwjs", "4.3.0"
SHA256 = "4496790efc9bdc6f3e85a826a8e482c1fa1e9db4b3d18c095e98cc0c73cfb12f"  # of nsfwjs-4.3.0.tgz from npmjs.org
FOLDER = "package/dist/models/mobilenet_v2_mid"
CLASSES = ("Drawing", "Hentai", "Neutral", "Porn", "Sexy")  # nsfwjs' NSFW_CLASSES order
SIZE = 224
RECIPE = "tfjs-onnx-v1"
MODEL_VERSION = f"nsfwjs-{VERSION}/MobileNetV2Mid"
BATCH = 32


def resize_align_corners(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Bilinear resize with align_corners=True (the corners' pixel centres map onto each other), as TF.js does."""
    height, width = image.shape[:2]
    xs = np.linspace(0, width - 1, size, dtype=np.float32)
    ys = np.linspace(0, height - 1, size, dtype=np.float32)
    map_x, map_y = np.meshgrid(xs, ys)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def preprocess(image: np.ndarray) -> np.ndarray:
    """(224, 224, 3) float32 in [0, 1] of an (H, W, 3) uint8 RGB image."""
    return resize_align_corners(image.astype(np.float32) / np.float32(255.0))


class NsfwJs:
    """The MobileNetV2Mid network with the session settings of `config`."""

    version = MODEL_VERSION

    def __init__(self, config: ModelConfig | None = None) -> None:
        from facelens.models.tfjs_onnx import convert_files, tar_reader

        config = config or ModelConfig()
        source = tarball(PACKAGE, VERSION, config.npm_dir, SHA256)
        graph = converted(source, f"{FOLDER.rsplit('/', 1)[-1]}-{RECIPE}",
                          lambda path: convert_files(tar_reader(path, FOLDER), "model.min.js"), config.cache_dir)
        self.session = make_session(graph, config)
        self.input = self.session.get_inputs()[0].name

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 5) class probabilities in CLASSES order, `BATCH` images per run."""
        out = [self.session.run(None, {self.input: np.stack([preprocess(i) for i in images[s:s + BATCH]])})[0]
               for s in range(0, len(images), BATCH)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(CLASSES)))


_models: dict[ModelConfig, NsfwJs] = {}
_lock = threading.Lock()


def nsfwjs_for(config: ModelConfig) -> NsfwJs:
    """The process-wide network of a model configuration, loaded on first use."""
    with _lock:
        if config not in _models:
            _models[config] = NsfwJs(config)
        return _models[config]
