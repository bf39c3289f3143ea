"""What the services need of the layers around them: the face pipeline (`facelens.pipeline.FaceAnalyzer`, or a
fake in tests) and the accountability gate (`facelens.accountability.gate.Gate`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from facelens.context import RequestContext
from facelens.pipeline import Face
from facelens.store.base import CollectionRecord
from facelens.store.repos import AuditLog


class Analyzer(Protocol):
    """Detect, embed and describe faces (`facelens.pipeline.FaceAnalyzer` is the real one)."""

    @property
    def model_version(self) -> str: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> None: ...

    def describe(self, image: np.ndarray, faces: Sequence[Face], fields: Collection[str]) -> None: ...


class Ruling(Protocol):
    """What the gate decided for one search or comparison (`accountability.policy.Threshold`)."""

    @property
    def effective(self) -> float: ...  # the Similarity the search or comparison is answered at


class Gate(Protocol):
    """The accountability gate as the services see it (`facelens.accountability.gate.Gate`): every search and
    comparison is admitted by it (floors, purpose rule) and recorded through it; writes record themselves in
    their own transaction. The domain depends on this protocol, not on the accountability layer."""

    def record(self, session: AuditLog, context: RequestContext, operation: str, collection_id: str | None,
               **fields: Any) -> None: ...

    def admit_search(self, context: RequestContext, operation: str, params: Mapping[str, Any],
                     threshold_member: str, limit_member: str | None) -> tuple[CollectionRecord, Ruling, int]: ...

    def record_search(self, context: RequestContext, operation: str, collection: CollectionRecord,
                      threshold: Ruling, matches: Sequence[Mapping[str, Any]], **fields: Any) -> None: ...

    def admit_compare(self, context: RequestContext, requested: float | None) -> Ruling: ...

    def record_compare(self, context: RequestContext, threshold: Ruling, model_version: str,
                       similarities: Sequence[float]) -> None: ...
