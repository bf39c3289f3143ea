"""Stream processors on the wire: validated parameters -> `StreamService` -> Rekognition's response shapes; and
`kinesis_record`, the JSON a processor writes to Kinesis Data Streams for each frame it searched.

The record follows Rekognition's documented stream-processor output: `InputInformation.KinesisVideo` (StreamArn,
FragmentNumber, ServerTimestamp, FrameOffsetInSeconds), `StreamProcessorInformation.Status`, and
`FaceSearchResponse` with one `{DetectedFace, MatchedFaces}` per face searched. A fragment is one connection to
the camera: FragmentNumber is the millisecond it began, ServerTimestamp (seconds) when FaceLens opened it
here, FrameOffsetInSeconds the frame's time in it. ProducerTimestamp is never sent: an RTSP camera gives no
clock FaceLens could trust as the producer's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from facelens.api import shapes
from facelens.api.wire import configured

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.domain.stream_runner import StreamEvent
    from facelens.service import Backend
    from facelens.store.streams import ProcessorRecord

Params = dict[str, Any]
Shape = dict[str, Any]
_CREATE_MEMBERS = ("Input", "Output", "Settings", "RoleArn", "NotificationChannel", "KmsKeyId", "RegionsOfInterest",
                   "DataSharingPreference")


def kinesis_record(event: StreamEvent) -> bytes:
    """The Kinesis record of one searched frame, in Rekognition's JSON."""
    frame = event.frame
    record = {
        "InputInformation": {"KinesisVideo": {
            "StreamArn": event.camera_arn, "FragmentNumber": str(round(frame.server_time * 1000)),
            "ServerTimestamp": round(frame.server_time, 3), "FrameOffsetInSeconds": frame.offset}},
        "StreamProcessorInformation": {"Status": "RUNNING"},
        "FaceSearchResponse": [{"DetectedFace": shapes.face_detail(face.found),
                                "MatchedFaces": shapes.face_matches(face.matches)} for face in event.faces],
    }
    return json.dumps(record).encode()


def _streams(backend: Backend, operation: str) -> Any:
    return configured(backend, "streams", operation)


def description(record: ProcessorRecord) -> Shape:
    """DescribeStreamProcessorResponse."""
    response: Shape = {"Name": record.name, "StreamProcessorArn": record.arn, "Status": record.status,
                       "CreationTimestamp": record.created, "LastUpdateTimestamp": record.updated}
    if record.status_message:
        response["StatusMessage"] = record.status_message
    response.update({k: record.request[k] for k in _CREATE_MEMBERS if k in record.request})
    return response


def create_stream_processor(backend: Backend, p: Params, context: RequestContext) -> Shape:
    arn = _streams(backend, "CreateStreamProcessor").create_stream_processor(
        name=p["Name"], request={k: p[k] for k in _CREATE_MEMBERS if k in p}, tags=p.get("Tags"), context=context)
    return {"StreamProcessorArn": arn}


def start_stream_processor(backend: Backend, p: Params, context: RequestContext) -> Shape:
    session_id = _streams(backend, "StartStreamProcessor").start_stream_processor(
        name=p["Name"], start_selector=p.get("StartSelector"), stop_selector=p.get("StopSelector"), context=context)
    return {"SessionId": session_id}


def stop_stream_processor(backend: Backend, p: Params, context: RequestContext) -> Shape:
    _streams(backend, "StopStreamProcessor").stop_stream_processor(name=p["Name"], context=context)
    return {}


def describe_stream_processor(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return description(_streams(backend, "DescribeStreamProcessor").describe_stream_processor(name=p["Name"],
                                                                                             context=context))


def list_stream_processors(backend: Backend, p: Params, context: RequestContext) -> Shape:
    page = _streams(backend, "ListStreamProcessors").list_stream_processors(
        max_results=p.get("MaxResults"), next_token=p.get("NextToken"), context=context)
    return shapes.with_token({"StreamProcessors": [{"Name": r.name, "Status": r.status} for r in page.items]},
                             page.next_token)


def update_stream_processor(backend: Backend, p: Params, context: RequestContext) -> Shape:
    _streams(backend, "UpdateStreamProcessor").update_stream_processor(
        name=p["Name"], settings_for_update=p.get("SettingsForUpdate"),
        regions_of_interest=p.get("RegionsOfInterestForUpdate"), data_sharing=p.get("DataSharingPreferenceForUpdate"),
        parameters_to_delete=p.get("ParametersToDelete"), context=context)
    return {}


def delete_stream_processor(backend: Backend, p: Params, context: RequestContext) -> Shape:
    _streams(backend, "DeleteStreamProcessor").delete_stream_processor(name=p["Name"], context=context)
    return {}


def tag_resource(backend: Backend, p: Params, context: RequestContext) -> Shape:
    _streams(backend, "TagResource").tag_resource(arn=p["ResourceArn"], tags=p["Tags"], context=context)
    return {}


def untag_resource(backend: Backend, p: Params, context: RequestContext) -> Shape:
    _streams(backend, "UntagResource").untag_resource(arn=p["ResourceArn"], keys=p["TagKeys"], context=context)
    return {}


def list_tags_for_resource(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return {"Tags": _streams(backend, "ListTagsForResource").list_tags(arn=p["ResourceArn"], context=context)}
