"""DetectFaces ALL on many faces: the batched, overlapped describe gives the FaceDetails of describing each face
alone (`facelens.analyze`, the real models), and `run_tasks` runs every task once and raises their errors."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

import facelens
from facelens.analysis import find_faces_in
from facelens.api.shapes import face_detail
from facelens.domain.model import FoundFace
from facelens.pipeline import PART, default_analyzer, resolve_attributes, run_tasks
from tests.conftest import encode


@pytest.fixture(scope="module")
def crowd(astronaut: np.ndarray, cameraman: np.ndarray) -> bytes:
    """32 tiles of 240x270 on 1920x1080: the two sample photos, plain and mirrored, a little brighter or darker."""
    canvas = np.zeros((1080, 1920, 3), np.uint8)
    for i in range(32):
        row, col = divmod(i, 8)
        tile = (astronaut, cameraman)[i % 2]
        tile = tile[:, ::-1] if (i // 2) % 2 else tile
        tile = cv2.convertScaleAbs(np.ascontiguousarray(tile), alpha=1.0, beta=(i % 5 - 2) * 12)
        canvas[row * 270:(row + 1) * 270, col * 240:(col + 1) * 240] = cv2.resize(tile, (240, 270))
    return encode(canvas)


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}{i}.").items()}
    return {prefix: value}


def test_batched_describe_gives_the_face_details_of_describing_each_face_alone(crowd: bytes) -> None:
    batched = facelens.analyze(crowd, attributes=["ALL"])["FaceDetails"]
    assert len(batched) >= 2 * PART  # enough faces for the per-face work and the heavy models to run in parts
    fields = resolve_attributes(["ALL"])
    analyzer = default_analyzer()
    found = find_faces_in(analyzer, crowd, None)  # detection only, then each face described on its own
    alone = []
    for face, _ in found.faces:
        analyzer.describe(found.image.pixels, [face], fields)
        alone.append(face_detail(FoundFace(face, found.image.width, found.image.height, fields)))
    assert len(alone) == len(batched)
    for one, many in zip(alone, batched, strict=True):
        one, many = flatten(one), flatten(many)
        assert one.keys() == many.keys()
        for key, value in one.items():
            if isinstance(value, float):
                assert many[key] == pytest.approx(value, rel=1e-4, abs=1e-3), key
            else:
                assert many[key] == value, key


def test_run_tasks_runs_each_task_once_and_raises_the_first_error() -> None:
    counts = [0] * 9
    lock = threading.Lock()

    def task(i: int) -> None:
        with lock:
            counts[i] += 1

    run_tasks([lambda i=i: task(i) for i in range(9)])
    assert counts == [1] * 9

    def fail() -> None:
        raise ValueError("from a pool task")

    with pytest.raises(ValueError, match="from a pool task"):
        run_tasks([lambda: task(0), fail, lambda: task(1)])
    assert counts[:2] == [2, 2]  # the other tasks still ran
