"""The operation registry: every operation FaceLens answers, declared once.

Each entry names the operation, the wire adapter that answers it (`facelens.api.wire`: parameters -> a typed
service call -> `facelens.api.shapes`), and how it may be called: whether it only
reads (a read-only key may call it), whether it needs an admin key, and which of its members are images (such an
operation runs on the inference pool; the others on the I/O pool). Routing (`facelens.service.Backend.run`),
key scopes (`facelens.context.KeyScope`), the HTTP layer's NotImplemented answer and the scope sets are all
derived from this table; nothing else lists operation names.

Read-only means "changes no collection, face, user, policy or job": searches, comparisons and Get* of video
jobs are read-only (they are still audited); Start* of a video job creates a job and is not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.model import OperationModel

from facelens import errors, service_model
from facelens.api import wire, wire_labels, wire_moderation, wire_ppe, wire_review, wire_streams, wire_text, wire_video

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.service import Backend

Handler = Callable[["Backend", dict[str, Any], "RequestContext"], dict[str, Any]]


@dataclass(frozen=True)
class Operation:
    """One operation: `handler(backend, params, context)` is its wire adapter (`facelens.api.wire`): validated
    parameters -> a typed service call -> the response's shape."""

    name: str
    handler: Handler
    read_only: bool = False
    admin: bool = False
    facelens: bool = False  # FaceLens's own operation (target prefix FaceLens), not Rekognition's

    @property
    def model(self) -> OperationModel:
        """The operation in its botocore service model (Rekognition's, or FaceLens's own)."""
        service = service_model.admin_model() if self.facelens else service_model.model()
        return service.operation_model(self.name)

    @property
    def images(self) -> tuple[str, ...]:
        """Members of the request that are images (`Image`, `SourceImage`, `TargetImage`)."""
        return tuple(name for name, member in self.model.input_shape.members.items() if member.name == "Image")


def _registry(*operations: Operation) -> Mapping[str, Operation]:
    table = {op.name: op for op in operations}
    if len(table) != len(operations):
        raise ValueError("an operation is declared twice")
    return table


OPERATIONS: Mapping[str, Operation] = _registry(
    # images: detection and 1:1 comparison
    Operation("DetectFaces", wire.detect_faces, read_only=True),
    Operation("CompareFaces", wire.compare_faces, read_only=True),
    Operation("DetectLabels", wire_labels.detect_labels, read_only=True),
    Operation("DetectProtectiveEquipment", wire_ppe.detect_protective_equipment, read_only=True),
    Operation("DetectModerationLabels", wire_moderation.detect_moderation_labels, read_only=True),
    Operation("DetectText", wire_text.detect_text, read_only=True),
    # collections and faces
    Operation("CreateCollection", wire.create_collection),
    Operation("DeleteCollection", wire.delete_collection),
    Operation("ListCollections", wire.list_collections, read_only=True),
    Operation("DescribeCollection", wire.describe_collection, read_only=True),
    Operation("IndexFaces", wire.index_faces),
    Operation("ListFaces", wire.list_faces, read_only=True),
    Operation("DeleteFaces", wire.delete_faces),
    Operation("SearchFaces", wire.search_faces, read_only=True),
    Operation("SearchFacesByImage", wire.search_faces_by_image, read_only=True),
    # users
    Operation("CreateUser", wire.create_user),
    Operation("DeleteUser", wire.delete_user),
    Operation("ListUsers", wire.list_users, read_only=True),
    Operation("AssociateFaces", wire.associate_faces),
    Operation("DisassociateFaces", wire.disassociate_faces),
    Operation("SearchUsers", wire.search_users, read_only=True),
    Operation("SearchUsersByImage", wire.search_users_by_image, read_only=True),
    # stored video
    Operation("StartFaceDetection", wire_video.start_face_detection),
    Operation("GetFaceDetection", wire_video.get_face_detection, read_only=True),
    Operation("StartFaceSearch", wire_video.start_face_search),
    Operation("GetFaceSearch", wire_video.get_face_search, read_only=True),
    Operation("StartLabelDetection", wire_video.start_label_detection),
    Operation("GetLabelDetection", wire_video.get_label_detection, read_only=True),
    Operation("StartContentModeration", wire_video.start_content_moderation),
    Operation("GetContentModeration", wire_video.get_content_moderation, read_only=True),
    Operation("StartTextDetection", wire_video.start_text_detection),
    Operation("GetTextDetection", wire_video.get_text_detection, read_only=True),
    Operation("StartPersonTracking", wire_video.start_person_tracking),
    Operation("GetPersonTracking", wire_video.get_person_tracking, read_only=True),
    Operation("StartSegmentDetection", wire_video.start_segment_detection),
    Operation("GetSegmentDetection", wire_video.get_segment_detection, read_only=True),
    # live video: stream processors on cameras (api/wire_streams.py)
    Operation("CreateStreamProcessor", wire_streams.create_stream_processor),
    Operation("StartStreamProcessor", wire_streams.start_stream_processor),
    Operation("StopStreamProcessor", wire_streams.stop_stream_processor),
    Operation("DescribeStreamProcessor", wire_streams.describe_stream_processor, read_only=True),
    Operation("ListStreamProcessors", wire_streams.list_stream_processors, read_only=True),
    Operation("UpdateStreamProcessor", wire_streams.update_stream_processor),
    Operation("DeleteStreamProcessor", wire_streams.delete_stream_processor),
    Operation("TagResource", wire_streams.tag_resource),
    Operation("UntagResource", wire_streams.untag_resource),
    Operation("ListTagsForResource", wire_streams.list_tags_for_resource, read_only=True),
    # FaceLens's own: policies and the audit log
    Operation("PutCollectionPolicy", wire.put_collection_policy, admin=True, facelens=True),
    Operation("GetCollectionPolicy", wire.get_collection_policy, read_only=True, facelens=True),
    Operation("ListAuditRecords", wire.list_audit_records, read_only=True, admin=True,
              facelens=True),
    # a reviewer's decision about a search's candidate: an audit record only (read-only: changes nothing else)
    Operation("RecordReviewDecision", wire_review.record_review_decision, read_only=True, facelens=True),
)

READ_ONLY_OPERATIONS = frozenset(name for name, op in OPERATIONS.items() if op.read_only)
ADMIN_OPERATIONS = frozenset(name for name, op in OPERATIONS.items() if op.admin)


def get(name: str) -> Operation | None:
    """The registered operation of that name (None: not implemented)."""
    return OPERATIONS.get(name)


def require(name: str) -> Operation:
    """The registered operation of that name, or InvalidParameterException (an in-process caller's mistake)."""
    entry = OPERATIONS.get(name)
    if entry is None:
        raise errors.InvalidParameterException(f"FaceLens has no operation {name}")
    return entry
