"""DetectText through boto3 against the in-process app, with the real OCR model on rendered text whose words are
known: lines and words (each word's ParentId its line), the response strictly in DetectTextResponse's shape,
Filters (WordFilter, RegionsOfInterest), the 100-word cap, and bad images refused as Rekognition refuses them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import matplotlib
import numpy as np
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image, ImageDraw, ImageFont
from starlette.testclient import TestClient

from facelens import service_model
from facelens.api.app import create_app
from facelens.config import ServerSettings
from facelens.context import KeyScope
from facelens.service import build_faces
from tests.collections_fakes import CALIBRATION, ScriptedAnalyzer
from tests.service_fixtures import KEY_ID, REGION, SECRET
from tests.shape_checks import conforms

FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
TOP = ["FaceLens reads text", "boto3 round trip"]
BOTTOM = ["small words below"]


def render(rows: list[tuple[str, int, int, int]], size: tuple[int, int] = (960, 540),
           font: str = "DejaVuSans.ttf") -> bytes:
    """A white PNG with each (text, x, y, font size) drawn in black."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for text, x, y, points in rows:
        draw.text((x, y), text, font=ImageFont.truetype(str(FONTS / font), points), fill="black")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self.body


@pytest.fixture(scope="module")
def rek(tmp_path_factory: pytest.TempPathFactory):
    """A real boto3 Rekognition client whose requests are sent to the in-process app."""
    settings = ServerSettings.from_env({}, data_dir=tmp_path_factory.mktemp("text"), warmup=False)
    backend = build_faces(settings, analyzer=ScriptedAnalyzer(), calibration_for=lambda version: CALIBRATION)
    app = create_app(settings, backend, keys={KEY_ID: SECRET}, scopes={KEY_ID: KeyScope()})
    with TestClient(app, raise_server_exceptions=False) as api:
        def send(request: Any, **_: object) -> AWSResponse:
            body = request.body if isinstance(request.body, bytes) else (request.body or b"")
            answer = api.post(request.url, content=body, headers=dict(request.headers.items()))
            return AWSResponse(request.url, answer.status_code, dict(answer.headers), _Raw(answer.content))

        client = boto3.client("rekognition", endpoint_url="http://testserver", region_name=REGION,
                              aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                              config=Config(retries={"max_attempts": 1, "mode": "standard"}))
        client.meta.events.register("before-send.rekognition", send)
        client.raw = []  # the JSON bodies as sent, for the strict shape check
        client.meta.events.register("after-call.rekognition.DetectText",
                                    lambda http_response, **_: client.raw.append(json.loads(http_response.content)))
        yield client


def lines_and_words(response: dict) -> tuple[list[dict], list[dict]]:
    detections = response["TextDetections"]
    return ([d for d in detections if d["Type"] == "LINE"], [d for d in detections if d["Type"] == "WORD"])


def inside(inner: dict, outer: dict, slack: float = 0.01) -> bool:
    a, b = inner["Geometry"]["BoundingBox"], outer["Geometry"]["BoundingBox"]
    return (a["Left"] >= b["Left"] - slack and a["Top"] >= b["Top"] - slack
            and a["Left"] + a["Width"] <= b["Left"] + b["Width"] + slack
            and a["Top"] + a["Height"] <= b["Top"] + b["Height"] + slack)


@pytest.fixture(scope="module")
def page() -> bytes:
    return render([(TOP[0], 40, 40, 48), (TOP[1], 40, 140, 48), (BOTTOM[0], 40, 420, 20)])


def test_lines_and_words_round_trip_with_parents(rek, page: bytes) -> None:
    response = rek.detect_text(Image={"Bytes": page})
    conforms(rek.raw[-1], service_model.model().operation_model("DetectText").output_shape)
    lines, words = lines_and_words(response)
    assert [line["DetectedText"] for line in lines] == TOP + BOTTOM
    assert [word["DetectedText"] for word in words] == " ".join(TOP + BOTTOM).split()
    detections = response["TextDetections"]
    assert [d["Id"] for d in detections] == list(range(len(detections)))  # LINEs first, then WORDs
    by_id = {line["Id"]: line for line in lines}
    for word in words:
        parent = by_id[word["ParentId"]]
        assert word["DetectedText"] in parent["DetectedText"].split()
        assert inside(word, parent)
        assert 50 <= word["Confidence"] <= 100
        assert len(word["Geometry"]["Polygon"]) == 4
    assert all("ParentId" not in line for line in lines)
    assert response["TextModelVersion"].startswith("rapidocr-")
    # geometry is where the text was drawn: the first line starts at x=40 of 960, y=40 of 540
    first = lines[0]["Geometry"]["BoundingBox"]
    assert first["Left"] == pytest.approx(40 / 960, abs=0.02) and first["Top"] == pytest.approx(40 / 540, abs=0.03)


def test_word_filter(rek, page: bytes) -> None:
    everything = lines_and_words(rek.detect_text(Image={"Bytes": page}))[1]
    tall = rek.detect_text(Image={"Bytes": page}, Filters={"WordFilter": {"MinBoundingBoxHeight": 0.06}})
    lines, words = lines_and_words(tall)
    assert [line["DetectedText"] for line in lines] == TOP  # the 20-point line is under 6% of the height
    assert all(word["Geometry"]["BoundingBox"]["Height"] >= 0.06 for word in words)
    wide = lines_and_words(rek.detect_text(Image={"Bytes": page},
                                           Filters={"WordFilter": {"MinBoundingBoxWidth": 0.15}}))[1]
    assert wide and all(word["Geometry"]["BoundingBox"]["Width"] >= 0.15 for word in wide)
    assert [w["DetectedText"] for w in wide] == [w["DetectedText"] for w in everything
                                                 if w["Geometry"]["BoundingBox"]["Width"] >= 0.15]
    assert "FaceLens" in [w["DetectedText"] for w in wide] and len(wide) < len(everything)
    weakest = min(word["Confidence"] for word in everything)
    confident = lines_and_words(rek.detect_text(Image={"Bytes": page},
                                                Filters={"WordFilter": {"MinConfidence": weakest + 1e-3}}))[1]
    assert len(confident) == len(everything) - sum(w["Confidence"] == weakest for w in everything)
    assert all(w["Confidence"] > weakest for w in confident)


def test_regions_of_interest(rek, page: bytes) -> None:
    top_half = {"Left": 0.0, "Top": 0.0, "Width": 1.0, "Height": 0.5}
    response = rek.detect_text(Image={"Bytes": page}, Filters={"RegionsOfInterest": [{"BoundingBox": top_half}]})
    lines, words = lines_and_words(response)
    assert [line["DetectedText"] for line in lines] == TOP
    assert {line["Id"] for line in lines} >= {word["ParentId"] for word in words}
    # a polygon around the left part of the first line keeps only the words more than half inside it
    polygon = [{"X": 0.0, "Y": 0.0}, {"X": 0.3, "Y": 0.0}, {"X": 0.3, "Y": 0.2}, {"X": 0.0, "Y": 0.2}]
    words = lines_and_words(rek.detect_text(Image={"Bytes": page},
                                            Filters={"RegionsOfInterest": [{"Polygon": polygon}]}))[1]
    assert [w["DetectedText"] for w in words] == ["FaceLens"]
    # several regions: a word in any of them is kept
    bottom = {"Left": 0.0, "Top": 0.7, "Width": 1.0, "Height": 0.3}
    words = lines_and_words(rek.detect_text(Image={"Bytes": page}, Filters={
        "RegionsOfInterest": [{"Polygon": polygon}, {"BoundingBox": bottom}]}))[1]
    assert [w["DetectedText"] for w in words] == ["FaceLens", *BOTTOM[0].split()]


def test_at_most_100_words(rek) -> None:
    rows = [(" ".join(f"w{r}{c}" for c in range(12)), 10, 12 + 38 * r, 22) for r in range(12)]  # 144 words
    lines, words = lines_and_words(rek.detect_text(Image={"Bytes": render(rows, (1280, 480))}))
    assert len(words) == 100
    assert {line["Id"] for line in lines} == {word["ParentId"] for word in words}


def test_bad_images_are_refused_as_rekognition_does(rek) -> None:
    for data in (b"this is not an image", render([("x", 0, 0, 10)])[:60]):
        with pytest.raises(ClientError) as info:
            rek.detect_text(Image={"Bytes": data})
        assert info.value.response["Error"]["Code"] == "InvalidImageFormatException"
    blank = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(blank, "JPEG")
    assert rek.detect_text(Image={"Bytes": blank.getvalue()})["TextDetections"] == []


def test_the_model_loads_on_the_first_detect_text_only(tmp_path: Path, page: bytes) -> None:
    settings = ServerSettings.from_env({}, data_dir=tmp_path, warmup=False)
    backend = build_faces(settings, analyzer=ScriptedAnalyzer(), calibration_for=lambda version: CALIBRATION)
    reader = backend.text.reader
    assert reader._engine is None  # built, not loaded: a server that never reads text never pays for the model
    backend.call("DetectText", {"Image": page, "Filters": {"WordFilter": {"MinConfidence": 0}}})
    engine = reader._engine
    backend.call("DetectText", {"Image": page})
    assert engine is not None and reader._engine is engine  # loaded once, then reused


def test_the_cli_prints_detect_text_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facelens.cli import main

    path = tmp_path / "sign.png"
    path.write_bytes(render([("Hello CLI world", 20, 20, 40)], (500, 120)))
    assert main(["text", str(path), "--min-confidence", "50"]) == 0
    lines, words = lines_and_words(json.loads(capsys.readouterr().out))
    assert [line["DetectedText"] for line in lines] == ["Hello CLI world"]
    assert [(w["DetectedText"], w["ParentId"]) for w in words] == [("Hello", 0), ("CLI", 0), ("world", 0)]
