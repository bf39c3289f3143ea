"""Stored video on the wire: the Start*/Get* adapters of every video job kind, and the shapes results are stored
(and so served) in.

Start* (idempotent per ClientRequestToken) is one adapter for every kind: `VideoService.admit_job` refuses what
would fail for certain, then the job is created (and audited) in the transaction that records the token. Get*
chooses the stored part (AggregateBy TIMESTAMPS or SEGMENTS) and order (SortBy INDEX or NAME: by person index or
label name, then time; TIMESTAMP: by time) and shapes the page: JobStatus, StatusMessage, VideoMetadata (a list
for GetSegmentDetection), Video, JobTag, the results under the kind's member, NextToken, and what the job
recorded beside them (LabelModelVersion, ModerationModelVersion, TextModelVersion, AudioMetadata,
SelectedSegmentTypes). `persist` is the function the composition root hands the video service: a typed result
-> the dict stored and paged out. Members no model computes are never sent (a segments' Label has no
Instances, a ContentModerationDetection no ContentTypes). Imports no service at runtime.
"""

from __future__ import annotations

from functools import singledispatch
from typing import TYPE_CHECKING, Any

from facelens.api import shapes
from facelens.api.wire import _needs
from facelens.api.wire_labels import label as label_shape
from facelens.api.wire_moderation import moderation_label
from facelens.domain import model
from facelens.domain.video_results import Timed, TimedText, TrackedPerson
from facelens.recognition.labels import Label
from facelens.recognition.text import ratio_box, ratio_polygon
from facelens.store.jobs import EXTRAS, SEGMENTS, TIMESTAMPS
from facelens.video.segments import SHOT, Segment, timecode

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.service import Backend
    from facelens.store.base import Session

Params = dict[str, Any]
Shape = dict[str, Any]


# -- persisted results
@singledispatch
def persist(result: Any) -> Shape:
    """One typed stored-video result as it is stored and served."""
    raise TypeError(f"no stored shape for {type(result).__name__}")


@persist.register
def _(result: model.VideoFace) -> Shape:
    return shapes.video_result(result)


@persist.register
def _(result: Timed) -> Shape:
    if isinstance(result.label, Label):
        key, body = "Label", label_shape(result.label)
        if result.span is not None:
            body.pop("Instances")  # a segment is a span of time: its instances' boxes are per frame
    else:
        key, body = "ModerationLabel", moderation_label(result.label)
    shaped: Shape = {"Timestamp": result.timestamp_ms, key: body}
    if result.span is not None:
        shaped.update(StartTimestampMillis=result.span.start_ms, EndTimestampMillis=result.span.end_ms,
                      DurationMillis=result.span.duration_ms)
    return shaped


@persist.register
def _(result: TimedText) -> Shape:
    left, top, width, height = ratio_box(result.polygon, result.width, result.height)
    detection: Shape = {"DetectedText": result.text, "Type": result.type, "Id": result.id}
    if result.parent_id is not None:
        detection["ParentId"] = result.parent_id
    detection["Confidence"] = result.confidence
    detection["Geometry"] = {"BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
                             "Polygon": [{"X": x, "Y": y} for x, y in ratio_polygon(result.polygon, result.width,
                                                                                    result.height)]}
    return {"Timestamp": result.timestamp_ms, "TextDetection": detection}


@persist.register
def _(result: TrackedPerson) -> Shape:
    left, top, width, height = result.box
    person: Shape = {"Index": result.index, "BoundingBox": {"Width": width, "Height": height, "Left": left,
                                                            "Top": top}}
    if result.face is not None:
        person["Face"] = shapes.face_detail(result.face)
    return {"Timestamp": result.timestamp_ms, "Person": person}


@persist.register
def _(result: Segment) -> Shape:
    frames = result.end_frame - result.start_frame + 1
    shaped: Shape = {
        "Type": result.type, "StartTimestampMillis": result.start_ms, "EndTimestampMillis": result.end_ms,
        "DurationMillis": result.end_ms - result.start_ms,
        "StartTimecodeSMPTE": timecode(result.start_frame, result.frame_rate),
        "EndTimecodeSMPTE": timecode(result.end_frame + 1, result.frame_rate),
        "DurationSMPTE": timecode(frames, result.frame_rate),
    }
    if result.type == SHOT:
        shaped["ShotSegment"] = {"Index": result.shot_index, "Confidence": result.confidence}
    else:
        shaped["TechnicalCueSegment"] = {"Type": result.cue, "Confidence": result.confidence}
    shaped.update(StartFrameNumber=result.start_frame, EndFrameNumber=result.end_frame, DurationFrames=frames)
    return shaped


# -- Start* (idempotent per ClientRequestToken)
def start(operation: str, backend: Backend, p: Params, context: RequestContext) -> Shape:
    video = _needs(backend.video, operation)
    video.admit_job(operation, p, context)

    def body(session: Session) -> tuple[Shape, None]:
        return {"JobId": video.create_job(session, operation, request=p, context=context)}, None

    response = video.records.idempotent(operation, p, body, context.key_id)
    video.queued()
    return response


def start_face_detection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return start("StartFaceDetection", backend, p, context)


def start_face_search(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return start("StartFaceSearch", backend, p, context)


def start_label_detection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return start("StartLabelDetection", backend, p, context)


def start_content_moderation(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return start("StartContentModeration", backend, p, context)


def start_text_detection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return start("StartTextDetection", backend, p, context)


def start_person_tracking(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return start("StartPersonTracking", backend, p, context)


def start_segment_detection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return start("StartSegmentDetection", backend, p, context)

# -- Get*
def _page(operation: str, key: str, backend: Backend, p: Params, context: RequestContext, *,
          by_index: bool = False, part: int = TIMESTAMPS, version: str | None = None,
          request_metadata: Shape | None = None) -> Shape:
    result = _needs(backend.video, operation).get(operation, job_id=p["JobId"], by_index=by_index, part=part,
                                                  max_results=p.get("MaxResults"), next_token=p.get("NextToken"),
                                                  context=context)
    job = result.job
    response: Shape = {"JobStatus": result.status}
    if job.status_message:
        response["StatusMessage"] = job.status_message
    metadata = dict(job.metadata or {})
    extras = metadata.pop(EXTRAS, None) or {}
    if metadata:
        response["VideoMetadata"] = [metadata] if operation == "GetSegmentDetection" else metadata
    if operation == "GetSegmentDetection" and "AudioMetadata" in extras:
        response["AudioMetadata"] = extras["AudioMetadata"]
    if result.results is not None:
        response[key] = result.results
        shapes.with_token(response, result.next_token)
        if version is not None and extras.get("ModelVersion"):
            response[version] = extras["ModelVersion"]
        if operation == "GetSegmentDetection":
            response["SelectedSegmentTypes"] = extras.get("SelectedSegmentTypes", [])
    response.update(JobId=job.job_id, Video=job.request["Video"])
    if "JobTag" in job.request:
        response["JobTag"] = job.request["JobTag"]
    if request_metadata is not None:
        response["GetRequestMetadata"] = request_metadata
    return response


def _sorted_and_aggregated(operation: str, key: str, version: str, backend: Backend, p: Params,
                           context: RequestContext) -> Shape:
    sort_by, aggregate_by = p.get("SortBy") or "TIMESTAMP", p.get("AggregateBy") or "TIMESTAMPS"
    return _page(operation, key, backend, p, context, by_index=sort_by == "NAME",
                 part=SEGMENTS if aggregate_by == "SEGMENTS" else TIMESTAMPS, version=version,
                 request_metadata={"SortBy": sort_by, "AggregateBy": aggregate_by})


def get_face_detection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return _page("GetFaceDetection", "Faces", backend, p, context)


def get_face_search(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return _page("GetFaceSearch", "Persons", backend, p, context, by_index=p.get("SortBy") == "INDEX")


def get_label_detection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return _sorted_and_aggregated("GetLabelDetection", "Labels", "LabelModelVersion", backend, p, context)


def get_content_moderation(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return _sorted_and_aggregated("GetContentModeration", "ModerationLabels", "ModerationModelVersion", backend, p,
                                  context)


def get_text_detection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return _page("GetTextDetection", "TextDetections", backend, p, context, version="TextModelVersion")


def get_person_tracking(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return _page("GetPersonTracking", "Persons", backend, p, context, by_index=p.get("SortBy") == "INDEX")


def get_segment_detection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return _page("GetSegmentDetection", "Segments", backend, p, context)
