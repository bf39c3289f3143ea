"""A TensorFlow.js graph model (model.json + weight shards) rewritten as an ONNX graph, with only `onnx` and `numpy`.

Reads what npm packages ship: a `model.json`, or a JavaScript module whose export is the same object written as a
JS literal (nsfwjs' `model.min.js`); weight shards as raw `.bin` files or as JS modules exporting the shard as one
base64 string (nsfwjs' `group1-shard1of2.min.js`); weights stored as float32/int32, float16, or uint8/uint16
affine-quantized (`q * scale + min`), dequantized once here. Files are read through a `read(name) -> bytes`
callable, so a tarball made by `npm pack` is read in place (`tar_reader`).

Ops covered (what nsfwjs' MobileNetV2 "mid" graph and the MediaPipe iris / face-mesh graphs of `@vladmandic/human`
use, plus their plain relatives): Placeholder, Const, Identity, _FusedConv2D and Conv2D, FusedDepthwiseConv2dNative
and DepthwiseConv2dNative (fused BiasAdd then Relu, Relu6, Prelu, LeakyRelu, Elu, Sigmoid or Tanh), BiasAdd,
AddV2/Add, Sub, Mul, RealDiv, Maximum, Minimum, Relu, Relu6, Elu, LeakyRelu, Prelu, Sigmoid, Tanh, Softmax,
MaxPool, AvgPool, Pad, ConcatV2, Squeeze, Reshape, MatMul and _FusedMatMul. Anything else is refused by name.
A layers model (a Keras config, e.g. nsfwjs' MobileNetV2 and InceptionV3) goes through `keras_onnx.from_config`,
which covers the Keras layers listed there (not Concatenate, so not InceptionV3).

Layout: TF.js graphs are NHWC, ONNX convolutions NCHW. The graph input is transposed once to NCHW and every 4-d
tensor a convolution, pooling or activation produces stays NCHW; constants that meet them are permuted to match
(per-channel vectors become (C, 1, 1)); ops whose meaning depends on the axis order (Reshape, Squeeze) and the
graph outputs get the NHWC order back by a transpose. TensorFlow's SAME padding (the odd extra row/column at the
end) is ONNX's SAME_UPPER. `tests/unit/test_tfjs_onnx.py` checks the result against a numpy NHWC interpreter of
the same graph.
"""

from __future__ import annotations

import base64
import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
Reader = Callable[[str], bytes]

# ---------------------------------------------------------------------------------------------- reading files


def tar_reader(tarball: Path, folder: str) -> Reader:
    """Read files of `folder` (e.g. "package/models") inside an npm tarball, without unpacking it: the folder's
    files are read in one pass over the archive on the first call (a gzip stream has no index)."""
    prefix = folder.rstrip("/") + "/"
    files: dict[str, bytes] = {}

    def read(name: str) -> bytes:
        if not files:
            with tarfile.open(tarball, "r:gz") as archive:
                for member in archive:
                    if member.isfile() and member.name.startswith(prefix) and "/" not in member.name[len(prefix):]:
                        handle = archive.extractfile(member)
                        files[member.name[len(prefix):]] = handle.read() if handle else b""
        if name not in files:
            raise FileNotFoundError(f"{prefix}{name} is not a file in {tarball}")
        return files[name]

    return read


def dir_reader(folder: Path) -> Reader:
    """Read files of a folder on disk."""
    return lambda name: (folder / name).read_bytes()


def js_literal(text: str, start: int = 0) -> Any:
    """The value of the JavaScript literal (object, array, string, number, true/false/null, !0/!1) at `start`:
    JSON with unquoted keys and numbers such as `.5` or `-.02`, as minifiers write it."""
    pos = start
    n = len(text)
    number = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
    ident = re.compile(r"[A-Za-z_$][\w$]*")

    def skip() -> None:
        nonlocal pos
        while pos < n and text[pos] in " \t\r\n":
            pos += 1

    def value() -> Any:
        nonlocal pos
        skip()
        c = text[pos]
        if c == "{":
            pos += 1
            out: dict[str, Any] = {}
            skip()
            while text[pos] != "}":
                if text[pos] in "\"'":
                    key = string()
                else:
                    match = ident.match(text, pos) or number.match(text, pos)
                    if match is None:
                        raise ValueError(f"bad object key at {pos}")
                    key, pos = match.group(0), match.end()
                skip()
                if text[pos] != ":":
                    raise ValueError(f"expected ':' at {pos}")
                pos += 1
                out[key] = value()
                skip()
                if text[pos] == ",":
                    pos += 1
                    skip()
            pos += 1
            return out
        if c == "[":
            pos += 1
            items: list[Any] = []
            skip()
            while text[pos] != "]":
                items.append(value())
                skip()
                if text[pos] == ",":
                    pos += 1
                    skip()
            pos += 1
            return items
        if c in "\"'":
            return string()
        if text.startswith("!0", pos) or text.startswith("!1", pos):
            pos += 2
            return text[pos - 1] == "0"
        for word, result in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                pos += len(word)
                return result
        match = number.match(text, pos)
        if match is None:
            raise ValueError(f"unexpected {text[pos:pos + 20]!r} at {pos}")
        pos = match.end()
        literal = match.group(0)
        return float(literal) if any(ch in literal for ch in ".eE") else int(literal)

    def string() -> str:
        nonlocal pos
        quote, pos = text[pos], pos + 1
        end = pos
        while text[end] != quote:
            end += 2 if text[end] == "\\" else 1
        raw, pos = text[pos:end], end + 1
        if "\\" not in raw:
            return raw
        if quote == "'":
            raw = raw.replace("\\'", "'").replace('"', '\\"')
        return json.loads(f'"{raw}"')

    return value()


def model_json(read: Reader, name: str) -> dict[str, Any]:
    """The model.json object of file `name`: JSON, or a JS module exporting it (the literal after `exports=`)."""
    text = read(name).decode("utf-8")
    if name.endswith(".json"):
        return json.loads(text)
    at = text.find("exports={")
    if at < 0:
        raise ValueError(f"{name}: no `exports={{...}}` object in this JavaScript file")
    return js_literal(text, at + len("exports="))


def shard(read: Reader, path: str) -> bytes:
    """The bytes of one weight shard named `path` in a manifest: a raw file, or a JS module exporting it as base64
    (`path.min.js` or `path.js`, as nsfwjs bundles them)."""
    for name, encoded in ((path, False), (f"{path}.min.js", True), (f"{path}.js", True)):
        try:
            data = read(name)
        except (FileNotFoundError, KeyError):
            continue
        if not encoded:
            return data
        match = re.search(rb'exports="([A-Za-z0-9+/=]*)"', data)
        if match is None:
            raise ValueError(f"{name}: no base64 string exported")
        return base64.b64decode(match.group(1))
    raise FileNotFoundError(f"weight shard {path} not found (nor {path}.min.js)")


_RAW = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


def weights(manifest: list[dict[str, Any]], read: Reader) -> dict[str, np.ndarray]:
    """Every weight of a `weightsManifest`, dequantized to its original dtype."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join(shard(read, path) for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant is None:
                kind = np.dtype(_RAW[spec["dtype"]])
                values = np.frombuffer(data, kind, count, offset)
            elif quant["dtype"] in ("uint8", "uint16"):
                kind = np.dtype(np.uint8 if quant["dtype"] == "uint8" else np.uint16)
                q = np.frombuffer(data, kind, count, offset).astype(np.float32)
                values = q * np.float32(quant["scale"]) + np.float32(quant["min"])
            elif quant["dtype"] == "float16":
                kind = np.dtype(np.float16)
                values = np.frombuffer(data, kind, count, offset).astype(np.float32)
            else:
                raise ValueError(f"weight {spec['name']}: quantization {quant['dtype']} is not supported")
            offset += count * kind.itemsize
            out[spec["name"]] = np.asarray(values, dtype=_RAW.get(spec["dtype"], np.float32)).reshape(shape)
        if offset != len(data):
            raise ValueError(f"weights of {group['paths']}: {len(data) - offset} bytes left over")
    return out


def attrs(node: dict[str, Any]) -> dict[str, Any]:
    """A node's attributes as Python values (strings base64-decoded, lists of ints as ints)."""
    out: dict[str, Any] = {}
    for key, value in node.get("attr", {}).items():
        if "s" in value:
            out[key] = base64.b64decode(value["s"]).decode()
        elif "list" in value:
            items = value["list"]
            out[key] = ([base64.b64decode(s).decode() for s in items["s"]] if "s" in items
                        else [int(i) for i in items.get("i", [])] or [float(f) for f in items.get("f", [])])
        elif "i" in value:
            out[key] = int(value["i"])
        elif "f" in value:
            out[key] = float(value["f"])
        elif "b" in value:
            out[key] = bool(value["b"])
        else:
            out[key] = value
    return out


def inputs_of(node: dict[str, Any]) -> list[str]:
    """A node's data inputs by tensor name ("op" or "op:1"), control inputs ("^op") left out."""
    return [name for name in node.get("input", []) if not name.startswith("^")]


def output_names(model: dict[str, Any]) -> list[str]:
    """The graph's outputs: its signature's, else the nodes no other node reads."""
    meta = model.get("signature") or model.get("userDefinedMetadata", {}).get("signature") or {}
    if meta.get("outputs"):
        return [spec["name"].split(":")[0] for spec in meta["outputs"].values()]
    nodes = model["modelTopology"]["node"]
    read = {name.split(":")[0] for node in nodes for name in inputs_of(node)}
    return [node["name"] for node in nodes if node["name"] not in read and node["op"] != "Const"]


def load(read: Reader, name: str = "model.json") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """model.json and its dequantized weights."""
    model = model_json(read, name)
    return model, weights(model["weightsManifest"], read)


def convert(model: dict[str, Any], tensors: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX graph of a TF.js graph model: inputs and outputs keep their TF.js names (without ":0") and NHWC
    layout; the first dimension is symbolic ("batch")."""
    from facelens.models.tfjs_graph import GraphBuilder

    if model.get("format", "graph-model") != "graph-model" or "node" not in model["modelTopology"]:
        raise ValueError("not a TF.js graph model (layers models are Keras configs: see models.keras_onnx)")
    builder = GraphBuilder(tensors)
    for node in model["modelTopology"]["node"]:
        builder.add(node["op"], node["name"], inputs_of(node), attrs(node))
    outputs = [(name, builder.plain(name)) for name in output_names(model)]
    nodes = builder.nodes + [helper.make_node("Identity", [source], [name], name=f"{name}__out")
                             for name, source in outputs]
    graph = helper.make_graph(
        nodes, "tfjs", builder.graph_inputs,
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch"] + [None] * (builder.value(name).rank - 1))
         for name, _ in outputs], builder.inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(onnx_model)
    return onnx_model


def convert_layers(model: dict[str, Any], tensors: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX graph of a TF.js layers model (a Keras config and weights named "layer/weight"), through
    `facelens.models.keras_onnx`: its conventions apply (input `input` NCHW, output `output`, Keras' layers)."""
    from facelens.models.keras_onnx import from_config

    def layer_tensors(layer: str) -> dict[str, np.ndarray]:
        prefix = f"{layer}/"
        return {key.split("/")[-1].split(":")[0]: value for key, value in tensors.items() if key.startswith(prefix)}

    topology = model["modelTopology"]
    return from_config(topology.get("model_config", topology), layer_tensors)


def convert_files(read: Reader, name: str = "model.json") -> onnx.ModelProto:
    """Read and convert a graph or layers model in one step."""
    model, tensors = load(read, name)
    return convert(model, tensors) if "node" in model["modelTopology"] else convert_layers(model, tensors)


def const_array(value: np.ndarray, name: str) -> onnx.TensorProto:
    """An initializer, float tensors as float32 and integer ones as int64 (shapes, paddings, axes)."""
    kind = np.int64 if np.issubdtype(value.dtype, np.integer) else np.float32
    return numpy_helper.from_array(np.ascontiguousarray(value, dtype=kind), name)
