"""The table of stored-video job kinds: for each, its Start check and its runner over the decoded video.

A kind's operations are `Start<name>` and `Get<name>`. `admit(service, request, context)` refuses at Start what
would fail for certain (beyond the video source, which `VideoService` checks for every kind);
`run(service, job, source, progress, context)` analyses the video and returns `(results, extras)`: the results
as stored (`facelens.store.jobs.JobResult`, already in their wire shape) and what Get* reports beside them
(ModelVersion, AudioMetadata, SelectedSegmentTypes), kept with the job's VideoMetadata. `identifies`: the kind
names people (face search), so its Get is scoped to its collection and its results' FaceIds are audited.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from facelens.context import RequestContext
from facelens.domain import video_analyses as analyses
from facelens.domain import video_face_jobs as face_jobs
from facelens.store.jobs import JobRecord, JobResult
from facelens.video.source import VideoSource

if TYPE_CHECKING:
    from facelens.domain.video_jobs import VideoService

Admit = Callable[["VideoService", Mapping[str, Any], RequestContext], None]
Runner = Callable[["VideoService", JobRecord, VideoSource, Callable[[int], None], RequestContext],
                  tuple[list[JobResult], dict[str, Any]]]


@dataclass(frozen=True)
class JobKind:
    name: str  # as stored in video_jobs.kind: StartFaceDetection's is "FaceDetection"
    run: Runner
    admit: Admit | None = None
    identifies: bool = False

    @property
    def start(self) -> str:
        return f"Start{self.name}"

    @property
    def get(self) -> str:
        return f"Get{self.name}"


KINDS: Mapping[str, JobKind] = {kind.name: kind for kind in (
    JobKind("FaceDetection", face_jobs.detect),
    JobKind("FaceSearch", face_jobs.search, face_jobs.admit_search, identifies=True),
    JobKind("LabelDetection", analyses.labels, analyses.admit_labels),
    JobKind("ContentModeration", analyses.moderation, analyses.admit_moderation),
    JobKind("TextDetection", analyses.text, analyses.admit_text),
    JobKind("PersonTracking", analyses.persons, analyses.admit_persons),
    JobKind("SegmentDetection", analyses.segments_of, analyses.admit_segments),
)}
BY_START: Mapping[str, JobKind] = {kind.start: kind for kind in KINDS.values()}
