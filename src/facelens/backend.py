"""Machinery shared by the collection backend's operations (`facelens.collections`, `facelens.users`).

Request validation against the service model, collection lookup, calibration, idempotent writes, pagination,
image analysis, and the exact re-ranked search every search operation answers from. Rule kept throughout: no
database transaction is held while calling into the vector cache (the cache opens its own).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from facelens import calibration, errors, filtering, paging, service_model
from facelens.accountability.access import RequestContext, acting_as
from facelens.accountability.policy import Policy
from facelens.analysis import MAX_FACES, find_faces_in
from facelens.calibration import Calibration
from facelens.imaging import DecodedImage
from facelens.pipeline import Face, default_analyzer
from facelens.store.base import CollectionRecord, FaceRecord, MetadataStore, Session
from facelens.store.open import open_store, open_vectors
from facelens.store.vectors import VectorCache, VectorConfig

IDEMPOTENCY_TTL = dt.timedelta(hours=24)  # how long a ClientRequestToken is remembered
FIRST_CANDIDATES = 64  # candidates asked of the vector index before deepening
SCORE_MARGIN = 0.02  # how far an index's own score may sit below the exact cosine (SQ8 errs by < 0.01)


class Analyzer(Protocol):
    """What the backend needs of `facelens.pipeline.FaceAnalyzer`."""

    @property
    def model_version(self) -> str: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> None: ...

    def describe(self, image: np.ndarray, faces: Sequence[Face], fields: Collection[str]) -> None: ...


def snake(operation: str) -> str:
    """`SearchFacesByImage` -> `search_faces_by_image`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def face_shape(face: FaceRecord) -> dict[str, Any]:
    """Rekognition's `Face` for a stored face."""
    shaped: dict[str, Any] = {"FaceId": face.face_id, "BoundingBox": face.bounding_box, "ImageId": face.image_id}
    if face.external_image_id is not None:
        shaped["ExternalImageId"] = face.external_image_id
    shaped["Confidence"] = face.confidence
    shaped["IndexFacesModelVersion"] = face.model_version
    if face.user_id is not None:
        shaped["UserId"] = face.user_id
    return shaped


def image_bytes(image: Any) -> bytes:
    """`Image` as the HTTP layer hands it over: the fetched bytes (from `Image.Bytes` or `Image.S3Object`), or
    `{"Bytes": ...}`."""
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, Mapping) and image.get("Bytes") is not None:
        return bytes(image["Bytes"])
    raise errors.InvalidParameterException("Image must be given as bytes (S3 objects are fetched by the caller)")


class BackendBase:
    """State and helpers of the backend; the operations live in the subclasses."""

    OPERATIONS: tuple[str, ...] = ()

    def __init__(self, data_dir: str | Path, analyzer_factory: Callable[[], Analyzer] = default_analyzer,
                 calibration_for: Callable[[str], Calibration] = calibration.for_model, *,
                 region: str | None = None, account: str | None = None, store: MetadataStore | None = None,
                 vector_config: VectorConfig | None = None, background_rebuilds: bool = True,
                 policy: Policy | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.policy = policy or Policy.from_env(os.environ)  # server-wide; collections may set their own
        self.store = store or open_store(None, self.data_dir)  # FACELENS_DATABASE_URL, else SQLite in data_dir
        # FACELENS_VECTOR_URL: FAISS in this process (default) or Milvus shared by every replica
        self.cache: VectorCache = open_vectors(None, self.store, self.data_dir / "vectors",  # type: ignore[assignment]
                                               vector_config, background_rebuilds)
        with self.store.transaction() as session:
            self.tokens = paging.PageTokens(session.secret())
        self.region = region or os.environ.get("FACELENS_REGION") or os.environ.get("AWS_DEFAULT_REGION",
                                                                                      "us-east-1")
        self.account = account or os.environ.get("FACELENS_ACCOUNT_ID", "000000000000")
        self._analyzer_factory = analyzer_factory
        self._analyzer: Analyzer | None = None
        self._analyzer_lock = threading.Lock()
        self._calibration_for = calibration_for

    def close(self) -> None:
        """Wait for background work, save the vector indexes, close the database."""
        self.cache.close()
        self.store.close()

    def dispatch(self, operation: str, request: Mapping[str, Any], max_image_bytes: int | None = None,
                 context: RequestContext | None = None) -> dict[str, Any]:
        """Run an operation by name on behalf of `context` (who asks, why: audited); `max_image_bytes` applies
        to those taking an `Image`."""
        if operation not in self.OPERATIONS:
            raise errors.InvalidParameterException(f"FaceLens's collection backend has no operation {operation}")
        method = getattr(self, snake(operation))
        with acting_as(context or RequestContext()):
            if "Image" in service_model.operation(operation).input_shape.members:
                return method(request, max_image_bytes=max_image_bytes)
            return method(request)

    def __enter__(self) -> BackendBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def analyzer(self) -> Analyzer:
        with self._analyzer_lock:
            if self._analyzer is None:
                self._analyzer = self._analyzer_factory()
            return self._analyzer

    # -- requests, collections, calibration
    @staticmethod
    def _request(operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
        service_model.validate(operation, request)
        return {key: value for key, value in request.items() if value is not None}

    @staticmethod
    def _default(operation: str, params: Mapping[str, Any], name: str) -> Any:
        value = params.get(name)
        return service_model.documented_default(operation, name) if value is None else value

    @staticmethod
    def _collection(session: Session, collection_id: str) -> CollectionRecord:
        found = session.get_collection(collection_id)
        if found is None:
            raise errors.ResourceNotFoundException(f"The collection id: {collection_id} does not exist")
        return found

    def _calibration(self, collection: CollectionRecord) -> Calibration:
        return self._calibration_for(collection.face_model_version)

    def _check_model(self, collection: CollectionRecord) -> None:
        if self.analyzer.model_version != collection.face_model_version:
            raise errors.InvalidParameterException(
                f"collection {collection.collection_id} holds face model {collection.face_model_version} "
                f"embeddings; this server runs {self.analyzer.model_version}")

    # -- idempotency, pagination
    def _idempotent(self, operation: str, params: Mapping[str, Any],
                    body: Callable[[Session], tuple[dict[str, Any], int | None]]) -> dict[str, Any]:
        """Run a write once per ClientRequestToken: a repeat with the same parameters gets the first response
        (and changes nothing); one with other parameters is refused. All in one transaction."""
        field = service_model.idempotency_member(operation)
        token = params.get(field) if field else None
        digest = paging.digest(params, leave_out=(field,) if field else ())
        with self.store.transaction(write=True) as session:
            if token is not None:
                seen = session.recall(operation, token)
                if seen is not None:
                    if seen[0] != digest:
                        raise errors.IdempotentParameterMismatchException(
                            f"ClientRequestToken {token} was used with other parameters")
                    return json.loads(seen[1])
            response, pk = body(session)
            if token is not None:
                session.forget_tokens_before(dt.datetime.now(dt.UTC) - IDEMPOTENCY_TTL)
                session.remember(operation, token, digest, json.dumps(response), pk)
        return response

    def _page(self, operation: str, params: Mapping[str, Any], scope: int, filters: str,
              fetch: Callable[[int, int], Sequence[Any]], key: Callable[[Any], int]) -> tuple[list[Any], str | None]:
        """One page of `fetch(after_key, limit)` and the NextToken of the next (None when none)."""
        size = paging.page_size(operation, params.get("MaxResults"))
        after = self.tokens.read(params.get("NextToken"), operation, scope, filters)
        rows = list(fetch(after, size + 1))
        if len(rows) <= size:
            return rows, None
        rows = rows[:size]
        return rows, self.tokens.issue(operation, scope, filters, key(rows[-1]))

    # -- images
    def _faces_in(self, image: Any, fields: Collection[str] | None, limit: int = MAX_FACES,
                  max_bytes: int | None = None) -> tuple[DecodedImage, list[Face]]:
        """`analysis.find_faces_in` of an `Image` with this backend's analyzer."""
        return find_faces_in(self.analyzer, image_bytes(image), fields, limit, max_bytes)

    @staticmethod
    def _filter(faces: Sequence[Face], level: str, decoded: DecodedImage) -> list[tuple[Face, list[str]]]:
        return [(face, filtering.rejection_reasons(face, level, decoded.pixels.shape)) for face in faces]

    def _embed(self, decoded: DecodedImage, faces: list[Face]) -> np.ndarray:
        self.analyzer.embed([decoded.pixels], [faces])
        return np.stack([face.embedding for face in faces]).astype(np.float32)

    # -- search
    def _ranked(self, collection: CollectionRecord, queries: np.ndarray, min_cosine: float,
                enough: Callable[[list[tuple[FaceRecord, float]]], bool],
                exclude: Collection[int] = ()) -> list[tuple[FaceRecord, float]]:
        """Faces whose exact cosine with any query (the best over queries) is at least `min_cosine`, best first.

        The vector index proposes candidates; their true embeddings, read from the database, give the scores.
        Asks for 4x more candidates until `enough(results)` holds or no further face can reach `min_cosine`."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        exact = queries.astype(np.float64)  # re-rank in float64: the same score whatever the index's arithmetic
        excluded = set(exclude)
        k = FIRST_CANDIDATES
        while True:
            seqs, scores, complete = self.cache.search(collection.pk, queries, k + len(excluded))
            wanted = sorted({int(s) for s in seqs.ravel() if s >= 0} - excluded)
            with self.store.transaction() as session:
                faces = session.faces_by_seq(collection.pk, wanted, embeddings=True)
            results: list[tuple[FaceRecord, float]] = []
            if faces:
                cosines = (np.stack([face.embedding for face in faces]).astype(np.float64) @ exact.T).max(axis=1)
                results = [(face, float(c)) for face, c in zip(faces, cosines.tolist(), strict=True)
                           if c >= min_cosine]
                results.sort(key=lambda item: (-item[1], item[0].seq))
            # a query's candidate list ending below min_cosine (or short) has nothing more to give; the margin
            # covers indexes that score approximately (scalar quantization)
            spent = (seqs[:, -1] < 0) | (scores[:, -1] < min_cosine - SCORE_MARGIN)
            if complete or bool(spent.all()) or enough(results):
                return results
            k *= 4

    def _face_matches(self, collection: CollectionRecord, queries: np.ndarray, threshold: float, limit: int,
                      exclude: Collection[int] = ()) -> list[dict[str, Any]]:
        """Rekognition's FaceMatches: faces at or above `threshold` Similarity, best first, at most `limit`."""
        model = self._calibration(collection)
        ranked = self._ranked(collection, queries, model.cosine_at(threshold), lambda r: len(r) >= limit, exclude)
        similarities = model.similarity(np.asarray([c for _, c in ranked], np.float64))
        return [{"Similarity": float(s), "Face": face_shape(face)}
                for (face, _), s in zip(ranked, similarities.tolist(), strict=True) if s >= threshold][:limit]
