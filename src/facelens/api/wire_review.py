"""Wire adapter of RecordReviewDecision: a reviewer's decision about one candidate of a search
(`facelens.accountability.review`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facelens.api.wire import configured

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.service import Backend


def record_review_decision(backend: Backend, p: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    review = configured(backend, "review", "RecordReviewDecision").record_decision(
        collection_id=p["CollectionId"], search_request_id=p["SearchRequestId"], face_id=p["FaceId"],
        decision=p["Decision"], note=p.get("Note"), context=context)
    shape: dict[str, Any] = {"Sequence": review.seq, "SearchSequence": review.search_seq,
                             "SearchHash": review.search_hash}
    if review.similarity is not None:
        shape["Similarity"] = review.similarity
    return shape
