"""The runners of the stored-video analyses that identify no one: labels, content moderation, text, persons and
segments (`facelens.domain.video_kinds` lists them with their Start checks).

Each decodes the video once (`facelens.video.decode`), sampled every `VideoService.interval_ms` (text: every
`TEXT_INTERVAL_MS`), and runs the image services on the decoded pixels: `LabelService.labels_of` per frame,
`ModerationService.moderate` and the face path on batches of `BATCH` frames, `TextService`'s reader per frame.
A runner returns its results (per timestamp and, for labels and moderation, aggregated into SEGMENTS) and what
Get* reports beside them (the model version, segment types, audio metadata), kept with the job's metadata.
Frames are decoded ahead on a decode thread (`facelens.video.decode.prefetched`), overlapping the models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from facelens import errors
from facelens.analysis import FaceSet, find_faces
from facelens.context import RequestContext
from facelens.domain.model import FoundFace
from facelens.domain.video_results import Timed, TimedText, TrackedPerson, name_ranks, segments
from facelens.imaging import DecodedImage
from facelens.pipeline import resolve_attributes
from facelens.recognition.text import TextFilters, apply_filters
from facelens.store.jobs import SEGMENTS, JobRecord, JobResult
from facelens.video import segments as cuts
from facelens.video.decode import PREFETCH, audio, every_frame, frames, prefetched, probe
from facelens.video.faces import FRAME_FORMAT, batches
from facelens.video.source import VideoSource
from facelens.video.tracker import FaceTracker

if TYPE_CHECKING:
    from facelens.domain.video_jobs import VideoService

BATCH = 8  # frames per moderation / face-path call
TEXT_INTERVAL_MS = 1000  # text is read once a second: OCR costs ~0.5 s a frame on 2 cores, and text lingers
DEFAULT_MIN_CONFIDENCE = 50.0  # StartLabelDetection / StartContentModeration: "50 percent" unless given
PERSON_MIN_CONFIDENCE = 50.0  # a detector Person at least this confident is a person to track
MEASURE_PREFETCH = 32  # every_frame's frames (160 px wide, 50 KB) decoded ahead of the segment measurements
PERSON_IOU = 0.2  # person boxes of one walker 200 ms apart overlap at least this much (looser than faces')
Outcome = tuple[list[JobResult], dict[str, Any]]
Progress = Callable[[int], None]


def _need(service: Any, what: str) -> Any:
    if service is None:
        raise errors.InvalidParameterException(f"{what} is not configured on this server")
    return service


def _timed(service: VideoService, detections: list[Timed], name: Callable[[Any], str]) -> list[JobResult]:
    """Per-timestamp results and their SEGMENTS, each with its name's rank (SortBy NAME)."""
    ranks = name_ranks([name(d.label) for d in detections])
    merged = segments(detections, service.interval_ms * 3 // 2, name)
    return ([JobResult(d.timestamp_ms, ranks[name(d.label)], service.persist(d)) for d in detections]
            + [JobResult(d.timestamp_ms, ranks[name(d.label)], service.persist(d), SEGMENTS) for d in merged])


# -- labels
def admit_labels(service: VideoService, request: Mapping[str, Any], context: RequestContext) -> None:
    _need(service.labels, "StartLabelDetection")


def labels(service: VideoService, job: JobRecord, source: VideoSource, progress: Progress,
           context: RequestContext) -> Outcome:
    request = job.request
    threshold = request.get("MinConfidence", DEFAULT_MIN_CONFIDENCE)
    detections: list[Timed] = []
    version = None
    with prefetched(frames(source, service.interval_ms), PREFETCH) as decoded:
        for timestamp, pixels in decoded:
            result = service.labels.labels_of(pixels, features=request.get("Features"), min_confidence=threshold,
                                              settings=request.get("Settings"))
            version = result.model_version or version
            detections += [Timed(timestamp, label) for label in result.labels or ()]
            progress(timestamp)
    return _timed(service, detections, lambda label: label.name), {"ModelVersion": version}


# -- content moderation
def admit_moderation(service: VideoService, request: Mapping[str, Any], context: RequestContext) -> None:
    _need(service.moderation, "StartContentModeration")


def moderation(service: VideoService, job: JobRecord, source: VideoSource, progress: Progress,
               context: RequestContext) -> Outcome:
    threshold = job.request.get("MinConfidence", DEFAULT_MIN_CONFIDENCE)
    detections: list[Timed] = []
    version = None
    with prefetched(frames(source, service.interval_ms), PREFETCH) as decoded:
        for batch in batches(decoded, BATCH):
            found = service.moderation.moderate([DecodedImage(pixels, FRAME_FORMAT) for _, pixels in batch],
                                                threshold)
            for (timestamp, _), result in zip(batch, found, strict=True):
                version = result.model_version
                detections += [Timed(timestamp, label) for label in result.labels]
            progress(batch[-1][0])
    return _timed(service, detections, lambda label: label.name), {"ModelVersion": version}


# -- text
def text_filters(wire: Mapping[str, Any] | None) -> TextFilters:
    """StartTextDetectionFilters as DetectText applies them."""
    return TextFilters.from_wire(wire)


def admit_text(service: VideoService, request: Mapping[str, Any], context: RequestContext) -> None:
    _need(service.text, "StartTextDetection")
    apply_filters((), text_filters(request.get("Filters")), 1, 1)  # a bad region is refused now


def text(service: VideoService, job: JobRecord, source: VideoSource, progress: Progress,
         context: RequestContext) -> Outcome:
    reader = service.text.reader
    chosen = text_filters(job.request.get("Filters"))
    found: list[TimedText] = []
    with prefetched(frames(source, TEXT_INTERVAL_MS), 2) as decoded:  # OCR takes ~0.5 s a frame: 2 ahead suffice
        for timestamp, pixels in decoded:
            height, width = pixels.shape[:2]
            lines = apply_filters(reader.read(pixels), chosen, width, height)
            words = [(line_id, word) for line_id, line in enumerate(lines) for word in line.words]
            found += [TimedText(timestamp, "LINE", line_id, None, line.text, line.confidence, line.polygon, width,
                                height) for line_id, line in enumerate(lines)]
            found += [TimedText(timestamp, "WORD", len(lines) + i, line_id, word.text, word.confidence,
                                word.polygon, width, height) for i, (line_id, word) in enumerate(words)]
            progress(timestamp)
    return [JobResult(item.timestamp_ms, 0, service.persist(item)) for item in found], {"ModelVersion": reader.version}


# -- persons
def admit_persons(service: VideoService, request: Mapping[str, Any], context: RequestContext) -> None:
    _need(service.labels, "StartPersonTracking")


def _faces_in(persons: list[tuple[float, float, float, float]], faces: FaceSet) -> list[FoundFace | None]:
    """Each person's face: the largest face whose centre lies in its box, each face given to one person (the
    smallest box holding it)."""
    width, height = faces.image.width, faces.image.height
    chosen: list[FoundFace | None] = [None] * len(persons)
    fields = resolve_attributes(None)
    for face in sorted(faces.passed, key=lambda f: -f.area):
        cx, cy = (face.box[0] + face.box[2]) / 2 / width, (face.box[1] + face.box[3]) / 2 / height
        holders = [i for i, (left, top, w, h) in enumerate(persons)
                   if chosen[i] is None and left <= cx <= left + w and top <= cy <= top + h]
        if holders:
            best = min(holders, key=lambda i: persons[i][2] * persons[i][3])
            chosen[best] = FoundFace(face, width, height, fields)
    return chosen


def persons(service: VideoService, job: JobRecord, source: VideoSource, progress: Progress,
            context: RequestContext) -> Outcome:
    tracker = FaceTracker(iou_min=PERSON_IOU)
    results: list[JobResult] = []
    with prefetched(frames(source, service.interval_ms), PREFETCH) as decoded:
        for batch in batches(decoded, BATCH):
            results += _tracked_persons(service, tracker, batch)
            progress(batch[-1][0])
    return results, {}


def _tracked_persons(service: VideoService, tracker: FaceTracker,
                     batch: list[tuple[int, np.ndarray]]) -> list[JobResult]:
    """The persons of one batch of frames, tracked across batches by `tracker`, each with its face if seen."""
    only_persons = {"GeneralLabels": {"LabelInclusionFilters": ["Person"]}}
    images = [DecodedImage(pixels, FRAME_FORMAT) for _, pixels in batch]
    face_sets = find_faces(service.analyzer, images, resolve_attributes(None), embed=0)
    results = []
    for (timestamp, pixels), faces in zip(batch, face_sets, strict=True):
        assert isinstance(faces, FaceSet)  # decoded frames cannot fail to decode
        found = service.labels.labels_of(pixels, min_confidence=PERSON_MIN_CONFIDENCE, settings=only_persons)
        boxes = [instance.box for label in found.labels or () if label.name == "Person"
                 for instance in label.instances]
        if not boxes:
            continue
        corners = np.array([(left, top, left + w, top + h) for left, top, w, h in boxes])
        tracks = tracker.update(timestamp, corners)
        for box, index, face in zip(boxes, tracks, _faces_in(boxes, faces), strict=True):
            results.append(JobResult(timestamp, index, service.persist(TrackedPerson(timestamp, index, box, face))))
    return results


# -- segments
def segment_settings(request: Mapping[str, Any]) -> cuts.SegmentSettings:
    """StartSegmentDetection's SegmentTypes and Filters."""
    kinds = set(request.get("SegmentTypes") or ())
    filters = request.get("Filters") or {}
    cue = filters.get("TechnicalCueFilter") or {}
    black = cue.get("BlackFrame") or {}
    return cuts.SegmentSettings(
        shots=cuts.SHOT in kinds, cues=cuts.TECHNICAL_CUE in kinds,
        shot_min_confidence=(filters.get("ShotFilter") or {}).get("MinSegmentConfidence", cuts.DEFAULT_MIN_CONFIDENCE),
        cue_min_confidence=cue.get("MinSegmentConfidence", cuts.DEFAULT_MIN_CONFIDENCE),
        max_pixel=black.get("MaxPixelThreshold", cuts.DEFAULT_MAX_PIXEL),
        min_coverage=black.get("MinCoveragePercentage", cuts.DEFAULT_MIN_COVERAGE))


def admit_segments(service: VideoService, request: Mapping[str, Any], context: RequestContext) -> None:
    if not request.get("SegmentTypes"):
        raise errors.InvalidParameterException("SegmentTypes must name SHOT, TECHNICAL_CUE or both")


def segments_of(service: VideoService, job: JobRecord, source: VideoSource, progress: Progress,
                context: RequestContext) -> Outcome:
    chosen = segment_settings(job.request)
    rate = probe(source).frame_rate
    with prefetched(every_frame(source, cuts.MEASURE_WIDTH), MEASURE_PREFETCH) as decoded:
        found = cuts.measure(decoded, chosen, rate, progress)
    selected = [{"Type": kind, "ModelVersion": model} for kind, model, on in
                ((cuts.TECHNICAL_CUE, cuts.CUE_MODEL, chosen.cues), (cuts.SHOT, cuts.SHOT_MODEL, chosen.shots)) if on]
    extras = {"AudioMetadata": [a.to_wire() for a in audio(source)], "SelectedSegmentTypes": selected}
    return [JobResult(s.start_ms, 0, service.persist(s)) for s in found], extras
