"""Reviewers' decisions (RecordReviewDecision): an audit record linked to the search that returned the face,
refused for a face that search did not return, found by the subject-access query, and kept intact by verify."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens import errors
from facelens.accountability import audit
from facelens.context import KeyScope, RequestContext
from facelens.service import Backend
from tests.collections_fakes import ScriptedAnalyzer, identities, make_backend


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    backend = make_backend(tmp_path / "data", ScriptedAnalyzer(), floors=False)
    backend.call("CreateCollection", {"CollectionId": "c"})
    yield backend
    backend.close()


def search(backend: Backend, face_id: str, request_id: str) -> dict:
    context = RequestContext(request_id=request_id, purpose="case 7")
    return backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_id, "FaceMatchThreshold": 90}, context)


def test_a_decision_is_chained_to_its_search(backend: Backend) -> None:
    face_ids = backend.collections.add_embeddings("c", identities(1, 2, noise=0.01)[0])
    found = search(backend, face_ids[0], "search-1")["FaceMatches"]
    assert [m["Face"]["FaceId"] for m in found] == [face_ids[1]]
    reviewer = RequestContext("FLKREVIEWER", KeyScope(read_only=True), request_id="review-1")
    answer = backend.call("RecordReviewDecision", {"CollectionId": "c", "SearchRequestId": "search-1",
                                                   "FaceId": face_ids[1], "Decision": "REJECTED",
                                                   "Note": "different ear shape"}, reviewer)
    rows = backend.call("ListAuditRecords", {"CollectionId": "c"})["AuditRecords"]
    searched = next(r for r in rows if json.loads(r["Record"])["request_id"] == "search-1")
    assert answer["SearchSequence"] == searched["Sequence"] and answer["SearchHash"] == searched["Hash"]
    assert answer["Similarity"] == json.loads(searched["Record"])["matches"][0]["Similarity"]
    record = json.loads(rows[-1]["Record"])
    assert rows[-1]["Sequence"] == answer["Sequence"]
    assert record["operation"] == "ReviewDecision" and record["key"] == "FLKREVIEWER"
    assert (record["decision"], record["note"], record["search_seq"]) == ("REJECTED", "different ear shape",
                                                                         searched["Sequence"])
    # the subject-access query names the search and the decision about that face
    about = backend.call("ListAuditRecords", {"FaceId": face_ids[1]})["AuditRecords"]
    assert [json.loads(r["Record"])["operation"] for r in about][-2:] == ["SearchFaces", "ReviewDecision"]
    with backend.store.transaction() as session:
        assert audit.verify(session.audit_rows(), index=session.audit_index()).ok


def test_only_a_returned_candidate_of_a_known_search_can_be_reviewed(backend: Backend) -> None:
    face_ids = backend.collections.add_embeddings("c", identities(2, 1, noise=0.01)[0])
    search(backend, face_ids[0], "search-2")  # the other identity is not returned
    before = len(backend.call("ListAuditRecords", {})["AuditRecords"])
    request = {"CollectionId": "c", "SearchRequestId": "search-2", "FaceId": face_ids[1], "Decision": "CONFIRMED"}
    with pytest.raises(errors.InvalidParameterException, match="did not return"):
        backend.call("RecordReviewDecision", request)
    with pytest.raises(errors.ResourceNotFoundException, match="no search"):
        backend.call("RecordReviewDecision", {**request, "SearchRequestId": "never-ran"})
    with pytest.raises(errors.InvalidParameterException):
        backend.call("RecordReviewDecision", {**request, "Decision": "MAYBE"})
    with pytest.raises(errors.AccessDeniedException):  # the key's collection scope applies
        backend.call("RecordReviewDecision", request, RequestContext("k", KeyScope(collections=frozenset({"d"}))))
    assert len(backend.call("ListAuditRecords", {})["AuditRecords"]) == before
