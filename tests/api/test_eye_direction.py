"""DetectFaces EyeDirection as a boto3 user sees it (the app under a real uvicorn in this process, the real MediaPipe
Iris model converted from `@vladmandic/human`), and the gaze geometry of `facelens.models.iris` on constructed
points."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from facelens.config import ServerSettings
from facelens.models import iris
from facelens.service import Backend, build_faces
from tests.conftest import encode
from tests.service_fixtures import client
from tests.uvicorn_fixtures import npm_env, serving


@pytest.fixture(scope="module")
def rekognition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    backend: Backend = build_faces(ServerSettings.from_env(npm_env(), warmup=False))
    settings = ServerSettings.from_env(npm_env(), data_dir=tmp_path_factory.mktemp("eyes"), warmup=False)
    with serving(settings, backend) as url:
        yield client(url)
    backend.close()


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def eye_direction(rekognition, pixels: np.ndarray, attributes: list[str]) -> dict:
    [face] = rekognition.detect_faces(Image={"Bytes": encode(pixels, "PNG")}, Attributes=attributes)["FaceDetails"]
    return face


def test_eye_direction_is_returned_on_request_without_a_made_up_confidence(rekognition) -> None:
    face = eye_direction(rekognition, astronaut(), ["EYE_DIRECTION"])
    assert set(face) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality", "EyeDirection"}
    gaze = face["EyeDirection"]
    assert set(gaze) == {"Yaw", "Pitch"}  # the model gives no confidence, so none is sent
    # Eileen Collins looks into the camera with her head nearly frontal: her eyes point near straight ahead
    assert abs(gaze["Yaw"]) < 15 and abs(gaze["Pitch"]) < 15
    assert "EyeDirection" in eye_direction(rekognition, astronaut(), ["ALL"])
    assert "EyeDirection" not in eye_direction(rekognition, astronaut(), ["DEFAULT"])


def test_a_mirrored_face_looks_the_other_way(rekognition) -> None:
    gaze = eye_direction(rekognition, astronaut(), ["EYE_DIRECTION"])["EyeDirection"]
    mirrored = eye_direction(rekognition, np.ascontiguousarray(astronaut()[:, ::-1]), ["EYE_DIRECTION"])
    assert mirrored["EyeDirection"]["Yaw"] == pytest.approx(-gaze["Yaw"], abs=3)
    assert mirrored["EyeDirection"]["Pitch"] == pytest.approx(gaze["Pitch"], abs=3)


def eye(angle_yaw: float, angle_pitch: float, roll: float, width: float = 30.0) -> np.ndarray:
    """76 points of one eye whose iris centre is where an eye turned by (yaw, pitch) degrees puts it."""
    points = np.zeros((76, 2))
    u = np.array([math.cos(math.radians(roll)), math.sin(math.radians(roll))])
    v = np.array([-u[1], u[0]])
    centre = np.array([100.0, 80.0])
    points[iris.CORNERS[0]], points[iris.CORNERS[1]] = centre - u * width / 2, centre + u * width / 2
    dx = iris.K * math.sin(math.radians(angle_yaw))
    dy = iris.DY0 - iris.K * math.sin(math.radians(angle_pitch))
    points[iris.IRIS] = centre + (dx * u + dy * v) * width
    return points


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(0, 0, 0), (20, 0, 0), (-30, 10, 0), (15, -12, 25), (-5, 5, -40)])
def test_gaze_geometry_recovers_constructed_angles_at_any_roll(yaw: float, pitch: float, roll: float) -> None:
    got = iris.eye_direction([eye(yaw, pitch, roll), eye(yaw, pitch, roll, width=20.0)])
    assert got == pytest.approx((yaw, pitch), abs=1e-6)


def test_the_wider_eye_counts_more() -> None:
    yaw, _ = iris.eye_direction([eye(30, 0, 0, width=30.0), eye(0, 0, 0, width=10.0)])
    assert 20 < yaw < 30
