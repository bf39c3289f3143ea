"""Accountability through a real `facelens serve` and real boto3: threshold floors, purposes, scoped keys,
retention, and the audit trail each of them leaves (read back with FaceLens's own ListAuditRecords)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from botocore.config import Config

from facelens.client import admin_client, with_purpose
from tests.key_fixtures import (
    ADMIN,
    PLAIN,
    READER,
    SCOPED,
    admin,
    credentials_file,
    plain,
    reader,
    scoped,
    write_credentials,
)
from tests.service_fixtures import BIN, REGION, STORES, Server, client, start_server, store_env

pytestmark = pytest.mark.slow

CREDENTIALS = credentials_file(admin(), reader(),
                               scoped("c-scoped", "SearchFacesByImage, DescribeCollection, ListCollections"), plain())


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp(f"accountability-{request.param}") / "data"
    data.mkdir(parents=True)
    write_credentials(data, CREDENTIALS)
    with contextlib.ExitStack() as stack:
        env = {"FACELENS_RETENTION_INTERVAL": "0.5", "FACELENS_WORKERS": "2",
               **store_env(request.param, stack, request)}
        server = start_server(data, env)
        stack.callback(server.stop)
        yield server


def rek(server: Server, key: tuple[str, str] = ADMIN):
    return client(server.url, *key)


def admin(server: Server, key: tuple[str, str] = ADMIN):
    return admin_client(server.url, region_name=REGION, aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def headers(response: dict) -> tuple[str, str]:
    sent = response["ResponseMetadata"]["HTTPHeaders"]
    return sent["x-facelens-effective-threshold"], sent["x-facelens-false-match-probability"]


def records(server: Server, **filters: object) -> list[dict]:
    """Every audit record matching `filters`, page by page (two per page: pagination is exercised too)."""
    found, token = [], None
    while True:
        page = admin(server).list_audit_records(MaxResults=2, **filters, **({"NextToken": token} if token else {}))
        found += [json.loads(item["Record"]) for item in page["AuditRecords"]]
        token = page.get("NextToken")
        if not token:
            return found


@pytest.fixture
def collection(server: Server) -> str:
    name = f"c-{uuid.uuid4().hex[:10]}"
    rek(server).create_collection(CollectionId=name)
    return name


def index(server: Server, collection: str, image: bytes) -> str:
    return rek(server).index_faces(CollectionId=collection, Image={"Bytes": image})["FaceRecords"][0]["Face"]["FaceId"]


def test_a_search_below_the_floor_is_answered_at_the_floor_and_audited(
        server: Server, collection: str, astronaut_jpeg: bytes, cameraman_jpeg: bytes) -> None:
    eileen = index(server, collection, astronaut_jpeg)
    index(server, collection, cameraman_jpeg)
    low = rek(server).search_faces_by_image(CollectionId=collection, Image={"Bytes": astronaut_jpeg},
                                            FaceMatchThreshold=50)
    assert headers(low) == ("80.00", "2e-06")  # min_search_similarity 80; 2 faces x FMR 1e-6
    assert [m["Face"]["FaceId"] for m in low["FaceMatches"]] == [eileen]

    # a policy that tolerates 1 stranger in 100,000 searches: floor = 20 + 10 log10(2 faces / 1e-5) = 73.01
    policy = admin(server).put_collection_policy(
        CollectionId=collection, Policy={"MinSearchSimilarity": 0, "MaxFalseMatchProbability": 1e-5})
    assert policy["SearchFloor"] == pytest.approx(73.0103, abs=1e-3)
    assert policy["Policy"] == {"MinSearchSimilarity": 0.0, "MaxFalseMatchProbability": 1e-5}
    assert policy["EffectivePolicy"]["MinCompareSimilarity"] == 70.0  # server default
    answered = rek(server).search_faces_by_image(CollectionId=collection, Image={"Bytes": astronaut_jpeg},
                                                 FaceMatchThreshold=50)
    assert headers(answered) == ("73.01", "1e-05")
    assert all(m["Similarity"] >= 73.01 for m in answered["FaceMatches"])
    above = rek(server).search_faces(CollectionId=collection, FaceId=eileen, FaceMatchThreshold=95)
    assert headers(above)[0] == "95.00"

    trail = records(server, CollectionId=collection)
    assert [r["operation"] for r in trail] == ["CreateCollection", "IndexFaces", "IndexFaces", "SearchFacesByImage",
                                               "PutCollectionPolicy", "SearchFacesByImage", "SearchFaces"]
    first, change, second = trail[3], trail[4], trail[5]
    assert (first["requested_threshold"], first["effective_threshold"]) == (50.0, 80.0)
    assert (second["requested_threshold"], second["effective_threshold"]) == (50.0, pytest.approx(73.0103, abs=1e-3))
    assert second["gallery"] == 2 and second["false_match_probability"] == pytest.approx(1e-5, rel=1e-3)
    assert second["matches"][0]["FaceId"] == eileen and second["matches"][0]["Similarity"] > 90
    assert second["key"] == ADMIN[0] and second["face_model"] == answered["FaceModelVersion"]
    assert change["previous"] == {} and change["policy"] == {"min_search_similarity": 0.0,
                                                             "max_false_match_probability": 1e-5}

    # subject access: every search that returned Eileen's face
    subject = records(server, FaceId=eileen)
    assert [r["operation"] for r in subject] == ["IndexFaces", "SearchFacesByImage", "SearchFacesByImage"]


def test_a_missing_purpose_is_refused_when_required(server: Server, collection: str,
                                                    astronaut_jpeg: bytes) -> None:
    index(server, collection, astronaut_jpeg)
    admin(server).put_collection_policy(CollectionId=collection, Policy={"RequirePurpose": True})
    search = rek(server)
    with pytest.raises(search.exceptions.AccessDeniedException, match="x-facelens-purpose"):
        search.search_faces_by_image(CollectionId=collection, Image={"Bytes": astronaut_jpeg})
    found = with_purpose(rek(server), "case 2026-117").search_faces_by_image(
        CollectionId=collection, Image={"Bytes": astronaut_jpeg})
    assert len(found["FaceMatches"]) == 1
    denied, answered = records(server, CollectionId=collection)[-2:]
    assert (denied["outcome"], denied["purpose"]) == ("denied", None) and "purpose" in denied["reason"]
    assert (answered["outcome"], answered["purpose"]) == ("ok", "case 2026-117")


def test_keys_are_refused_outside_their_scope(server: Server, astronaut_jpeg: bytes) -> None:
    for name in ("c-scoped", "c-elsewhere"):
        rek(server).create_collection(CollectionId=name)
    face = index(server, "c-scoped", astronaut_jpeg)
    reader = rek(server, READER)
    for call, params in ((reader.index_faces, {"Image": {"Bytes": astronaut_jpeg}}),
                         (reader.delete_faces, {"FaceIds": [face]}), (reader.delete_collection, {})):
        with pytest.raises(reader.exceptions.AccessDeniedException, match="read-only"):
            call(CollectionId="c-scoped", **params)
    assert reader.search_faces(CollectionId="c-scoped", FaceId=face)["SearchedFaceId"] == face
    assert rek(server).list_faces(CollectionId="c-scoped")["Faces"][0]["FaceId"] == face  # nothing deleted

    scoped = rek(server, SCOPED)
    assert scoped.describe_collection(CollectionId="c-scoped")["FaceCount"] == 1
    assert scoped.list_collections()["CollectionIds"] == ["c-scoped"]
    with pytest.raises(scoped.exceptions.AccessDeniedException, match="c-elsewhere"):
        scoped.describe_collection(CollectionId="c-elsewhere")
    with pytest.raises(scoped.exceptions.AccessDeniedException, match="SearchFaces"):
        scoped.search_faces(CollectionId="c-scoped", FaceId=face)

    for key in (PLAIN, READER):
        console = admin(server, key)
        with pytest.raises(console.exceptions.AccessDeniedException, match="admin key"):
            console.put_collection_policy(CollectionId="c-scoped", Policy={"MinSearchSimilarity": 10})
        with pytest.raises(console.exceptions.AccessDeniedException, match="admin key"):
            console.list_audit_records()
    assert admin(server).get_collection_policy(CollectionId="c-scoped")["Policy"] == {}


def test_policy_values_are_validated(server: Server, collection: str) -> None:
    console = admin(server)
    with pytest.raises(console.exceptions.InvalidParameterException):
        console.put_collection_policy(CollectionId=collection, Policy={"MaxFalseMatchProbability": 0.0})
    with pytest.raises(console.exceptions.InvalidParameterException, match="server-wide"):
        console.put_collection_policy(CollectionId=collection, Policy={"MinCompareSimilarity": 50})
    with pytest.raises(console.exceptions.ResourceNotFoundException):
        console.put_collection_policy(CollectionId="no-such-collection", Policy={"MaxResults": 3})
    assert console.get_collection_policy(CollectionId=collection)["Policy"] == {}


def test_max_results_caps_a_search(server: Server, collection: str, astronaut_jpeg: bytes) -> None:
    for _ in range(3):
        index(server, collection, astronaut_jpeg)
    admin(server).put_collection_policy(CollectionId=collection, Policy={"MaxResults": 2})
    found = rek(server).search_faces_by_image(CollectionId=collection, Image={"Bytes": astronaut_jpeg}, MaxFaces=10)
    assert len(found["FaceMatches"]) == 2


def test_retention_deletes_old_faces_and_audits_it(server: Server, collection: str, astronaut_jpeg: bytes) -> None:
    face = index(server, collection, astronaut_jpeg)
    admin(server).put_collection_policy(CollectionId=collection, Policy={"RetentionDays": 2 / 86400})  # 2 s
    deadline = time.monotonic() + 30
    while rek(server).list_faces(CollectionId=collection)["Faces"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rek(server).describe_collection(CollectionId=collection)["FaceCount"] == 0
    expired = [r for r in records(server, CollectionId=collection) if r["operation"] == "RetentionDelete"]
    assert len(expired) == 1 and expired[0]["deleted"] == [face] and expired[0]["key"] == "facelens-retention"
    with pytest.raises(rek(server).exceptions.InvalidParameterException):
        rek(server).search_faces(CollectionId=collection, FaceId=face)


def test_compare_faces_has_its_own_floor_and_is_audited(server: Server, astronaut_jpeg: bytes) -> None:
    response = rek(server).compare_faces(SourceImage={"Bytes": astronaut_jpeg}, TargetImage={"Bytes": astronaut_jpeg},
                                         SimilarityThreshold=10)
    assert headers(response) == ("70.00", "1e-05")
    assert response["FaceMatches"] and response["FaceMatches"][0]["Similarity"] > 90
    compare = [r for r in records(server) if r["operation"] == "CompareFaces"][-1]
    assert (compare["requested_threshold"], compare["effective_threshold"]) == (10.0, 70.0)
    assert compare["similarities"] == [pytest.approx(response["FaceMatches"][0]["Similarity"], abs=1e-3)]


def test_the_running_servers_log_verifies(server: Server, collection: str) -> None:
    result = subprocess.run([str(BIN / "facelens"), "audit", "verify", "--data-dir", str(server.data_dir)],
                            capture_output=True, text=True, timeout=120, env=server.env)
    assert result.returncode == 0, result.stderr
    assert "audit log intact" in result.stdout
    served = len(records(server))  # the CLI reads the very store the server writes
    assert f" {served} records" in result.stdout
