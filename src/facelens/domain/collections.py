"""Collections and their faces: create, describe, list, delete; IndexFaces (one image or a bulk batch);
ListFaces, DeleteFaces; SearchFaces and SearchFacesByImage.

Faces are found through the one face path (`facelens.analysis.find_faces`); a write is stored in one
transaction with its audit record (all faces of an image, or none); searches pass the gate, which sets their
threshold and records them before they are answered.
Methods take typed keyword arguments and the `RequestContext` and return `facelens.domain.model` results; the
wire adapters (`facelens.api.wire`) shape them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facelens import errors, paging, service_model
from facelens.analysis import FaceSet, find_faces, find_faces_in
from facelens.context import RequestContext
from facelens.domain.common import Records, check_model, default, judged, reason_in, require_collection
from facelens.domain.face_crops import face_crop
from facelens.domain.model import (
    CollectionDescription,
    FaceChanges,
    FaceList,
    FaceMatch,
    FoundFace,
    IndexedFace,
    Indexing,
    Page,
    Refusal,
    Search,
    UnindexedFace,
    relative_box,
)
from facelens.domain.ports import Analyzer, Gate
from facelens.domain.search import SearchEngine
from facelens.imaging import MAX_S3_IMAGE_BYTES
from facelens.pipeline import Face, resolve_attributes
from facelens.store.base import CollectionRecord, FaceRecord, NewFace, Session
from facelens.store.ids import time_ordered_uuid

if TYPE_CHECKING:
    from facelens.store.open import VectorIndex


def max_faces_per_image() -> int:
    """The most faces IndexFaces indexes from one image (documented in the service model: 100)."""
    return service_model.documented_number("IndexFaces", "MaxFaces", r"no more than (\d+) detected faces")


def _select(found: FaceSet, max_faces: int) -> tuple[list[Face], list[tuple[Face, list[str]]]]:
    """The faces to index and the others with their reasons (largest first: the smallest go over MaxFaces)."""
    kept: list[Face] = []
    unindexed: list[tuple[Face, list[str]]] = []
    for face, reasons in found.faces:
        if not reasons and len(kept) >= max_faces:
            reasons = ["EXCEEDS_MAX_FACES"]
        if reasons:
            unindexed.append((face, reasons))
        else:
            kept.append(face)
    return kept, unindexed


@dataclass
class PreparedImages:
    """A bulk batch through the models, not yet stored (`CollectionService.prepare_images`)."""

    collection_id: str
    collection: CollectionRecord
    sources: list[str]
    results: list[Indexing | errors.FaceLensError | None]  # None: skipped, or filled when stored
    todo: list[tuple[int, FaceSet]]  # (slot, faces) of each decoded image
    plans: list[tuple[list[Face], list[tuple[Face, list[str]]]]]  # (faces to index, the others with reasons)
    stored: list[list[NewFace]]  # the records to add, per decoded image


class CollectionService:
    """Collections, faces and face searches over one store, vector index and analyzer."""

    def __init__(self, records: Records, vectors: VectorIndex, analyzer: Analyzer, gate: Gate,
                 search: SearchEngine, region: str, account: str) -> None:
        self.records = records
        self.store = records.store
        self.vectors = vectors
        self.analyzer = analyzer
        self.gate = gate
        self.search = search
        self.region = region
        self.account = account

    # -- collections
    def create_collection(self, *, collection_id: str, tags: Mapping[str, str] | None,
                          context: RequestContext) -> CollectionRecord:
        arn = f"aws:rekognition:{self.region}:{self.account}:collection/{collection_id}"
        version = self.analyzer.model_version
        with self.store.transaction(write=True) as session:
            created = session.create_collection(collection_id, arn, version, dict(tags or {}))
            if created is not None:
                self.gate.record(session, context, "CreateCollection", collection_id, face_model=version)
        if created is None:
            raise errors.ResourceAlreadyExistsException(f"The collection id: {collection_id} already exists")
        return created

    def delete_collection(self, *, collection_id: str, context: RequestContext) -> None:
        with self.store.transaction(write=True) as session:
            collection = require_collection(session, collection_id)
            faces = session.count_faces(collection.pk)
            session.delete_collection(collection.pk)
            self.gate.record(session, context, "DeleteCollection", collection.collection_id, faces_deleted=faces)
        self.vectors.drop(collection.pk)
        self.store.reclaim()

    def list_collections(self, *, max_results: int | None, next_token: str | None,
                         context: RequestContext) -> Page[CollectionRecord]:
        """Collections the caller's key may see (all, for an unscoped key)."""
        scope = context.scope

        def visible(session: Session, after: int, limit: int) -> list[CollectionRecord]:
            found: list[CollectionRecord] = []
            while len(found) < limit:
                batch = session.list_collections(after, limit)
                found += [c for c in batch if scope.sees(c.collection_id)]
                if len(batch) < limit:
                    break
                after = batch[-1].pk
            return found[:limit]

        with self.store.transaction() as session:
            return self.records.page("ListCollections", max_results, next_token, 0, "",
                                     lambda a, n: visible(session, a, n), lambda c: c.pk)

    def describe_collection(self, *, collection_id: str, context: RequestContext) -> CollectionDescription:
        with self.store.transaction() as session:
            collection = require_collection(session, collection_id)
            described = CollectionDescription(collection, session.count_faces(collection.pk),
                                              session.count_users(collection.pk))
        calibration = self.gate.calibration_id(collection.face_model_version)
        if calibration is not None:  # Rekognition's response has no member for it: a header says it
            context.disclosures["calibration"] = calibration
        return described

    def _collection(self, collection_id: str) -> CollectionRecord:
        with self.store.transaction() as session:
            return require_collection(session, collection_id)

    # -- indexing
    def index_faces(self, *, collection_id: str, image: bytes, external_image_id: str | None,
                    detection_attributes: Sequence[str] | None, max_faces: int | None, quality_filter: str | None,
                    context: RequestContext) -> Indexing:
        """Detect, filter (QualityFilter, MaxFaces) and store the faces of one image, all or none."""
        collection = self._collection(collection_id)
        check_model(self.analyzer.model_version, collection)
        most = min(max_faces_per_image() if max_faces is None else max_faces, max_faces_per_image())
        level = default("IndexFaces", "QualityFilter", quality_filter)
        fields = resolve_attributes(detection_attributes)
        found = find_faces_in(self.analyzer, image, fields, max_faces_per_image(),
                              context.max_image_bytes, quality_filter=level, embed=most)
        kept, unindexed = _select(found, most)
        new = self._new_faces(collection, found, kept, external_image_id)
        self._store_faces(context, collection.collection_id, new,
                          audit={"image_id": new[0].image_id if new else None,
                                 "external_image_id": external_image_id},
                          crops=lambda: [face_crop(found.image.pixels, face.box) for face in kept])
        return self._indexed(collection, found, kept, new, unindexed, fields)

    def index_images(self, collection_id: str, images: Sequence[tuple[str, bytes, str | None]],
                     quality_filter: str = "AUTO", max_faces: int | None = None, *,
                     context: RequestContext | None = None) -> list[Indexing | errors.FaceLensError | None]:
        """Bulk IndexFaces: (source key, image bytes, ExternalImageId) triples, batched through the models and
        stored in one transaction that also records each source as imported. Sources already imported are
        skipped (None in their place); an image that cannot be decoded raises nothing here: its slot holds
        its `FaceLensError`. Audited as IndexFaces under `context` (default: the local operator).
        `prepare_images` then `store_prepared`."""
        return self.store_prepared(self.prepare_images(collection_id, images, quality_filter, max_faces),
                                   context=context)

    def prepare_images(self, collection_id: str, images: Sequence[tuple[str, bytes, str | None]],
                       quality_filter: str = "AUTO", max_faces: int | None = None) -> PreparedImages:
        """The model half of `index_images`: validation, the skip check and the face path, nothing stored.
        Batches of different sources may be prepared concurrently; each is then stored once, whole."""
        if quality_filter not in service_model.enum("QualityFilter"):
            raise errors.InvalidParameterException(f"QualityFilter must be one of "
                                                   f"{', '.join(service_model.enum('QualityFilter'))}")
        if max_faces is not None and max_faces < 1:
            raise errors.InvalidParameterException(f"MaxFaces must be at least 1, not {max_faces}")
        with self.store.transaction() as session:
            collection = require_collection(session, collection_id)
            done = session.imported(collection.pk, [source for source, _, _ in images])
        check_model(self.analyzer.model_version, collection)
        most = min(max_faces or max_faces_per_image(), max_faces_per_image())
        results: list[Indexing | errors.FaceLensError | None] = [None] * len(images)
        wanted = [i for i, (source, _, _) in enumerate(images) if source not in done]
        todo: list[tuple[int, FaceSet]] = []
        for i, result in zip(wanted, find_faces(self.analyzer, [images[i][1] for i in wanted],
                                                resolve_attributes(None), max_faces_per_image(),
                                                MAX_S3_IMAGE_BYTES, quality_filter=quality_filter, embed=most),
                             strict=True):
            if isinstance(result, errors.FaceLensError):
                results[i] = result
            else:
                todo.append((i, result))
        plans = [_select(found, most) for _, found in todo]
        stored = [self._new_faces(collection, found, kept, images[i][2])
                  for (i, found), (kept, _) in zip(todo, plans, strict=True)]
        return PreparedImages(collection_id, collection, [source for source, _, _ in images], results, todo,
                              plans, stored)

    def store_prepared(self, prepared: PreparedImages, *,
                       context: RequestContext | None = None) -> list[Indexing | errors.FaceLensError | None]:
        """The store half of `index_images`: one transaction with the faces and the record of the sources."""
        context = context or RequestContext()
        fields = resolve_attributes(None)
        todo, plans, stored = prepared.todo, prepared.plans, prepared.stored
        self._store_faces(context, prepared.collection_id, [face for new in stored for face in new],
                          [(prepared.sources[i], new[0].image_id if new else "")
                           for (i, _), new in zip(todo, stored, strict=True)],
                          crops=lambda: [face_crop(found.image.pixels, face.box)
                                         for (_, found), (kept, _) in zip(todo, plans, strict=True) for face in kept])
        results = list(prepared.results)
        for (i, found), (kept, unindexed), new in zip(todo, plans, stored, strict=True):
            results[i] = self._indexed(prepared.collection, found, kept, new, unindexed, fields)
        return results

    @staticmethod
    def _new_faces(collection: CollectionRecord, found: FaceSet, kept: Sequence[Face],
                   external: str | None) -> list[NewFace]:
        image_id = str(uuid.uuid4())
        image = found.image
        return [NewFace(time_ordered_uuid(), image_id, external, relative_box(face.box, image.width, image.height),
                        float(face.confidence), collection.face_model_version,
                        np.asarray(face.embedding, np.float32))
                for face in kept]

    @staticmethod
    def _indexed(collection: CollectionRecord, found: FaceSet, kept: Sequence[Face], new: Sequence[NewFace],
                 unindexed: Sequence[tuple[Face, list[str]]], fields: frozenset[str]) -> Indexing:
        width, height = found.image.width, found.image.height
        return Indexing(collection.face_model_version,
                        [IndexedFace(stored, FoundFace(face, width, height, fields))
                         for face, stored in zip(kept, new, strict=True)],
                        [UnindexedFace(FoundFace(face, width, height, fields), reasons)
                         for face, reasons in unindexed])

    def add_embeddings(self, collection_id: str, embeddings: np.ndarray, *, external_image_id: str | None = None,
                       boxes: Sequence[Mapping[str, float]] | None = None,
                       confidences: Sequence[float] | None = None,
                       context: RequestContext | None = None) -> list[str]:
        """Store faces with known embeddings as if indexed from one image (tests, benchmarks, imports); their
        FaceIds. Embeddings are L2-normalised here. Audited as IndexFaces under `context` (default: local)."""
        context = context or RequestContext()
        vectors = np.atleast_2d(np.asarray(embeddings, np.float32))
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        collection = self._collection(collection_id)
        image_id = str(uuid.uuid4())
        new = [NewFace(time_ordered_uuid(), image_id, external_image_id,
                       dict(boxes[i]) if boxes else {"Width": 0.25, "Height": 0.25, "Left": 0.375, "Top": 0.375},
                       float(confidences[i]) if confidences else 99.9, collection.face_model_version, vector)
               for i, vector in enumerate(vectors)]
        self._store_faces(context, collection_id, new)
        return [face.face_id for face in new]

    def _store_faces(self, context: RequestContext, collection_id: str, faces: list[NewFace],
                     imported: Sequence[tuple[str, str]] = (), audit: Mapping[str, Any] | None = None,
                     crops: Callable[[], list[bytes]] | None = None) -> None:
        """One transaction for all faces of an image, or of a bulk batch with the record of its sources
        (the collection may have gone meanwhile), and the audit record of the indexing. `crops` makes the
        faces' thumbnails (in `faces`' order), called only where the collection's policy keeps face crops;
        they are written in the same transaction, so a face and its crop are stored together or not at all."""
        if not faces and not imported:
            return
        with self.store.transaction(write=True) as session:
            collection = require_collection(session, collection_id)
            seqs = session.add_faces(collection.pk, faces)
            kept = bool(faces) and crops is not None and self.gate.policy_for(session, collection).keep_face_crops
            if kept and crops is not None:
                session.add_face_crops(list(zip(seqs, crops(), strict=True)))
            if imported:
                session.mark_imported(collection.pk, imported)
            self.gate.record(session, context, "IndexFaces", collection_id, face_model=collection.face_model_version,
                             indexed=[face.face_id for face in faces], images=len(imported) or None,
                             face_crops_kept=len(faces) if kept else None, **(audit or {}))
        self.vectors.sync(collection.pk)

    # -- listing and deleting faces
    def list_faces(self, *, collection_id: str, user_id: str | None, face_ids: Sequence[str] | None,
                   max_results: int | None, next_token: str | None, context: RequestContext) -> FaceList:
        filters = paging.digest({"UserId": user_id, "FaceIds": face_ids})
        with self.store.transaction() as session:
            collection = require_collection(session, collection_id)
            user_pk = None
            if user_id is not None:
                user = session.get_user(collection.pk, user_id)
                user_pk = user.pk if user is not None else -1  # an unknown user has no faces

            def fetch(after: int, limit: int) -> list:
                return session.list_faces(collection.pk, after, limit, user_pk, face_ids)

            page = self.records.page("ListFaces", max_results, next_token, collection.pk, filters, fetch,
                                     lambda f: f.seq)
        return FaceList(page, collection.face_model_version)

    def delete_faces(self, *, collection_id: str, face_ids: Sequence[str], context: RequestContext) -> FaceChanges:
        """Delete faces (not those associated with a user, as in Rekognition); they leave the disk."""
        reasons = "UnsuccessfulFaceDeletionReason"

        def judge(face: FaceRecord) -> Refusal | bool:
            if face.user_id is not None:
                return Refusal(face.face_id, [reason_in(reasons, "ASSOCIATED_TO_AN_EXISTING_USER")], face.user_id)
            return True

        with self.store.transaction(write=True) as session:
            collection = require_collection(session, collection_id)
            unique = list(dict.fromkeys(face_ids))
            found = {face.face_id: face for face in session.faces_by_id(collection.pk, unique)}
            taken, failed = judged(unique, found, reasons, judge)
            deleted, seqs = [face.face_id for face in taken], [face.seq for face in taken]
            session.delete_faces(collection.pk, seqs)
            if seqs:
                self.gate.record(session, context, "DeleteFaces", collection.collection_id, deleted=deleted)
        if seqs:
            self.vectors.sync(collection.pk)  # drops the vectors (and the index file holding them)
            self.store.reclaim()
        return FaceChanges(deleted, failed)

    def face_crop(self, *, collection_id: str, face_id: str) -> bytes | None:
        """The thumbnail kept for a face (KeepFaceCrops), or None. The caller checks the key's scope first: the
        console serves it only to a key that may list the collection's faces."""
        with self.store.transaction() as session:
            collection = require_collection(session, collection_id)
            return session.face_crop(collection.pk, face_id)

    def faces_with_crops(self, *, collection_id: str, face_ids: Sequence[str]) -> set[str]:
        """Which of these faces have a thumbnail kept."""
        with self.store.transaction() as session:
            collection = require_collection(session, collection_id)
            return session.crops_of(collection.pk, face_ids)

    # -- search
    def search_faces(self, *, collection_id: str, face_id: str, threshold: float | None, max_faces: int | None,
                     context: RequestContext) -> Search[FaceMatch]:
        """Faces matching a stored face (the face itself excluded)."""
        collection, ruling, limit = self.gate.admit_search(context, "SearchFaces", collection_id, threshold,
                                                           max_faces, "FaceMatchThreshold", "MaxFaces")
        with self.store.transaction() as session:
            found = session.faces_by_id(collection.pk, [face_id], embeddings=True)
        if not found:
            raise errors.InvalidParameterException(f"faceId {face_id} was not found in the collection")
        matches = self.search.face_matches(collection, found[0].embedding, ruling.effective, limit,
                                           exclude=[found[0].seq])
        self.gate.record_search(context, "SearchFaces", collection, ruling, matches, searched_face_id=face_id)
        return Search(collection.face_model_version, matches, searched_face_id=face_id)

    def search_faces_by_image(self, *, collection_id: str, image: bytes, threshold: float | None,
                              max_faces: int | None, quality_filter: str | None,
                              context: RequestContext) -> Search[FaceMatch]:
        """Faces matching the largest face of an image (which must pass the QualityFilter)."""
        collection, ruling, limit = self.gate.admit_search(context, "SearchFacesByImage", collection_id, threshold,
                                                           max_faces, "FaceMatchThreshold", "MaxFaces")
        check_model(self.analyzer.model_version, collection)
        level = default("SearchFacesByImage", "QualityFilter", quality_filter)
        found = find_faces_in(self.analyzer, image, None, 1, context.max_image_bytes, quality_filter=level,
                              embed=1)
        if not found.passed:
            raise errors.InvalidParameterException("There are no faces in the image. Should be at least 1.")
        face = found.passed[0]
        matches = self.search.face_matches(collection, np.asarray(face.embedding, np.float32)[None, :],
                                           ruling.effective, limit)
        self.gate.record_search(context, "SearchFacesByImage", collection, ruling, matches)
        return Search(collection.face_model_version, matches,
                      searched_face=FoundFace(face, found.image.width, found.image.height))
