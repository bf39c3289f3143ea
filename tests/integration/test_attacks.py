"""Issue 13's attacks, replayed against a real `facelens serve`: headers outside the signature, a bogus session
token, AssociateFaces as an unaudited similarity oracle, video jobs read outside a key's scope, and purposes that
are mangled or too loose. Each test failed on the code before the fix."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from facelens.client import admin_client, with_purpose
from tests.key_fixtures import ADMIN, PLAIN, SCOPED, admin, credentials_file, plain, scoped, write_credentials
from tests.service_fixtures import REGION, Server, client, signed, start_server
from tests.video_fixtures import local, wait, write_video

pytestmark = pytest.mark.integration

CREDENTIALS = credentials_file(admin(), plain(), scoped("team-a"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("attacks") / "data"
    data.mkdir(parents=True)
    write_credentials(data, CREDENTIALS)
    server = start_server(data, {"FACELENS_WORKERS": "2", "FACELENS_VIDEO_INTERVAL_MS": "500"})
    yield server
    server.stop()


def rek(server: Server, key: tuple[str, str] = ADMIN):
    return client(server.url, *key)


def admin(server: Server):
    return admin_client(server.url, region_name=REGION, aws_access_key_id=ADMIN[0], aws_secret_access_key=ADMIN[1],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def audit(server: Server, collection: str) -> list[dict]:
    records = admin(server).list_audit_records(CollectionId=collection, MaxResults=1000)["AuditRecords"]
    return [json.loads(r["Record"]) for r in records]


def post(server: Server, headers: dict[str, str], body: bytes) -> httpx.Response:
    return httpx.post(server.url + "/", content=body, headers=headers, timeout=30)


def error(response: httpx.Response) -> str:
    return response.json()["__type"].rsplit("#", 1)[-1]


# -- headers outside SignedHeaders
def test_an_unsigned_target_cannot_turn_a_describe_into_a_delete(server: Server) -> None:
    rek(server).create_collection(CollectionId="victim")
    body = json.dumps({"CollectionId": "victim"}).encode()
    request = AWSRequest(method="POST", url=server.url + "/", data=body)  # signs host and x-amz-date only
    SigV4Auth(Credentials(*ADMIN), "rekognition", REGION).add_auth(request)
    assert "SignedHeaders=host;x-amz-date," in request.headers["Authorization"]
    headers = {**dict(request.headers.items()), "Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": "RekognitionService.DeleteCollection"}
    answer = post(server, headers, body)
    assert answer.status_code == 400 and error(answer) == "InvalidSignatureException"
    assert "not signed: content-type, x-amz-target" in answer.json()["Message"]
    assert rek(server).describe_collection(CollectionId="victim")["FaceCount"] == 0  # still there


def test_a_forged_purpose_added_to_a_signed_request_is_refused(server: Server) -> None:
    body = json.dumps({"MaxResults": 10}).encode()
    _, headers = signed(server.url, "ListCollections", body, key_id=PLAIN[0], secret=PLAIN[1])
    assert post(server, headers, body).status_code == 200
    answer = post(server, {**headers, "x-facelens-purpose": "FORGED"}, body)
    assert error(answer) == "InvalidSignatureException" and "x-facelens-purpose" in answer.json()["Message"]


def test_random_unsigned_amz_and_facelens_headers_are_all_refused(server: Server) -> None:
    rng = random.Random(13)
    body = json.dumps({"MaxResults": 5}).encode()
    _, good = signed(server.url, "ListCollections", body, key_id=PLAIN[0], secret=PLAIN[1])
    assert post(server, good, body).status_code == 200
    names = ["x-amz-target", "x-amz-date", "x-amz-content-sha256", "x-amz-user-agent", "x-amz-meta-a",
             "x-facelens-purpose", "x-facelens-effective-threshold", "x-facelens-admin", "X-Amz-Security-Token",
             "content-type"]
    for attempt in range(60):
        name = rng.choice(names) if attempt % 2 else f"x-{rng.choice(['amz', 'facelens'])}-{rng.getrandbits(32):x}"
        value = rng.choice(["RekognitionService.DeleteCollection", "1", "", "case 1", "application/json",
                            "20260101T000000Z", "true"])
        answer = post(server, {**good, name: value}, body)
        assert error(answer) in ("InvalidSignatureException", "UnrecognizedClientException"), (name, answer.text)


def test_a_session_token_facelens_never_issued_is_refused(server: Server) -> None:
    bogus = client(server.url, *PLAIN)
    bogus.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__(
        "X-Amz-Security-Token", "FwoGZXIvYXdzEBogus"))
    with pytest.raises(bogus.exceptions.ClientError, match="UnrecognizedClient"):
        bogus.list_collections()


# -- purposes
def test_purposes_are_utf8_and_may_be_held_to_a_pattern(server: Server, astronaut_jpeg: bytes) -> None:
    rek(server).create_collection(CollectionId="cases")
    admin(server).put_collection_policy(CollectionId="cases", Policy={
        "RequirePurpose": True, "PurposePattern": r"CASE-\d{4}-\d+"})
    assert admin(server).get_collection_policy(CollectionId="cases")["Policy"]["PurposePattern"] == r"CASE-\d{4}-\d+"
    rek(server).index_faces(CollectionId="cases", Image={"Bytes": astronaut_jpeg})
    search = {"CollectionId": "cases", "Image": {"Bytes": astronaut_jpeg}}
    for loose in ("x", "case 7", "CASE-2026"):
        with pytest.raises(rek(server).exceptions.AccessDeniedException, match="matching"):
            with_purpose(rek(server), loose).search_faces_by_image(**search)
    assert with_purpose(rek(server), "CASE-2026-117").search_faces_by_image(**search)["FaceMatches"]
    admin(server).put_collection_policy(CollectionId="cases", Policy={"PurposePattern": r"Akte .+"})
    with_purpose(rek(server), "Akte Müller-Ñ 7 €").search_faces_by_image(**search)  # boto3 sends UTF-8 bytes
    body = json.dumps({**search, "Image": {"Bytes": base64.b64encode(astronaut_jpeg).decode()}}).encode()
    _, headers = signed(server.url, "SearchFacesByImage", body, key_id=ADMIN[0], secret=ADMIN[1],
                        headers={"x-facelens-purpose": "Akte é"})
    raw = {**headers, "x-facelens-purpose": "Akte é".encode("latin-1")}  # Node sends a latin-1 byte: read as such
    answer = post(server, raw, body)
    assert answer.status_code == 200, answer.text
    purposes = [r["purpose"] for r in audit(server, "cases") if r["operation"] == "SearchFacesByImage"]
    assert purposes[-2:] == ["Akte Müller-Ñ 7 €", "Akte é"]
    assert [r["outcome"] for r in audit(server, "cases")].count("denied") == 3


# -- AssociateFaces
def test_associate_faces_is_floored_purposeful_and_audited(server: Server, astronaut_jpeg: bytes,
                                                           cameraman_jpeg: bytes) -> None:
    rek(server).create_collection(CollectionId="people")
    admin(server).put_collection_policy(CollectionId="people", Policy={"RequirePurpose": True})
    eileen = rek(server).index_faces(CollectionId="people", Image={"Bytes": astronaut_jpeg})["FaceRecords"]
    other = rek(server).index_faces(CollectionId="people", Image={"Bytes": cameraman_jpeg})["FaceRecords"]
    eileen_id, other_id = eileen[0]["Face"]["FaceId"], other[0]["Face"]["FaceId"]
    case = with_purpose(rek(server), "case 9")
    case.create_user(CollectionId="people", UserId="eileen")
    with pytest.raises(rek(server).exceptions.AccessDeniedException, match="requires a purpose"):
        rek(server).associate_faces(CollectionId="people", UserId="eileen", FaceIds=[eileen_id])
    assert case.associate_faces(CollectionId="people", UserId="eileen", FaceIds=[eileen_id])["AssociatedFaces"]
    merged = case.associate_faces(CollectionId="people", UserId="eileen", FaceIds=[other_id], UserMatchThreshold=0)
    assert merged["AssociatedFaces"] == []  # answered at the CompareFaces floor, not at 0
    refusal = merged["UnsuccessfulFaceAssociations"][0]
    assert refusal["Reasons"] == ["LOW_MATCH_CONFIDENCE"] and "Confidence" not in refusal  # no raw score leaks
    assert float(merged["ResponseMetadata"]["HTTPHeaders"]["x-facelens-effective-threshold"]) >= 70
    oracle = case.associate_faces(CollectionId="people", UserId="eileen", FaceIds=[other_id], UserMatchThreshold=100)
    assert "Confidence" not in oracle["UnsuccessfulFaceAssociations"][0]
    case.disassociate_faces(CollectionId="people", UserId="eileen", FaceIds=[eileen_id])
    case.delete_user(CollectionId="people", UserId="eileen")
    trail = audit(server, "people")
    operations = [r["operation"] for r in trail if r["operation"] not in ("IndexFaces", "CreateCollection")]
    assert operations == ["PutCollectionPolicy", "CreateUser", "AssociateFaces", "AssociateFaces", "AssociateFaces",
                          "AssociateFaces", "DisassociateFaces", "DeleteUser"]
    denied, first, floored, _ = (r for r in trail if r["operation"] == "AssociateFaces")
    assert denied["outcome"] == "denied" and denied["purpose"] is None
    assert first["associated"] == [{"FaceId": eileen_id, "Similarity": None}] and first["purpose"] == "case 9"
    assert floored["requested_threshold"] == 0 and floored["effective_threshold"] >= 70
    assert floored["refused"][0]["FaceId"] == other_id and floored["refused"][0]["Similarity"] < 70


# -- video jobs
@pytest.fixture(scope="module")
def clip(server: Server, astronaut: np.ndarray) -> str:
    write_video(Path(server.data_dir) / "videos" / "eileen.mp4", 30, size=(512, 512), draw=lambda i: astronaut)
    return "eileen.mp4"


def test_video_jobs_stay_inside_a_keys_scope_and_die_with_their_collection(server: Server, astronaut_jpeg: bytes,
                                                                          clip: str) -> None:
    for name in ("team-a", "team-b"):
        rek(server).create_collection(CollectionId=name)
        rek(server).index_faces(CollectionId=name, Image={"Bytes": astronaut_jpeg}, ExternalImageId=f"{name}.jpg")
    video = local(clip)
    job_b = rek(server).start_face_search(Video=video, CollectionId="team-b", ClientRequestToken="tok-1")["JobId"]
    assert wait(rek(server).get_face_search, job_b)["JobStatus"] == "SUCCEEDED"
    scoped = rek(server, SCOPED)
    with pytest.raises(scoped.exceptions.AccessDeniedException, match="team-b"):
        scoped.get_face_search(JobId=job_b)
    own = scoped.start_face_search(Video=video, CollectionId="team-a", ClientRequestToken="tok-1")["JobId"]
    assert own != job_b  # another key's token is not this key's
    persons = wait(scoped.get_face_search, own)["Persons"]
    assert {m["Face"]["ExternalImageId"] for p in persons for m in p.get("FaceMatches", [])} == {"team-a.jpg"}
    reads = [r for r in audit(server, "team-a") if r["operation"] == "GetFaceSearch"]
    assert reads[-1]["key"] == SCOPED[0] and reads[-1]["job_id"] == own and reads[-1]["matches"]
    detection = rek(server).start_face_detection(Video=video)["JobId"]
    with pytest.raises(scoped.exceptions.AccessDeniedException, match="another key"):
        scoped.get_face_detection(JobId=detection)
    rek(server).delete_collection(CollectionId="team-b")
    with pytest.raises(rek(server).exceptions.ResourceNotFoundException):
        rek(server).get_face_search(JobId=job_b)
