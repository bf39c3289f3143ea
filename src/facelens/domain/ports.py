"""What the services need of the layers around them: the face pipeline (`facelens.pipeline.FaceAnalyzer`, or a
fake in tests) and the accountability gate (`facelens.accountability.gate.Gate`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from facelens.analysis import Analyzer as FacePath
from facelens.context import RequestContext
from facelens.domain.model import FaceMatch, UserMatch
from facelens.store.base import CollectionRecord
from facelens.store.repos import AuditLog, Policies


class Analyzer(FacePath, Protocol):
    """The face path's analyzer (detect, describe, embed: `facelens.analysis.Analyzer`) and the version of its
    recognizer, which decides whether two embeddings are comparable (`facelens.pipeline.FaceAnalyzer`)."""

    @property
    def model_version(self) -> str: ...


class Ruling(Protocol):
    """What the gate decided for one search or comparison (`accountability.policy.Threshold`)."""

    @property
    def effective(self) -> float: ...  # the Similarity the search or comparison is answered at

    @property
    def floor(self) -> float: ...  # the least Similarity the policy lets it be answered at


class CollectionPolicy(Protocol):
    """What the services read of a collection's policy (`accountability.policy.Policy`) themselves."""

    @property
    def keep_face_crops(self) -> bool: ...  # IndexFaces keeps a thumbnail of each face


class Gate(Protocol):
    """The accountability gate as the services see it (`facelens.accountability.gate.Gate`): every search and
    comparison is admitted by it (floors, purpose rule) and recorded through it; writes record themselves in
    their own transaction. The domain depends on this protocol, not on the accountability layer."""

    def record(self, session: AuditLog, context: RequestContext, operation: str, collection_id: str | None,
               **fields: Any) -> None: ...

    def calibration_id(self, model_version: str) -> str | None: ...

    def policy_for(self, session: Policies, collection: CollectionRecord) -> CollectionPolicy: ...

    def admit_search(self, context: RequestContext, operation: str, collection_id: str, requested: float | None,
                     max_results: int | None, threshold_member: str,
                     limit_member: str | None, *,
                     default: float | None = None) -> tuple[CollectionRecord, Ruling, int]: ...

    def record_search(self, context: RequestContext, operation: str, collection: CollectionRecord,
                      threshold: Ruling, matches: Sequence[FaceMatch] | Sequence[UserMatch],
                      **fields: Any) -> None: ...

    def admit_association(self, context: RequestContext, operation: str, collection_id: str) -> None: ...

    def association_threshold(self, context: RequestContext, requested: float | None, default: float,
                              references: int) -> Ruling: ...

    def record_association(self, session: AuditLog, context: RequestContext, operation: str,
                           collection: CollectionRecord, threshold: Ruling, user_id: str,
                           associated: Sequence[tuple[str, float | None]],
                           refused: Sequence[tuple[str, str, float | None]]) -> None: ...

    def admit_compare(self, context: RequestContext, requested: float | None) -> Ruling: ...

    def record_compare(self, context: RequestContext, threshold: Ruling, model_version: str,
                       similarities: Sequence[float]) -> None: ...
