"""Helpers for the collection backend tests: a synthetic calibration, a scripted analyzer, clustered embeddings."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from facelens import accountable
from facelens.accountability.policy import Policy, Threshold, false_match_probability
from facelens.calibration import Calibration
from facelens.collections import FaceCollections
from facelens.pipeline import Face
from tests.conftest import encode

DIM = 128
# cosine 0.5 -> Similarity 80, 0.7 -> 100; unrelated random 128-d vectors (cosine ~ 0 +- 0.09) score ~ 30.
CALIBRATION = Calibration.from_dict({
    "model": "synthetic",
    "points": [[-1.0, 0.0], [0.1, -1.0], [0.3, -3.0], [0.5, -6.0], [0.7, -8.0]],
    "tail": {"cosine_from": 0.7, "log10_fmr": -8.0, "slope": -10.0},
})


def unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.atleast_2d(np.asarray(vectors, np.float32))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def identities(count: int, per: int, noise: float = 0.08, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` people x `per` noisy samples each: (embeddings (count*per, DIM), person index per row)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((count, DIM)))
    people = np.repeat(np.arange(count), per)
    return unit(centres[people] + noise * rng.standard_normal((len(people), DIM))), people


@dataclass
class ScriptedFace:
    box: tuple[float, float, float, float]
    vector: np.ndarray
    confidence: float = 99.0
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quality: tuple[float, float] = (60.0, 60.0)


class ScriptedAnalyzer:
    """Stands in for FaceAnalyzer: each image is a flat PNG whose grey level names a scripted scene."""

    model_version = "synthetic"

    def __init__(self) -> None:
        self.scenes: dict[int, list[ScriptedFace]] = {}

    def image(self, level: int, faces: Sequence[ScriptedFace]) -> bytes:
        self.scenes[level] = list(faces)
        return encode(np.full((400, 600, 3), level, np.uint8), "PNG")

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        found = []
        for image in images:
            faces = []
            for scripted in self.scenes.get(int(image[0, 0, 0]), []):
                x1, y1, x2, y2 = scripted.box
                landmarks = np.array([[x1 + 0.3 * (x2 - x1), y1 + 0.4 * (y2 - y1)],
                                      [x1 + 0.7 * (x2 - x1), y1 + 0.4 * (y2 - y1)],
                                      [x1 + 0.5 * (x2 - x1), y1 + 0.6 * (y2 - y1)],
                                      [x1 + 0.35 * (x2 - x1), y1 + 0.8 * (y2 - y1)],
                                      [x1 + 0.65 * (x2 - x1), y1 + 0.8 * (y2 - y1)]], np.float32)
                face = Face(box=np.array(scripted.box, np.float32), landmarks=landmarks,
                            confidence=scripted.confidence)
                face.extra["scripted"] = scripted
                faces.append(face)
            found.append(faces)
        return found

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> None:
        for per_image in faces:
            for face in per_image:
                face.embedding = unit(face.extra["scripted"].vector)[0]

    def describe(self, image: np.ndarray, faces: Sequence[Face], fields: Collection[str]) -> None:
        for face in faces:
            scripted = face.extra["scripted"]
            if "Pose" in fields:
                face.pose = scripted.pose
            if "Quality" in fields:
                face.quality = scripted.quality


@pytest.fixture
def without_floors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches answered at the requested threshold: for tests of the search engine below the policy layer
    (floors have their own tests: tests/test_accountability.py, tests/test_api_accountability.py)."""

    def requested_only(policy: Policy, requested: float | None, default: float, gallery: int) -> Threshold:
        effective = default if requested is None else requested
        return Threshold(requested, effective, 0.0, gallery, false_match_probability(effective, gallery))

    monkeypatch.setattr(accountable, "search_threshold", requested_only)


def make_backend(path: Path, analyzer: ScriptedAnalyzer | None = None, **options: object) -> FaceCollections:
    analyzer = analyzer or ScriptedAnalyzer()
    return FaceCollections(path, lambda: analyzer, lambda version: CALIBRATION, **options)  # type: ignore[arg-type]
