"""The typed domain (issue 12, item 3): services take typed arguments and return `domain.model` dataclasses;
`api.shapes` builds the Rekognition dicts; `api.wire` adapts one to the other, and `Backend.call` still answers
exactly the Rekognition shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facelens.api import shapes
from facelens.context import RequestContext
from facelens.domain import model
from facelens.service import Backend
from facelens.store.base import FaceRecord, UserRecord
from tests.collections_fakes import ScriptedAnalyzer, ScriptedFace, identities, make_backend


@pytest.fixture
def analyzer() -> ScriptedAnalyzer:
    return ScriptedAnalyzer()


@pytest.fixture
def backend(tmp_path: Path, analyzer: ScriptedAnalyzer) -> Iterator[Backend]:
    backend = make_backend(tmp_path / "data", analyzer, floors=False)
    backend.call("CreateCollection", {"CollectionId": "c"})
    yield backend
    backend.close()


def test_search_faces_returns_a_face_search_of_face_matches(backend: Backend) -> None:
    vectors, _ = identities(3, 2, noise=0.01)
    face_ids = backend.collections.add_embeddings("c", vectors)
    context = RequestContext()
    result = backend.collections.search_faces(collection_id="c", face_id=face_ids[0], threshold=90.0,
                                              max_faces=None, context=context)
    assert isinstance(result, model.Search) and result.searched_face_id == face_ids[0]
    assert [type(m) for m in result.matches] == [model.FaceMatch]
    assert isinstance(result.matches[0].face, FaceRecord) and result.matches[0].face.face_id == face_ids[1]
    assert context.disclosures["effective-threshold"] == "90.00"
    # the wire answers the same search in Rekognition's shape, built by api.shapes from that result
    wire = backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_ids[0], "FaceMatchThreshold": 90})
    assert wire == shapes.face_search(result)
    assert list(wire) == ["SearchedFaceId", "FaceMatches", "FaceModelVersion"]
    assert list(wire["FaceMatches"][0]["Face"]) == ["FaceId", "BoundingBox", "ImageId", "Confidence",
                                                     "IndexFacesModelVersion"]


def test_index_faces_returns_indexed_and_unindexed_faces(backend: Backend, analyzer: ScriptedAnalyzer) -> None:
    vectors, _ = identities(2, 1)
    image = analyzer.image(30, [ScriptedFace((100, 100, 200, 220), vectors[0]),
                                ScriptedFace((300, 100, 380, 200), vectors[1], confidence=40.0)])
    result = backend.collections.index_faces(collection_id="c", image=image, external_image_id="x",
                                             detection_attributes=None, max_faces=None, quality_filter="AUTO",
                                             context=RequestContext())
    assert isinstance(result, model.Indexing) and result.face_model_version == "synthetic"
    (indexed,) = result.indexed
    assert indexed.stored.external_image_id == "x" and indexed.face.width == 600 and indexed.face.height == 400
    assert indexed.stored.bounding_box == pytest.approx({"Width": 100 / 600, "Height": 120 / 400,
                                                         "Left": 100 / 600, "Top": 100 / 400})
    (unindexed,) = result.unindexed
    assert unindexed.reasons == ["LOW_CONFIDENCE"]
    shaped = shapes.indexing(result)
    assert list(shaped) == ["FaceRecords", "FaceModelVersion", "UnindexedFaces"]
    assert shaped["FaceRecords"][0]["Face"]["FaceId"] == indexed.stored.face_id
    assert shaped["UnindexedFaces"][0]["Reasons"] == ["LOW_CONFIDENCE"]


def test_pages_carry_their_next_token(backend: Backend) -> None:
    for i in range(3):
        backend.call("CreateCollection", {"CollectionId": f"more{i}"})
    page = backend.collections.list_collections(max_results=2, next_token=None, context=RequestContext())
    assert isinstance(page, model.Page) and len(page.items) == 2 and page.next_token
    rest = backend.collections.list_collections(max_results=2, next_token=page.next_token, context=RequestContext())
    assert [c.collection_id for c in page.items + rest.items] == ["c", "more0", "more1", "more2"]
    assert rest.next_token is None and "NextToken" not in shapes.collection_list(rest)


def test_an_idempotent_write_stores_and_replays_its_wire_response(backend: Backend) -> None:
    face_ids = backend.collections.add_embeddings("c", identities(1, 2, noise=0.01)[0])
    backend.call("CreateUser", {"CollectionId": "c", "UserId": "u", "ClientRequestToken": "t1"})
    request = {"CollectionId": "c", "UserId": "u", "FaceIds": [face_ids[0], "00000000-0000-4000-8000-000000000000"],
               "ClientRequestToken": "t2"}
    first = backend.call("AssociateFaces", request)
    assert first == {"AssociatedFaces": [{"FaceId": face_ids[0]}],
                     "UnsuccessfulFaceAssociations": [{"FaceId": "00000000-0000-4000-8000-000000000000",
                                                       "Reasons": ["FACE_NOT_FOUND"]}],
                     "UserStatus": "ACTIVE"}
    assert backend.call("AssociateFaces", request) == first  # replayed from the stored wire response
    # tokens are kept per access key (the in-process caller is "local")
    with backend.store.transaction() as session:
        assert json.loads(session.recall("AssociateFaces", "local/t2")[1]) == first


def test_the_gate_records_typed_matches_as_before(backend: Backend) -> None:
    face_ids = backend.collections.add_embeddings("c", identities(1, 2, noise=0.01)[0])
    backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_ids[0], "FaceMatchThreshold": 90})
    record = json.loads(backend.call("ListAuditRecords", {"CollectionId": "c"})["AuditRecords"][-1]["Record"])
    assert record["operation"] == "SearchFaces" and record["searched_face_id"] == face_ids[0]
    assert [m["FaceId"] for m in record["matches"]] == [face_ids[1]]
    assert set(record["matches"][0]) == {"FaceId", "Similarity"}


def test_shapes_of_refusals_and_user_matches() -> None:
    assert shapes.refusal(model.Refusal("f", ["LOW_MATCH_CONFIDENCE"], "u", 42.5)) == {
        "FaceId": "f", "UserId": "u", "Confidence": 42.5, "Reasons": ["LOW_MATCH_CONFIDENCE"]}
    assert list(shapes.refusal(model.Refusal("f", ["FACE_NOT_FOUND"]))) == ["FaceId", "Reasons"]
    assert shapes.user_match(model.UserMatch(91.0, UserRecord(1, "u", "ACTIVE"))) == {
        "Similarity": 91.0, "User": {"UserId": "u", "UserStatus": "ACTIVE"}}
    stored = FaceRecord(1, "f", "i", None, {"Width": 0.1, "Height": 0.2, "Left": 0.3, "Top": 0.4}, 99.0, "m", None,
                        None)
    assert shapes.face(stored) == {"FaceId": "f", "BoundingBox": stored.bounding_box, "ImageId": "i",
                                   "Confidence": 99.0, "IndexFacesModelVersion": "m"}


def test_bounding_box_and_face_detail_omit_what_was_not_computed() -> None:
    from facelens.pipeline import Face

    landmarks = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float32)
    found = model.FoundFace(Face(box=np.array([10, 20, 110, 220], np.float32), landmarks=landmarks,
                                 confidence=99.5), 200, 400)
    assert shapes.bounding_box(found) == {"Width": 0.5, "Height": 0.5, "Left": 0.05, "Top": 0.05}
    detail = shapes.face_detail(found)
    assert list(detail) == ["BoundingBox", "Landmarks", "Confidence"]
    assert [lm["Type"] for lm in detail["Landmarks"]] == ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
    assert set(shapes.compared_face(found)) == {"BoundingBox", "Confidence", "Landmarks"}
