"""A numpy interpreter of TF.js graph models in TensorFlow's own NHWC layout: the reference the ONNX conversion
(`facelens.models.tfjs_onnx`) is checked against. Written from TensorFlow's op definitions, sharing no code with
the converter beyond reading the files (`attrs`, `inputs_of`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from facelens.models.tfjs_onnx import attrs, inputs_of, output_names


def _same(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pad_spatial(x: np.ndarray, kh: int, kw: int, strides: list[int], padding: str, dil: list[int],
                 value: float = 0.0) -> np.ndarray:
    if padding == "VALID":
        return x
    top, bottom = _same(x.shape[1], kh, strides[0], dil[0])
    left, right = _same(x.shape[2], kw, strides[1], dil[1])
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(x: np.ndarray, kh: int, kw: int, strides: list[int], dil: list[int]) -> np.ndarray:
    """(N, OH, OW, C, kh, kw) windows of an already padded NHWC input."""
    eh, ew = (kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1
    view = sliding_window_view(x, (eh, ew), axis=(1, 2))[:, ::strides[0], ::strides[1]]
    return view[..., ::dil[0], ::dil[1]]


def conv2d(x: np.ndarray, kernel: np.ndarray, strides: list[int], padding: str, dil: list[int]) -> np.ndarray:
    kh, kw = kernel.shape[:2]
    win = _windows(_pad_spatial(x, kh, kw, strides, padding, dil), kh, kw, strides, dil)
    return np.einsum("nhwcij,ijco->nhwo", win, kernel, optimize=True)


def depthwise(x: np.ndarray, kernel: np.ndarray, strides: list[int], padding: str, dil: list[int]) -> np.ndarray:
    kh, kw, c, m = kernel.shape
    win = _windows(_pad_spatial(x, kh, kw, strides, padding, dil), kh, kw, strides, dil)
    out = np.einsum("nhwcij,ijcm->nhwcm", win, kernel, optimize=True)
    return out.reshape(*out.shape[:3], c * m)


def pool(x: np.ndarray, kind: str, ksize: list[int], strides: list[int], padding: str) -> np.ndarray:
    kh, kw = ksize[1:3]
    s = strides[1:3]
    if kind == "MaxPool":
        win = _windows(_pad_spatial(x, kh, kw, s, padding, [1, 1], -np.inf), kh, kw, s, [1, 1])
        return win.max(axis=(-2, -1))
    win = _windows(_pad_spatial(x, kh, kw, s, padding, [1, 1], np.nan), kh, kw, s, [1, 1])
    return np.nanmean(win, axis=(-2, -1))  # TensorFlow's average excludes the padding


def fused_epilogue(y: np.ndarray, extra: list[np.ndarray], a: dict[str, Any]) -> np.ndarray:
    """What a _Fused* op does after its conv or matmul: `fused_ops` in order, a leading BiasAdd taking the first
    extra input, each activation the rest."""
    fused = list(a.get("fused_ops", []))
    if fused[:1] == ["BiasAdd"]:
        y, fused, extra = y + extra[0], fused[1:], extra[1:]
    for kind in fused:
        y = activation(kind, y, extra, a)
    return y


def activation(kind: str, x: np.ndarray, extra: list[np.ndarray], a: dict[str, Any]) -> np.ndarray:
    if kind == "Relu":
        return np.maximum(x, 0)
    if kind == "Relu6":
        return np.clip(x, 0, 6)
    if kind == "Prelu":
        return np.where(x >= 0, x, x * extra[0])
    if kind == "LeakyRelu":
        alpha = a.get("leakyrelu_alpha", a.get("alpha", 0.2))
        return np.where(x >= 0, x, x * alpha)
    if kind == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if kind == "Tanh":
        return np.tanh(x)
    if kind == "Elu":
        return np.where(x >= 0, x, np.expm1(x))
    raise ValueError(kind)


def run(model: dict[str, Any], tensors: dict[str, np.ndarray], feeds: dict[str, np.ndarray]
        ) -> dict[str, np.ndarray]:
    """Every output of the graph for the NHWC float inputs `feeds` (by placeholder name), in float64."""
    env: dict[str, np.ndarray] = {}
    for node in model["modelTopology"]["node"]:
        op, name, a = node["op"], node["name"], attrs(node)
        ins = [env[i.split(":")[0]] for i in inputs_of(node)]
        if op == "Const":
            env[name] = tensors[name].astype(np.float64) if tensors[name].dtype.kind == "f" else tensors[name]
        elif op == "Placeholder":
            env[name] = feeds[name].astype(np.float64)
        elif op == "Identity":
            env[name] = ins[0]
        elif op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
            strides, dil = a["strides"][1:3], (a.get("dilations") or [1, 1, 1, 1])[1:3]
            f = conv2d if "Depthwise" not in op else depthwise
            y = f(ins[0], ins[1], strides, a["padding"], dil)
            env[name] = fused_epilogue(y, ins[2:], a)
        elif op in ("AddV2", "Add", "BiasAdd"):
            env[name] = ins[0] + ins[1]
        elif op == "Sub":
            env[name] = ins[0] - ins[1]
        elif op == "Mul":
            env[name] = ins[0] * ins[1]
        elif op == "RealDiv":
            env[name] = ins[0] / ins[1]
        elif op == "Maximum":
            env[name] = np.maximum(ins[0], ins[1])
        elif op == "Minimum":
            env[name] = np.minimum(ins[0], ins[1])
        elif op in ("Relu", "Relu6", "Prelu", "LeakyRelu", "Sigmoid", "Tanh", "Elu"):
            env[name] = activation(op, ins[0], ins[1:], a)
        elif op == "Softmax":
            e = np.exp(ins[0] - ins[0].max(axis=-1, keepdims=True))
            env[name] = e / e.sum(axis=-1, keepdims=True)
        elif op in ("MaxPool", "AvgPool"):
            env[name] = pool(ins[0], op, a["ksize"], a["strides"], a["padding"])
        elif op in ("Pad", "PadV2"):
            value = float(ins[2]) if op == "PadV2" else 0.0
            env[name] = np.pad(ins[0], [tuple(int(v) for v in row) for row in ins[1]], constant_values=value)
        elif op == "ConcatV2":
            env[name] = np.concatenate(ins[:-1], axis=int(ins[-1]))
        elif op == "Squeeze":
            env[name] = np.squeeze(ins[0], axis=tuple(a["squeeze_dims"]))
        elif op == "Reshape":
            env[name] = ins[0].reshape([int(v) for v in ins[1]])
        elif op in ("MatMul", "_FusedMatMul"):
            left = ins[0].T if a.get("transpose_a") else ins[0]
            right = ins[1].T if a.get("transpose_b") else ins[1]
            y = left @ right
            env[name] = fused_epilogue(y, ins[2:], a)
        else:
            raise ValueError(op)
    return {name: env[name] for name in output_names(model)}


def run_layers(model: dict[str, Any], tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The output of a TF.js layers model (a Keras config) for the NHWC input `x`, in float64."""
    config = model["modelTopology"].get("model_config", model["modelTopology"])["config"]
    env: dict[str, np.ndarray] = {}

    def act(kind: str, y: np.ndarray) -> np.ndarray:
        if kind == "softmax":
            e = np.exp(y - y.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        return np.maximum(y, 0) if kind == "relu" else y

    for layer in config["layers"]:
        kind, cfg, name = layer["class_name"], layer["config"], layer["config"]["name"]
        ins = [env[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        w = {k.split("/")[-1]: v.astype(np.float64) for k, v in tensors.items() if k.startswith(f"{name}/")}
        if kind == "InputLayer":
            y = x.astype(np.float64)
        elif kind in ("Conv2D", "DepthwiseConv2D"):
            strides, padding = list(cfg["strides"]), cfg["padding"].upper()
            dil = list(cfg.get("dilation_rate", [1, 1]))
            if kind == "Conv2D":
                y = conv2d(ins[0], w["kernel"], strides, padding, dil)
            else:
                y = depthwise(ins[0], w["depthwise_kernel"], strides, padding, dil)
            y = act(cfg.get("activation", "linear"), y + w["bias"] if cfg.get("use_bias") else y)
        elif kind == "BatchNormalization":
            scale = w["gamma"] / np.sqrt(w["moving_variance"] + cfg.get("epsilon", 1e-3))
            y = (ins[0] - w["moving_mean"]) * scale + w["beta"]
        elif kind == "ReLU":
            y = np.clip(ins[0], 0, cfg.get("max_value") or np.inf)
        elif kind == "Activation":
            y = act(cfg["activation"], ins[0])
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = cfg["padding"]
            y = np.pad(ins[0], ((0, 0), (top, bottom), (left, right), (0, 0)))
        elif kind == "Add":
            y = sum(ins)
        elif kind in ("AveragePooling2D", "MaxPooling2D"):
            y = pool(ins[0], "AvgPool" if kind.startswith("Average") else "MaxPool", [1, *cfg["pool_size"], 1],
                     [1, *cfg["strides"], 1], cfg["padding"].upper())
        elif kind == "Flatten":
            y = ins[0].reshape(len(ins[0]), -1)
        elif kind == "Dense":
            y = act(cfg.get("activation", "linear"), ins[0] @ w["kernel"] + w.get("bias", 0.0))
        elif kind == "Dropout":
            y = ins[0]
        else:
            raise ValueError(kind)
        env[name] = y
    return env[config["output_layers"][0][0]]
