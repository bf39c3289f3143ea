"""The operation registry: every operation FaceLens answers, declared once.

Each entry names the operation, the service method that answers it, and how it may be called: whether it only
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

from facelens import service_model

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.service import Backend

Handler = Callable[[dict[str, Any], "RequestContext"], dict[str, Any]]


@dataclass(frozen=True)
class Operation:
    """One operation: `handler(backend)` is the bound service method that answers it."""

    name: str
    handler: Callable[[Backend], Handler]
    read_only: bool = False
    admin: bool = False
    facelens: bool = False  # FaceLens's own operation (target prefix FaceLens), not Rekognition's

    @property
    def images(self) -> tuple[str, ...]:
        """Members of the request that are images (`Image`, `SourceImage`, `TargetImage`)."""
        model = service_model.admin_model() if self.facelens else service_model.model()
        shape = model.operation_model(self.name).input_shape
        return tuple(name for name, member in shape.members.items() if member.name == "Image")


def _registry(*operations: Operation) -> Mapping[str, Operation]:
    table = {op.name: op for op in operations}
    if len(table) != len(operations):
        raise ValueError("an operation is declared twice")
    return table


OPERATIONS: Mapping[str, Operation] = _registry(
    # images: detection and 1:1 comparison
    Operation("DetectFaces", lambda b: b.faces.detect_faces, read_only=True),
    Operation("CompareFaces", lambda b: b.faces.compare_faces, read_only=True),
    # collections and faces
    Operation("CreateCollection", lambda b: b.collections.create_collection),
    Operation("DeleteCollection", lambda b: b.collections.delete_collection),
    Operation("ListCollections", lambda b: b.collections.list_collections, read_only=True),
    Operation("DescribeCollection", lambda b: b.collections.describe_collection, read_only=True),
    Operation("IndexFaces", lambda b: b.collections.index_faces),
    Operation("ListFaces", lambda b: b.collections.list_faces, read_only=True),
    Operation("DeleteFaces", lambda b: b.collections.delete_faces),
    Operation("SearchFaces", lambda b: b.collections.search_faces, read_only=True),
    Operation("SearchFacesByImage", lambda b: b.collections.search_faces_by_image, read_only=True),
    # users
    Operation("CreateUser", lambda b: b.users.create_user),
    Operation("DeleteUser", lambda b: b.users.delete_user),
    Operation("ListUsers", lambda b: b.users.list_users, read_only=True),
    Operation("AssociateFaces", lambda b: b.users.associate_faces),
    Operation("DisassociateFaces", lambda b: b.users.disassociate_faces),
    Operation("SearchUsers", lambda b: b.users.search_users, read_only=True),
    Operation("SearchUsersByImage", lambda b: b.users.search_users_by_image, read_only=True),
    # stored video
    Operation("StartFaceDetection", lambda b: b.video.start_face_detection),
    Operation("GetFaceDetection", lambda b: b.video.get_face_detection, read_only=True),
    Operation("StartFaceSearch", lambda b: b.video.start_face_search),
    Operation("GetFaceSearch", lambda b: b.video.get_face_search, read_only=True),
    # FaceLens's own: policies and the audit log
    Operation("PutCollectionPolicy", lambda b: b.admin.put_collection_policy, admin=True, facelens=True),
    Operation("GetCollectionPolicy", lambda b: b.admin.get_collection_policy, read_only=True, facelens=True),
    Operation("ListAuditRecords", lambda b: b.admin.list_audit_records, read_only=True, admin=True,
              facelens=True),
)

READ_ONLY_OPERATIONS = frozenset(name for name, op in OPERATIONS.items() if op.read_only)
ADMIN_OPERATIONS = frozenset(name for name, op in OPERATIONS.items() if op.admin)


def get(name: str) -> Operation | None:
    """The registered operation of that name (None: not implemented)."""
    return OPERATIONS.get(name)
