"""FACELENS_RUNTIME: OpenVINO and onnxruntime run the same graphs to the same answers, and `auto` picks as
documented (docs/models.md, "Runtime")."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from facelens.config import ConfigError, ServerSettings, models_from_env
from facelens.models import openvino
from facelens.models.embedder import load_embedder
from facelens.models.openvino import OpenVinoSession
from facelens.models.registry import ModelConfig
from facelens.models.runtime import make_session, runtime_for
from facelens.service import build_faces

needs_openvino = pytest.mark.skipif(not openvino.available(), reason="the openvino package is not installed")


def close(a: Any, b: Any, path: str = "") -> None:
    """Two responses agree: the same structure, strings and booleans, numbers within 1e-4 relative."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{index}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-4), path
    else:
        assert a == b, path


def test_the_runtime_setting_is_parsed_once_and_checked() -> None:
    assert models_from_env({}).runtime == "auto"
    assert models_from_env({"FACELENS_RUNTIME": "OpenVINO"}).runtime == "openvino"
    with pytest.raises(ConfigError, match="FACELENS_RUNTIME"):
        models_from_env({"FACELENS_RUNTIME": "tensorrt"})
    assert runtime_for(ModelConfig(runtime="onnxruntime")) == "onnxruntime"
    # explicit execution providers are onnxruntime's to honour
    assert runtime_for(ModelConfig(providers=("CPUExecutionProvider",))) == "onnxruntime"
    assert runtime_for(ModelConfig()) == ("openvino" if openvino.available() else "onnxruntime")
    assert runtime_for(ModelConfig(), openvino_first=False) == "onnxruntime"  # a graph OpenVINO runs slower
    assert runtime_for(ModelConfig(runtime="openvino"), openvino_first=False) == "openvino"


@needs_openvino
def test_detect_faces_answers_the_same_on_either_runtime(astronaut_jpeg: bytes) -> None:
    """Every model behind DetectFaces ALL (YuNet, SFace's crops, age/gender, expressions, the mask classifier)
    and DetectLabels gives the same response, to float rounding, on OpenVINO and on onnxruntime."""
    answers = {}
    for runtime in ("onnxruntime", "openvino"):
        backend = build_faces(ServerSettings.from_env({"FACELENS_RUNTIME": runtime}))
        answers[runtime] = (
            backend.call("DetectFaces", {"Image": {"Bytes": astronaut_jpeg}, "Attributes": ["ALL"]}),
            backend.call("DetectLabels", {"Image": {"Bytes": astronaut_jpeg}, "MinConfidence": 10}),
        )
    faces, labels = answers["openvino"]
    assert len(faces["FaceDetails"]) == 1 and faces["FaceDetails"][0]["Emotions"][0]["Type"] == "HAPPY"
    assert any(label["Name"] == "Person" for label in labels["Labels"])
    close(answers["onnxruntime"], answers["openvino"])
    auto = build_faces(ServerSettings.from_env({})).analyzer  # the recognizer on OpenVINO, the rest on onnxruntime
    assert isinstance(auto.embedder.session, OpenVinoSession)  # type: ignore[attr-defined]
    assert isinstance(auto.detector.session, ort.InferenceSession)  # type: ignore[attr-defined]


@needs_openvino
def test_sface_embeddings_are_identical_and_calls_may_run_at_once(astronaut_crop: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    crops = np.concatenate([astronaut_crop[None], rng.integers(0, 256, (7, 112, 112, 3), dtype=np.uint8)])
    reference = load_embedder(ModelConfig(runtime="onnxruntime", threads=1)).embed(crops)
    embedder = load_embedder(ModelConfig(runtime="openvino", threads=1))
    assert isinstance(embedder.session, OpenVinoSession)
    assert np.min(np.sum(reference * embedder.embed(crops), axis=1)) > 0.99999
    results: dict[int, np.ndarray] = {}

    def embed(index: int) -> None:
        results[index] = embedder.embed(crops[index:index + 1])

    threads = [threading.Thread(target=embed, args=(index,)) for index in range(len(crops))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    together = np.concatenate([results[index] for index in range(len(crops))])
    assert np.min(np.sum(reference * together, axis=1)) > 0.99999


@needs_openvino
def test_auto_falls_back_to_onnxruntime_where_openvino_cannot_compile() -> None:
    """com.microsoft's Inverse runs on onnxruntime and not on OpenVINO: under `auto` the graph runs on
    onnxruntime; asked for explicitly, OpenVINO's refusal is the error."""
    from onnx import TensorProto, helper

    def model(op: str, domain: str = "", **attributes: float) -> bytes:
        graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain, **attributes)], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 3])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 3])])
        return helper.make_model(graph, ir_version=8, opset_imports=[
            helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]).SerializeToString()

    x = np.array([[[2.0, 0.0, 0.0], [0.0, 4.0, 0.0], [1.0, 0.0, 1.0]]], dtype=np.float32)
    inverse = model("Inverse", "com.microsoft")
    with pytest.raises(Exception, match="Inverse"):
        make_session(inverse, ModelConfig(runtime="openvino"))
    fallback = make_session(inverse, ModelConfig(), openvino_first=True)
    assert isinstance(fallback, ort.InferenceSession)
    np.testing.assert_allclose(fallback.run(None, {"x": x})[0], np.linalg.inv(x), rtol=1e-6)
    session = make_session(model("Celu", alpha=2.0), ModelConfig(), openvino_first=True)
    assert isinstance(session, OpenVinoSession)
    assert [port.name for port in session.get_inputs()] == ["x"] and session.get_outputs()[0].shape == [1, 3, 3]
    np.testing.assert_allclose(session.run(["y"], {"x": x})[0], np.where(x > 0, x, 2.0 * np.expm1(x / 2.0)),
                               rtol=1e-6)
