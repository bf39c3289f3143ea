"""Face recognizers: bundled SFace, or a user-supplied InsightFace ArcFace model. 112x112 RGB crops in,
L2-normalised embeddings out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from facelens.models import registry
from facelens.models.runtime import fold_dequantize, make_session, prepared, prune_inputs, set_batch_dim


class OnnxEmbedder:
    """Runs a 112x112 recognizer in batches; `flip=True` adds the mirrored crop (test-time augmentation)."""

    name: str
    mean: float
    std: float

    def __init__(self, model: onnx.ModelProto | bytes, name: str, flip: bool, batch_size: int = 8,
                 config: registry.ModelConfig | None = None) -> None:
        self.name = name
        self.flip = flip
        self.batch_size = batch_size
        self.session = make_session(model, config, openvino_first=True)  # 2-3x onnxruntime's rate on a CPU
        self.input_name = self.session.get_inputs()[0].name
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    @property
    def version(self) -> str:
        """Model name plus the test-time augmentation in use: embeddings are comparable only within one."""
        return f"{self.name}+flip" if self.flip else self.name

    def _blob(self, crops: np.ndarray) -> np.ndarray:
        return ((crops.astype(np.float32) - self.mean) / self.std).transpose(0, 3, 1, 2)

    def embed(self, crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """L2-normalised embeddings, one row per RGB uint8 112x112 crop."""
        crops = np.asarray(crops, dtype=np.uint8).reshape(-1, 112, 112, 3)
        if len(crops) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.flip:
            crops = np.concatenate([crops, crops[:, :, ::-1]])
        outputs = [
            self.session.run(None, {self.input_name: self._blob(crops[start : start + self.batch_size])})[0]
            for start in range(0, len(crops), self.batch_size)
        ]
        features = _normalise(np.concatenate(outputs).astype(np.float32))
        if self.flip:
            half = len(features) // 2
            features = _normalise(features[:half] + features[half:])
        return features


def _normalise(features: np.ndarray) -> np.ndarray:
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _prepare_sface(model: onnx.ModelProto) -> None:
    prune_inputs(model)
    fold_dequantize(model)
    set_batch_dim(model)


class SFaceEmbedder(OnnxEmbedder):
    """SFace (2021dec, int8 block-quantized): 128-d. Its graph normalises the RGB input itself.

    The shipped file declares 29 weight tensors as graph inputs that no node reads (and 145 more that are
    initializers), and fixes the batch to 1; at load we prune those inputs, fold the weight dequantization,
    and make the batch dimension dynamic.
    """

    mean = 0.0
    std = 1.0

    def __init__(self, path: Path | None = None, flip: bool = False,
                 config: registry.ModelConfig | None = None) -> None:
        path = path or registry.bundled(*registry.SFACE)
        model = prepared(path, "pruned-folded-batch-v1", _prepare_sface, (config or registry.ModelConfig()).cache_dir)
        super().__init__(model, name="sface-2021dec-int8bq", flip=flip, config=config)


class ArcFaceEmbedder(OnnxEmbedder):
    """An InsightFace-format ArcFace recognizer (`w600k_r50.onnx` and the like): RGB, (x - 127.5) / 127.5.

    As in InsightFace, a graph that begins with its own `Sub`/`Mul` normalisation gets raw pixels.
    """

    def __init__(self, path: Path, flip: bool = False, config: registry.ModelConfig | None = None) -> None:
        model = onnx.load(str(path))
        shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        if shape[1:] != [3, 112, 112]:
            raise ValueError(f"{path}: expected a 3x112x112 input, found {shape}")
        first_ops = [node.op_type for node in model.graph.node[:8]]
        self.mean, self.std = (0.0, 1.0) if "Sub" in first_ops and "Mul" in first_ops else (127.5, 127.5)
        set_batch_dim(model)
        super().__init__(model, name=f"arcface-{path.stem}", flip=flip, config=config)


def load_embedder(config: registry.ModelConfig, flip: bool | None = None) -> OnnxEmbedder:
    """The configured recognizer: a user ArcFace model when one is named, else the bundled SFace; mirror-image
    augmentation as `flip` says (default: `config.flip`), its session with the configuration's providers and
    threads."""
    flip = config.flip if flip is None else flip
    if config.recognizer:
        return ArcFaceEmbedder(config.recognizer, flip=flip, config=config)
    return SFaceEmbedder(flip=flip, config=config)
