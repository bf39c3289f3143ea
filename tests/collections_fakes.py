"""Helpers for the collection backend tests: a synthetic calibration, a scripted analyzer, clustered embeddings."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facelens import service_model
from facelens.accountability.gate import Gate
from facelens.accountability.policy import Threshold, false_match_probability
from facelens.calibration import Calibration
from facelens.config import ServerSettings
from facelens.context import RequestContext
from facelens.pipeline import Face
from facelens.service import Backend, build
from facelens.store.base import CollectionRecord
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


@dataclass
class _Face(Face):
    scripted: ScriptedFace | None = None  # what the scene says this face is


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
                face = _Face(box=np.array(scripted.box, np.float32), landmarks=landmarks,
                             confidence=scripted.confidence, scripted=scripted)
                faces.append(face)
            found.append(faces)
        return found

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> None:
        for per_image in faces:
            for face in per_image:
                face.embedding = unit(face.scripted.vector)[0]

    def describe(self, image: np.ndarray, faces: Sequence[Face], fields: Collection[str]) -> None:
        for face in faces:
            scripted = face.scripted
            if "Pose" in fields:
                face.pose = scripted.pose
            if "Quality" in fields:
                face.quality = scripted.quality


class RequestedThresholdGate(Gate):
    """A gate that answers every search at the threshold it asks for: for tests of the search engine below the
    policy layer, passed in with `make_backend(..., floors=False)`. Floors have their own tests (tests/api/
    test_entry_points.py, tests/integration/test_api_accountability.py); purpose and audit work as in `Gate`."""

    def admit_search(self, context: RequestContext, operation: str, collection_id: str, requested: float | None,
                     max_results: int | None, threshold_member: str,
                     limit_member: str | None) -> tuple[CollectionRecord, Threshold, int]:
        collection, real, limit = super().admit_search(context, operation, collection_id, requested, max_results,
                                                       threshold_member, limit_member)
        effective = float(service_model.documented_default(operation, threshold_member)) if requested is None \
            else float(requested)
        return collection, Threshold(requested, effective, 0.0, real.gallery,
                                     false_match_probability(effective, real.gallery)), limit


def make_backend(path: Path, analyzer: ScriptedAnalyzer | None = None, *, floors: bool = True,
                 **options: Any) -> Backend:
    """A backend on `path` (its data directory) with the scripted analyzer and the synthetic calibration; with
    `floors=False`, searches at exactly the requested threshold (`RequestedThresholdGate`)."""
    settings = options.pop("settings", None) or ServerSettings(data_dir=Path(path))
    return build(settings, analyzer=analyzer or ScriptedAnalyzer(), calibration_for=lambda version: CALIBRATION,
                 gate_factory=Gate if floors else RequestedThresholdGate, **options)
