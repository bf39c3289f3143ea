"""The runners of the two face jobs: StartFaceDetection and StartFaceSearch (`facelens.domain.video_kinds`).

Face search searches each tracked person when it appears and again after each second of video, at the
collection's policy floor, and the job is audited once, like an image search (`facelens.accountability.gate`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from facelens.context import RequestContext
from facelens.domain.common import check_model
from facelens.domain.model import FaceMatch, FoundFace, VideoFace
from facelens.pipeline import resolve_attributes
from facelens.store.jobs import JobRecord, JobResult
from facelens.video.faces import detect_in_video
from facelens.video.source import VideoSource

if TYPE_CHECKING:
    from facelens.domain.video_jobs import VideoService

SEARCH_INTERVAL_MS = 1000  # each tracked person is searched again after this much video
VIDEO_MAX_MATCHES = 10  # FaceMatches per detection (before the policy's MaxResults cap)
Outcome = tuple[list[JobResult], dict[str, Any]]


def admit_search(service: VideoService, request: Mapping[str, Any], context: RequestContext) -> None:
    """Refuse at Start a search on a missing collection, without a required purpose, or of another face model."""
    collection, _, _ = service.gate.admit_search(context, "StartFaceSearch", request["CollectionId"],
                                                 request.get("FaceMatchThreshold"), None, "FaceMatchThreshold", None)
    check_model(service.analyzer.model_version, collection)


def detect(service: VideoService, job: JobRecord, source: VideoSource, progress: Callable[[int], None],
           context: RequestContext) -> Outcome:
    fields = resolve_attributes([job.request.get("FaceAttributes", "DEFAULT")])
    _, faces = detect_in_video(source, service.analyzer, fields, service.interval_ms, progress)
    return [JobResult(face.timestamp_ms, 0, service.persist(VideoFace(face.timestamp_ms, face.track, FoundFace(
        face.face, face.width, face.height, fields)))) for face in faces], {}


def search(service: VideoService, job: JobRecord, source: VideoSource, progress: Callable[[int], None],
           context: RequestContext) -> Outcome:
    collection, threshold, limit = service.gate.admit_search(context, "StartFaceSearch", job.request["CollectionId"],
                                                             job.request.get("FaceMatchThreshold"), None,
                                                             "FaceMatchThreshold", None)
    check_model(service.analyzer.model_version, collection)
    fields = resolve_attributes(None)
    _, faces = detect_in_video(source, service.analyzer, fields, service.interval_ms, progress)
    last: dict[int, tuple[int, list[FaceMatch]]] = {}
    best: dict[str, FaceMatch] = {}
    results = []
    for face in faces:
        seen = last.get(face.track)
        if seen is None or face.timestamp_ms - seen[0] >= SEARCH_INTERVAL_MS:
            matches = service.search.face_matches(collection, face.embedding[None, :], threshold.effective,
                                                  min(limit, VIDEO_MAX_MATCHES))
            seen = last[face.track] = (face.timestamp_ms, matches)
            for match in matches:
                known = best.get(match.face.face_id)
                if known is None or match.similarity > known.similarity:
                    best[match.face.face_id] = match
        found = VideoFace(face.timestamp_ms, face.track, FoundFace(face.face, face.width, face.height, fields),
                          seen[1])
        results.append(JobResult(face.timestamp_ms, face.track, service.persist(found)))
    ranked = sorted(best.values(), key=lambda m: -m.similarity)
    service.gate.record_search(context, "StartFaceSearch", collection, threshold, ranked, job_id=job.job_id,
                               video=job.request["Video"]["S3Object"]["Name"], persons=len(last))
    return results, {}
