"""FaceOccluded (a mask over nose and mouth: the one occlusion a model here sees), through `facelens.analyze`
and DetectFaces' `FACE_OCCLUDED` attribute, on the sample faces with and without a drawn surgical mask."""

from __future__ import annotations

import pytest

import facelens
from tests.conftest import encode
from tests.cover_fixtures import masked


@pytest.mark.parametrize("name", ["astronaut", "cameraman"])
def test_a_masked_face_is_occluded_and_a_bare_one_is_not(name: str, request: pytest.FixtureRequest) -> None:
    image = request.getfixturevalue(name)
    bare = facelens.analyze(encode(image), attributes=["FACE_OCCLUDED"])["FaceDetails"][0]
    covered = facelens.analyze(encode(masked(image)), attributes=["FACE_OCCLUDED"])["FaceDetails"][0]
    assert bare["FaceOccluded"]["Value"] is False and bare["FaceOccluded"]["Confidence"] > 90
    assert covered["FaceOccluded"]["Value"] is True and covered["FaceOccluded"]["Confidence"] > 85
    assert "FaceOccluded" not in facelens.analyze(encode(image))["FaceDetails"][0]  # only when asked
