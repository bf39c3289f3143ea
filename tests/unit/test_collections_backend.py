"""The collection backend without HTTP: every operation, pagination, users, errors, idempotency, real images."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import cv2
import numpy as np
import pytest

from facelens import errors
from facelens.config import ServerSettings
from facelens.context import RequestContext
from facelens.service import Backend, build
from tests.collections_fakes import (
    CALIBRATION,
    ScriptedAnalyzer,
    ScriptedFace,
    identities,
)
from tests.collections_fakes import make_backend as fake_backend
from tests.conftest import encode


def make_backend(path: Path, analyzer: ScriptedAnalyzer | None = None, **options: object) -> Backend:
    """Engine tests: searches at exactly the requested threshold (floors are tested in test_accountability)."""
    return fake_backend(path, analyzer, floors=False, **options)


SERVICE = botocore.session.get_session().get_service_model("rekognition")
MISSING = "00000000-0000-4000-8000-000000000000"  # a well-formed FaceId no collection holds



def members(shape: str) -> set[str]:
    return set(SERVICE.shape_for(shape).members)


@pytest.fixture
def analyzer() -> ScriptedAnalyzer:
    return ScriptedAnalyzer()


@pytest.fixture
def backend(tmp_path: Path, analyzer: ScriptedAnalyzer) -> Iterator[Backend]:
    backend = make_backend(tmp_path / "data", analyzer)
    yield backend
    backend.close()


@pytest.fixture
def people(backend: Backend) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Collection "c": 6 people x 4 faces; (FaceIds, embeddings, person per face)."""
    backend.call("CreateCollection", {"CollectionId": "c"})
    vectors, person = identities(6, 4)
    return backend.collections.add_embeddings("c", vectors, external_image_id="synthetic"), vectors, person


def test_collection_lifecycle(backend: Backend) -> None:
    created = backend.call("CreateCollection", {"CollectionId": "my.faces-1", "Tags": {"team": "a"}})
    arn = "aws:rekognition:us-east-1:000000000000:collection/my.faces-1"
    assert created == {"StatusCode": 200, "CollectionArn": arn, "FaceModelVersion": "synthetic"}
    with pytest.raises(errors.ResourceAlreadyExistsException):
        backend.call("CreateCollection", {"CollectionId": "my.faces-1"})
    described = backend.call("DescribeCollection", {"CollectionId": "my.faces-1"})
    assert set(described) == members("DescribeCollectionResponse")
    assert described["FaceCount"] == 0 and described["UserCount"] == 0
    assert described["CollectionARN"] == created["CollectionArn"]
    age = dt.datetime.now(dt.UTC) - described["CreationTimestamp"]
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=1)
    assert backend.call("ListCollections", {}) == {"CollectionIds": ["my.faces-1"],
                                                       "FaceModelVersions": ["synthetic"]}
    assert backend.call("DeleteCollection", {"CollectionId": "my.faces-1"}) == {"StatusCode": 200}
    for operation in ("DescribeCollection", "DeleteCollection", "ListFaces", "ListUsers"):
        with pytest.raises(errors.ResourceNotFoundException):
            backend.call(operation, {"CollectionId": "my.faces-1"})
    with pytest.raises(errors.InvalidParameterException):
        backend.call("DetectCustomLabels", {})


@pytest.mark.parametrize(("operation", "request_"), [
    ("CreateCollection", {"CollectionId": "has space"}),
    ("CreateCollection", {}),
    ("CreateCollection", {"CollectionId": "x" * 256}),
    ("CreateCollection", {"CollectionId": "c", "Tags": {"aws:reserved": "v"}}),
    ("ListCollections", {"MaxResults": 4097}),
    ("ListUsers", {"CollectionId": "c", "MaxResults": 0}),
    ("SearchFaces", {"CollectionId": "c", "FaceId": "not-a-uuid"}),
    ("SearchFaces", {"CollectionId": "c", "FaceId": MISSING, "FaceMatchThreshold": 101}),
    ("IndexFaces", {"CollectionId": "c", "Image": b"x", "QualityFilter": "BEST"}),
    ("IndexFaces", {"CollectionId": "c", "Image": b"x", "MaxFaces": 0}),
    ("AssociateFaces", {"CollectionId": "c", "UserId": "u", "FaceIds": [MISSING] * 101}),
    ("CreateUser", {"CollectionId": "c", "UserId": "u", "ClientRequestToken": "no spaces allowed"}),
    ("DeleteFaces", {"CollectionId": "c", "FaceIds": []}),
])
def test_requests_are_checked_against_the_service_model(backend: Backend, operation: str,
                                                        request_: dict) -> None:
    with pytest.raises(errors.InvalidParameterException):
        backend.call(operation, request_)


def test_list_collections_pages(backend: Backend) -> None:
    names = [f"c{i}" for i in range(7)]
    for name in names:
        backend.call("CreateCollection", {"CollectionId": name})
    seen, token, pages = [], None, 0
    while True:
        page = backend.call("ListCollections", {"MaxResults": 3, **({"NextToken": token} if token else {})})
        seen += page["CollectionIds"]
        assert len(page["FaceModelVersions"]) == len(page["CollectionIds"]) <= 3
        pages += 1
        token = page.get("NextToken")
        if token is None:
            break
        assert len(token) <= 255
    assert seen == names and pages == 3
    for bad in ("garbage", token or "x.y", page_token_of_other_operation(backend)):
        with pytest.raises(errors.InvalidPaginationTokenException):
            backend.call("ListCollections", {"NextToken": bad})


def page_token_of_other_operation(backend: Backend) -> str:
    backend.collections.add_embeddings("c0", identities(2, 1)[0])
    return backend.call("ListFaces", {"CollectionId": "c0", "MaxResults": 1})["NextToken"]


def test_index_faces_quality_filter_max_faces_and_details(backend: Backend,
                                                          analyzer: ScriptedAnalyzer) -> None:
    backend.call("CreateCollection", {"CollectionId": "c"})
    vectors, _ = identities(4, 1)
    image = analyzer.image(10, [
        ScriptedFace((100, 100, 200, 220), vectors[0]),
        ScriptedFace((300, 100, 380, 200), vectors[1]),
        ScriptedFace((420, 100, 500, 200), vectors[2], confidence=40.0),  # fails AUTO: LOW_CONFIDENCE
        ScriptedFace((20, 20, 40, 40), vectors[3], pose=(0.0, 80.0, 0.0)),  # small, extreme pose
    ])
    result = backend.call("IndexFaces", {"CollectionId": "c", "Image": image, "ExternalImageId": "img:1", "MaxFaces": 1,
                                  "DetectionAttributes": ["DEFAULT"]})
    assert set(result) <= members("IndexFacesResponse")
    (record,) = result["FaceRecords"]
    assert set(record["Face"]) == {"FaceId", "BoundingBox", "ImageId", "ExternalImageId", "Confidence"}
    assert record["Face"]["ExternalImageId"] == "img:1"
    assert record["Face"]["BoundingBox"] == pytest.approx({"Width": 100 / 600, "Height": 120 / 400,
                                                           "Left": 100 / 600, "Top": 100 / 400})
    assert {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"} <= set(record["FaceDetail"])
    reasons = [sorted(u["Reasons"]) for u in result["UnindexedFaces"]]
    assert reasons == [["EXCEEDS_MAX_FACES"], ["LOW_CONFIDENCE"], ["EXTREME_POSE", "SMALL_BOUNDING_BOX"]]
    assert {r for rs in reasons for r in rs} <= set(SERVICE.shape_for("Reason").enum)
    # QualityFilter NONE and no MaxFaces: every face, largest first, one ImageId
    everything = backend.call("IndexFaces", {"CollectionId": "c", "Image": image, "QualityFilter": "NONE"})
    boxes = [r["Face"]["BoundingBox"] for r in everything["FaceRecords"]]
    assert len(boxes) == 4 and everything["UnindexedFaces"] == []
    assert [b["Width"] * b["Height"] for b in boxes] == sorted((b["Width"] * b["Height"] for b in boxes), reverse=True)
    assert len({r["Face"]["ImageId"] for r in everything["FaceRecords"]}) == 1
    assert backend.call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == 5
    empty = backend.call("IndexFaces", {"CollectionId": "c", "Image": analyzer.image(11, [])})
    assert empty["FaceRecords"] == [] and empty["UnindexedFaces"] == []
    with pytest.raises(errors.InvalidImageFormatException):
        backend.call("IndexFaces", {"CollectionId": "c", "Image": b"not an image"})
    big = b"\xff\xd8" + bytes(6 * 1024 * 1024)
    for image in (big, {"Bytes": big}):  # over Image.Bytes' 5 MiB
        with pytest.raises(errors.ImageTooLargeException):
            backend.call("IndexFaces", {"CollectionId": "c", "Image": image})
    with pytest.raises(errors.InvalidImageFormatException):  # an S3 object's 15 MiB allows it: then the content
        backend.call("IndexFaces", {"CollectionId": "c", "Image": big},
                     RequestContext(max_image_bytes=15 * 1024 * 1024))


def test_list_faces_pages_and_filters(backend: Backend) -> None:
    backend.call("CreateCollection", {"CollectionId": "c"})
    face_ids = backend.collections.add_embeddings("c", identities(25, 1)[0])
    seen, token = [], None
    while True:
        page = backend.call("ListFaces", {"CollectionId": "c", "MaxResults": 10,
                                          **({"NextToken": token} if token else {})})
        assert page["FaceModelVersion"] == "synthetic"
        seen += [face["FaceId"] for face in page["Faces"]]
        if token is None:  # faces indexed between pages neither repeat nor shift the pages
            later = backend.collections.add_embeddings("c", identities(1, 1, seed=5)[0])
        token = page.get("NextToken")
        if not token:
            break
    assert seen == face_ids + later
    face = page["Faces"][0]
    assert set(face) == {"FaceId", "BoundingBox", "ImageId", "Confidence", "IndexFacesModelVersion"}
    chosen = backend.call("ListFaces", {"CollectionId": "c", "FaceIds": [*face_ids[3:6], MISSING]})
    assert [f["FaceId"] for f in chosen["Faces"]] == face_ids[3:6]
    first = backend.call("ListFaces", {"CollectionId": "c", "FaceIds": face_ids[:4], "MaxResults": 2})
    with pytest.raises(errors.InvalidPaginationTokenException):  # a token is bound to its filters
        backend.call("ListFaces", {"CollectionId": "c", "FaceIds": face_ids[:5], "NextToken": first["NextToken"]})
    assert backend.call("ListFaces", {"CollectionId": "c", "UserId": "nobody"})["Faces"] == []


def test_search_faces_excludes_the_face_itself(backend: Backend, people: tuple) -> None:
    face_ids, vectors, _ = people
    result = backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_ids[0]})
    assert set(result) == members("SearchFacesResponse") and result["SearchedFaceId"] == face_ids[0]
    matched = [m["Face"]["FaceId"] for m in result["FaceMatches"]]
    assert sorted(matched) == sorted(face_ids[1:4])  # the same person's other faces, at the default 80
    similarities = [m["Similarity"] for m in result["FaceMatches"]]
    assert similarities == sorted(similarities, reverse=True) and min(similarities) >= 80
    expected = CALIBRATION.similarity(float(vectors[0] @ vectors[face_ids.index(matched[0])]))
    assert similarities[0] == pytest.approx(float(expected))
    assert set(result["FaceMatches"][0]["Face"]) == {"FaceId", "BoundingBox", "ImageId", "ExternalImageId",
                                                     "Confidence", "IndexFacesModelVersion"}
    everyone = backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_ids[0], "FaceMatchThreshold": 0})
    assert len(everyone["FaceMatches"]) == len(face_ids) - 1
    top = backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_ids[0], "MaxFaces": 2,
                                       "FaceMatchThreshold": 0})
    assert top["FaceMatches"] == everyone["FaceMatches"][:2]
    with pytest.raises(errors.InvalidParameterException, match="not found"):
        backend.call("SearchFaces", {"CollectionId": "c", "FaceId": MISSING})


def test_search_faces_by_image_uses_the_largest_face(backend: Backend, people: tuple,
                                                     analyzer: ScriptedAnalyzer) -> None:
    face_ids, vectors, _ = people
    image = analyzer.image(20, [ScriptedFace((10, 10, 60, 60), vectors[8]),  # person 2, small
                                ScriptedFace((200, 100, 320, 260), vectors[4:8].mean(0))])  # person 1, largest
    result = backend.call("SearchFacesByImage", {"CollectionId": "c", "Image": {"Bytes": image}})
    assert set(result) == members("SearchFacesByImageResponse")
    assert result["SearchedFaceBoundingBox"] == pytest.approx({"Width": 0.2, "Height": 0.4, "Left": 1 / 3,
                                                               "Top": 0.25})
    assert result["SearchedFaceConfidence"] == 99.0
    assert {face_ids.index(m["Face"]["FaceId"]) for m in result["FaceMatches"]} == {4, 5, 6, 7}
    with pytest.raises(errors.InvalidParameterException, match="no face"):
        backend.call("SearchFacesByImage", {"CollectionId": "c", "Image": analyzer.image(21, [])})
    blurred = analyzer.image(22, [ScriptedFace((200, 100, 320, 260), vectors[4], quality=(60.0, 0.5))])
    assert backend.call("SearchFacesByImage", {"CollectionId": "c", "Image": blurred})["FaceMatches"]
    with pytest.raises(errors.InvalidParameterException):
        backend.call("SearchFacesByImage", {"CollectionId": "c", "Image": blurred, "QualityFilter": "HIGH"})


def test_delete_faces(backend: Backend, people: tuple) -> None:
    face_ids, _, _ = people
    backend.call("CreateUser", {"CollectionId": "c", "UserId": "alice"})
    backend.call("AssociateFaces", {"CollectionId": "c", "UserId": "alice", "FaceIds": face_ids[:1]})
    missing = MISSING
    result = backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": [*face_ids[:3], missing, face_ids[1]]})
    assert result["DeletedFaces"] == face_ids[1:3]
    assert result["UnsuccessfulFaceDeletions"] == [
        {"FaceId": face_ids[0], "UserId": "alice", "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]},
        {"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]},
    ]
    assert backend.call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == len(face_ids) - 2
    matches = backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_ids[3], "FaceMatchThreshold": 0})
    assert not {m["Face"]["FaceId"] for m in matches["FaceMatches"]} & set(face_ids[1:3])


def test_users_associate_disassociate_and_list(backend: Backend, people: tuple) -> None:
    face_ids, _, _ = people
    c = {"CollectionId": "c"}
    assert backend.call("CreateUser", {**c, "UserId": "alice"}) == {}
    with pytest.raises(errors.ConflictException):
        backend.call("CreateUser", {**c, "UserId": "alice"})
    for name in ("bob", "carol", "dave"):
        backend.call("CreateUser", {**c, "UserId": name})
    assert backend.call("ListUsers", c)["Users"][0] == {"UserId": "alice", "UserStatus": "CREATED"}
    first = backend.call("AssociateFaces", {**c, "UserId": "alice", "FaceIds": face_ids[:2]})
    assert first == {"AssociatedFaces": [{"FaceId": f} for f in face_ids[:2]], "UnsuccessfulFaceAssociations": [],
                     "UserStatus": "ACTIVE"}
    backend.call("AssociateFaces", {**c, "UserId": "bob", "FaceIds": face_ids[4:5]})
    missing = MISSING
    second = backend.call("AssociateFaces", {**c, "UserId": "alice",
                                      "FaceIds": [face_ids[0], face_ids[2], face_ids[4], face_ids[8], missing]})
    assert second["AssociatedFaces"] == [{"FaceId": face_ids[2]}]  # face 0 already hers: ignored
    failures = {f["FaceId"]: f for f in second["UnsuccessfulFaceAssociations"]}
    assert failures[face_ids[4]]["Reasons"] == ["ASSOCIATED_TO_A_DIFFERENT_USER"]
    assert failures[face_ids[4]]["UserId"] == "bob"
    assert failures[face_ids[8]]["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    assert failures[face_ids[8]].get("Confidence", 0) < 75  # given only when it reaches the floor
    assert failures[missing]["Reasons"] == ["FACE_NOT_FOUND"]
    assert set(second) == members("AssociateFacesResponse")
    hers = backend.call("ListFaces", {**c, "UserId": "alice"})["Faces"]
    assert [f["FaceId"] for f in hers] == face_ids[:3] and {f["UserId"] for f in hers} == {"alice"}
    assert backend.call("DescribeCollection", c)["UserCount"] == 4
    pages = [backend.call("ListUsers", {**c, "MaxResults": 3})]
    pages.append(backend.call("ListUsers", {**c, "NextToken": pages[0]["NextToken"]}))
    assert [u["UserId"] for p in pages for u in p["Users"]] == ["alice", "bob", "carol", "dave"]
    assert "NextToken" not in pages[1]
    out = backend.call("DisassociateFaces", {**c, "UserId": "alice", "FaceIds": [face_ids[2], face_ids[4], face_ids[9],
                                                                           missing]})
    assert out["DisassociatedFaces"] == [{"FaceId": face_ids[2]}] and out["UserStatus"] == "ACTIVE"
    assert {f["FaceId"]: f["Reasons"] for f in out["UnsuccessfulFaceDisassociations"]} == {
        face_ids[4]: ["ASSOCIATED_TO_A_DIFFERENT_USER"], missing: ["FACE_NOT_FOUND"]}
    emptied = backend.call("DisassociateFaces", {**c, "UserId": "bob", "FaceIds": face_ids[4:5]})
    assert emptied["UserStatus"] == "CREATED"
    backend.call("DeleteUser", {**c, "UserId": "alice"})
    assert backend.call("ListFaces", {**c, "FaceIds": face_ids[:2]})["Faces"][0].get("UserId") is None
    with pytest.raises(errors.ResourceNotFoundException):
        backend.call("DeleteUser", {**c, "UserId": "alice"})
    with pytest.raises(errors.ResourceNotFoundException):
        backend.call("AssociateFaces", {**c, "UserId": "alice", "FaceIds": face_ids[:1]})


def test_a_user_holds_at_most_the_documented_number_of_faces(backend: Backend) -> None:
    backend.call("CreateCollection", {"CollectionId": "c"})
    face_ids = backend.collections.add_embeddings("c", identities(1, 101, noise=0.01)[0])
    backend.call("CreateUser", {"CollectionId": "c", "UserId": "u"})
    for start in (0, 50):
        backend.call("AssociateFaces", {"CollectionId": "c", "UserId": "u", "FaceIds": face_ids[start:start + 50]})
    with pytest.raises(errors.ServiceQuotaExceededException):
        backend.call("AssociateFaces", {"CollectionId": "c", "UserId": "u", "FaceIds": face_ids[100:]})


def test_search_users(backend: Backend, people: tuple, analyzer: ScriptedAnalyzer) -> None:
    face_ids, vectors, _ = people
    c = {"CollectionId": "c"}
    for name, faces in (("p0", face_ids[0:3]), ("p1", face_ids[4:7]), ("p2", face_ids[8:9])):
        backend.call("CreateUser", {**c, "UserId": name})
        backend.call("AssociateFaces", {**c, "UserId": name, "FaceIds": faces})
    by_face = backend.call("SearchUsers", {**c, "FaceId": face_ids[3]})  # p0's unassociated fourth face
    assert [m["User"] for m in by_face["UserMatches"]] == [{"UserId": "p0", "UserStatus": "ACTIVE"}]
    assert by_face["SearchedFace"] == {"FaceId": face_ids[3]} and set(by_face) <= members("SearchUsersResponse")
    assert by_face["UserMatches"][0]["Similarity"] == max(
        m["Similarity"] for m in backend.call("SearchFaces", {**c, "FaceId": face_ids[3]})["FaceMatches"])
    by_user = backend.call("SearchUsers", {**c, "UserId": "p1", "UserMatchThreshold": 0, "MaxUsers": 5})
    assert by_user["SearchedUser"] == {"UserId": "p1"}
    assert sorted(m["User"]["UserId"] for m in by_user["UserMatches"]) == ["p0", "p2"]  # never itself
    assert backend.call("SearchUsers", {**c, "FaceId": face_ids[3], "UserMatchThreshold": 0, "MaxUsers": 1})[
        "UserMatches"][0]["User"]["UserId"] == "p0"
    for bad in ({}, {"FaceId": face_ids[0], "UserId": "p0"}):
        with pytest.raises(errors.InvalidParameterException):
            backend.call("SearchUsers", {**c, **bad})
    with pytest.raises(errors.ResourceNotFoundException):
        backend.call("SearchUsers", {**c, "UserId": "nobody"})
    group = analyzer.image(30, [ScriptedFace((10, 10, 50, 50), vectors[9]),
                                ScriptedFace((300, 100, 420, 260), vectors[7]),
                                ScriptedFace((100, 100, 140, 140), vectors[1], confidence=30.0)])
    result = backend.call("SearchUsersByImage", {**c, "Image": group, "QualityFilter": "MEDIUM"})
    assert set(result) == members("SearchUsersByImageResponse")
    assert [m["User"]["UserId"] for m in result["UserMatches"]] == ["p1"]
    assert result["SearchedFace"]["FaceDetail"]["BoundingBox"]["Left"] == pytest.approx(0.5)
    reasons = sorted(r for u in result["UnsearchedFaces"] for r in u["Reasons"])
    assert reasons == ["FACE_NOT_LARGEST", "LOW_CONFIDENCE"]
    nobody = backend.call("SearchUsersByImage", {**c, "Image": analyzer.image(31, [])})
    assert nobody["UserMatches"] == [] and "SearchedFace" not in nobody


def test_client_request_tokens_are_idempotent(backend: Backend, people: tuple) -> None:
    face_ids, _, _ = people
    c = {"CollectionId": "c"}
    assert backend.call("CreateUser", {**c, "UserId": "u", "ClientRequestToken": "t-1"}) == {}
    assert backend.call("CreateUser", {**c, "UserId": "u", "ClientRequestToken": "t-1"}) == {}  # no ConflictException
    assert backend.call("DescribeCollection", c)["UserCount"] == 1
    with pytest.raises(errors.IdempotentParameterMismatchException):
        backend.call("CreateUser", {**c, "UserId": "other", "ClientRequestToken": "t-1"})
    request = {**c, "UserId": "u", "FaceIds": face_ids[:2], "ClientRequestToken": "assoc-1"}
    first = backend.call("AssociateFaces", request)
    backend.call("DisassociateFaces", {**c, "UserId": "u", "FaceIds": face_ids[:2]})
    assert backend.call("AssociateFaces", request) == first  # replayed, not re-run: the faces stay disassociated
    assert backend.call("ListFaces", {**c, "UserId": "u"})["Faces"] == []
    with pytest.raises(errors.IdempotentParameterMismatchException):
        backend.call("AssociateFaces", {**request, "UserMatchThreshold": 10.0})
    backend.call("DeleteUser", {**c, "UserId": "u", "ClientRequestToken": "del-1"})
    assert backend.call("DeleteUser", {**c, "UserId": "u", "ClientRequestToken": "del-1"}) == {}
    with pytest.raises(errors.ResourceNotFoundException):
        backend.call("DeleteUser", {**c, "UserId": "u", "ClientRequestToken": "del-2"})
    # a failed call stores nothing: the same token works once the request can succeed
    with pytest.raises(errors.ResourceNotFoundException):
        backend.call("AssociateFaces", {**c, "UserId": "late", "FaceIds": face_ids[:1], "ClientRequestToken": "t-9"})
    backend.call("CreateUser", {**c, "UserId": "late"})
    ok = backend.call("AssociateFaces", {**c, "UserId": "late", "FaceIds": face_ids[:1], "ClientRequestToken": "t-9"})
    assert ok["AssociatedFaces"] == [{"FaceId": face_ids[0]}]


def test_state_survives_reopening(tmp_path: Path, analyzer: ScriptedAnalyzer) -> None:
    backend = make_backend(tmp_path, analyzer)
    backend.call("CreateCollection", {"CollectionId": "c"})
    face_ids = backend.collections.add_embeddings("c", identities(3, 2)[0])
    backend.call("CreateUser", {"CollectionId": "c", "UserId": "u"})
    token = backend.call("ListFaces", {"CollectionId": "c", "MaxResults": 2})["NextToken"]
    backend.close()
    reopened = make_backend(tmp_path, analyzer)
    assert reopened.call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == 6
    assert len(reopened.call("ListFaces", {"CollectionId": "c", "NextToken": token})["Faces"]) == 4
    assert reopened.call("SearchFaces", {"CollectionId": "c", "FaceId": face_ids[0]})["FaceMatches"][0]["Face"][
        "FaceId"] == face_ids[1]
    reopened.close()


# -- real images, real models, the shipped calibration


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    backend = build(ServerSettings(data_dir=tmp_path_factory.mktemp("real")))
    backend.call("CreateCollection", {"CollectionId": "real"})
    yield backend
    backend.close()


def test_real_index_and_search_by_image(real: Backend, astronaut: np.ndarray, cameraman: np.ndarray,
                                        astronaut_jpeg: bytes) -> None:
    group = encode(np.concatenate([cameraman, astronaut], axis=1))
    indexed = real.call("IndexFaces", {"CollectionId": "real", "Image": group, "ExternalImageId": "group",
                                "QualityFilter": "NONE"})
    assert len(indexed["FaceRecords"]) == 2
    variant = encode(cv2.convertScaleAbs(cv2.resize(astronaut, (360, 360)), alpha=1.15, beta=12))
    found = real.call("SearchFacesByImage", {"CollectionId": "real", "Image": variant})
    (match,) = found["FaceMatches"]  # the astronaut, not the cameraman, at the default threshold 80
    assert match["Similarity"] >= 80 and match["Face"]["BoundingBox"]["Left"] > 0.5
    assert match["Face"]["ExternalImageId"] == "group"
    assert 0.3 < found["SearchedFaceBoundingBox"]["Left"] < 0.4
    real.call("CreateUser", {"CollectionId": "real", "UserId": "eileen"})
    real.call("AssociateFaces", {"CollectionId": "real", "UserId": "eileen", "FaceIds": [match["Face"]["FaceId"]]})
    users = real.call("SearchUsersByImage", {"CollectionId": "real", "Image": astronaut_jpeg})
    assert [m["User"]["UserId"] for m in users["UserMatches"]] == ["eileen"]
    nobody = real.call("SearchUsersByImage", {"CollectionId": "real", "Image": encode(cameraman)})
    assert nobody["UserMatches"] == [] and "SearchedFace" in nobody
