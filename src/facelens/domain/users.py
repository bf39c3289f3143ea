"""Users: CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces, SearchUsers, SearchUsersByImage.

A user's Similarity to a query is the best Similarity of any of its faces (nearest face, not an averaged
template: several poses of one person stay individually matchable). UserStatus is ACTIVE while the user has
faces and CREATED when it has none; FaceLens associates synchronously, so UPDATING never shows.
Methods take typed keyword arguments and the `RequestContext` and return `facelens.domain.model` results; the
wire adapters (`facelens.api.wire`) shape them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facelens import errors, service_model
from facelens.analysis import find_faces_in
from facelens.context import RequestContext
from facelens.domain.common import Records, check_model, default, judged, reason_in, require_collection
from facelens.domain.model import FaceChanges, FoundFace, Page, Refusal, Search, UnindexedFace, UserMatch
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


def faces_per_user() -> int:
    return service_model.documented_number(
        "AssociateFaces", None, r"faces that can be associated with a single UserID is also limited to (\d+)")


def _faces_of_request(session: Session, collection_id: str, user_id: str, face_ids: Sequence[str],
                      embeddings: bool = False,
                      ) -> tuple[CollectionRecord, UserRecord, list[str], dict[str, FaceRecord]]:
    """An (Dis)AssociateFaces request's collection, user, FaceIds (unique, in order) and the faces found."""
    collection = require_collection(session, collection_id)
    user = _user(session, collection, user_id)
    unique = list(dict.fromkeys(face_ids))
    found = {f.face_id: f for f in session.faces_by_id(collection.pk, unique, embeddings=embeddings)}
    return collection, user, unique, found


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

    # -- writes: each runs in the session it is given, the one that records its ClientRequestToken
    #    (`Records.idempotent`, called by the wire adapter); each returns its result and the collection's pk
    def create_user(self, session: Session, *, collection_id: str, user_id: str,
                    context: RequestContext) -> int:
        collection = require_collection(session, collection_id)
        if session.create_user(collection.pk, user_id, _status("CREATED")) is None:
            raise errors.ConflictException(f"A user with id {user_id} already exists within the collection")
        self.gate.record(session, context, "CreateUser", collection.collection_id, user_id=user_id)
        return collection.pk

    def delete_user(self, session: Session, *, collection_id: str, user_id: str, context: RequestContext) -> int:
        """Delete a user; its faces stay in the collection, unassociated."""
        collection = require_collection(session, collection_id)
        user = _user(session, collection, user_id)
        faces = session.list_faces(collection.pk, 0, faces_per_user(), user.pk)
        session.delete_user(user.pk)
        self.gate.record(session, context, "DeleteUser", collection.collection_id, user_id=user_id,
                         disassociated=[face.face_id for face in faces])
        return collection.pk

    def list_users(self, *, collection_id: str, max_results: int | None, next_token: str | None,
                   context: RequestContext) -> Page[UserRecord]:
        with self.store.transaction() as session:
            collection = require_collection(session, collection_id)

            def fetch(after: int, limit: int) -> list[UserRecord]:
                return session.list_users(collection.pk, after, limit)

            return self.records.page("ListUsers", max_results, next_token, collection.pk, "", fetch,
                                     lambda u: u.pk)

    def admit_association(self, *, collection_id: str, context: RequestContext) -> None:
        """The purpose rule of AssociateFaces, checked (and a refusal audited) before its write transaction."""
        self.gate.admit_association(context, "AssociateFaces", collection_id)

    def associate_faces(self, session: Session, *, collection_id: str, user_id: str, face_ids: Sequence[str],
                        threshold: float | None, context: RequestContext) -> tuple[FaceChanges, int]:
        """Associate faces with a user. Once the user has faces, a new one must reach the UserMatchThreshold
        (raised to the server's CompareFaces floor) Similarity to them, else LOW_MATCH_CONFIDENCE, whose
        Confidence is given only when it reaches that floor. Audited with every Similarity computed."""
        requested = None if threshold is None else float(threshold)
        reason = "UnsuccessfulFaceAssociationReason"
        collection, user, unique, found = _faces_of_request(session, collection_id, user_id, face_ids,
                                                            embeddings=True)
        current = session.list_faces(collection.pk, 0, faces_per_user() + 1, user.pk, embeddings=True)
        references = [f.embedding for f in current]  # grows with each face taken: one request cannot merge two people
        model = self.search.calibration(collection)
        ruling = self.gate.association_threshold(context, requested,
                                                 float(default("AssociateFaces", "UserMatchThreshold", None)),
                                                 len(current))
        similarities: dict[str, float] = {}

        def judge(face: FaceRecord) -> Refusal | bool:
            if face.user_pk == user.pk:
                return False  # already this user's: ignored, as in Rekognition
            if face.user_pk is not None:
                return Refusal(face.face_id, [reason_in(reason, "ASSOCIATED_TO_A_DIFFERENT_USER")], face.user_id)
            if references:
                score = float((np.stack(references) @ face.embedding).max())
                similarity = similarities[face.face_id] = float(model.similarity(score))
                if similarity < ruling.effective:
                    shown = similarity if similarity >= ruling.floor else None  # nothing below the floor is told
                    return Refusal(face.face_id, [reason_in(reason, "LOW_MATCH_CONFIDENCE")], user.user_id, shown)
            references.append(face.embedding)
            return True

        added, failed = judged(unique, found, reason, judge)
        if len(current) + len(added) > faces_per_user():
            raise errors.ServiceQuotaExceededException(
                f"user {user.user_id} would have {len(current) + len(added)} faces; the limit is "
                f"{faces_per_user()}")
        session.associate([face.seq for face in added], user.pk)
        status = _status("ACTIVE" if current or added else "CREATED")
        session.set_user_status(user.pk, status)
        self.gate.record_association(
            session, context, "AssociateFaces", collection, ruling, user.user_id,
            [(face.face_id, similarities.get(face.face_id)) for face in added],
            [(r.face_id, r.reasons[0], similarities.get(r.face_id)) for r in failed])
        return FaceChanges([face.face_id for face in added], failed, status), collection.pk

    def disassociate_faces(self, session: Session, *, collection_id: str, user_id: str, face_ids: Sequence[str],
                           context: RequestContext) -> tuple[FaceChanges, int]:
        reason = "UnsuccessfulFaceDisassociationReason"
        collection, user, unique, found = _faces_of_request(session, collection_id, user_id, face_ids)

        def judge(face: FaceRecord) -> Refusal | bool:
            if face.user_pk is None:
                return False  # already disassociated: ignored, as in Rekognition
            if face.user_pk != user.pk:
                return Refusal(face.face_id, [reason_in(reason, "ASSOCIATED_TO_A_DIFFERENT_USER")], face.user_id)
            return True

        removed, failed = judged(unique, found, reason, judge)
        session.associate([face.seq for face in removed], None)
        remaining = session.list_faces(collection.pk, 0, 1, user.pk)
        status = _status("ACTIVE" if remaining else "CREATED")
        session.set_user_status(user.pk, status)
        self.gate.record(session, context, "DisassociateFaces", collection.collection_id, user_id=user.user_id,
                         disassociated=[face.face_id for face in removed])
        return FaceChanges([face.face_id for face in removed], failed, status), collection.pk

    # -- search
    def search_users(self, *, collection_id: str, face_id: str | None, user_id: str | None,
                     threshold: float | None, max_users: int | None, context: RequestContext) -> Search[UserMatch]:
        """Users matching a stored face (`face_id`) or another user's faces (`user_id`)."""
        if (face_id is None) == (user_id is None):
            raise errors.InvalidParameterException("SearchUsers takes exactly one of FaceId and UserId")
        collection, ruling, limit = self.gate.admit_search(context, "SearchUsers", collection_id, threshold,
                                                           max_users, "UserMatchThreshold", "MaxUsers")
        exclude_user = None
        with self.store.transaction() as session:
            collection = require_collection(session, collection_id)
            if face_id is not None:
                faces = session.faces_by_id(collection.pk, [face_id], embeddings=True)
                if not faces:
                    raise errors.InvalidParameterException(f"faceId {face_id} was not found in the collection")
            else:
                assert user_id is not None
                user = _user(session, collection, user_id)
                faces = session.list_faces(collection.pk, 0, faces_per_user(), user.pk, embeddings=True)
                exclude_user = user.pk
        matches: list[UserMatch] = []
        if faces:
            queries = np.stack([face.embedding for face in faces])
            matches = self.search.user_matches(collection, queries, ruling.effective, limit,
                                               [f.seq for f in faces], exclude_user)
        self.gate.record_search(context, "SearchUsers", collection, ruling, matches,
                                searched_face_id=face_id, searched_user_id=user_id)
        return Search(collection.face_model_version, matches, searched_face_id=face_id, searched_user_id=user_id)

    def search_users_by_image(self, *, collection_id: str, image: bytes, threshold: float | None,
                              max_users: int | None, quality_filter: str | None,
                              context: RequestContext) -> Search[UserMatch]:
        """Users matching the largest (quality-passing) face of an image; the other faces are unsearched."""
        collection, ruling, limit = self.gate.admit_search(context, "SearchUsersByImage", collection_id, threshold,
                                                           max_users, "UserMatchThreshold", "MaxUsers")
        check_model(self.analyzer.model_version, collection)
        level = default("SearchUsersByImage", "QualityFilter", quality_filter)
        fields = resolve_attributes(None)
        found = find_faces_in(self.analyzer, image, fields, max_bytes=context.max_image_bytes,
                              quality_filter=level, embed=1)
        width, height = found.image.width, found.image.height
        searched, unsearched = None, []
        for face, reasons in found.faces:
            if not reasons and searched is None:
                searched = face
                continue
            unsearched.append(UnindexedFace(FoundFace(face, width, height, fields), reasons or ["FACE_NOT_LARGEST"]))
        matches: list[UserMatch] = []
        if searched is not None:
            query = np.asarray(searched.embedding, np.float32)[None, :]
            matches = self.search.user_matches(collection, query, ruling.effective, limit)
        self.gate.record_search(context, "SearchUsersByImage", collection, ruling, matches,
                                face_found=searched is not None)
        return Search(collection.face_model_version, matches,
                      searched_face=None if searched is None else FoundFace(searched, width, height, fields),
                      unsearched=unsearched)
