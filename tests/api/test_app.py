"""The ASGI app in process (Starlette's TestClient), with a fake backend: the request flow, error
shapes, body limits, throttling and the worker pool."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.parsers import create_parser
from starlette.testclient import TestClient

from facelens import errors
from facelens.api import protocol
from facelens.api.app import create_app
from facelens.api.workers import WorkerPool
from facelens.config import ServerSettings
from tests.service_fixtures import FAKE_JPEG, KEY_ID, SECRET, FakeBackend, signed

URL = "http://testserver"
IMG = base64.b64encode(FAKE_JPEG).decode()
ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1"  # for DetectCustomLabels, not answered


def make_client(tmp_path: Path, fake: FakeBackend, **settings: object) -> TestClient:
    config = ServerSettings.from_env({}, data_dir=tmp_path, warmup=False, **settings)
    return TestClient(create_app(config, fake, keys={KEY_ID: SECRET}),  # type: ignore[arg-type]
                      raise_server_exceptions=False)


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def api(tmp_path: Path, fake: FakeBackend) -> Iterator[TestClient]:
    with make_client(tmp_path, fake) as client:
        yield client


def call(client: TestClient, operation: str, params: dict | bytes, **kwargs: object):
    body = params if isinstance(params, bytes) else json.dumps(params).encode()
    url, headers = signed(URL, operation, body, **kwargs)  # type: ignore[arg-type]
    return client.post(url, content=body, headers=headers)


def parsed(operation: str, response) -> dict:
    """The response as botocore parses it for boto3."""
    shape = protocol.model().operation_model(operation).output_shape
    return create_parser("json").parse(
        {"status_code": response.status_code, "headers": dict(response.headers), "body": response.content}, shape
    )


def aws_error(response) -> dict:
    assert response.headers["content-type"] == "application/x-amz-json-1.1"
    assert response.headers["x-amzn-requestid"]
    body = response.json()
    assert body["__type"] == body["Code"] and isinstance(body["Message"], str)
    return body


def test_detect_faces_round_trip(api: TestClient, fake: FakeBackend) -> None:
    response = call(api, "DetectFaces", {"Image": {"Bytes": IMG}, "Attributes": ["ALL"]})
    assert response.status_code == 200, response.text
    result = parsed("DetectFaces", response)
    assert result["FaceDetails"][0]["Confidence"] == 99.9
    assert result["ResponseMetadata"]["RequestId"] == response.headers["x-amzn-requestid"]
    assert fake.calls == [("detect", FAKE_JPEG, ["ALL"], None)]


def test_compare_faces_passes_every_parameter(api: TestClient, fake: FakeBackend) -> None:
    params = {"SourceImage": {"Bytes": IMG}, "TargetImage": {"Bytes": IMG}, "SimilarityThreshold": 90.5,
              "QualityFilter": "HIGH"}
    response = call(api, "CompareFaces", params)
    assert response.status_code == 200
    assert parsed("CompareFaces", response)["FaceMatches"][0]["Similarity"] == 99.0
    assert fake.calls == [("compare", FAKE_JPEG, FAKE_JPEG, 90.5, "HIGH", None)]


class FakeS3:
    configured = True

    def read(self, bucket: str, name: str, version: str | None, max_bytes: int) -> bytes:
        if bucket != "images":
            raise errors.InvalidS3ObjectException("Unable to get object metadata from S3.")
        return FAKE_JPEG


def test_s3_images_are_read_and_given_the_s3_limit(tmp_path: Path, fake: FakeBackend) -> None:
    with make_client(tmp_path, fake) as client:
        fake.s3 = FakeS3()
        params = {"SourceImage": {"Bytes": IMG}, "TargetImage": {"S3Object": {"Bucket": "images", "Name": "a"}}}
        assert call(client, "CompareFaces", params).status_code == 200
        assert fake.calls[-1][-1] == fake.max_s3_image_bytes
        response = call(client, "DetectFaces", {"Image": {"S3Object": {"Bucket": "other", "Name": "a"}}})
        assert aws_error(response)["__type"] == "InvalidS3ObjectException"


@pytest.mark.parametrize("image", [{}, {"Bytes": IMG, "S3Object": {"Bucket": "abc", "Name": "k"}}])
def test_image_needs_exactly_one_source(api: TestClient, image: dict) -> None:
    response = call(api, "DetectFaces", {"Image": image})
    assert response.status_code == 400
    assert "exactly one of Bytes and S3Object" in aws_error(response)["Message"]


def test_protocol_errors(api: TestClient) -> None:
    cases = [
        (call(api, "DetectFaces", b"{not json"), 400, "SerializationException"),
        (call(api, "DetectFaces", {"Image": {"Bytes": 1}}), 400, "InvalidParameterException"),
        (call(api, "DetectFaces", {"Image": {"Bytes": base64.b64encode(b"GIF89a").decode()}}), 400,
         "InvalidImageFormatException"),
        (call(api, "DetectFacez", {}), 400, "UnknownOperationException"),
        (call(api, "DetectCustomLabels", {"ProjectVersionArn": ARN, "Image": {"Bytes": IMG}}), 400,
         "NotImplementedException"),
        (call(api, "DetectFaces", {}, headers={"Content-Type": "text/plain"}), 400, "UnknownOperationException"),
        (api.get("/"), 405, "UnknownOperationException"),
        (api.post("/somewhere", content=b"{}"), 404, "UnknownOperationException"),
    ]
    for response, status, code in cases:
        assert (response.status_code, aws_error(response)["__type"]) == (status, code), response.text
    assert "DetectCustomLabels" in cases[4][0].json()["Message"]


def test_domain_faults_are_500s_without_details_and_client_errors_are_400s(tmp_path: Path) -> None:
    fake = FakeBackend(fail=RuntimeError("model exploded at /secret/path"))
    with make_client(tmp_path, fake) as client:
        response = call(client, "DetectFaces", {"Image": {"Bytes": IMG}})
        assert response.status_code == 500
        assert aws_error(response)["__type"] == "InternalServerError" and "secret" not in response.text
        fake.fail = errors.ImageTooLargeException("too big")
        response = call(client, "DetectFaces", {"Image": {"Bytes": IMG}})
        assert (response.status_code, aws_error(response)["Message"]) == (400, "too big")


def test_bodies_over_the_limit_are_refused_unread(tmp_path: Path, fake: FakeBackend) -> None:
    with make_client(tmp_path, fake, max_body_bytes=4096) as client:
        body = json.dumps({"Image": {"Bytes": base64.b64encode(b"\xff" * 8000).decode()}}).encode()
        response = call(client, "DetectFaces", body)
        assert (response.status_code, aws_error(response)["__type"]) == (413, "ImageTooLargeException")
        url, headers = signed(URL, "DetectFaces", body)

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 1000):
                yield body[start:start + 1000]

        response = client.post(url, content=chunks(), headers=headers)  # chunked: no Content-Length
        assert response.status_code == 413
        assert fake.calls == []


def test_unauthenticated_requests_get_aws_errors(api: TestClient) -> None:
    body = json.dumps({"Image": {"Bytes": IMG}}).encode()
    response = api.post("/", content=body, headers={"X-Amz-Target": "RekognitionService.DetectFaces",
                                                    "Content-Type": "application/x-amz-json-1.1"})
    assert aws_error(response)["__type"] == "MissingAuthenticationTokenException"
    assert aws_error(call(api, "DetectFaces", body, secret="nope"))["__type"] == "InvalidSignatureException"
    assert aws_error(call(api, "DetectFaces", body, key_id="NOKEY"))["__type"] == "UnrecognizedClientException"


def test_health_and_request_ids(api: TestClient) -> None:
    first, second = api.get("/health"), api.get("/health")
    assert first.status_code == 200 and first.json()["status"] == "ok"
    assert first.headers["x-amzn-requestid"] != second.headers["x-amzn-requestid"]


def test_logs_hold_no_secret_and_no_image_bytes(api: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call(api, "DetectFaces", {"Image": {"Bytes": IMG}})
    call(api, "DetectFaces", {"Image": {"Bytes": IMG}}, secret="wrong-secret")
    assert "DetectFaces 200" in caplog.text
    for secret in (SECRET, "wrong-secret", IMG, "Signature="):
        assert secret not in caplog.text


def test_full_pool_answers_throttling_quickly(tmp_path: Path) -> None:
    fake = FakeBackend(delay=1.0)
    with make_client(tmp_path, fake, workers=1, queue=0) as client:
        results: list = []
        slow = threading.Thread(target=lambda: results.append(call(client, "DetectFaces", {"Image": {"Bytes": IMG}})))
        slow.start()
        assert fake.started.wait(10)
        started = time.perf_counter()
        response = call(client, "DetectFaces", {"Image": {"Bytes": IMG}})
        assert time.perf_counter() - started < 0.5
        assert (response.status_code, aws_error(response)["__type"]) == (400, "ThrottlingException")
        slow.join()
        assert results[0].status_code == 200
        assert call(client, "DetectFaces", {"Image": {"Bytes": IMG}}).status_code == 200


def test_worker_pool_bounds_and_releases() -> None:
    async def scenario() -> None:
        pool = WorkerPool(workers=1, queue=1)
        gate = threading.Event()
        first = asyncio.ensure_future(pool.run(gate.wait, 5))
        second = asyncio.ensure_future(pool.run(lambda: 2))
        await asyncio.sleep(0.05)
        assert pool.admitted == 2
        with pytest.raises(errors.ThrottlingException):
            await pool.run(lambda: 3)
        second.cancel()  # a queued job cancelled by its caller gives its slot back
        await asyncio.sleep(0.05)
        assert pool.admitted == 1
        gate.set()
        assert await first is True
        await asyncio.sleep(0.05)
        assert pool.admitted == 0
        assert await pool.run(lambda: 4) == 4
        pool.shutdown()
        with pytest.raises(errors.ThrottlingException):
            await pool.run(lambda: 5)

    asyncio.run(scenario())
