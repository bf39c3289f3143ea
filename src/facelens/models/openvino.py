"""OpenVINO behind the onnxruntime session interface the model loaders use (`run`, `get_inputs`, `get_outputs`).

`facelens.models.runtime.make_session` returns an `OpenVinoSession` when the configured runtime is OpenVINO
(FACELENS_RUNTIME; `auto` picks it on a CPU-only machine where the `openvino` package is installed). The same
ONNX graph runs: OpenVINO reads it with its ONNX front end and compiles it for the CPU with f32 inference
precision (never the bf16 it would choose on CPUs with AMX), so embeddings match onnxruntime's to float rounding
(tests/unit/test_runtime.py). Each thread gets its own infer request: `run` may be called from several threads
at once, as onnxruntime's `InferenceSession.run` may.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np


def _import_openvino() -> Any:
    """`openvino`, imported without its telemetry. The package depends on `openvino-telemetry`, which on
    `import openvino` sends an event to Google Analytics (seen here: CONNECT www.google-analytics.com:443 through
    the proxy a test set). A face service must not report its use to anyone, so the telemetry module is made
    unimportable first; OpenVINO then uses its own no-op stub (`openvino.tools.ovc.telemetry_stub`).
    tests/integration/test_api_input.py watches a server's outgoing connections and fails on any."""
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


def available() -> bool:
    """Whether the `openvino` package imports (it is a dependency; a trimmed install may lack it)."""
    try:
        _import_openvino()
    except ImportError:
        return False
    return True


@cache
def _core() -> Any:
    return _import_openvino().Core()


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin can compute on this CPU ("FP32", "INT8", "BF16" where it has AVX512_BF16 or
    AMX, ...)."""
    return list(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


@dataclass(frozen=True)
class Port:
    """What the loaders read of an onnxruntime NodeArg: the name and the shape (a str for a dynamic axis)."""

    name: str
    shape: list[int | str]


def _port(name: str, port: Any) -> Port:
    shape = [int(dim.get_length()) if dim.is_static else f"d{axis}"
             for axis, dim in enumerate(port.get_partial_shape())]
    return Port(name, shape)


def _names(model: str | Path | bytes) -> tuple[list[str], list[str]]:
    """The graph's input and output names, in order (OpenVINO keeps the order; its port names may differ)."""
    import onnx

    graph = (onnx.load_from_string(model) if isinstance(model, bytes)
             else onnx.load(str(model), load_external_data=False)).graph
    constant = {init.name for init in graph.initializer}
    return [value.name for value in graph.input if value.name not in constant], [value.name for value in graph.output]


class OpenVinoSession:
    """One ONNX graph compiled by OpenVINO for the CPU. `threads` 0: each call may use every core (batch work);
    `threads` n: each call uses n, and cores / n calls run at once (one OpenVINO stream each), as n-thread
    onnxruntime sessions serve the service's worker pool. `precision`: the inference precision hint, "f32"
    wherever FaceLens runs a model (benchmarks/mask_precision.py measures "bf16")."""

    providers = ("OpenVINO",)

    def __init__(self, model: str | Path | bytes, threads: int = 0, precision: str = "f32") -> None:
        core = _core()
        if isinstance(model, bytes):
            graph = core.read_model(model=model, weights=_import_openvino().Tensor(np.empty(0, dtype=np.uint8)))
        else:
            graph = core.read_model(str(model))
        properties: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                                      "ENABLE_CPU_PINNING": False}
        if threads > 0:  # `threads` per call, with as many calls at once as the cores allow (the service's pool)
            streams = max(1, (os.cpu_count() or 1) // threads)
            properties.update(NUM_STREAMS=streams, INFERENCE_NUM_THREADS=streams * threads)
        self.compiled = core.compile_model(graph, "CPU", properties)
        inputs, outputs = _names(model)
        if len(inputs) != len(self.compiled.inputs) or len(outputs) != len(self.compiled.outputs):
            raise ValueError("OpenVINO compiled a graph with other inputs or outputs than the ONNX file's")
        self._inputs = [_port(name, port) for name, port in zip(inputs, self.compiled.inputs, strict=True)]
        self._outputs = [_port(name, port) for name, port in zip(outputs, self.compiled.outputs, strict=True)]
        self._input_index = {port.name: index for index, port in enumerate(self._inputs)}
        self._output_index = {port.name: index for index, port in enumerate(self._outputs)}
        self._local = threading.local()

    def get_inputs(self) -> list[Port]:
        return list(self._inputs)

    def get_outputs(self) -> list[Port]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return list(self.providers)

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs named (all, in the graph's order, for None), as arrays the caller owns."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        request.infer({self._input_index[name]: np.ascontiguousarray(value) for name, value in feeds.items()})
        indices = range(len(self._outputs)) if output_names is None else [self._output_index[n] for n in output_names]
        return [np.array(request.get_output_tensor(index).data, copy=True) for index in indices]
