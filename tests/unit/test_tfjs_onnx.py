"""TF.js graph models converted to ONNX match a numpy NHWC interpreter of the same graph (tests/unit/tfjs_reference).

A synthetic graph written the way nsfwjs ships its models (model.json as a minified JS literal, the weights as one
base64 shard in a JS module, uint8- and float16-quantized) covers every op the converter handles; the real graphs
(nsfwjs' MobileNetV2 "mid", MediaPipe iris and face mesh from `@vladmandic/human`) are checked from the npm
tarballs `make install` fetches.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from facelens.config import models_from_env
from facelens.models import tfjs_onnx
from facelens.models.npm import tarball
from facelens.models.registry import ModelNotFoundError
from tests.unit import tfjs_reference

RNG = np.random.default_rng(7)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ints(*values: int) -> dict:
    return {"list": {"i": [str(v) for v in values]}}


class Graph:
    """Builds a TF.js model.json and its weight buffer."""

    def __init__(self) -> None:
        self.nodes: list[dict] = []
        self.specs: list[dict] = []
        self.data = bytearray()

    def const(self, name: str, value: np.ndarray, quant: str | None = None) -> str:
        value = np.asarray(value)
        spec = {"name": name, "shape": list(value.shape), "dtype": "int32" if value.dtype.kind == "i" else "float32"}
        if quant == "uint8":
            low, high = float(value.min()), float(value.max())
            scale = (high - low) / 255 or 1.0
            self.data += np.round((value - low) / scale).astype(np.uint8).tobytes()
            spec["quantization"] = {"dtype": "uint8", "min": low, "scale": scale}
        elif quant == "float16":
            self.data += value.astype(np.float16).tobytes()
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        else:
            self.data += value.astype(np.int32 if spec["dtype"] == "int32" else np.float32).tobytes()
        self.specs.append(spec)
        self.nodes.append({"name": name, "op": "Const", "attr": {"value": {"tensor": {}}}})
        return name

    def op(self, op: str, name: str, inputs: list[str], **attr: dict) -> str:
        self.nodes.append({"name": name, "op": op, "input": inputs, "attr": attr})
        return name

    def model(self) -> dict:
        return {"format": "graph-model", "modelTopology": {"node": self.nodes},
                "weightsManifest": [{"paths": ["group1-shard1of1"], "weights": self.specs}]}


def conv_attr(strides: int, padding: str, fused: list[str]) -> dict:
    return {"strides": ints(1, strides, strides, 1), "padding": {"s": b64(padding)},
            "data_format": {"s": b64("NHWC")}, "dilations": ints(1, 1, 1, 1),
            "fused_ops": {"list": {"s": [b64(f) for f in fused]}}}


def synthetic() -> Graph:
    g, r = Graph(), RNG.standard_normal
    g.op("Placeholder", "input", [], shape={"shape": {"dim": [{"size": "-1"}, {"size": "16"}, {"size": "16"},
                                                                {"size": "3"}]}})
    x = g.op("Mul", "scaled", [g.const("two", np.array(2.0, np.float32)), "input"])
    x = g.op("Sub", "centred", [x, g.const("mean", np.array([0.5, 1.0, 1.5], np.float32))])
    x = g.op("_FusedConv2D", "conv1", [x, g.const("conv1/w", r((3, 3, 3, 8)), "uint8"),
                                       g.const("conv1/b", r(8))], **conv_attr(2, "SAME", ["BiasAdd", "Relu6"]))
    x = g.op("FusedDepthwiseConv2dNative", "dw1", [x, g.const("dw1/w", r((3, 3, 8, 1))), g.const("dw1/b", r(8))],
             **conv_attr(1, "SAME", ["BiasAdd", "Relu6"]))
    d = g.op("DepthwiseConv2dNative", "dw2", [x, g.const("dw2/w", r((3, 3, 8, 2)), "float16")],
             **conv_attr(2, "SAME", []))
    p = g.op("_FusedConv2D", "pw", [d, g.const("pw/w", r((1, 1, 16, 16))), g.const("pw/b", r(16)),
                                    g.const("pw/alpha", np.abs(r((1, 1, 16))) * 0.2)],
             **conv_attr(1, "VALID", ["BiasAdd", "Prelu"]))
    s = g.op("Conv2D", "skip", [d, g.const("skip/w", r((1, 1, 16, 16)))], **conv_attr(1, "VALID", []))
    x = g.op("AddV2", "residual", [p, s])
    x = g.op("Pad", "pad", [x, g.const("pad/p", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))])
    x = g.op("Tanh", "squash", [x])
    x = g.op("MaxPool", "max", [x], ksize=ints(1, 2, 2, 1), strides=ints(1, 2, 2, 1), padding={"s": b64("VALID")})
    y = g.op("Sigmoid", "gate", [x])
    x = g.op("ConcatV2", "concat", [x, y, g.const("axis", np.array(-1, np.int32))])
    x = g.op("AvgPool", "avg", [x], ksize=ints(1, 3, 3, 1), strides=ints(1, 1, 1, 1), padding={"s": b64("SAME")})
    g.op("Identity", "map", [x])
    flat = g.op("Reshape", "flat", [x, g.const("flat/shape", np.array([-1, 288], np.int32))])
    logits = g.op("_FusedMatMul", "fc", [flat, g.const("fc/w", r((288, 5)) * 0.1), g.const("fc/b", r(5))],
                  fused_ops={"list": {"s": [b64("BiasAdd")]}}, transpose_a={"b": False}, transpose_b={"b": False})
    g.op("Softmax", "probs", [logits])
    pooled = g.op("AvgPool", "gap", [x], ksize=ints(1, 3, 3, 1), strides=ints(1, 1, 1, 1),
                  padding={"s": b64("VALID")})
    vec = g.op("Squeeze", "vector", [pooled], squeeze_dims=ints(1, 2))
    g.op("MatMul", "vec", [vec, g.const("proj", r((32, 4)))])
    return g


def minified(value: object) -> str:
    """JSON written as a minifier writes a JS literal: keys unquoted, "0.5" as ".5"."""
    text = re.sub(r'"([A-Za-z_$][\w$]*)":', r"\1:", json.dumps(value, separators=(",", ":")))
    return re.sub(r"([:,\[])(-?)0\.", r"\1\2.", text)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tfjs")
    g = synthetic()
    wrapper = '!function(e){module.exports=e()}(function(){return{1:[function(e,a,n){a.exports=%s},{}]}});'
    (folder / "model.min.js").write_text(wrapper % minified(g.model()))
    (folder / "group1-shard1of1.min.js").write_text(wrapper % f'"{base64.b64encode(bytes(g.data)).decode()}"')
    (folder / "model.json").write_text(json.dumps(g.model()))
    (folder / "group1-shard1of1").write_bytes(bytes(g.data))
    return folder


def session(model: object) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def check(model: dict, tensors: dict, shape: tuple[int, ...], atol: float) -> dict[str, np.ndarray]:
    onnx_model = tfjs_onnx.convert(model, tensors)
    run = session(onnx_model)
    name = run.get_inputs()[0].name
    x = RNG.random((2, *shape)).astype(np.float32)
    got = dict(zip([o.name for o in run.get_outputs()], run.run(None, {name: x}), strict=True))
    want = tfjs_reference.run(model, tensors, {name: x})
    assert set(got) == set(want)
    for key in want:
        assert got[key].shape == want[key].shape, key
        np.testing.assert_allclose(got[key], want[key], atol=atol, rtol=1e-4, err_msg=key)
    return got


def test_js_literal_reads_minified_objects() -> None:
    text = 'x={a:1,"b c":[.5,-.02,1e-3,!0,!1,null,"q\\"uote"],d:{e:\'s\'}};'
    assert tfjs_onnx.js_literal(text, 2) == {"a": 1, "b c": [0.5, -0.02, 0.001, True, False, None, 'q"uote'],
                                             "d": {"e": "s"}}


def test_base64_js_bundle_and_binary_files_give_the_same_weights(bundle: Path) -> None:
    js_model, js_tensors = tfjs_onnx.load(tfjs_onnx.dir_reader(bundle), "model.min.js")
    json_model, bin_tensors = tfjs_onnx.load(tfjs_onnx.dir_reader(bundle), "model.json")
    assert js_model == json_model
    assert js_tensors.keys() == bin_tensors.keys()
    for key in js_tensors:
        np.testing.assert_array_equal(js_tensors[key], bin_tensors[key])
    spec = next(s for s in json_model["weightsManifest"][0]["weights"] if s["name"] == "conv1/w")
    q = spec["quantization"]  # uint8 affine: the smallest code is `min`, the largest min + 255 scale
    assert js_tensors["conv1/w"].min() == pytest.approx(q["min"], abs=1e-6)
    assert js_tensors["conv1/w"].max() == pytest.approx(q["min"] + 255 * q["scale"], abs=1e-5)
    assert js_tensors["dw2/w"].dtype == np.float32


def test_every_op_matches_the_numpy_reference(bundle: Path) -> None:
    model, tensors = tfjs_onnx.load(tfjs_onnx.dir_reader(bundle), "model.min.js")
    got = check(model, tensors, (16, 16, 3), atol=1e-5)
    assert got["map"].shape == (2, 3, 3, 32)  # 4-d outputs keep TensorFlow's NHWC order
    np.testing.assert_allclose(got["probs"].sum(axis=1), 1.0, atol=1e-6)


def test_unknown_ops_are_refused_by_name(bundle: Path) -> None:
    model, tensors = tfjs_onnx.load(tfjs_onnx.dir_reader(bundle), "model.json")
    model["modelTopology"]["node"].append({"name": "odd", "op": "Cumsum", "input": ["probs"]})
    with pytest.raises(ValueError, match="Cumsum"):
        tfjs_onnx.convert(model, tensors)


def test_a_max_pool_of_zero_padding_is_refused(bundle: Path) -> None:
    model, tensors = tfjs_onnx.load(tfjs_onnx.dir_reader(bundle), "model.json")
    for node in model["modelTopology"]["node"]:
        if node["name"] == "max":
            node["input"] = ["pad"]
    with pytest.raises(ValueError, match="MaxPool of a zero-padded"):
        tfjs_onnx.convert(model, tensors)


def npm_reader(package: str, version: str, folder: str) -> tfjs_onnx.Reader:
    try:
        path = tarball(package, version, models_from_env().npm_dir)
    except ModelNotFoundError as exc:
        pytest.skip(f"not installed: {exc}")
    return tfjs_onnx.tar_reader(path, folder)


@pytest.mark.parametrize(("package", "version", "folder", "name", "shape"), [
    ("nsfwjs", "4.3.0", "package/dist/models/mobilenet_v2_mid", "model.min.js", (224, 224, 3)),
    ("@vladmandic/human", "3.3.6", "package/models", "iris.json", (64, 64, 3)),
    ("@vladmandic/human", "3.3.6", "package/models", "facemesh.json", (192, 192, 3)),
])
def test_packaged_graphs_match_the_numpy_reference(package: str, version: str, folder: str, name: str,
                                                   shape: tuple[int, int, int]) -> None:
    model, tensors = tfjs_onnx.load(npm_reader(package, version, folder), name)
    scale = {"model.min.js": 1.0, "iris.json": 64.0, "facemesh.json": 192.0}  # probabilities; pixel coordinates
    check(model, tensors, shape, atol=2e-6 * scale[name])


def test_packaged_layers_model_matches_the_numpy_reference() -> None:
    read = npm_reader("nsfwjs", "4.3.0", "package/dist/models/mobilenet_v2")
    model, tensors = tfjs_onnx.load(read, "model.min.js")
    run = session(tfjs_onnx.convert_files(read, "model.min.js"))
    x = RNG.random((2, 224, 224, 3)).astype(np.float32)
    got = run.run(None, {"input": x.transpose(0, 3, 1, 2)})[0]  # keras_onnx's convention: NCHW in
    np.testing.assert_allclose(got, tfjs_reference.run_layers(model, tensors, x), atol=1e-5, rtol=0)


def test_npm_tarballs_are_found_by_name_and_checked(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="make install"):
        tarball("@vladmandic/human", "3.3.6", tmp_path)
    (tmp_path / "vladmandic-human-3.3.6.tgz").write_bytes(b"not the package")
    assert tarball("@vladmandic/human", "3.3.6", tmp_path) == tmp_path / "vladmandic-human-3.3.6.tgz"
    with pytest.raises(ModelNotFoundError, match="SHA-256"):
        tarball("@vladmandic/human", "3.3.6", tmp_path, sha256="0" * 64)
