"""End to end: a real `facelens serve` subprocess driven by real boto3 clients, S3 on moto's standalone server."""

from __future__ import annotations

import datetime as dt
import io
import socket
import stat
import threading
import time
from pathlib import Path

import botocore.auth
import httpx
import numpy as np
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError
from PIL import Image

from tests.service_fixtures import (  # noqa: F401 - fixtures
    BUCKET,
    SECRET,
    S3Server,
    Server,
    client,
    moto_s3,
    s3_env,
    service,
    signed,
    start_server,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rek(service: Server):  # noqa: F811
    return client(service.url)


@pytest.fixture(scope="module")
def s3_images(moto_s3: S3Server, astronaut_jpeg: bytes, cameraman_jpeg: bytes) -> dict[str, bytes]:  # noqa: F811
    s3 = moto_s3.client()
    s3.create_bucket(Bucket=BUCKET)
    images = {"astronaut.jpg": astronaut_jpeg, "cameraman.jpg": cameraman_jpeg,
              "huge.bin": b"\xff\xd8\xff" + b"\0" * (16 * 1024 * 1024)}
    for name, data in images.items():
        s3.put_object(Bucket=BUCKET, Key=name, Body=data)
    return images


def error_of(call) -> ClientError:
    with pytest.raises(ClientError) as info:
        call()
    return info.value


def code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


# -- round trips
def test_detect_faces_round_trip(rek, astronaut_jpeg: bytes) -> None:
    result = rek.detect_faces(Image={"Bytes": astronaut_jpeg})
    assert len(result["FaceDetails"]) == 1
    face = result["FaceDetails"][0]
    assert 0.3 < face["BoundingBox"]["Left"] < 0.4 and face["Confidence"] > 90
    assert {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"} <= face.keys()
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200 and result["ResponseMetadata"]["RequestId"]
    everything = rek.detect_faces(Image={"Bytes": astronaut_jpeg}, Attributes=["ALL"])["FaceDetails"][0]
    assert {"AgeRange", "Gender", "EyesOpen", "MouthOpen", "Emotions", "Smile", "FaceOccluded",
            "EyeDirection"} <= everything.keys()
    assert not {"Beard", "Mustache", "Eyeglasses", "Sunglasses"} & everything.keys()


def test_expressions_and_smile(rek, astronaut_jpeg: bytes, cameraman_jpeg: bytes) -> None:
    """Eileen Collins smiles broadly; the cameraman does not (the expression model of `fer`, parsed by boto3)."""
    eileen = rek.detect_faces(Image={"Bytes": astronaut_jpeg}, Attributes=["EMOTIONS", "SMILE"])["FaceDetails"][0]
    assert eileen["Emotions"][0]["Type"] == "HAPPY" and eileen["Emotions"][0]["Confidence"] > 90
    assert sum(e["Confidence"] for e in eileen["Emotions"]) == pytest.approx(100, abs=0.01)
    assert {e["Type"] for e in eileen["Emotions"]} == {"HAPPY", "SAD", "ANGRY", "SURPRISED", "DISGUSTED", "FEAR",
                                                         "CALM"}  # never CONFUSED: no class of the model is
    assert eileen["Smile"]["Value"] is True and eileen["Smile"]["Confidence"] > 90
    other = rek.detect_faces(Image={"Bytes": cameraman_jpeg}, Attributes=["SMILE"])["FaceDetails"][0]
    assert other["Smile"]["Value"] is False and "Emotions" not in other  # only what was asked


def test_compare_faces_round_trip(rek, astronaut_jpeg: bytes, cameraman_jpeg: bytes) -> None:
    same = rek.compare_faces(SourceImage={"Bytes": astronaut_jpeg}, TargetImage={"Bytes": astronaut_jpeg},
                             SimilarityThreshold=90, QualityFilter="NONE")
    assert len(same["FaceMatches"]) == 1 and same["FaceMatches"][0]["Similarity"] > 90
    assert same["SourceImageFace"]["Confidence"] > 90
    other = rek.compare_faces(SourceImage={"Bytes": astronaut_jpeg}, TargetImage={"Bytes": cameraman_jpeg},
                              SimilarityThreshold=80, QualityFilter="AUTO")
    assert other["FaceMatches"] == [] and len(other["UnmatchedFaces"]) <= 1


def test_s3_objects(rek, s3_images: dict[str, bytes]) -> None:
    s3 = {"S3Object": {"Bucket": BUCKET, "Name": "astronaut.jpg"}}
    assert len(rek.detect_faces(Image=s3)["FaceDetails"]) == 1
    result = rek.compare_faces(SourceImage=s3, TargetImage={"S3Object": {"Bucket": BUCKET, "Name": "cameraman.jpg"}})
    assert result["FaceMatches"] == []
    for image in ({"Bucket": "no-such-bucket", "Name": "astronaut.jpg"}, {"Bucket": BUCKET, "Name": "missing.jpg"},
                  {"Bucket": BUCKET, "Name": "astronaut.jpg", "Version": "nope"}):
        with pytest.raises(rek.exceptions.InvalidS3ObjectException, match="Unable to get object"):
            rek.detect_faces(Image={"S3Object": image})
    with pytest.raises(rek.exceptions.ImageTooLargeException):
        rek.detect_faces(Image={"S3Object": {"Bucket": BUCKET, "Name": "huge.bin"}})


def test_s3_images_between_the_bytes_and_s3_limits(rek, moto_s3: S3Server, astronaut: np.ndarray) -> None:  # noqa: F811

    big = np.kron(astronaut, np.ones((6, 6, 1), np.uint8))  # 3072x3072
    noisy = np.clip(big.astype(np.int16) + np.random.default_rng(0).integers(-40, 40, big.shape), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(buffer, format="JPEG", quality=97)
    assert 5 * 2**20 < len(buffer.getvalue()) < 15 * 2**20
    moto_s3.client().put_object(Bucket=BUCKET, Key="big.jpg", Body=buffer.getvalue())
    image = {"S3Object": {"Bucket": BUCKET, "Name": "big.jpg"}}
    assert len(rek.detect_faces(Image=image)["FaceDetails"]) == 1


# -- authentication
def test_wrong_secret_unknown_key_and_no_signature(service: Server, astronaut_jpeg: bytes) -> None:  # noqa: F811
    image = {"Bytes": astronaut_jpeg}
    error = error_of(lambda: client(service.url, secret="wrong").detect_faces(Image=image))
    assert code(error) == "InvalidSignatureException" and "signature we calculated does not match" in str(error)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    error = error_of(lambda: client(service.url, key_id="AKIAUNKNOWNKEY000000").detect_faces(Image=image))
    assert code(error) == "UnrecognizedClientException"
    error = error_of(lambda: client(service.url, signature_version=UNSIGNED).detect_faces(Image=image))
    assert code(error) == "MissingAuthenticationTokenException"
    second = client(service.url, key_id="FLKSECONDKEY00000002", secret="other-secret")
    assert second.detect_faces(Image=image)["FaceDetails"]


def test_stale_and_future_dates(service: Server, astronaut_jpeg: bytes, monkeypatch) -> None:  # noqa: F811
    rek = client(service.url)
    real = botocore.auth.get_current_datetime
    for minutes, message in ((-16, "Signature expired"), (16, "Signature not yet current")):
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda m=minutes: real() + dt.timedelta(minutes=m))
        error = error_of(lambda: rek.detect_faces(Image={"Bytes": astronaut_jpeg}))
        assert code(error) == "InvalidSignatureException" and message in str(error)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: real() - dt.timedelta(minutes=14))
    assert rek.detect_faces(Image={"Bytes": astronaut_jpeg})["FaceDetails"]


# -- malformed requests
def raw(service: Server, operation: str, body: bytes) -> httpx.Response:  # noqa: F811
    url, headers = signed(service.url, operation, body)
    return httpx.post(url, content=body, headers=headers, timeout=30)


def test_malformed_json_and_unknown_operations(service: Server) -> None:  # noqa: F811
    for body in (b"{", b'{"Image": ', b"[1, 2]", b"\xff\xfe\x00"):
        response = raw(service, "DetectFaces", body)
        assert response.status_code == 400 and response.json()["__type"] == "SerializationException"
    response = raw(service, "DetectFacesPlease", b"{}")
    assert response.status_code == 400 and response.json()["__type"] == "UnknownOperationException"
    assert response.headers["x-amzn-requestid"]


def test_wrong_types_and_ranges(service: Server, astronaut_jpeg: bytes) -> None:  # noqa: F811
    rek = client(service.url, parameter_validation=False)  # let boto3 send what its validator would refuse
    image = {"Bytes": astronaut_jpeg}
    cases = [
        lambda: rek.detect_faces(Image={"Bytes": astronaut_jpeg}, Attributes=["SMILES"]),
        lambda: rek.detect_faces(Image={}),
        lambda: rek.detect_faces(Image={"S3Object": {"Bucket": "bad/bucket", "Name": "x"}}),
        lambda: rek.compare_faces(SourceImage=image, TargetImage=image, SimilarityThreshold=150),
        lambda: rek.compare_faces(SourceImage=image, TargetImage=image, QualityFilter="BEST"),
        lambda: rek.compare_faces(SourceImage=image),
    ]
    for call in cases:
        with pytest.raises(rek.exceptions.InvalidParameterException):
            call()
    response = raw(service, "CompareFaces", b'{"SourceImage": {"Bytes": 7}, "TargetImage": [], '
                                            b'"SimilarityThreshold": "high"}')
    assert response.json()["__type"] == "InvalidParameterException"
    assert "Invalid type for parameter SimilarityThreshold" in response.json()["Message"]


def test_big_and_non_images(rek, astronaut_jpeg: bytes) -> None:
    six_mb = astronaut_jpeg + b"\0" * (6 * 1024 * 1024 - len(astronaut_jpeg))
    with pytest.raises(rek.exceptions.ImageTooLargeException):
        rek.detect_faces(Image={"Bytes": six_mb})
    with pytest.raises(rek.exceptions.ImageTooLargeException):
        rek.compare_faces(SourceImage={"Bytes": astronaut_jpeg}, TargetImage={"Bytes": six_mb})
    for junk in (b"this is not an image", astronaut_jpeg[: len(astronaut_jpeg) // 3], b"GIF89a" + b"\0" * 64):
        with pytest.raises(rek.exceptions.InvalidImageFormatException):
            rek.detect_faces(Image={"Bytes": junk})


def test_operations_not_implemented_are_named_client_errors(rek) -> None:
    arn = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1"
    error = error_of(lambda: rek.detect_custom_labels(ProjectVersionArn=arn, Image={"Bytes": b"x"}))
    assert code(error) == "NotImplementedException" and "DetectCustomLabels" in str(error)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_oversized_body_is_refused_before_it_is_sent(service: Server) -> None:  # noqa: F811
    _, headers = signed(service.url, "DetectFaces", b"{}")
    host, port = service.url.removeprefix("http://").split(":")
    headers.update({"Host": f"{host}:{port}", "Content-Length": str(200 * 1024 * 1024)})
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + b"{" * 65536)
        started = time.monotonic()
        reply = b""
        while b"ImageTooLargeException" not in reply and time.monotonic() - started < 5:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    text = reply.decode(errors="replace")
    assert text.startswith("HTTP/1.1 413") and "ImageTooLargeException" in text
    assert time.monotonic() - started < 5


# -- lifecycle (runs last in this module: the shared server must still be healthy after everything above)
def test_generated_credentials_and_graceful_shutdown(tmp_path: Path, astronaut: np.ndarray) -> None:
    data = tmp_path / "data"
    server = start_server(data, {"FACELENS_ACCESS_KEYS": "", "FACELENS_WORKERS": "1"})
    try:
        path = data / "credentials"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        lines = dict(map(str.strip, line.split("=", 1)) for line in path.read_text().splitlines() if "=" in line)
        key_id, secret = lines["aws_access_key_id"], lines["aws_secret_access_key"]
        assert server.output().count(secret) == 1  # printed once, never logged again
        big = np.kron(astronaut, np.ones((4, 4, 1), np.uint8))
        buffer = io.BytesIO()
        Image.fromarray(big).save(buffer, format="JPEG", quality=80)
        rek = client(server.url, key_id=key_id, secret=secret)
        results: list = []
        worker = threading.Thread(target=lambda: results.append(rek.detect_faces(Image={"Bytes": buffer.getvalue()})))
        worker.start()
        deadline = time.monotonic() + 20
        while httpx.get(f"{server.url}/health").json()["inference"]["admitted"] == 0:
            assert time.monotonic() < deadline and worker.is_alive()
            time.sleep(0.005)
        status = server.stop()  # SIGTERM with a request in flight
        worker.join(30)
        assert results and results[0]["FaceDetails"], "the in-flight request must complete"
        assert status in (0, -15)
        assert "Application shutdown complete" in server.output()
    finally:
        server.stop()
    again = start_server(data, {"FACELENS_ACCESS_KEYS": ""})
    try:
        assert client(again.url, key_id=key_id, secret=secret).detect_faces(Image={"Bytes": buffer.getvalue()})
        assert secret not in again.output()
    finally:
        again.stop()
    assert SECRET not in server.output()


def test_server_still_healthy_after_everything(service: Server, rek, astronaut_jpeg: bytes) -> None:  # noqa: F811
    assert service.process.poll() is None
    assert httpx.get(f"{service.url}/health").status_code == 200
    assert len(rek.detect_faces(Image={"Bytes": astronaut_jpeg})["FaceDetails"]) == 1
    assert "Traceback" not in service.output()


# -- collections (the backend is tested in depth in test_collections_backend.py; this is the wire round trip)
def test_collection_round_trip_through_boto3(rek, astronaut: np.ndarray, astronaut_jpeg: bytes,
                                             cameraman_jpeg: bytes) -> None:
    import uuid

    name = f"wire-{uuid.uuid4().hex[:8]}"
    created = rek.create_collection(CollectionId=name)
    assert created["StatusCode"] == 200 and created["CollectionArn"].endswith(name)
    with pytest.raises(rek.exceptions.ResourceAlreadyExistsException):
        rek.create_collection(CollectionId=name)
    indexed = rek.index_faces(CollectionId=name, Image={"Bytes": astronaut_jpeg}, ExternalImageId="eileen")
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    rek.index_faces(CollectionId=name, Image={"Bytes": cameraman_jpeg}, ExternalImageId="cameraman")
    described = rek.describe_collection(CollectionId=name)
    assert described["FaceCount"] == 2 and described["CreationTimestamp"].year >= 2026
    assert name in rek.list_collections()["CollectionIds"]
    import cv2

    from tests.conftest import encode

    variant = cv2.resize(np.ascontiguousarray(astronaut[20:-20, 20:-20]), (400, 400))  # same person, new crop
    found = rek.search_faces_by_image(CollectionId=name, Image={"Bytes": encode(variant)})
    assert [m["Face"]["ExternalImageId"] for m in found["FaceMatches"]] == ["eileen"]
    assert found["FaceMatches"][0]["Similarity"] >= 80
    assert rek.delete_faces(CollectionId=name, FaceIds=[face_id])["DeletedFaces"] == [face_id]
    assert rek.describe_collection(CollectionId=name)["FaceCount"] == 1
    rek.delete_collection(CollectionId=name)
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.describe_collection(CollectionId=name)


def test_recognition_beyond_faces_reads_images_from_s3(rek, moto_s3: S3Server, astronaut_jpeg: bytes) -> None:  # noqa: F811
    """DetectText, DetectLabels and DetectModerationLabels on a real server, the image read from S3."""
    from tests.api.test_text import render

    s3 = moto_s3.client()
    s3.put_object(Bucket=BUCKET, Key="sign.png", Body=render([("Exit through gift shop", 60, 200, 48)]))
    s3.put_object(Bucket=BUCKET, Key="astronaut.jpg", Body=astronaut_jpeg)
    found = rek.detect_text(Image={"S3Object": {"Bucket": BUCKET, "Name": "sign.png"}})
    lines = [t["DetectedText"] for t in found["TextDetections"] if t["Type"] == "LINE"]
    assert lines == ["Exit through gift shop"] and found["TextModelVersion"]
    words = [t for t in found["TextDetections"] if t["Type"] == "WORD"]
    assert [w["DetectedText"] for w in words] == ["Exit", "through", "gift", "shop"]
    assert {w["ParentId"] for w in words} == {0}
    labels = rek.detect_labels(Image={"S3Object": {"Bucket": BUCKET, "Name": "astronaut.jpg"}},
                               Features=["IMAGE_PROPERTIES"])
    assert labels["ImageProperties"]["DominantColors"] and "Labels" not in labels
    safe = rek.detect_moderation_labels(Image={"S3Object": {"Bucket": BUCKET, "Name": "astronaut.jpg"}})
    assert safe["ModerationLabels"] == [] and safe["ModerationModelVersion"]
    error = error_of(lambda: rek.detect_text(Image={"S3Object": {"Bucket": BUCKET, "Name": "missing.png"}}))
    assert error.response["Error"]["Code"] == "InvalidS3ObjectException"


def test_protective_equipment_face_covers(rek, astronaut: np.ndarray) -> None:
    """DetectProtectiveEquipment: a person, their face, and a FACE_COVER only where a mask is drawn on."""
    from tests.conftest import encode
    from tests.cover_fixtures import masked

    summary = {"MinConfidence": 80, "RequiredEquipmentTypes": ["FACE_COVER"]}
    bare = rek.detect_protective_equipment(Image={"Bytes": encode(astronaut)}, SummarizationAttributes=summary)
    covered = rek.detect_protective_equipment(Image={"Bytes": encode(masked(astronaut))},
                                              SummarizationAttributes=summary)
    for result in (bare, covered):
        (person,) = result["Persons"]
        assert [part["Name"] for part in person["BodyParts"]] == ["FACE"]  # no model sees heads or hands
        assert 0 < person["BoundingBox"]["Width"] <= 1 and result["ProtectiveEquipmentModelVersion"]
    assert bare["Persons"][0]["BodyParts"][0]["EquipmentDetections"] == []
    assert bare["Summary"]["PersonsWithoutRequiredEquipment"] == [0]
    (cover,) = covered["Persons"][0]["BodyParts"][0]["EquipmentDetections"]
    assert cover["Type"] == "FACE_COVER" and cover["CoversBodyPart"]["Value"] is True and "BoundingBox" not in cover
    assert covered["Summary"]["PersonsWithRequiredEquipment"] == [0]
    error = error_of(lambda: rek.detect_protective_equipment(
        Image={"Bytes": encode(astronaut)}, SummarizationAttributes={"MinConfidence": 80,
                                                                      "RequiredEquipmentTypes": ["HEAD_COVER"]}))
    assert error.response["Error"]["Code"] == "InvalidParameterException" and "HEAD_COVER" in str(error)
