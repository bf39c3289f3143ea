"""FaceOccluded (a mask over nose and mouth: the one occlusion a model here sees), through `facelens.analyze`
and DetectFaces' `FACE_OCCLUDED` attribute, on the sample faces with and without a drawn surgical mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import facelens
from facelens.models.detector import YuNetDetector
from facelens.models.landmarks import DlibLandmarker
from tests.conftest import encode


def masked(image: np.ndarray, colour: tuple[int, int, int] = (190, 215, 235), *,
           detector: YuNetDetector | None = None, landmarker: DlibLandmarker | None = None) -> np.ndarray:
    """`image` with a pleated surgical mask drawn from the nose bridge down the jawline (dlib's 68 points) of its
    first detected face (`detector` and `landmarker`: models to reuse, else new ones)."""
    face = (detector or YuNetDetector()).detect([image])[0][0]
    points = (landmarker or DlibLandmarker()).landmarks68(image, face.box)
    bridge = points[28]
    outline = np.vstack([[points[1][0], bridge[1]], points[1:16], [points[15][0], bridge[1]]]).astype(np.int32)
    out = image.copy()
    cv2.fillPoly(out, [outline], colour)
    for k in range(1, 4):  # the pleats
        y = int(bridge[1] + k * (points[8][1] - bridge[1]) / 4)
        cv2.line(out, (int(points[2][0]), y), (int(points[14][0]), y), tuple(int(c * 0.85) for c in colour), 2)
    return out


@pytest.mark.parametrize("name", ["astronaut", "cameraman"])
def test_a_masked_face_is_occluded_and_a_bare_one_is_not(name: str, request: pytest.FixtureRequest) -> None:
    image = request.getfixturevalue(name)
    bare = facelens.analyze(encode(image), attributes=["FACE_OCCLUDED"])["FaceDetails"][0]
    covered = facelens.analyze(encode(masked(image)), attributes=["FACE_OCCLUDED"])["FaceDetails"][0]
    assert bare["FaceOccluded"]["Value"] is False and bare["FaceOccluded"]["Confidence"] > 90
    assert covered["FaceOccluded"]["Value"] is True and covered["FaceOccluded"]["Confidence"] > 85
    assert "FaceOccluded" not in facelens.analyze(encode(image))["FaceDetails"][0]  # only when asked
