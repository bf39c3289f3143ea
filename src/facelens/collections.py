"""The collection backend (moto's `models.py`): one method per Rekognition operation, plain dicts in and out.

`FaceCollections(data_dir)` keeps collections, faces and users durably under `data_dir` (SQLite, the source of
truth, plus a FAISS cache per collection, see `facelens.store`). Requests are Rekognition-shaped dicts, validated
against botocore's service model; `Image` is given as the already-fetched bytes (the HTTP layer resolves
`Image.Bytes` / `Image.S3Object`). Errors are `facelens.errors` classes. User operations: `facelens.users`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from facelens import errors, paging, service_model
from facelens.accountability import access
from facelens.analysis import bounding_box, face_detail, find_faces
from facelens.backend import face_shape
from facelens.imaging import MAX_S3_IMAGE_BYTES, DecodedImage
from facelens.pipeline import Face, resolve_attributes
from facelens.store.base import CollectionRecord, NewFace, Session
from facelens.users import UserOperations
from facelens.video.jobs import VideoOperations


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _max_faces() -> int:
    """The most faces IndexFaces indexes from one image (documented in the service model: 100)."""
    return service_model.documented_number("IndexFaces", "MaxFaces", r"no more than (\d+) detected faces")


class FaceCollections(UserOperations, VideoOperations):
    """Collections, faces and users of one data directory, answering Rekognition's operations."""

    OPERATIONS = (
        "CreateCollection", "DeleteCollection", "ListCollections", "DescribeCollection",
        "IndexFaces", "ListFaces", "DeleteFaces", "SearchFaces", "SearchFacesByImage",
        *UserOperations.USER_OPERATIONS, *UserOperations.ADMIN_OPERATIONS, *VideoOperations.VIDEO_OPERATIONS,
    )

    # -- collections
    def create_collection(self, request: Mapping[str, Any]) -> dict[str, Any]:
        params = self._request("CreateCollection", request)
        collection_id = params["CollectionId"]
        arn = f"aws:rekognition:{self.region}:{self.account}:collection/{collection_id}"
        version = self.analyzer.model_version
        with self.store.transaction(write=True) as session:
            created = session.create_collection(collection_id, arn, version, dict(params.get("Tags", {})))
            if created is not None:
                self._audit(session, "CreateCollection", collection_id, face_model=version)
        if created is None:
            raise errors.ResourceAlreadyExistsException(f"The collection id: {collection_id} already exists")
        return {"StatusCode": 200, "CollectionArn": arn, "FaceModelVersion": version}

    def delete_collection(self, request: Mapping[str, Any]) -> dict[str, Any]:
        params = self._request("DeleteCollection", request)
        with self.store.transaction(write=True) as session:
            collection = self._collection(session, params["CollectionId"])
            faces = session.count_faces(collection.pk)
            session.delete_collection(collection.pk)
            self._audit(session, "DeleteCollection", collection.collection_id, faces_deleted=faces)
        self.cache.drop(collection.pk)
        self.store.reclaim()
        return {"StatusCode": 200}

    def list_collections(self, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = self._request("ListCollections", request or {})
        scope = access.current().scope

        def visible(session: Session, after: int, limit: int) -> list[CollectionRecord]:
            """Collections the caller's key may see (all, for an unscoped key)."""
            found: list[CollectionRecord] = []
            while len(found) < limit:
                batch = session.list_collections(after, limit)
                found += [c for c in batch if scope.sees(c.collection_id)]
                if len(batch) < limit:
                    break
                after = batch[-1].pk
            return found[:limit]

        with self.store.transaction() as session:
            rows, token = self._page("ListCollections", params, 0, "", lambda a, n: visible(session, a, n),
                                     lambda c: c.pk)
        response: dict[str, Any] = {"CollectionIds": [c.collection_id for c in rows],
                                    "FaceModelVersions": [c.face_model_version for c in rows]}
        if token:
            response["NextToken"] = token
        return response

    def describe_collection(self, request: Mapping[str, Any]) -> dict[str, Any]:
        params = self._request("DescribeCollection", request)
        with self.store.transaction() as session:
            collection = self._collection(session, params["CollectionId"])
            faces, users = session.count_faces(collection.pk), session.count_users(collection.pk)
        return {"FaceCount": faces, "FaceModelVersion": collection.face_model_version,
                "CollectionARN": collection.arn, "CreationTimestamp": collection.created, "UserCount": users}

    # -- faces
    def index_faces(self, request: Mapping[str, Any], max_image_bytes: int | None = None) -> dict[str, Any]:
        """Detect, filter (QualityFilter, MaxFaces) and store the faces of one image, all or none."""
        params = self._request("IndexFaces", request)
        with self.store.transaction() as session:
            collection = self._collection(session, params["CollectionId"])
        self._check_model(collection)
        max_faces, level = self._index_limits(params)
        fields = resolve_attributes(params.get("DetectionAttributes"))
        decoded, faces = self._faces_in(params["Image"], fields, _max_faces(), max_image_bytes)
        kept, unindexed = self._select(decoded, faces, level, max_faces)
        embeddings = self._embed(decoded, kept) if kept else np.empty((0, 0), np.float32)
        new = self._new_faces(collection, decoded, kept, embeddings, params.get("ExternalImageId"))
        self._store_faces(collection.collection_id, new, audit={"image_id": new[0].image_id if new else None,
                                                                "external_image_id": params.get("ExternalImageId")})
        return self._indexed(collection, decoded, kept, new, unindexed, fields)

    def index_images(self, collection_id: str, images: Sequence[tuple[str, bytes, str | None]],
                     quality_filter: str = "AUTO", max_faces: int | None = None) -> list[dict[str, Any] | None]:
        """Bulk IndexFaces: (source key, image bytes, ExternalImageId) triples, batched through the models and
        stored in one transaction that also records each source as imported. Sources already imported are
        skipped (None in their place); an image that cannot be decoded raises nothing here: its slot holds
        `{"Error": FaceLensError}`."""
        request = {"CollectionId": collection_id, "QualityFilter": quality_filter,
                   **({"MaxFaces": max_faces} if max_faces else {})}
        params = self._request("IndexFaces", {**request, "Image": {"Bytes": b"-"}})
        with self.store.transaction() as session:
            collection = self._collection(session, collection_id)
            done = session.imported(collection.pk, [source for source, _, _ in images])
        self._check_model(collection)
        max_faces, level = self._index_limits(params)
        fields = resolve_attributes(None)
        results: list[dict[str, Any] | None] = [None] * len(images)
        wanted = [i for i, (source, _, _) in enumerate(images) if source not in done]
        todo: list[tuple[int, DecodedImage, list[Face]]] = []
        for i, result in zip(wanted, find_faces(self.analyzer, [images[i][1] for i in wanted], fields,
                                                   _max_faces(), MAX_S3_IMAGE_BYTES), strict=True):
            if isinstance(result, errors.FaceLensError):
                results[i] = {"Error": result}
            else:
                todo.append((i, *result))
        plans = [self._select(decoded, faces, level, max_faces) for _, decoded, faces in todo]
        if any(kept for kept, _ in plans):
            self.analyzer.embed([decoded.pixels for _, decoded, _ in todo], [kept for kept, _ in plans])
        stored: list[tuple[int, list[NewFace]]] = []
        for (i, decoded, _), (kept, _) in zip(todo, plans, strict=True):
            vectors = np.stack([face.embedding for face in kept]).astype(np.float32) if kept else []
            stored.append((i, self._new_faces(collection, decoded, kept, vectors, images[i][2])))
        self._store_faces(collection_id, [face for _, new in stored for face in new],
                          [(images[i][0], new[0].image_id if new else "") for i, new in stored])
        for (i, decoded, _), (kept, unindexed), (_, new) in zip(todo, plans, stored, strict=True):
            results[i] = self._indexed(collection, decoded, kept, new, unindexed, fields)
        return results

    def _index_limits(self, params: Mapping[str, Any]) -> tuple[int, str]:
        """IndexFaces' MaxFaces (capped at the documented 100) and QualityFilter."""
        return min(params.get("MaxFaces", _max_faces()), _max_faces()), self._default("IndexFaces", params,
                                                                                      "QualityFilter")

    def _select(self, decoded: DecodedImage, faces: list[Face], level: str,
                max_faces: int) -> tuple[list[Face], list[tuple[Face, list[str]]]]:
        """The faces to index and the others with their reasons (largest first: the smallest go over MaxFaces)."""
        kept, unindexed = [], []
        for face, reasons in self._filter(faces, level, decoded):
            if not reasons and len(kept) >= max_faces:
                reasons = ["EXCEEDS_MAX_FACES"]
            if reasons:
                unindexed.append((face, reasons))
            else:
                kept.append(face)
        return kept, unindexed

    @staticmethod
    def _new_faces(collection: CollectionRecord, decoded: DecodedImage, kept: Sequence[Face],
                   embeddings: Sequence[np.ndarray], external: str | None) -> list[NewFace]:
        image_id = str(uuid.uuid4())
        return [NewFace(str(uuid.uuid4()), image_id, external, bounding_box(face.box, decoded.width, decoded.height),
                        float(face.confidence), collection.face_model_version, vector)
                for face, vector in zip(kept, embeddings, strict=True)]

    @staticmethod
    def _indexed(collection: CollectionRecord, decoded: DecodedImage, kept: Sequence[Face], new: Sequence[NewFace],
                 unindexed: Sequence[tuple[Face, list[str]]], fields: frozenset[str]) -> dict[str, Any]:
        """IndexFaces' response."""
        records = []
        for face, stored in zip(kept, new, strict=True):
            shaped = {"FaceId": stored.face_id, "BoundingBox": stored.bounding_box, "ImageId": stored.image_id}
            if stored.external_image_id is not None:
                shaped["ExternalImageId"] = stored.external_image_id
            shaped["Confidence"] = stored.confidence
            records.append({"Face": shaped, "FaceDetail": face_detail(face, decoded.width, decoded.height, fields)})
        return {
            "FaceRecords": records,
            "FaceModelVersion": collection.face_model_version,
            "UnindexedFaces": [{"Reasons": reasons, "FaceDetail": face_detail(face, decoded.width, decoded.height,
                                                                              fields)}
                               for face, reasons in unindexed],
        }

    def add_embeddings(self, collection_id: str, embeddings: np.ndarray, *, external_image_id: str | None = None,
                       boxes: Sequence[Mapping[str, float]] | None = None,
                       confidences: Sequence[float] | None = None) -> list[str]:
        """Internal (tests, bulk import): store faces with known embeddings as if indexed from one image; their
        FaceIds. Embeddings are L2-normalised here."""
        vectors = np.atleast_2d(np.asarray(embeddings, np.float32))
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        with self.store.transaction() as session:
            collection = self._collection(session, collection_id)
        image_id = str(uuid.uuid4())
        new = [NewFace(str(uuid.uuid4()), image_id, external_image_id,
                       dict(boxes[i]) if boxes else {"Width": 0.25, "Height": 0.25, "Left": 0.375, "Top": 0.375},
                       float(confidences[i]) if confidences else 99.9, collection.face_model_version, vector)
               for i, vector in enumerate(vectors)]
        self._store_faces(collection_id, new)
        return [face.face_id for face in new]

    def search_embedding(self, collection_id: str, embedding: np.ndarray, threshold: float = 80.0,
                         max_faces: int | None = None) -> list[dict[str, Any]]:
        """Internal (benchmarks, bulk search): SearchFacesByImage's `FaceMatches` for an already computed
        embedding (L2-normalised here), through the same exact re-ranked search."""
        vector = np.asarray(embedding, np.float32).ravel()
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        with self.store.transaction() as session:
            collection = self._collection(session, collection_id)
        limit = max_faces or service_model.limit("SearchFacesByImage", "MaxFaces")
        return self._face_matches(collection, vector[None, :], float(threshold), limit)

    def _store_faces(self, collection_id: str, faces: list[NewFace], imported: Sequence[tuple[str, str]] = (),
                     audit: Mapping[str, Any] | None = None) -> None:
        """One transaction for all faces of an image, or of a bulk batch with the record of its sources
        (the collection may have gone meanwhile), and the audit record of the indexing."""
        if not faces and not imported:
            return
        with self.store.transaction(write=True) as session:
            collection = self._collection(session, collection_id)
            session.add_faces(collection.pk, faces)
            if imported:
                session.mark_imported(collection.pk, imported)
            self._audit(session, "IndexFaces", collection_id, face_model=collection.face_model_version,
                        indexed=[face.face_id for face in faces], images=len(imported) or None, **(audit or {}))
        self.cache.sync(collection.pk)

    def list_faces(self, request: Mapping[str, Any]) -> dict[str, Any]:
        params = self._request("ListFaces", request)
        face_ids = params.get("FaceIds")
        filters = paging.digest({"UserId": params.get("UserId"), "FaceIds": face_ids})
        with self.store.transaction() as session:
            collection = self._collection(session, params["CollectionId"])
            user_pk = None
            if "UserId" in params:
                user = session.get_user(collection.pk, params["UserId"])
                user_pk = user.pk if user is not None else -1  # an unknown user has no faces

            def fetch(after: int, limit: int) -> list:
                return session.list_faces(collection.pk, after, limit, user_pk, face_ids)

            rows, token = self._page("ListFaces", params, collection.pk, filters, fetch, lambda f: f.seq)
        response: dict[str, Any] = {"Faces": [face_shape(face) for face in rows]}
        if token:
            response["NextToken"] = token
        response["FaceModelVersion"] = collection.face_model_version
        return response

    def delete_faces(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Delete faces (not those associated with a user, as in Rekognition); they leave the disk."""
        params = self._request("DeleteFaces", request)
        deleted, failed, seqs = [], [], []
        with self.store.transaction(write=True) as session:
            collection = self._collection(session, params["CollectionId"])
            face_ids = _unique(params["FaceIds"])
            found = {face.face_id: face for face in session.faces_by_id(collection.pk, face_ids)}
            for face_id in face_ids:
                face = found.get(face_id)
                if face is None:
                    failed.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
                elif face.user_id is not None:
                    failed.append({"FaceId": face_id, "UserId": face.user_id,
                                   "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]})
                else:
                    deleted.append(face_id)
                    seqs.append(face.seq)
            session.delete_faces(collection.pk, seqs)
            if seqs:
                self._audit(session, "DeleteFaces", collection.collection_id, deleted=deleted)
        if seqs:
            self.cache.sync(collection.pk)  # drops the vectors (and the index file holding them)
            self.store.reclaim()
        return {"DeletedFaces": deleted, "UnsuccessfulFaceDeletions": failed}

    # -- search
    def search_faces(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Faces matching a stored face (the face itself excluded)."""
        params = self._request("SearchFaces", request)
        collection, threshold, limit = self._search_limits("SearchFaces", params, "FaceMatchThreshold", "MaxFaces")
        with self.store.transaction() as session:
            found = session.faces_by_id(collection.pk, [params["FaceId"]], embeddings=True)
        if not found:
            raise errors.InvalidParameterException(f"faceId {params['FaceId']} was not found in the collection")
        matches = self._face_matches(collection, found[0].embedding, threshold.effective, limit,
                                     exclude=[found[0].seq])
        self._audit_search("SearchFaces", collection, threshold, matches, searched_face_id=params["FaceId"])
        return {"SearchedFaceId": params["FaceId"], "FaceMatches": matches,
                "FaceModelVersion": collection.face_model_version}

    def search_faces_by_image(self, request: Mapping[str, Any], max_image_bytes: int | None = None) -> dict[str, Any]:
        """Faces matching the largest face of an image."""
        params = self._request("SearchFacesByImage", request)
        collection, threshold, limit = self._search_limits("SearchFacesByImage", params, "FaceMatchThreshold",
                                                           "MaxFaces")
        self._check_model(collection)
        level = self._default("SearchFacesByImage", params, "QualityFilter")
        fields = None if level == "NONE" else frozenset({"Pose", "Quality"})
        decoded, faces = self._faces_in(params["Image"], fields, 1, max_image_bytes)
        faces = [face for face, reasons in self._filter(faces, level, decoded) if not reasons]
        if not faces:
            raise errors.InvalidParameterException("Request has invalid parameters: no face found in the image")
        query = self._embed(decoded, faces)
        matches = self._face_matches(collection, query, threshold.effective, limit)
        self._audit_search("SearchFacesByImage", collection, threshold, matches)
        return {
            "SearchedFaceBoundingBox": bounding_box(faces[0].box, decoded.width, decoded.height),
            "SearchedFaceConfidence": float(faces[0].confidence),
            "FaceMatches": matches,
            "FaceModelVersion": collection.face_model_version,
        }
