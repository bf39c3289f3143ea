"""One adapter per registered operation: validated wire parameters -> a typed service call -> its wire shape.

`adapter(backend, params, context) -> dict`: `params` were validated once against the service model (on the
wire, or by `Backend.call`), so members are read as they are; the service method takes typed arguments and
returns a `facelens.domain.model` result, which `facelens.api.shapes` turns into the response.

Idempotent writes (CreateUser, DeleteUser, AssociateFaces, DisassociateFaces, and the stored-video Start* of
`facelens.api.wire_video`) store their *wire* response under the request's ClientRequestToken in the write's own
transaction: the adapter runs `Records.idempotent` with a body that calls the domain method inside the given
session and shapes its result, so a token recorded before (or after) this layout replays the same response.

Imports no service and no request context at runtime (`facelens.context` imports the registry, which imports
this module).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from facelens import errors, validation
from facelens.api import shapes

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.service import Backend
    from facelens.store.base import Session

Params = dict[str, Any]
Shape = dict[str, Any]
T = TypeVar("T")


def _needs(service: T | None, operation: str) -> T:
    """The service, or InvalidParameterException for a backend without a data directory."""
    if service is None:
        raise errors.InvalidParameterException(
            f"{operation} needs a data directory (collections, jobs and the audit log live there)")
    return service


def configured(backend: Backend, service: str, operation: str) -> Any:
    """`backend`'s `service` (an attribute a backend may lack), or InvalidParameterException naming `operation`."""
    found = getattr(backend, service, None)
    if found is None:
        raise errors.InvalidParameterException(f"{operation} is not configured on this server")
    return found


def image_bytes(image: Any) -> bytes:
    """The bytes of an `Image` member: `{"Bytes": ...}` (the HTTP layer has fetched `S3Object`s into it)."""
    if isinstance(image, Mapping) and image.get("Bytes") is not None:
        return bytes(image["Bytes"])
    raise errors.InvalidParameterException("Image must be given as Bytes here (S3 objects are fetched by the "
                                           "HTTP service)")


# -- images
def detect_faces(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.detection(backend.faces.detect_faces(image=image_bytes(p["Image"]), attributes=p.get("Attributes"),
                                                       context=context))


def compare_faces(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.comparison(backend.faces.compare_faces(
        source=image_bytes(p["SourceImage"]), target=image_bytes(p["TargetImage"]),
        threshold=p.get("SimilarityThreshold"), quality_filter=p.get("QualityFilter"), context=context))


# -- collections and faces
def create_collection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    collections = _needs(backend.collections, "CreateCollection")
    return shapes.created_collection(collections.create_collection(collection_id=p["CollectionId"],
                                                                   tags=p.get("Tags"), context=context))


def delete_collection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    _needs(backend.collections, "DeleteCollection").delete_collection(collection_id=p["CollectionId"],
                                                                      context=context)
    return {"StatusCode": 200}


def list_collections(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.collection_list(_needs(backend.collections, "ListCollections").list_collections(
        max_results=p.get("MaxResults"), next_token=p.get("NextToken"), context=context))


def describe_collection(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.collection_description(_needs(backend.collections, "DescribeCollection").describe_collection(
        collection_id=p["CollectionId"], context=context))


def index_faces(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.indexing(_needs(backend.collections, "IndexFaces").index_faces(
        collection_id=p["CollectionId"], image=image_bytes(p["Image"]), external_image_id=p.get("ExternalImageId"),
        detection_attributes=p.get("DetectionAttributes"), max_faces=p.get("MaxFaces"),
        quality_filter=p.get("QualityFilter"), context=context))


def list_faces(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.face_list(_needs(backend.collections, "ListFaces").list_faces(
        collection_id=p["CollectionId"], user_id=p.get("UserId"), face_ids=p.get("FaceIds"),
        max_results=p.get("MaxResults"), next_token=p.get("NextToken"), context=context))


def delete_faces(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.face_deletion(_needs(backend.collections, "DeleteFaces").delete_faces(
        collection_id=p["CollectionId"], face_ids=p["FaceIds"], context=context))


def search_faces(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.face_search(_needs(backend.collections, "SearchFaces").search_faces(
        collection_id=p["CollectionId"], face_id=p["FaceId"], threshold=p.get("FaceMatchThreshold"),
        max_faces=p.get("MaxFaces"), context=context))


def search_faces_by_image(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.face_search(_needs(backend.collections, "SearchFacesByImage").search_faces_by_image(
        collection_id=p["CollectionId"], image=image_bytes(p["Image"]), threshold=p.get("FaceMatchThreshold"),
        max_faces=p.get("MaxFaces"), quality_filter=p.get("QualityFilter"), context=context))


# -- users (the writes are idempotent per ClientRequestToken)
def create_user(backend: Backend, p: Params, context: RequestContext) -> Shape:
    users = _needs(backend.users, "CreateUser")

    def body(session: Session) -> tuple[Shape, int]:
        return {}, users.create_user(session, collection_id=p["CollectionId"], user_id=p["UserId"], context=context)

    return users.records.idempotent("CreateUser", p, body, context.key_id)


def delete_user(backend: Backend, p: Params, context: RequestContext) -> Shape:
    users = _needs(backend.users, "DeleteUser")

    def body(session: Session) -> tuple[Shape, int]:
        return {}, users.delete_user(session, collection_id=p["CollectionId"], user_id=p["UserId"], context=context)

    return users.records.idempotent("DeleteUser", p, body, context.key_id)


def list_users(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.user_list(_needs(backend.users, "ListUsers").list_users(
        collection_id=p["CollectionId"], max_results=p.get("MaxResults"), next_token=p.get("NextToken"),
        context=context))


def associate_faces(backend: Backend, p: Params, context: RequestContext) -> Shape:
    users = _needs(backend.users, "AssociateFaces")

    def body(session: Session) -> tuple[Shape, int]:
        result, pk = users.associate_faces(session, collection_id=p["CollectionId"], user_id=p["UserId"],
                                           face_ids=p["FaceIds"], threshold=p.get("UserMatchThreshold"),
                                           context=context)
        return shapes.association(result), pk

    users.admit_association(collection_id=p["CollectionId"], context=context)
    return users.records.idempotent("AssociateFaces", p, body, context.key_id)


def disassociate_faces(backend: Backend, p: Params, context: RequestContext) -> Shape:
    users = _needs(backend.users, "DisassociateFaces")

    def body(session: Session) -> tuple[Shape, int]:
        result, pk = users.disassociate_faces(session, collection_id=p["CollectionId"], user_id=p["UserId"],
                                              face_ids=p["FaceIds"], context=context)
        return shapes.disassociation(result), pk

    return users.records.idempotent("DisassociateFaces", p, body, context.key_id)


def search_users(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.user_search(_needs(backend.users, "SearchUsers").search_users(
        collection_id=p["CollectionId"], face_id=p.get("FaceId"), user_id=p.get("UserId"),
        threshold=p.get("UserMatchThreshold"), max_users=p.get("MaxUsers"), context=context))


def search_users_by_image(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.user_search(_needs(backend.users, "SearchUsersByImage").search_users_by_image(
        collection_id=p["CollectionId"], image=image_bytes(p["Image"]), threshold=p.get("UserMatchThreshold"),
        max_users=p.get("MaxUsers"), quality_filter=p.get("QualityFilter"), context=context))


# -- FaceLens's own: policies and the audit log
def put_collection_policy(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.collection_policy(_needs(backend.admin, "PutCollectionPolicy").put_collection_policy(
        collection_id=p["CollectionId"], policy=p["Policy"], context=context))


def get_collection_policy(backend: Backend, p: Params, context: RequestContext) -> Shape:
    return shapes.collection_policy(_needs(backend.admin, "GetCollectionPolicy").get_collection_policy(
        collection_id=p["CollectionId"], context=context))


def list_audit_records(backend: Backend, p: Params, context: RequestContext) -> Shape:
    since = validation.timestamp(p["Since"]) if p.get("Since") is not None else None
    return shapes.audit_records(_needs(backend.admin, "ListAuditRecords").list_audit_records(
        collection_id=p.get("CollectionId"), face_id=p.get("FaceId"), since=since,
        max_results=p.get("MaxResults"), next_token=p.get("NextToken"), context=context))
