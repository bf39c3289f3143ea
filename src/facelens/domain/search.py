"""The exact, re-ranked 1:N search every search operation answers from (faces, users, video).

The vector index proposes candidates; their true embeddings, read from the database, give the scores (cosine in
float64, then the calibrated Similarity), so a result never depends on the index's arithmetic and a deleted face
is never returned. The search asks for 4x more candidates until it has enough results or no further face can
reach the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

import numpy as np

from facelens import service_model
from facelens.calibration import Calibration
from facelens.domain.common import require_collection
from facelens.domain.model import FaceMatch, UserMatch
from facelens.store.base import CollectionRecord, FaceRecord, MetadataStore

if TYPE_CHECKING:
    from facelens.store.open import VectorIndex

FIRST_CANDIDATES = 64  # candidates asked of the vector index before deepening
SCORE_MARGIN = 0.02  # how far an index's own score may sit below the exact cosine (SQ8 errs by < 0.01)


class SearchEngine:
    """Faces and users nearest to query embeddings, over one store and its vector index."""

    def __init__(self, store: MetadataStore, vectors: VectorIndex,
                 calibration_for: Callable[[str], Calibration]) -> None:
        self.store = store
        self.vectors = vectors
        self.calibration_for = calibration_for

    def calibration(self, collection: CollectionRecord) -> Calibration:
        return self.calibration_for(collection.face_model_version)

    def ranked(self, collection: CollectionRecord, queries: np.ndarray, min_cosine: float,
               enough: Callable[[list[tuple[FaceRecord, float]]], bool],
               exclude: Collection[int] = ()) -> list[tuple[FaceRecord, float]]:
        """Faces whose exact cosine with any query (the best over queries) is at least `min_cosine`, best first;
        deepens until `enough(results)` holds or no further face can reach `min_cosine`."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        exact = queries.astype(np.float64)  # re-rank in float64: the same score whatever the index's arithmetic
        excluded = set(exclude)
        k = FIRST_CANDIDATES
        while True:
            seqs, scores, complete = self.vectors.search(collection.pk, queries, k + len(excluded))
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

    def face_matches(self, collection: CollectionRecord, queries: np.ndarray, threshold: float, limit: int,
                     exclude: Collection[int] = ()) -> list[FaceMatch]:
        """Faces at or above `threshold` Similarity, best first, at most `limit`."""
        model = self.calibration(collection)
        ranked = self.ranked(collection, queries, model.cosine_at(threshold), lambda r: len(r) >= limit, exclude)
        similarities = model.similarity(np.asarray([c for _, c in ranked], np.float64))
        return [FaceMatch(float(s), face)
                for (face, _), s in zip(ranked, similarities.tolist(), strict=True) if s >= threshold][:limit]

    def user_matches(self, collection: CollectionRecord, queries: np.ndarray, threshold: float, limit: int,
                     exclude_faces: Collection[int] = (), exclude_user: int | None = None) -> list[UserMatch]:
        """Users whose best face reaches `threshold` Similarity, best first. A user's
        Similarity is its nearest face's (not an averaged template)."""
        model = self.calibration(collection)

        def best_per_user(ranked: list[tuple[FaceRecord, float]]) -> dict[int, float]:
            best: dict[int, float] = {}
            for face, cosine in ranked:  # best first: the first face seen of a user is its best
                if face.user_pk is not None and face.user_pk != exclude_user and face.user_pk not in best:
                    best[face.user_pk] = cosine
            return best

        ranked = self.ranked(collection, queries, model.cosine_at(threshold),
                             lambda r: len(best_per_user(r)) >= limit, exclude_faces)
        best = best_per_user(ranked)
        names = {face.user_pk: face.user_id for face, _ in ranked}
        matches: list[UserMatch] = []
        with self.store.transaction() as session:
            for user_pk, cosine in list(best.items())[:limit]:
                similarity = float(model.similarity(cosine))
                user = session.get_user(collection.pk, names[user_pk])
                if similarity >= threshold and user is not None:
                    matches.append(UserMatch(similarity, user))
        return matches

    def by_embedding(self, collection_id: str, embedding: np.ndarray, threshold: float = 80.0,
                     max_faces: int | None = None) -> list[FaceMatch]:
        """Face matches for an already computed embedding (L2-normalised here) at exactly `threshold`: the engine
        alone, for benchmarks and store tests. No entry point a user has reaches it: it passes no gate and
        writes no audit record (every search operation does both)."""
        vector = np.asarray(embedding, np.float32).ravel()
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        with self.store.transaction() as session:
            collection = require_collection(session, collection_id)
        limit = max_faces or service_model.limit("SearchFacesByImage", "MaxFaces")
        return self.face_matches(collection, vector[None, :], float(threshold), limit)
