"""What the services return: plain dataclasses, no Rekognition dicts (those are built in `facelens.api.shapes`).

A service method takes typed keyword arguments and the `RequestContext` and returns one of these; the wire
adapters (`facelens.api.wire`) turn them into responses. Stored records (`CollectionRecord`, `FaceRecord`,
`UserRecord`, `NewFace`, `AuditRow`, `JobRecord`) are returned as the store gives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from facelens.geometry import relative_box
from facelens.pipeline import Face
from facelens.store.base import CollectionRecord, FaceRecord, NewFace, UserRecord
from facelens.store.jobs import JobRecord

if TYPE_CHECKING:
    from facelens.accountability.policy import Policy

T = TypeVar("T")
M = TypeVar("M")  # a FaceMatch or a UserMatch


@dataclass(frozen=True)
class FoundFace:
    """A face found by the face path, with the size of its (upright) image and the FaceDetail fields asked for."""

    face: Face
    width: int
    height: int
    fields: frozenset[str] = frozenset()

    @property
    def box(self) -> dict[str, float]:
        return relative_box(self.face.box, self.width, self.height)


@dataclass(frozen=True)
class ComparedMatch:
    similarity: float
    face: FoundFace


@dataclass(frozen=True)
class Comparison:
    """CompareFaces: the source image's largest face, the target faces that reach the threshold (best first)
    and those that do not."""

    source: FoundFace
    matches: list[ComparedMatch]
    unmatched: list[FoundFace]


@dataclass(frozen=True)
class CollectionDescription:
    """DescribeCollection: the stored collection and how many faces and users it holds now."""

    collection: CollectionRecord
    face_count: int
    user_count: int


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing and the NextToken of the next (None: this is the last)."""

    items: list[T]
    next_token: str | None = None


@dataclass(frozen=True)
class FaceList:
    page: Page[FaceRecord]
    face_model_version: str


@dataclass(frozen=True)
class IndexedFace:
    stored: NewFace
    face: FoundFace


@dataclass(frozen=True)
class UnindexedFace:
    """A face not indexed (or not searched), with its reasons."""

    face: FoundFace
    reasons: list[str]


@dataclass(frozen=True)
class Indexing:
    face_model_version: str
    indexed: list[IndexedFace]
    unindexed: list[UnindexedFace]


@dataclass(frozen=True)
class FaceMatch:
    similarity: float
    face: FaceRecord


@dataclass(frozen=True)
class UserMatch:
    similarity: float
    user: UserRecord


@dataclass(frozen=True)
class Refusal:
    """A face a deletion or (dis)association did not touch, and why."""

    face_id: str
    reasons: list[str]
    user_id: str | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class FaceChanges:
    """DeleteFaces (`face_ids`: deleted), AssociateFaces or DisassociateFaces (`face_ids`: associated or
    disassociated; `user_status`: the user's after it), with the faces refused."""

    face_ids: list[str]
    refused: list[Refusal]
    user_status: str | None = None


@dataclass(frozen=True)
class Search(Generic[M]):
    """Any search: what was searched (a stored face, a user's faces, or an image's largest face passing the
    filter, None if none did), the matches (`FaceMatch` or `UserMatch`), best first, and for
    SearchUsersByImage the faces it did not search."""

    face_model_version: str
    matches: list[M]
    searched_face_id: str | None = None
    searched_user_id: str | None = None
    searched_face: FoundFace | None = None
    unsearched: list[UnindexedFace] | None = None


@dataclass(frozen=True)
class CollectionPolicy:
    collection_id: str
    own: dict[str, Any]  # the collection's own settings (snake_case names)
    effective: Policy  # the server's settings with the collection's over them
    face_count: int
    search_floor: float
    calibration: str | None = None  # the id of the Similarity scale in force (`Calibration.id`)


@dataclass(frozen=True)
class VideoFace:
    """One face of one sampled frame; a face search's carries the matches of its track's latest search."""

    timestamp_ms: int
    track: int
    face: FoundFace
    matches: Sequence[FaceMatch] | None = None


@dataclass(frozen=True)
class JobPage:
    """A video job and, once it has succeeded, one page of its stored results (as Get* serves them)."""

    job: JobRecord
    status: str  # as reported: QUEUED shows as IN_PROGRESS
    results: list[dict[str, Any]] | None = None
    next_token: str | None = None

