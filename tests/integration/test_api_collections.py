"""Every collection, face and user operation through a real `facelens serve` and real boto3: parameters,
pagination across pages, users with several faces, idempotency tokens and the error types AWS raises."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from tests.conftest import encode, pages
from tests.service_fixtures import Server, client, moto_s3, service  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rek(service: Server):  # noqa: F811
    return client(service.url)


@pytest.fixture
def collection(rek) -> Iterator[str]:
    name = f"c-{uuid.uuid4().hex[:10]}"
    rek.create_collection(CollectionId=name)
    yield name
    rek.delete_collection(CollectionId=name)


@pytest.fixture(scope="module")
def eileen(astronaut: np.ndarray) -> list[bytes]:
    """Four different photos of one person: crops, scales, a mirror image, brighter."""
    return [
        encode(np.ascontiguousarray(astronaut[:400, :400])),
        encode(cv2.resize(np.ascontiguousarray(astronaut[30:-30, 30:-30]), (360, 360))),
        encode(np.ascontiguousarray(astronaut[:, ::-1])),
        encode(cv2.convertScaleAbs(astronaut, alpha=1.15, beta=12)),
    ]


@pytest.fixture(scope="module")
def group(astronaut: np.ndarray, cameraman: np.ndarray) -> bytes:
    """Two people side by side: the cameraman left, the astronaut right."""
    return encode(np.concatenate([cameraman, astronaut], axis=1))


def index(rek, collection: str, image: bytes, external: str, **params: object) -> list[str]:
    response = rek.index_faces(CollectionId=collection, Image={"Bytes": image}, ExternalImageId=external, **params)
    return [record["Face"]["FaceId"] for record in response["FaceRecords"]]


# -- collections
def test_collections_create_describe_list_pages_delete(rek) -> None:
    prefix = uuid.uuid4().hex[:8]
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        created = rek.create_collection(CollectionId=name, Tags={"team": "qa"})
        assert created["StatusCode"] == 200 and created["CollectionArn"].endswith(f"collection/{name}")
        assert created["FaceModelVersion"]
    with pytest.raises(rek.exceptions.ResourceAlreadyExistsException):
        rek.create_collection(CollectionId=names[0])
    listed, count = pages(rek.list_collections, "CollectionIds", MaxResults=2)
    assert count >= 3 and [n for n in listed if n.startswith(prefix)] == names and len(set(listed)) == len(listed)
    paginator = rek.get_paginator("list_collections")  # boto3's own paginator follows NextToken too
    assert [n for p in paginator.paginate(PaginationConfig={"PageSize": 2}) for n in p["CollectionIds"]] == listed
    described = rek.describe_collection(CollectionId=names[0])
    assert described["FaceCount"] == 0 and described["UserCount"] == 0
    assert described["CollectionARN"] == created["CollectionArn"].replace(names[-1], names[0])
    for name in names:
        assert rek.delete_collection(CollectionId=name)["StatusCode"] == 200
    for call in (lambda: rek.describe_collection(CollectionId=names[0]),
                 lambda: rek.delete_collection(CollectionId=names[0]),
                 lambda: rek.list_faces(CollectionId=names[0]),
                 lambda: rek.index_faces(CollectionId=names[0], Image={"Bytes": b"x"})):
        with pytest.raises(rek.exceptions.ResourceNotFoundException):
            call()
    with pytest.raises(rek.exceptions.InvalidPaginationTokenException):
        rek.list_collections(NextToken="not-a-token")
    unchecked = client(rek.meta.endpoint_url, parameter_validation=False)  # the server validates too
    with pytest.raises(unchecked.exceptions.InvalidParameterException):  # pattern [a-zA-Z0-9_.\-]+
        unchecked.create_collection(CollectionId="no spaces")


# -- faces
def test_index_faces_parameters(rek, collection: str, group: bytes, astronaut: np.ndarray) -> None:
    everyone = rek.index_faces(CollectionId=collection, Image={"Bytes": group}, ExternalImageId="group.jpg",
                               DetectionAttributes=["ALL"], QualityFilter="NONE")
    records = everyone["FaceRecords"]
    assert len(records) == 2 and everyone["UnindexedFaces"] == [] and everyone["FaceModelVersion"]
    assert {r["Face"]["ExternalImageId"] for r in records} == {"group.jpg"}
    assert len({r["Face"]["ImageId"] for r in records}) == 1
    assert {"AgeRange", "Gender", "EyesOpen", "MouthOpen", "Pose", "Quality"} <= records[0]["FaceDetail"].keys()
    capped = rek.index_faces(CollectionId=collection, Image={"Bytes": group}, MaxFaces=1, QualityFilter="NONE")
    assert len(capped["FaceRecords"]) == 1
    assert [u["Reasons"] for u in capped["UnindexedFaces"]] == [["EXCEEDS_MAX_FACES"]]
    assert "ExternalImageId" not in capped["FaceRecords"][0]["Face"]
    # a face about 14 pixels wide: detected, refused by QualityFilter HIGH with a real reason
    canvas = np.full((400, 400, 3), 128, np.uint8)
    canvas[180:220, 180:220] = cv2.resize(np.ascontiguousarray(astronaut[20:240, 120:340]), (40, 40))
    small = encode(canvas)
    refused = rek.index_faces(CollectionId=collection, Image={"Bytes": small}, QualityFilter="HIGH")
    assert refused["FaceRecords"] == [] and len(refused["UnindexedFaces"]) == 1
    assert "SMALL_BOUNDING_BOX" in refused["UnindexedFaces"][0]["Reasons"]
    assert rek.describe_collection(CollectionId=collection)["FaceCount"] == 3
    nobody = rek.index_faces(CollectionId=collection, Image={"Bytes": encode(np.full((300, 300, 3), 90, np.uint8))})
    assert nobody["FaceRecords"] == [] and nobody["UnindexedFaces"] == []
    with pytest.raises(rek.exceptions.InvalidImageFormatException):
        rek.index_faces(CollectionId=collection, Image={"Bytes": b"GIF89a not really"})
    with pytest.raises(rek.exceptions.InvalidParameterException):  # ExternalImageId's pattern
        client(rek.meta.endpoint_url, parameter_validation=False).index_faces(
            CollectionId=collection, Image={"Bytes": group}, ExternalImageId="has space")
    assert rek.describe_collection(CollectionId=collection)["FaceCount"] == 3


def test_list_faces_pages_and_filters_and_delete_faces(rek, collection: str, eileen: list[bytes]) -> None:
    face_ids = [face for i, image in enumerate(eileen) for face in index(rek, collection, image, f"e{i}")]
    face_ids += index(rek, collection, eileen[0], "e4")
    assert len(face_ids) == 5
    listed, count = pages(rek.list_faces, "Faces", CollectionId=collection, MaxResults=2)
    assert count == 3 and [f["FaceId"] for f in listed] == face_ids
    assert {"FaceId", "BoundingBox", "ImageId", "ExternalImageId", "Confidence", "IndexFacesModelVersion"} \
        <= listed[0].keys()
    chosen = rek.list_faces(CollectionId=collection, FaceIds=[face_ids[3], face_ids[1], str(uuid.uuid4())])
    assert {f["FaceId"] for f in chosen["Faces"]} == {face_ids[1], face_ids[3]}
    assert rek.list_faces(CollectionId=collection, UserId="nobody")["Faces"] == []
    missing = str(uuid.uuid4())
    deleted = rek.delete_faces(CollectionId=collection, FaceIds=[face_ids[0], face_ids[0], missing])
    assert deleted["DeletedFaces"] == [face_ids[0]]
    assert deleted["UnsuccessfulFaceDeletions"] == [{"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]}]
    assert rek.describe_collection(CollectionId=collection)["FaceCount"] == 4
    assert [f["FaceId"] for f in pages(rek.list_faces, "Faces", CollectionId=collection)[0]] == face_ids[1:]
    with pytest.raises(rek.exceptions.InvalidPaginationTokenException):  # a token of another listing
        token = rek.list_faces(CollectionId=collection, MaxResults=1)["NextToken"]
        rek.list_collections(NextToken=token)


def test_search_faces_and_search_faces_by_image(rek, collection: str, eileen: list[bytes], group: bytes,
                                                cameraman: np.ndarray, astronaut: np.ndarray) -> None:
    eileen_pixels = np.ascontiguousarray(astronaut[:300, 100:400])
    same = [face for i, image in enumerate(eileen[:3]) for face in index(rek, collection, image, f"e{i}")]
    records = rek.index_faces(CollectionId=collection, Image={"Bytes": group}, QualityFilter="NONE")["FaceRecords"]
    left_to_right = sorted(records, key=lambda r: r["Face"]["BoundingBox"]["Left"])
    cameraman_id, astronaut_in_group = (r["Face"]["FaceId"] for r in left_to_right)
    found = rek.search_faces(CollectionId=collection, FaceId=same[0])
    assert found["SearchedFaceId"] == same[0] and found["FaceModelVersion"]
    matched = [m["Face"]["FaceId"] for m in found["FaceMatches"]]
    assert set(matched) == {same[1], same[2], astronaut_in_group}  # not itself, not the cameraman
    similarities = [m["Similarity"] for m in found["FaceMatches"]]
    assert similarities == sorted(similarities, reverse=True) and min(similarities) >= 80
    assert len(rek.search_faces(CollectionId=collection, FaceId=same[0], MaxFaces=1)["FaceMatches"]) == 1
    assert rek.search_faces(CollectionId=collection, FaceId=cameraman_id, FaceMatchThreshold=50)["FaceMatches"] == []
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.search_faces(CollectionId=collection, FaceId=str(uuid.uuid4()))
    by_image = rek.search_faces_by_image(CollectionId=collection, Image={"Bytes": eileen[3]}, MaxFaces=2,
                                         FaceMatchThreshold=90, QualityFilter="AUTO")
    assert len(by_image["FaceMatches"]) == 2
    assert {m["Face"]["FaceId"] for m in by_image["FaceMatches"]} <= {*same, astronaut_in_group}
    assert 0.25 < by_image["SearchedFaceBoundingBox"]["Left"] < 0.45 and by_image["SearchedFaceConfidence"] > 90
    beside = np.full_like(cameraman, 100)
    beside[:96, 200:296] = cv2.resize(eileen_pixels, (96, 96))  # a smaller face of someone else
    largest = rek.search_faces_by_image(CollectionId=collection,
                                        Image={"Bytes": encode(np.concatenate([cameraman, beside], axis=1))})
    assert [m["Face"]["FaceId"] for m in largest["FaceMatches"]] == [cameraman_id]  # the larger face searched
    with pytest.raises(rek.exceptions.InvalidParameterException):  # no face in the image
        rek.search_faces_by_image(CollectionId=collection, Image={"Bytes": encode(np.zeros((200, 200, 3), np.uint8))})
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.search_faces_by_image(CollectionId="no-such-collection", Image={"Bytes": eileen[0]})


# -- users
def test_users_with_several_faces(rek, collection: str, eileen: list[bytes], cameraman: np.ndarray) -> None:
    faces = [face for i, image in enumerate(eileen) for face in index(rek, collection, image, f"e{i}")]
    other = index(rek, collection, encode(cameraman), "cameraman")[0]
    token = uuid.uuid4().hex
    assert rek.create_user(CollectionId=collection, UserId="eileen", ClientRequestToken=token)
    assert rek.create_user(CollectionId=collection, UserId="eileen", ClientRequestToken=token)  # a retry: no-op
    with pytest.raises(rek.exceptions.ConflictException):
        rek.create_user(CollectionId=collection, UserId="eileen")
    with pytest.raises(rek.exceptions.IdempotentParameterMismatchException):
        rek.create_user(CollectionId=collection, UserId="someone-else", ClientRequestToken=token)
    for name in ("u1", "u2", "u3"):
        rek.create_user(CollectionId=collection, UserId=name)
    users, count = pages(rek.list_users, "Users", CollectionId=collection, MaxResults=2)
    assert count == 2 and [u["UserId"] for u in users] == ["eileen", "u1", "u2", "u3"]
    assert {u["UserStatus"] for u in users} == {"CREATED"}
    associated = rek.associate_faces(CollectionId=collection, UserId="eileen", FaceIds=faces[:3],
                                     UserMatchThreshold=80, ClientRequestToken=uuid.uuid4().hex)
    assert sorted(f["FaceId"] for f in associated["AssociatedFaces"]) == sorted(faces[:3])
    assert associated["UnsuccessfulFaceAssociations"] == [] and associated["UserStatus"] == "ACTIVE"
    # the cameraman does not look like eileen's faces: refused with the reason and the confidence
    refused = rek.associate_faces(CollectionId=collection, UserId="eileen", FaceIds=[other, str(uuid.uuid4())])
    reasons = {f["FaceId"]: f["Reasons"] for f in refused["UnsuccessfulFaceAssociations"]}
    assert reasons[other] == ["LOW_MATCH_CONFIDENCE"] and list(reasons.values())[1] == ["FACE_NOT_FOUND"]
    described = rek.describe_collection(CollectionId=collection)
    assert described["UserCount"] == 4 and described["FaceCount"] == 5
    assert {f["FaceId"] for f in rek.list_faces(CollectionId=collection, UserId="eileen")["Faces"]} == set(faces[:3])
    assert {u["UserStatus"] for u in rek.list_users(CollectionId=collection)["Users"] if u["UserId"] == "eileen"} \
        == {"ACTIVE"}
    kept = rek.delete_faces(CollectionId=collection, FaceIds=[faces[0]])
    assert kept["UnsuccessfulFaceDeletions"][0]["Reasons"] == ["ASSOCIATED_TO_AN_EXISTING_USER"]
    # search users: by a stored face, by a user, by an image
    by_face = rek.search_users(CollectionId=collection, FaceId=faces[3], UserMatchThreshold=80)
    assert [m["User"]["UserId"] for m in by_face["UserMatches"]] == ["eileen"]
    assert by_face["UserMatches"][0]["Similarity"] >= 80 and by_face["SearchedFace"]["FaceId"] == faces[3]
    by_user = rek.search_users(CollectionId=collection, UserId="u1")
    assert by_user["UserMatches"] == [] and by_user["SearchedUser"]["UserId"] == "u1"
    by_image = rek.search_users_by_image(CollectionId=collection, Image={"Bytes": eileen[3]}, MaxUsers=1,
                                         QualityFilter="NONE")
    assert [m["User"] for m in by_image["UserMatches"]] == [{"UserId": "eileen", "UserStatus": "ACTIVE"}]
    assert by_image["SearchedFace"]["FaceDetail"]["BoundingBox"]["Width"] > 0
    assert rek.search_users_by_image(CollectionId=collection, Image={"Bytes": encode(cameraman)})["UserMatches"] == []
    with pytest.raises(rek.exceptions.InvalidParameterException):  # exactly one of FaceId and UserId
        rek.search_users(CollectionId=collection)
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.search_users(CollectionId=collection, UserId="nobody")
    # disassociate and delete
    missing = str(uuid.uuid4())
    gone = rek.disassociate_faces(CollectionId=collection, UserId="eileen", FaceIds=[faces[0], faces[3], missing])
    assert [f["FaceId"] for f in gone["DisassociatedFaces"]] == [faces[0]]  # faces[3] was nobody's: ignored
    assert gone["UnsuccessfulFaceDisassociations"] == [{"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]}]
    assert gone["UserStatus"] == "ACTIVE"
    assert rek.delete_user(CollectionId=collection, UserId="eileen")
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.delete_user(CollectionId=collection, UserId="eileen")
    assert rek.delete_faces(CollectionId=collection, FaceIds=faces[1:3])["DeletedFaces"] == faces[1:3]
    described = rek.describe_collection(CollectionId=collection)
    assert (described["UserCount"], described["FaceCount"]) == (3, 3)
