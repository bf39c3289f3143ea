"""Model loading: bundled YuNet/SFace rewrites, and user-supplied InsightFace-format models built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facelens.config import models_from_env
from facelens.models.detector import ScrfdDetector, YuNetDetector, load_detector
from facelens.models.embedder import ArcFaceEmbedder, SFaceEmbedder, load_embedder
from facelens.models.registry import ModelConfig, ModelNotFoundError


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_arcface(path: Path, weights: np.ndarray) -> Path:
    """A 'recognizer' with ArcFace's interface: 1x3x112x112 -> GlobalAveragePool -> Gemm -> D features."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W"], ["683"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, weights.shape[1]])],
        [numpy_helper.from_array(weights.astype(np.float32), "W")],
    )
    return _save(graph, path)


def tiny_scrfd(path: Path, size: int = 64) -> Path:
    """An 'SCRFD' with InsightFace's 9 outputs (score/bbox/kps at strides 8, 16, 32; 2 anchors per cell).

    At stride 8 the score of a cell is high where the 8x8 patch is bright; every box is the anchor centre
    +-1 stride, and every keypoint sits on the anchor centre. Other strides score nothing.
    """
    nodes, outputs, inits = [], {}, []
    nodes.append(helper.make_node("ReduceMean", ["input.1"], ["gray"], keepdims=1, axes=[1]))
    for stride in (8, 16, 32):
        cells = (size // stride) ** 2
        nodes.append(helper.make_node("AveragePool", ["gray"], [f"pool{stride}"], kernel_shape=[stride, stride],
                                      strides=[stride, stride]))
        inits.append(numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), f"col{stride}"))
        nodes.append(helper.make_node("Reshape", [f"pool{stride}", f"col{stride}"], [f"flat{stride}"]))
        gain = 20.0 if stride == 8 else 0.0
        bias = -10.0 if stride == 8 else -30.0
        inits += [numpy_helper.from_array(np.array(gain, np.float32), f"gain{stride}"),
                  numpy_helper.from_array(np.array(bias, np.float32), f"bias{stride}")]
        nodes += [
            helper.make_node("Mul", [f"flat{stride}", f"gain{stride}"], [f"scaled{stride}"]),
            helper.make_node("Add", [f"scaled{stride}", f"bias{stride}"], [f"logit{stride}"]),
            helper.make_node("Sigmoid", [f"logit{stride}"], [f"sig{stride}"]),
            helper.make_node("Concat", [f"sig{stride}", f"sig{stride}"], [f"pair{stride}"], axis=1),
        ]
        inits.append(numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), f"score_shape{stride}"))
        nodes.append(helper.make_node("Reshape", [f"pair{stride}", f"score_shape{stride}"], [f"score_{stride}"]))
        for kind, width, value in (("bbox", 4, 1.0), ("kps", 10, 0.0)):
            inits += [numpy_helper.from_array(np.full((1, width), value, np.float32), f"{kind}_const{stride}"),
                      numpy_helper.from_array(np.zeros((1, width), np.float32), f"{kind}_zero{stride}")]
            nodes += [
                helper.make_node("MatMul", [f"score_{stride}", f"{kind}_zero{stride}"], [f"{kind}_z{stride}"]),
                helper.make_node("Add", [f"{kind}_z{stride}", f"{kind}_const{stride}"], [f"{kind}_{stride}"]),
            ]
        outputs[stride] = cells * 2
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in (8, 16, 32)]
    widths = {"score": 1, "bbox": 4, "kps": 10}
    graph = helper.make_graph(
        nodes, "tiny_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [outputs[int(n.split("_")[1])],
                                                              widths[n.split("_")[0]]]) for n in names],
        inits,
    )
    return _save(graph, path)


def test_user_arcface_model_is_loaded_from_config_and_normalised_like_insightface(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 8))
    path = tiny_arcface(tmp_path / "w600k_tiny.onnx", weights)
    config = models_from_env({"FACELENS_RECOGNIZER_MODEL": str(path)})
    embedder = load_embedder(config, flip=False)
    assert isinstance(embedder, ArcFaceEmbedder)
    assert embedder.dimension == 8
    crops = rng.integers(0, 256, size=(5, 112, 112, 3), dtype=np.uint8)
    got = embedder.embed(crops)  # batch of 5 through a graph declared with batch 1
    channel_means = ((crops.astype(np.float64) - 127.5) / 127.5).mean(axis=(1, 2))
    expected = channel_means @ weights
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_user_scrfd_model_decodes_boxes_and_keypoints(tmp_path: Path) -> None:
    path = tiny_scrfd(tmp_path / "det_tiny.onnx")
    detector = load_detector(models_from_env({"FACELENS_DETECTOR_MODEL": str(path)}))
    assert isinstance(detector, ScrfdDetector)
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[24:32, 32:40] = 255  # the cell at row 3, column 4 of the stride-8 grid
    (found,) = detector.detect([image])
    assert len(found) == 1
    np.testing.assert_allclose(found[0].box, [24, 16, 40, 32], atol=1e-4)  # centre (32, 24) +- 8
    np.testing.assert_allclose(found[0].landmarks, np.tile([32, 24], (5, 1)), atol=1e-4)
    assert found[0].score > 0.99
    assert detector.detect([np.zeros((64, 64, 3), dtype=np.uint8)]) == [[]]


def test_scrfd_without_keypoints_is_refused(tmp_path: Path) -> None:
    weights = np.ones((3, 4))
    path = tiny_arcface(tmp_path / "not_a_detector.onnx", weights)
    with pytest.raises(ValueError, match="outputs"):
        ScrfdDetector(path)


def test_missing_configured_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        models_from_env({"FACELENS_DETECTOR_MODEL": str(tmp_path / "nope.onnx")})


def test_config_file_names_models(tmp_path: Path) -> None:
    path = tiny_arcface(tmp_path / "r.onnx", np.ones((3, 4)))
    config_file = tmp_path / "facelens.toml"
    config_file.write_text(f'[models]\nrecognizer = "{path}"\n')
    assert models_from_env({"FACELENS_CONFIG": str(config_file)}).recognizer == path


def test_bundled_sface_runs_batched_after_pruning_and_matches_single_runs(astronaut_crop: np.ndarray) -> None:
    embedder = SFaceEmbedder(flip=False)
    assert [i.name for i in embedder.session.get_inputs()] == ["data"]
    crops = np.stack([astronaut_crop, astronaut_crop[:, ::-1], np.roll(astronaut_crop, 3, axis=0)])
    batched = embedder.embed(crops)
    single = np.concatenate([embedder.embed(crop[None]) for crop in crops])
    assert batched.shape == (3, 128)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_yunet_accepts_any_size_and_batches(astronaut: np.ndarray) -> None:
    detector = YuNetDetector()
    small = astronaut[::2, ::2].copy()  # 256x256: not the graph's declared 640x640
    one = detector.detect([small])[0]
    both = detector.detect([small, small])
    assert len(one) == 1
    np.testing.assert_allclose(both[0][0].box, one[0].box, atol=1e-3)
    np.testing.assert_allclose(both[1][0].box, one[0].box, atol=1e-3)
    full = detector.detect([astronaut])[0]
    np.testing.assert_allclose(full[0].box / 2, one[0].box, atol=4)  # same face at either scale


def test_session_options_come_from_the_model_config(tmp_path: Path) -> None:
    path = tiny_arcface(tmp_path / "w.onnx", np.ones((3, 4)))
    config = ModelConfig(recognizer=path, providers=("NoSuchExecutionProvider",), threads=2, flip=True)
    embedder = load_embedder(config)
    assert embedder.flip  # the config's flip unless the caller says otherwise
    assert not load_embedder(config, flip=False).flip
    assert embedder.session.get_providers() == ["CPUExecutionProvider"]  # none of those wanted exists here
    options = embedder.session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spinning_config = ModelConfig(recognizer=path, spin=True, runtime="onnxruntime")
    spinning = load_embedder(spinning_config).session.get_session_options()
    assert spinning.intra_op_num_threads == 0  # onnxruntime's default
    with pytest.raises(RuntimeError, match="does not have"):  # not set: onnxruntime's default (spinning) applies
        spinning.get_session_config_entry("session.intra_op.allow_spinning")


def test_the_prepared_recognizer_is_kept_between_processes_and_rebuilt_when_damaged(tmp_path: Path) -> None:
    from facelens.models.embedder import SFaceEmbedder
    from facelens.models.registry import ModelConfig

    crops = np.random.default_rng(0).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    plain = SFaceEmbedder(config=ModelConfig()).embed(crops)
    cached = ModelConfig(cache_dir=tmp_path / "models")
    assert np.array_equal(SFaceEmbedder(config=cached).embed(crops), plain)  # prepared, then kept
    (kept,) = (tmp_path / "models").iterdir()
    assert np.array_equal(SFaceEmbedder(config=cached).embed(crops), plain)  # read back
    kept.write_bytes(b"torn")
    assert np.array_equal(SFaceEmbedder(config=cached).embed(crops), plain)  # rebuilt
    assert kept.stat().st_size > 1_000_000
