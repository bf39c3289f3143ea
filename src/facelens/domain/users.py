"""Users: CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces, SearchUsers, SearchUsersByImage.

A user's Similarity to a query is the best Similarity of any of its faces (nearest face, not an averaged
template: several poses of one person stay individually matchable). UserStatus is ACTIVE while the user has
faces and CREATED when it has none; FaceLens associates synchronously, so UPDATING never shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facelens import errors, service_model
from facelens.analysis import face_detail, find_faces_in
from facelens.context import RequestContext
from facelens.domain.common import Records, check_model, default, image_bytes, require_collection, with_token
from facelens.domain.ports import Analyzer, Gate
from facelens.domain.search import SearchEngine
from facelens.pipeline import resolve_attributes
from facelens.store.base import CollectionRecord, FaceRecord, Session, UserRecord
from facelens.store.repos import Users


def _status(name: str) -> str:
    """A UserStatus value, checked against the service model's enum."""
    if name not in service_model.enum("UserStatus"):
        raise ValueError(f"{name} is not a Rekognition UserStatus")
    return name


def _reason(shape: str, name: str) -> str:
    if name not in service_model.enum(shape):
        raise ValueError(f"{name} is not in {shape}")
    return name


def faces_per_user() -> int:
    return service_model.documented_number(
        "AssociateFaces", None, r"faces that can be associated with a single UserID is also limited to (\d+)")


def _faces_of_request(session: Session, params: dict[str, Any], embeddings: bool = False,
                      ) -> tuple[CollectionRecord, UserRecord, list[str], dict[str, FaceRecord]]:
    """An (Dis)AssociateFaces request's collection, user, FaceIds (unique, in order) and the faces found."""
    collection = require_collection(session, params["CollectionId"])
    user = _user(session, collection, params["UserId"])
    face_ids = list(dict.fromkeys(params["FaceIds"]))
    found = {f.face_id: f for f in session.faces_by_id(collection.pk, face_ids, embeddings=embeddings)}
    return collection, user, face_ids, found


def _user(session: Users, collection: CollectionRecord, user_id: str) -> UserRecord:
    user = session.get_user(collection.pk, user_id)
    if user is None:
        raise errors.ResourceNotFoundException(
            f"The user id: {user_id} does not exist in collection {collection.collection_id}")
    return user


class UserService:
    """Named groups of faces of one person, searchable as one."""

    def __init__(self, records: Records, analyzer: Analyzer, gate: Gate, search: SearchEngine) -> None:
        self.records = records
        self.store = records.store
        self.analyzer = analyzer
        self.gate = gate
        self.search = search

    def create_user(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        def body(session: Session) -> tuple[dict[str, Any], int]:
            collection = require_collection(session, params["CollectionId"])
            if session.create_user(collection.pk, params["UserId"], _status("CREATED")) is None:
                raise errors.ConflictException(
                    f"A user with id {params['UserId']} already exists within the collection")
            return {}, collection.pk

        return self.records.idempotent("CreateUser", params, body)

    def delete_user(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """Delete a user; its faces stay in the collection, unassociated."""
        def body(session: Session) -> tuple[dict[str, Any], int]:
            collection = require_collection(session, params["CollectionId"])
            session.delete_user(_user(session, collection, params["UserId"]).pk)
            return {}, collection.pk

        return self.records.idempotent("DeleteUser", params, body)

    def list_users(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        with self.store.transaction() as session:
            collection = require_collection(session, params["CollectionId"])

            def fetch(after: int, limit: int) -> list[UserRecord]:
                return session.list_users(collection.pk, after, limit)

            rows, token = self.records.page("ListUsers", params, collection.pk, "", fetch, lambda u: u.pk)
        return with_token({"Users": [{"UserId": u.user_id, "UserStatus": u.status} for u in rows]}, token)

    def associate_faces(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """Associate faces with a user. Once the user has faces, a new one must reach UserMatchThreshold
        Similarity to them (LOW_MATCH_CONFIDENCE otherwise)."""
        threshold = float(default("AssociateFaces", params, "UserMatchThreshold"))
        reason = "UnsuccessfulFaceAssociationReason"

        def body(session: Session) -> tuple[dict[str, Any], int]:
            collection, user, face_ids, found = _faces_of_request(session, params, embeddings=True)
            current = session.list_faces(collection.pk, 0, faces_per_user() + 1, user.pk, embeddings=True)
            reference = np.stack([f.embedding for f in current]) if current else None
            model = self.search.calibration(collection)
            added: list[FaceRecord] = []
            failed: list[dict[str, Any]] = []
            for face_id in face_ids:
                face = found.get(face_id)
                if face is None:
                    failed.append({"FaceId": face_id, "Reasons": [_reason(reason, "FACE_NOT_FOUND")]})
                elif face.user_pk == user.pk:
                    continue  # already this user's: ignored, as in Rekognition
                elif face.user_pk is not None:
                    failed.append({"FaceId": face_id, "UserId": face.user_id,
                                   "Reasons": [_reason(reason, "ASSOCIATED_TO_A_DIFFERENT_USER")]})
                else:
                    similarity = 100.0 if reference is None else float(
                        model.similarity(float((reference @ face.embedding).max())))
                    if similarity < threshold:
                        failed.append({"FaceId": face_id, "UserId": user.user_id, "Confidence": similarity,
                                       "Reasons": [_reason(reason, "LOW_MATCH_CONFIDENCE")]})
                    else:
                        added.append(face)
            if len(current) + len(added) > faces_per_user():
                raise errors.ServiceQuotaExceededException(
                    f"user {user.user_id} would have {len(current) + len(added)} faces; the limit is "
                    f"{faces_per_user()}")
            session.associate([face.seq for face in added], user.pk)
            status = _status("ACTIVE" if current or added else "CREATED")
            session.set_user_status(user.pk, status)
            return {"AssociatedFaces": [{"FaceId": face.face_id} for face in added],
                    "UnsuccessfulFaceAssociations": failed, "UserStatus": status}, collection.pk

        return self.records.idempotent("AssociateFaces", params, body)

    def disassociate_faces(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        reason = "UnsuccessfulFaceDisassociationReason"

        def body(session: Session) -> tuple[dict[str, Any], int]:
            collection, user, face_ids, found = _faces_of_request(session, params)
            removed: list[FaceRecord] = []
            failed: list[dict[str, Any]] = []
            for face_id in face_ids:
                face = found.get(face_id)
                if face is None:
                    failed.append({"FaceId": face_id, "Reasons": [_reason(reason, "FACE_NOT_FOUND")]})
                elif face.user_pk is None:
                    continue  # already disassociated: ignored, as in Rekognition
                elif face.user_pk != user.pk:
                    failed.append({"FaceId": face_id, "UserId": face.user_id,
                                   "Reasons": [_reason(reason, "ASSOCIATED_TO_A_DIFFERENT_USER")]})
                else:
                    removed.append(face)
            session.associate([face.seq for face in removed], None)
            remaining = session.list_faces(collection.pk, 0, 1, user.pk)
            status = _status("ACTIVE" if remaining else "CREATED")
            session.set_user_status(user.pk, status)
            return {"DisassociatedFaces": [{"FaceId": face.face_id} for face in removed],
                    "UnsuccessfulFaceDisassociations": failed, "UserStatus": status}, collection.pk

        return self.records.idempotent("DisassociateFaces", params, body)

    # -- search
    def search_users(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """Users matching a stored face (FaceId) or another user's faces (UserId)."""
        if ("FaceId" in params) == ("UserId" in params):
            raise errors.InvalidParameterException("SearchUsers takes exactly one of FaceId and UserId")
        collection, threshold, limit = self.gate.admit_search(context, "SearchUsers", params, "UserMatchThreshold",
                                                              "MaxUsers")
        exclude_user = None
        with self.store.transaction() as session:
            collection = require_collection(session, params["CollectionId"])
            if "FaceId" in params:
                faces = session.faces_by_id(collection.pk, [params["FaceId"]], embeddings=True)
                if not faces:
                    raise errors.InvalidParameterException(
                        f"faceId {params['FaceId']} was not found in the collection")
                searched = {"SearchedFace": {"FaceId": params["FaceId"]}}
            else:
                user = _user(session, collection, params["UserId"])
                faces = session.list_faces(collection.pk, 0, faces_per_user(), user.pk, embeddings=True)
                exclude_user = user.pk
                searched = {"SearchedUser": {"UserId": params["UserId"]}}
        matches = []
        if faces:
            queries = np.stack([face.embedding for face in faces])
            matches = self.search.user_matches(collection, queries, threshold.effective, limit,
                                               [f.seq for f in faces], exclude_user)
        self.gate.record_search(context, "SearchUsers", collection, threshold, matches,
                                searched_face_id=params.get("FaceId"), searched_user_id=params.get("UserId"))
        return {"UserMatches": matches, "FaceModelVersion": collection.face_model_version, **searched}

    def search_users_by_image(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """Users matching the largest (quality-passing) face of an image; the other faces are UnsearchedFaces."""
        collection, threshold, limit = self.gate.admit_search(context, "SearchUsersByImage", params,
                                                              "UserMatchThreshold", "MaxUsers")
        check_model(self.analyzer.model_version, collection)
        level = default("SearchUsersByImage", params, "QualityFilter")
        fields = resolve_attributes(None)
        found = find_faces_in(self.analyzer, image_bytes(params["Image"]), fields,
                              max_bytes=context.max_image_bytes, quality_filter=level, embed=1)
        width, height = found.image.width, found.image.height
        searched, unsearched = None, []
        for face, reasons in found.faces:
            if not reasons and searched is None:
                searched = face
                continue
            unsearched.append({"FaceDetails": face_detail(face, width, height, fields),
                               "Reasons": reasons or ["FACE_NOT_LARGEST"]})
        response: dict[str, Any] = {"UserMatches": [], "FaceModelVersion": collection.face_model_version}
        if searched is not None:
            query = np.asarray(searched.embedding, np.float32)[None, :]
            response["UserMatches"] = self.search.user_matches(collection, query, threshold.effective, limit)
            response["SearchedFace"] = {"FaceDetail": face_detail(searched, width, height, fields)}
        response["UnsearchedFaces"] = unsearched
        self.gate.record_search(context, "SearchUsersByImage", collection, threshold, response["UserMatches"],
                                face_found=searched is not None)
        return response
