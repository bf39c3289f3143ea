"""Shared fixtures: face images shipped with scikit-image (no data set needed)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from tests.milvus_fixtures import milvus  # noqa: F401 - the session's Milvus standalone server, for any test


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `long` (tens of seconds each) run first, so that with pytest-xdist (`make test`) they start at
    once on one worker while the others share the rest."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def encode(pixels: np.ndarray, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pages(call: Callable[..., dict], key: str, **params: object) -> tuple[list, int]:
    """Every item of a paginated Rekognition call (boto3's or the backend's, keyword arguments) and the number
    of pages it took."""
    items, token, count = [], None, 0
    while True:
        response = call(**params, **({"NextToken": token} if token else {}))
        items += response[key]
        count += 1
        token = response.get("NextToken")
        if not token:
            return items, count


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """Eileen Collins, frontal, 512x512 RGB."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def cameraman() -> np.ndarray:
    """The cameraman, 512x512, grayscale replicated to RGB."""
    from skimage import data

    return np.stack([data.camera()] * 3, axis=-1)


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut: np.ndarray) -> bytes:
    return encode(astronaut)


@pytest.fixture(scope="session")
def cameraman_jpeg(cameraman: np.ndarray) -> bytes:
    return encode(cameraman)


@pytest.fixture(scope="session")
def astronaut_crop(astronaut: np.ndarray) -> np.ndarray:
    from facelens.align import align_face
    from facelens.models.detector import YuNetDetector

    face = YuNetDetector().detect([astronaut])[0][0]
    return align_face(astronaut, face.landmarks)
