"""The node-by-node rewriting of a TF.js graph into ONNX nodes, for `facelens.models.tfjs_onnx.convert`.

Invariant: every TF.js tensor is known either as a constant (a numpy array, folded when an op has only constant
inputs) or as an ONNX value with its rank and whether it is held NCHW (`nchw`, only 4-d tensors) or in TensorFlow's
own axis order. `nchw()` and `plain()` return a value in the wanted order, inserting one Transpose at most once
per value. Ops not listed in `GraphBuilder.add` raise ValueError naming them, and so does a MaxPool reading a
Pad's output: onnxruntime 1.30's Pad fusion turns that pair into a MaxPool whose padding is -inf, not the zeros
TensorFlow pads with (none of the packaged graphs has the pair; their Pads widen channels after a MaxPool).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from facelens.models.tfjs_onnx import const_array

TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}
BINARY = {"Add": "Add", "AddV2": "Add", "BiasAdd": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div",
          "Maximum": "Max", "Minimum": "Min"}
FOLD = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Max": np.maximum,
        "Min": np.minimum}
UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Elu": "Elu"}
CONVS = ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")


@dataclass(frozen=True)
class Value:
    """An ONNX value standing for a TF.js tensor."""

    name: str
    rank: int
    nchw: bool


def layout_const(value: np.ndarray, nchw: bool) -> np.ndarray:
    """A constant broadcast against a 4-d NCHW tensor: right-aligned to 4-d as TensorFlow broadcasts, permuted."""
    if not nchw or value.ndim == 0:
        return value
    return value.reshape((1,) * (4 - value.ndim) + value.shape).transpose(TO_NCHW)


class GraphBuilder:
    """Accumulates the ONNX nodes, initializers and inputs of one graph."""

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        self.tensors = tensors
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.graph_inputs: list[onnx.ValueInfoProto] = []
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, Value] = {}
        self._views: dict[tuple[str, bool], str] = {}
        self.padded: set[str] = set()  # outputs of Pad nodes
        self._count = 0

    # ------------------------------------------------------------------------------------------------ helpers
    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}__{self._count}"

    def init(self, value: np.ndarray, hint: str) -> str:
        name = self._fresh(hint)
        self.inits.append(const_array(value, name))
        return name

    def emit(self, op: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        output = self._fresh(hint)
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    @staticmethod
    def key(tensor: str) -> str:
        base, _, index = tensor.partition(":")
        if index not in ("", "0"):
            raise ValueError(f"output {index} of {base} is not convertible here (only single-output ops)")
        return base

    def const(self, tensor: str) -> np.ndarray:
        key = self.key(tensor)
        if key not in self.consts:
            raise ValueError(f"{tensor} must be a constant here")
        return self.consts[key]

    def is_const(self, tensor: str) -> bool:
        return self.key(tensor) in self.consts

    def value(self, tensor: str) -> Value:
        key = self.key(tensor)
        if key in self.consts:
            array = self.consts[key]
            return Value(self.init(array, key.split("/")[-1]), array.ndim, False)
        if key not in self.values:
            raise ValueError(f"{tensor} is read before it is computed")
        return self.values[key]

    def _view(self, tensor: str, nchw: bool) -> str:
        v = self.value(tensor)
        if v.nchw == nchw or v.rank != 4:
            if nchw and v.rank != 4:
                raise ValueError(f"{tensor} has rank {v.rank}, a 4-d NHWC tensor is needed")
            return v.name
        if (v.name, nchw) not in self._views:
            self._views[(v.name, nchw)] = self.emit("Transpose", [v.name], "nchw" if nchw else "nhwc",
                                                    perm=TO_NCHW if nchw else TO_NHWC)
        return self._views[(v.name, nchw)]

    def nchw(self, tensor: str) -> str:
        """The value of a 4-d tensor in NCHW order."""
        return self._view(tensor, True)

    def plain(self, tensor: str) -> str:
        """The value in TensorFlow's axis order."""
        return self._view(tensor, False)

    def set(self, name: str, onnx_name: str, rank: int, nchw: bool) -> None:
        self.values[name] = Value(onnx_name, rank, nchw and rank == 4)

    def activation(self, kind: str, x: str, extra: list[str], a: dict[str, Any], hint: str) -> str:
        """A fused or standalone activation of the NCHW-or-plain value `x` (its layout given by the caller)."""
        if kind in UNARY:
            return self.emit(UNARY[kind], [x], hint)
        if kind == "Relu6":
            return self.emit("Clip", [x, self.init(np.array(0.0), "zero"), self.init(np.array(6.0), "six")], hint)
        if kind == "LeakyRelu":
            return self.emit("LeakyRelu", [x], hint, alpha=float(a.get("leakyrelu_alpha", a.get("alpha", 0.2))))
        if kind == "Prelu":
            return self.emit("PRelu", [x, self.init(layout_const(self.const(extra[0]), True), "alpha")], hint)
        raise ValueError(f"activation {kind} is not convertible here")

    # ------------------------------------------------------------------------------------------------ ops
    def add(self, op: str, name: str, inputs: list[str], a: dict[str, Any]) -> None:
        """Rewrite one TF.js node."""
        hint = name.split("/")[-1] or op
        if op == "Const":
            if name not in self.tensors:
                raise ValueError(f"constant {name} has no weights in the manifest")
            self.consts[name] = self.tensors[name]
        elif op == "Placeholder":
            dims = [int(d.get("size", -1)) for d in a["shape"]["shape"].get("dim", [])]
            shape = ["batch" if i == 0 and d < 0 else (None if d < 0 else d) for i, d in enumerate(dims)]
            self.graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
            self.set(name, name, len(dims), False)
        elif op == "Identity":
            if self.is_const(inputs[0]):
                self.consts[name] = self.const(inputs[0])
            else:
                self.values[name] = self.value(inputs[0])
        elif op in CONVS:
            self._conv(op, name, inputs, a, hint)
        elif op in BINARY:
            self._binary(BINARY[op], name, inputs, hint)
        elif op in UNARY or op in ("Relu6", "LeakyRelu", "Prelu"):
            v = self.value(inputs[0])
            nchw = v.nchw
            x = v.name
            if op == "Prelu" and not nchw:
                x, nchw = self.nchw(inputs[0]), True
            self.set(name, self.activation(op, x, inputs[1:], a, hint), v.rank, nchw)
        elif op == "Softmax":
            v = self.value(inputs[0])
            self.set(name, self.emit("Softmax", [v.name], hint, axis=1 if v.nchw else -1), v.rank, v.nchw)
        elif op in ("MaxPool", "AvgPool"):
            if op == "MaxPool" and self.nchw(inputs[0]) in self.padded:
                raise ValueError(f"{name}: a MaxPool of a zero-padded tensor is not convertible here (onnxruntime "
                                 "1.30 fuses the Pad into the MaxPool, which pads with -inf instead of 0)")
            kernel, strides = a["ksize"][1:3], a["strides"][1:3]
            pads = {"auto_pad": "SAME_UPPER"} if a["padding"] == "SAME" else {"pads": [0, 0, 0, 0]}
            onnx_op = "MaxPool" if op == "MaxPool" else "AveragePool"
            self.set(name, self.emit(onnx_op, [self.nchw(inputs[0])], hint, kernel_shape=kernel, strides=strides,
                                     **pads), 4, True)
        elif op in ("Pad", "PadV2"):
            v = self.value(inputs[0])
            paddings = self.const(inputs[1]).astype(np.int64)
            if v.nchw:
                paddings = paddings[TO_NCHW]
            ins = [v.name, self.init(np.concatenate([paddings[:, 0], paddings[:, 1]]), "pads")]
            if op == "PadV2":
                ins.append(self.init(np.asarray(self.const(inputs[2]), np.float32).reshape(()), "pad_value"))
            self.set(name, self.emit("Pad", ins, hint, mode="constant"), v.rank, v.nchw)
            self.padded.add(self.values[name].name)
        elif op == "ConcatV2":
            parts, axis = inputs[:-1], int(self.const(inputs[-1]))
            ranks = {self.value(p).rank for p in parts}
            nchw = ranks == {4} and all(self.value(p).nchw or self.is_const(p) for p in parts)
            rank = ranks.pop()
            axis %= rank
            if nchw:
                names = [self.nchw(p) if not self.is_const(p) else
                         self.init(layout_const(self.const(p), True), "part") for p in parts]
                axis = NHWC_TO_NCHW_AXIS[axis]
            else:
                names = [self.plain(p) for p in parts]
            self.set(name, self.emit("Concat", names, hint, axis=axis), rank, nchw)
        elif op == "Squeeze":
            v = self.value(inputs[0])
            dims = [d % v.rank for d in a.get("squeeze_dims", a.get("axis", []))]
            if not dims:
                raise ValueError(f"{name}: Squeeze without squeeze_dims is not convertible here")
            axes = self.init(np.array(dims, np.int64), "axes")
            self.set(name, self.emit("Squeeze", [self.plain(inputs[0]), axes], hint), v.rank - len(dims), False)
        elif op == "Reshape":
            shape = self.const(inputs[1]).astype(np.int64).reshape(-1)
            if (shape == 0).any():
                raise ValueError(f"{name}: reshaping to a zero-sized dimension is not convertible here")
            self.set(name, self.emit("Reshape", [self.plain(inputs[0]), self.init(shape, "shape")], hint),
                     len(shape), False)
        elif op in ("MatMul", "_FusedMatMul"):
            ta, tb = int(a.get("transpose_a", False)), int(a.get("transpose_b", False))
            x, b = self.plain(inputs[0]), self.value(inputs[1]).name
            fused = list(a.get("fused_ops", []))
            if fused[:1] == ["BiasAdd"]:
                out = self.emit("Gemm", [x, b, self.value(inputs[2]).name], hint, transA=ta, transB=tb)
                fused, extra = fused[1:], inputs[3:]
            else:
                if ta or tb:
                    raise ValueError(f"{name}: transposed MatMul without bias is not convertible here")
                out, extra = self.emit("MatMul", [x, b], hint), inputs[2:]
            for kind in fused:
                out = self.activation(kind, out, extra, a, f"{hint}_{kind}")
            self.set(name, out, 2, False)
        else:
            raise ValueError(f"TF.js op {op} ({name}) is not convertible here")

    def _conv(self, op: str, name: str, inputs: list[str], a: dict[str, Any], hint: str) -> None:
        x, kernel = self.nchw(inputs[0]), self.const(inputs[1])
        kh, kw = kernel.shape[:2]
        if op in ("Conv2D", "_FusedConv2D"):
            weight, group = kernel.transpose(3, 2, 0, 1), 1
        else:  # depthwise: [H, W, C, M] -> [C*M, 1, H, W], output channel c*M + m
            channels, multiplier = kernel.shape[2], kernel.shape[3]
            weight = kernel.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)
            group = channels
        if a.get("data_format", "NHWC") != "NHWC":
            raise ValueError(f"{name}: data_format {a['data_format']} is not convertible here")
        options: dict[str, Any] = {"kernel_shape": [kh, kw], "strides": a["strides"][1:3],
                                   "dilations": (a.get("dilations") or [1, 1, 1, 1])[1:3], "group": group}
        if a["padding"] == "SAME":
            options["auto_pad"] = "SAME_UPPER"
        elif a["padding"] == "VALID":
            options["pads"] = [0, 0, 0, 0]
        else:  # EXPLICIT: [n0, n1, h0, h1, w0, w1, c0, c1]
            p = a["explicit_paddings"]
            options["pads"] = [p[2], p[4], p[3], p[5]]
        ins = [x, self.init(weight, f"{hint}_w")]
        fused = list(a.get("fused_ops", []))
        extra = inputs[2:]
        if fused[:1] == ["BiasAdd"]:
            ins.append(self.init(self.const(extra[0]).reshape(-1), f"{hint}_b"))
            fused, extra = fused[1:], extra[1:]
        elif fused:
            raise ValueError(f"{name}: fused ops {fused} are not convertible here")
        out = self.emit("Conv", ins, hint, **options)
        for kind in fused:
            out = self.activation(kind, out, extra, a, f"{hint}_{kind}")
        self.set(name, out, 4, True)

    def _binary(self, op: str, name: str, inputs: list[str], hint: str) -> None:
        left, right = inputs[0], inputs[1]
        if self.is_const(left) and self.is_const(right):
            self.consts[name] = np.asarray(FOLD[op](self.const(left), self.const(right)))
            return
        if self.is_const(left) or self.is_const(right):
            v = self.value(right if self.is_const(left) else left)
            c = self.init(layout_const(self.const(left if self.is_const(left) else right), v.nchw), "c")
            ins = [c, v.name] if self.is_const(left) else [v.name, c]
            self.set(name, self.emit(op, ins, hint), v.rank, v.nchw)
            return
        lv, rv = self.value(left), self.value(right)
        if lv.nchw and rv.nchw:
            self.set(name, self.emit(op, [lv.name, rv.name], hint), 4, True)
        else:
            self.set(name, self.emit(op, [self.plain(left), self.plain(right)], hint), max(lv.rank, rv.rank), False)
