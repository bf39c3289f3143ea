"""The Python API and CLI as a user sees them: Rekognition-shaped JSON, calibrated Similarity, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import botocore.session
import cv2
import numpy as np
import pytest

import facelens
from facelens import calibration, cli, errors
from facelens.domain import faces
from facelens.pipeline import default_analyzer
from tests.conftest import encode

SERVICE = botocore.session.get_session().get_service_model("rekognition")


def shape_members(name: str) -> set[str]:
    return set(SERVICE.shape_for(name).members)


def test_detect_default_fields(astronaut_jpeg: bytes) -> None:
    (face,) = facelens.analyze(astronaut_jpeg)["FaceDetails"]
    assert set(face) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    assert set(face) <= shape_members("FaceDetail")
    box = face["BoundingBox"]
    assert 0.3 < box["Left"] < 0.4 and 0.05 < box["Top"] < 0.2 and 0.1 < box["Width"] < 0.3
    assert [lm["Type"] for lm in face["Landmarks"]] == ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
    assert face["Confidence"] > 80


def test_detect_all_fields(astronaut_jpeg: bytes) -> None:
    (face,) = facelens.analyze(astronaut_jpeg, attributes=["ALL"])["FaceDetails"]
    assert {"AgeRange", "Gender", "EyesOpen", "MouthOpen", "Pose", "Quality", "Emotions", "Smile",
            "FaceOccluded", "EyeDirection"} <= set(face)
    assert face["Gender"]["Value"] == "Female"
    assert face["AgeRange"]["Low"] <= face["AgeRange"]["High"]
    assert len(face["Landmarks"]) == 30
    assert {lm["Type"] for lm in face["Landmarks"]} == set(SERVICE.shape_for("LandmarkType").enum)
    # attributes no model computes are omitted, never invented
    assert not {"Beard", "Mustache", "Eyeglasses", "Sunglasses"} & set(face)


def test_named_attribute_adds_to_the_defaults(astronaut_jpeg: bytes) -> None:
    (face,) = facelens.analyze(astronaut_jpeg, attributes=["GENDER"])["FaceDetails"]
    assert set(face) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality", "Gender"}


def test_no_face_gives_empty_list() -> None:
    assert facelens.analyze(encode(np.full((200, 200, 3), 128, np.uint8)))["FaceDetails"] == []


def test_compare_same_person_matches_and_different_person_does_not(
    astronaut: np.ndarray, astronaut_jpeg: bytes, cameraman_jpeg: bytes
) -> None:
    variant = cv2.convertScaleAbs(cv2.resize(astronaut, (360, 360)), alpha=1.15, beta=12)
    same = facelens.compare(astronaut_jpeg, encode(variant), threshold=0)
    assert same["FaceMatches"][0]["Similarity"] >= 80
    analyzer = default_analyzer()  # the engine, below the gate's floor
    different = faces.compare(analyzer, astronaut_jpeg, cameraman_jpeg, 0,
                              calibration.for_model(analyzer.model_version))
    assert different.matches[0].similarity < 50
    floored = facelens.compare(astronaut_jpeg, cameraman_jpeg, threshold=0)  # raised to the compare floor, 70
    assert floored["FaceMatches"] == [] and len(floored["UnmatchedFaces"]) == 1
    strict = facelens.compare(astronaut_jpeg, cameraman_jpeg, threshold=80)
    assert strict["FaceMatches"] == [] and len(strict["UnmatchedFaces"]) == 1
    assert set(strict) == {"SourceImageFace", "FaceMatches", "UnmatchedFaces"}


def test_compare_finds_the_right_face_among_several(astronaut: np.ndarray, cameraman: np.ndarray,
                                                    astronaut_jpeg: bytes) -> None:
    group = np.concatenate([cameraman, cv2.resize(astronaut, (512, 512))], axis=1)
    result = facelens.compare(astronaut_jpeg, encode(group))
    assert len(result["FaceMatches"]) == 1 and len(result["UnmatchedFaces"]) == 1
    assert result["FaceMatches"][0]["Face"]["BoundingBox"]["Left"] > 0.5  # the astronaut is on the right


def test_compare_without_a_source_face_is_invalid_parameter(astronaut_jpeg: bytes) -> None:
    blank = encode(np.full((100, 100, 3), 200, np.uint8))
    with pytest.raises(errors.InvalidParameterException, match="no face"):
        facelens.compare(blank, astronaut_jpeg)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "InvalidParameterException"),  # Image.Bytes' minimum length is 1 (as over HTTP)
        (b"not an image at all", "InvalidImageFormatException"),
        ("truncated", "InvalidImageFormatException"),
        ("huge", "ImageTooLargeException"),
        ("bomb", "ImageTooLargeException"),
    ],
)
def test_cli_reports_bad_input_on_one_line(tmp_path: Path, astronaut_jpeg: bytes, content: bytes | str,
                                           error: str, capsys: pytest.CaptureFixture) -> None:
    """`facelens detect|compare` in process (the exit status `facelens` exits with is `main`'s return value;
    test_cli_detect_prints_rekognition_json runs the real process)."""
    from tests.unit.test_imaging import png_claiming

    data = {
        "truncated": astronaut_jpeg[: len(astronaut_jpeg) // 2],
        "huge": b"\xff\xd8" + b"\0" * (6 * 1024 * 1024),
        "bomb": png_claiming(50_000, 50_000),
    }.get(content, content) if isinstance(content, str) else content
    path = tmp_path / "input.jpg"
    path.write_bytes(data)
    for args in (["detect", str(path)], ["compare", str(path), str(path)]):
        assert cli.main(args) == 2
        out, err = capsys.readouterr()
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{error}: ")


def test_python_api_raises_the_named_errors(astronaut_jpeg: bytes) -> None:
    with pytest.raises(errors.InvalidImageFormatException):
        facelens.analyze(astronaut_jpeg[:1000])
    with pytest.raises(errors.ImageTooLargeException):
        facelens.compare(astronaut_jpeg, b"\x89PNG" + b"\0" * (5 * 1024 * 1024 + 1))


def test_cli_detect_prints_rekognition_json(tmp_path: Path, astronaut_jpeg: bytes) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(astronaut_jpeg)
    result = subprocess.run([sys.executable, "-m", "facelens", "detect", str(path), "--attributes", "ALL"],
                            capture_output=True, text=True, timeout=120, check=True)
    (face,) = json.loads(result.stdout)["FaceDetails"]
    assert face["Gender"]["Value"] == "Female" and len(face["Landmarks"]) == 30
