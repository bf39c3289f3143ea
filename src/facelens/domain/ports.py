"""What the services need of the face pipeline: `facelens.pipeline.FaceAnalyzer`, or a fake in tests."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

import numpy as np

from facelens.pipeline import Face


class Analyzer(Protocol):
    """Detect, embed and describe faces (`facelens.pipeline.FaceAnalyzer` is the real one)."""

    @property
    def model_version(self) -> str: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> None: ...

    def describe(self, image: np.ndarray, faces: Sequence[Face], fields: Collection[str]) -> None: ...
