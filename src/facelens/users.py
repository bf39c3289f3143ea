"""User operations of the collection backend: CreateUser, DeleteUser, ListUsers, AssociateFaces,
DisassociateFaces, SearchUsers, SearchUsersByImage.

A user's Similarity to a query is the best Similarity of any of its faces (nearest face, not an averaged
template: several poses of one person stay individually matchable). UserStatus is ACTIVE while the user has
faces and CREATED when it has none; FaceLens associates synchronously, so UPDATING never shows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from facelens import errors, service_model
from facelens.accountable import AccountableBackend
from facelens.analysis import face_detail
from facelens.pipeline import resolve_attributes
from facelens.store.base import CollectionRecord, FaceRecord, Session, UserRecord


def _status(name: str) -> str:
    """A UserStatus value, checked against the service model's enum."""
    if name not in service_model.enum("UserStatus"):
        raise ValueError(f"{name} is not a Rekognition UserStatus")
    return name


def _reason(shape: str, name: str) -> str:
    if name not in service_model.enum(shape):
        raise ValueError(f"{name} is not in {shape}")
    return name


def _faces_per_user() -> int:
    return service_model.documented_number(
        "AssociateFaces", None, r"faces that can be associated with a single UserID is also limited to (\d+)")


class UserOperations(AccountableBackend):
    """Users: named groups of faces of one person, searchable as one."""

    USER_OPERATIONS = ("CreateUser", "DeleteUser", "ListUsers", "AssociateFaces", "DisassociateFaces",
                       "SearchUsers", "SearchUsersByImage")

    def _user(self, session: Session, collection: CollectionRecord, user_id: str) -> UserRecord:
        user = session.get_user(collection.pk, user_id)
        if user is None:
            raise errors.ResourceNotFoundException(
                f"The user id: {user_id} does not exist in collection {collection.collection_id}")
        return user

    def create_user(self, request: Mapping[str, Any]) -> dict[str, Any]:
        params = self._request("CreateUser", request)

        def body(session: Session) -> tuple[dict[str, Any], int]:
            collection = self._collection(session, params["CollectionId"])
            if session.create_user(collection.pk, params["UserId"], _status("CREATED")) is None:
                raise errors.ConflictException(
                    f"A user with id {params['UserId']} already exists within the collection")
            return {}, collection.pk

        return self._idempotent("CreateUser", params, body)

    def delete_user(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Delete a user; its faces stay in the collection, unassociated."""
        params = self._request("DeleteUser", request)

        def body(session: Session) -> tuple[dict[str, Any], int]:
            collection = self._collection(session, params["CollectionId"])
            session.delete_user(self._user(session, collection, params["UserId"]).pk)
            return {}, collection.pk

        return self._idempotent("DeleteUser", params, body)

    def list_users(self, request: Mapping[str, Any]) -> dict[str, Any]:
        params = self._request("ListUsers", request)
        with self.store.transaction() as session:
            collection = self._collection(session, params["CollectionId"])

            def fetch(after: int, limit: int) -> list[UserRecord]:
                return session.list_users(collection.pk, after, limit)

            rows, token = self._page("ListUsers", params, collection.pk, "", fetch, lambda u: u.pk)
        response: dict[str, Any] = {"Users": [{"UserId": u.user_id, "UserStatus": u.status} for u in rows]}
        if token:
            response["NextToken"] = token
        return response

    def associate_faces(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Associate faces with a user. Once the user has faces, a new one must reach UserMatchThreshold
        Similarity to them (LOW_MATCH_CONFIDENCE otherwise)."""
        params = self._request("AssociateFaces", request)
        threshold = float(self._default("AssociateFaces", params, "UserMatchThreshold"))
        reason = "UnsuccessfulFaceAssociationReason"

        def body(session: Session) -> tuple[dict[str, Any], int]:
            collection = self._collection(session, params["CollectionId"])
            user = self._user(session, collection, params["UserId"])
            face_ids = list(dict.fromkeys(params["FaceIds"]))
            found = {f.face_id: f for f in session.faces_by_id(collection.pk, face_ids, embeddings=True)}
            current = session.list_faces(collection.pk, 0, _faces_per_user() + 1, user.pk, embeddings=True)
            reference = np.stack([f.embedding for f in current]) if current else None
            model = self._calibration(collection)
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
            if len(current) + len(added) > _faces_per_user():
                raise errors.ServiceQuotaExceededException(
                    f"user {user.user_id} would have {len(current) + len(added)} faces; the limit is "
                    f"{_faces_per_user()}")
            session.associate([face.seq for face in added], user.pk)
            status = _status("ACTIVE" if current or added else "CREATED")
            session.set_user_status(user.pk, status)
            return {"AssociatedFaces": [{"FaceId": face.face_id} for face in added],
                    "UnsuccessfulFaceAssociations": failed, "UserStatus": status}, collection.pk

        return self._idempotent("AssociateFaces", params, body)

    def disassociate_faces(self, request: Mapping[str, Any]) -> dict[str, Any]:
        params = self._request("DisassociateFaces", request)
        reason = "UnsuccessfulFaceDisassociationReason"

        def body(session: Session) -> tuple[dict[str, Any], int]:
            collection = self._collection(session, params["CollectionId"])
            user = self._user(session, collection, params["UserId"])
            face_ids = list(dict.fromkeys(params["FaceIds"]))
            found = {f.face_id: f for f in session.faces_by_id(collection.pk, face_ids)}
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

        return self._idempotent("DisassociateFaces", params, body)

    # -- search
    def _user_matches(self, collection: CollectionRecord, queries: np.ndarray, threshold: float, limit: int,
                      exclude_faces: Collection[int] = (), exclude_user: int | None = None) -> list[dict[str, Any]]:
        """Rekognition's UserMatches: users whose best face reaches `threshold` Similarity, best first."""
        model = self._calibration(collection)

        def best_per_user(ranked: list[tuple[FaceRecord, float]]) -> dict[int, float]:
            best: dict[int, float] = {}
            for face, cosine in ranked:  # best first: the first face seen of a user is its best
                if face.user_pk is not None and face.user_pk != exclude_user and face.user_pk not in best:
                    best[face.user_pk] = cosine
            return best

        ranked = self._ranked(collection, queries, model.cosine_at(threshold),
                              lambda r: len(best_per_user(r)) >= limit, exclude_faces)
        best = best_per_user(ranked)
        names = {face.user_pk: face.user_id for face, _ in ranked}
        matches = []
        with self.store.transaction() as session:
            for user_pk, cosine in list(best.items())[:limit]:
                similarity = float(model.similarity(cosine))
                user = session.get_user(collection.pk, names[user_pk])
                if similarity >= threshold and user is not None:
                    matches.append({"Similarity": similarity,
                                    "User": {"UserId": user.user_id, "UserStatus": user.status}})
        return matches

    def search_users(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Users matching a stored face (FaceId) or another user's faces (UserId)."""
        params = self._request("SearchUsers", request)
        if ("FaceId" in params) == ("UserId" in params):
            raise errors.InvalidParameterException("SearchUsers takes exactly one of FaceId and UserId")
        collection, threshold, limit = self._search_limits("SearchUsers", params, "UserMatchThreshold", "MaxUsers")
        exclude_user = None
        with self.store.transaction() as session:
            collection = self._collection(session, params["CollectionId"])
            if "FaceId" in params:
                faces = session.faces_by_id(collection.pk, [params["FaceId"]], embeddings=True)
                if not faces:
                    raise errors.InvalidParameterException(
                        f"faceId {params['FaceId']} was not found in the collection")
                searched = {"SearchedFace": {"FaceId": params["FaceId"]}}
            else:
                user = self._user(session, collection, params["UserId"])
                faces = session.list_faces(collection.pk, 0, _faces_per_user(), user.pk, embeddings=True)
                exclude_user = user.pk
                searched = {"SearchedUser": {"UserId": params["UserId"]}}
        matches = []
        if faces:
            queries = np.stack([face.embedding for face in faces])
            matches = self._user_matches(collection, queries, threshold.effective, limit, [f.seq for f in faces],
                                         exclude_user)
        self._audit_search("SearchUsers", collection, threshold, matches, searched_face_id=params.get("FaceId"),
                           searched_user_id=params.get("UserId"))
        return {"UserMatches": matches, "FaceModelVersion": collection.face_model_version, **searched}

    def search_users_by_image(self, request: Mapping[str, Any], max_image_bytes: int | None = None) -> dict[str, Any]:
        """Users matching the largest (quality-passing) face of an image; the other faces are UnsearchedFaces."""
        params = self._request("SearchUsersByImage", request)
        collection, threshold, limit = self._search_limits("SearchUsersByImage", params, "UserMatchThreshold",
                                                           "MaxUsers")
        self._check_model(collection)
        level = self._default("SearchUsersByImage", params, "QualityFilter")
        fields = resolve_attributes(None)
        decoded, faces = self._faces_in(params["Image"], fields, max_bytes=max_image_bytes)
        searched, unsearched = None, []
        for face, reasons in self._filter(faces, level, decoded):
            if not reasons and searched is None:
                searched = face
                continue
            detail = face_detail(face, decoded.width, decoded.height, fields)
            unsearched.append({"FaceDetails": detail, "Reasons": reasons or ["FACE_NOT_LARGEST"]})
        response: dict[str, Any] = {"UserMatches": [], "FaceModelVersion": collection.face_model_version}
        if searched is not None:
            response["UserMatches"] = self._user_matches(collection, self._embed(decoded, [searched]),
                                                         threshold.effective, limit)
            response["SearchedFace"] = {"FaceDetail": face_detail(searched, decoded.width, decoded.height, fields)}
        response["UnsearchedFaces"] = unsearched
        self._audit_search("SearchUsersByImage", collection, threshold, response["UserMatches"],
                           face_found=searched is not None)
        return response
