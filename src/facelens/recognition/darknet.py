"""Darknet (YOLOv3-tiny) to ONNX: the `.cfg` and `.weights` of a darknet model as an onnxruntime graph.

OpenCV 5 dropped its darknet importer, so the graph is built here once from the two files, with darknet's own
arithmetic: convolution (+ batch norm folded into it, eps 1e-5 as darknet's `normalize_cpu`), leaky ReLU 0.1,
max pooling with darknet's padding (`size - 1`, put after, so a stride-1 pool keeps the size), nearest 2x
upsampling, routes (concatenation of earlier outputs). The `[yolo]` heads are left as raw outputs and decoded in
numpy (`decode`), as darknet's `get_yolo_box` does. Only the layer kinds YOLOv3-tiny uses are supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RECIPE = "darknet-onnx-v2"  # change when `to_onnx` changes: it names the cached graph


@dataclass
class Section:
    kind: str
    options: dict[str, str] = field(default_factory=dict)

    def int(self, name: str, default: int = 0) -> int:
        return int(self.options.get(name, default))

    def ints(self, name: str) -> list[int]:
        return [int(part) for part in self.options[name].split(",") if part.strip()]


@dataclass(frozen=True)
class Head:
    """One `[yolo]` output: its anchors (pixels of the network input) and class count."""

    output: str
    anchors: np.ndarray  # (3, 2) width, height
    classes: int


def parse_cfg(text: str) -> list[Section]:
    """The sections of a darknet `.cfg`, in order (`[net]` first)."""
    sections: list[Section] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append(Section(line.strip("[]").strip()))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
    return sections


def layout(cfg: Path) -> tuple[list[Head], int]:
    """The `[yolo]` heads of `cfg` (named as `to_onnx` names them) and its input side, without the weights."""
    sections = parse_cfg(cfg.read_text())
    heads = [Head(f"l{index - 1}",
                  np.array(layer.ints("anchors"), dtype=np.float32).reshape(-1, 2)[layer.ints("mask")],
                  layer.int("classes"))
             for index, layer in enumerate(sections[1:]) if layer.kind == "yolo"]
    return heads, sections[0].int("width", 416)


def to_onnx(cfg: Path, weights: Path) -> tuple[onnx.ModelProto, list[Head], int]:
    """The network of `cfg` with the weights of `weights` as ONNX (input `image`: N x 3 x side x side, RGB in 0..1),
    its `[yolo]` heads, and its training input side S (the graph takes any square side)."""
    sections = parse_cfg(cfg.read_text())
    net, layers = sections[0], sections[1:]
    side = net.int("width", 416)
    data = weights.read_bytes()
    major, minor, _ = np.frombuffer(data[:12], dtype=np.int32)
    offset = 12 + (8 if major * 10 + minor >= 2 else 4)
    floats = np.frombuffer(data[offset:], dtype=np.float32)
    pos = 0

    def take(count: int) -> np.ndarray:
        nonlocal pos
        if pos + count > floats.size:
            raise ValueError(f"{weights} ends before the weights {cfg} declares")
        chunk = floats[pos:pos + count]
        pos += count
        return chunk

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    outputs: list[str] = []  # each layer's output name
    channels: list[int] = []
    heads: list[Head] = []
    current, depth = "image", net.int("channels", 3)
    for index, layer in enumerate(layers):
        name = f"l{index}"
        if layer.kind == "convolutional":
            filters, size, stride = layer.int("filters"), layer.int("size"), layer.int("stride", 1)
            pad = size // 2 if layer.int("pad") else layer.int("padding")
            if layer.int("batch_normalize"):
                bias, scale, mean, var = take(filters), take(filters), take(filters), take(filters)
                kernel = take(filters * depth * size * size).reshape(filters, depth, size, size)
                factor = scale / np.sqrt(var + 1e-5)
                kernel = kernel * factor[:, None, None, None]
                bias = bias - mean * factor
            else:
                bias = take(filters)
                kernel = take(filters * depth * size * size).reshape(filters, depth, size, size)
            inits += [numpy_helper.from_array(kernel.astype(np.float32), f"{name}.w"),
                      numpy_helper.from_array(bias.astype(np.float32), f"{name}.b")]
            conv = f"{name}.conv"
            nodes.append(helper.make_node("Conv", [current, f"{name}.w", f"{name}.b"], [conv],
                                          kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4))
            activation = layer.options.get("activation", "linear")
            if activation == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [conv], [name], alpha=0.1))
            elif activation == "linear":
                nodes.append(helper.make_node("Identity", [conv], [name]))
            else:
                raise ValueError(f"darknet activation {activation!r} is not supported")
            depth = filters
        elif layer.kind == "maxpool":
            size, stride = layer.int("size"), layer.int("stride", 1)
            pad = layer.int("padding", size - 1)
            nodes.append(helper.make_node("MaxPool", [current], [name], kernel_shape=[size, size],
                                          strides=[stride, stride],
                                          pads=[pad // 2, pad // 2, pad - pad // 2, pad - pad // 2]))
        elif layer.kind == "upsample":
            stride = layer.int("stride", 2)
            scales = numpy_helper.from_array(np.array([1, 1, stride, stride], dtype=np.float32), f"{name}.s")
            inits.append(scales)
            nodes.append(helper.make_node("Resize", [current, "", f"{name}.s"], [name], mode="nearest"))
        elif layer.kind == "route":
            sources = [i if i >= 0 else index + i for i in layer.ints("layers")]
            if len(sources) == 1:
                nodes.append(helper.make_node("Identity", [outputs[sources[0]]], [name]))
            else:
                nodes.append(helper.make_node("Concat", [outputs[i] for i in sources], [name], axis=1))
            depth = sum(channels[i] for i in sources)
        elif layer.kind == "yolo":
            anchors = np.array(layer.ints("anchors"), dtype=np.float32).reshape(-1, 2)[layer.ints("mask")]
            heads.append(Head(current, anchors, layer.int("classes")))
            nodes.append(helper.make_node("Identity", [current], [name]))
        else:
            raise ValueError(f"darknet layer [{layer.kind}] is not supported")
        outputs.append(name)
        channels.append(depth)
        current = name
    if pos != floats.size:
        raise ValueError(f"{weights} has {floats.size - pos} weights more than {cfg} declares")
    graph = helper.make_graph(
        nodes, "darknet", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "side", "side"])],
        [helper.make_tensor_value_info(head.output, TensorProto.FLOAT, None) for head in heads], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, heads, side


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode(raw: np.ndarray, head: Head, side: int) -> tuple[np.ndarray, np.ndarray]:
    """One image's output of one head (A*(5+C) x H x W) -> boxes (N, 4: cx, cy, w, h relative to the network
    input) and per-class scores (N, C: objectness x class probability), as darknet's `get_yolo_box`."""
    count = head.anchors.shape[0]
    grid_h, grid_w = raw.shape[-2:]
    values = raw.reshape(count, 5 + head.classes, grid_h, grid_w).transpose(0, 2, 3, 1)  # A, H, W, 5+C
    cols, rows = np.meshgrid(np.arange(grid_w), np.arange(grid_h))
    cx = (_sigmoid(values[..., 0]) + cols) / grid_w
    cy = (_sigmoid(values[..., 1]) + rows) / grid_h
    w = np.exp(values[..., 2]) * head.anchors[:, 0, None, None] / side
    h = np.exp(values[..., 3]) * head.anchors[:, 1, None, None] / side
    scores = _sigmoid(values[..., 4:5]) * _sigmoid(values[..., 5:])
    return np.stack([cx, cy, w, h], axis=-1).reshape(-1, 4), scores.reshape(-1, head.classes)
