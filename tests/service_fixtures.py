"""Fixtures and helpers for the HTTP service tests: a real `facelens serve` subprocess, a moto S3 server,
boto3 clients, SigV4-signed raw requests, and a fake analysis backend for in-process unit tests.

Import the fixtures you use into a test module (`from tests.service_fixtures import service  # noqa: F401`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from facelens import errors, service_model
from facelens.config import S3Settings
from facelens.context import RequestContext
from facelens.imaging import MAX_S3_IMAGE_BYTES
from facelens.s3 import S3Reader
from tests.pg_fixtures import fresh_database

KEY_ID, SECRET = "FLKTESTKEY0000000001", "test-secret-do-not-use"
REGION = "us-east-1"
BUCKET = "facelens-test-images"
TARGET = "RekognitionService"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout}s")


@dataclass
class Server:
    """A running `facelens serve` subprocess."""

    url: str
    process: subprocess.Popen
    data_dir: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # the environment it runs with (store URLs, ...)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(data_dir: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> Server:
    """`facelens serve` on a free port; returns once GET /health answers 200."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"server-{port}.log"
    full_env = {**os.environ, "FACELENS_THREADS": os.environ.get("FACELENS_THREADS", "1"), **(env or {})}
    process = subprocess.Popen(
        [str(BIN / "facelens"), "serve", "--port", str(port), "--data-dir", str(data_dir), *args],
        env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process, data_dir, log, full_env)
    try:
        wait_healthy(f"{server.url}/health", process)
    except BaseException:
        server.stop(10)
        raise
    return server


def client(url: str, key_id: str = KEY_ID, secret: str = SECRET, **config: object):
    """A real boto3 Rekognition client for the service (no retries unless asked)."""
    options = {"retries": {"max_attempts": 1, "mode": "standard"}, **config}
    return boto3.client("rekognition", endpoint_url=url, region_name=REGION, aws_access_key_id=key_id,
                        aws_secret_access_key=secret, config=Config(**options))


def signed(url: str, operation: str, body: bytes, *, key_id: str = KEY_ID, secret: str = SECRET,
           headers: Mapping[str, str] | None = None, when: dt.datetime | None = None) -> tuple[str, dict[str, str]]:
    """(url, headers) of a SigV4-signed Rekognition request with an arbitrary body, signed by botocore."""
    admin = service_model.admin_model()
    prefix = admin.metadata["targetPrefix"] if operation in admin.operation_names else TARGET  # FaceLens's own
    base = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{prefix}.{operation}"}
    request = AWSRequest(method="POST", url=url.rstrip("/") + "/", data=body, headers={**base, **(headers or {})})
    signer = SigV4Auth(Credentials(key_id, secret), "rekognition", REGION)
    if when is None:
        signer.add_auth(request)
    else:
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        signer._inject_signature_to_request(request, signature)
    return request.url, dict(request.headers.items())


# -- moto's standalone S3 server
@dataclass
class S3Server:
    url: str
    process: subprocess.Popen

    def client(self):
        return boto3.client("s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id="moto",
                            aws_secret_access_key="moto")


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    """moto's standalone server (a real HTTP S3) on a free port, with the tests' bucket: one per pytest process
    (each pytest-xdist worker has its own), so no test depends on another having created the bucket first."""
    port = free_port()
    process = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/moto-api/", process, timeout=60)
        server = S3Server(url, process)
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        process.terminate()
        process.wait(10)


def s3_env(s3: S3Server) -> dict[str, str]:
    return {"FACELENS_S3_ENDPOINT_URL": s3.url, "FACELENS_S3_ACCESS_KEY_ID": "moto",
            "FACELENS_S3_SECRET_ACCESS_KEY": "moto", "FACELENS_S3_REGION": REGION}


STORES = ["embedded", "postgresql+milvus"]


def store_env(kind: str, stack: contextlib.ExitStack, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that puts a server on the embedded stores (SQLite + FAISS), or on a fresh PostgreSQL
    database with vectors in the session's Milvus standalone server (`tests.milvus_fixtures.milvus`)."""
    if kind == "embedded":
        return {}
    return {"FACELENS_DATABASE_URL": stack.enter_context(fresh_database()),
            "FACELENS_VECTOR_URL": request.getfixturevalue("milvus")}


@pytest.fixture(scope="session", params=STORES)
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            moto_s3: S3Server) -> Iterator[Server]:
    """One `facelens serve` for the integration tests, with access keys from the environment and S3 on moto;
    the whole suite runs twice: on the embedded stores (SQLite + FAISS) and on PostgreSQL + Milvus standalone."""
    env = {"FACELENS_ACCESS_KEYS": f"{KEY_ID}:{SECRET},FLKSECONDKEY00000002:other-secret",
           "FACELENS_WORKERS": "2", **s3_env(moto_s3)}
    with contextlib.ExitStack() as stack:
        env.update(store_env(request.param, stack, request))
        server = start_server(tmp_path_factory.mktemp(f"service-{request.param}") / "data", env)
        stack.callback(server.stop)
        yield server


# -- in-process unit tests
@dataclass
class FakeBackend:
    """Stands in for `facelens.service.Backend` behind `create_app`: records the DetectFaces and CompareFaces
    calls it is given (with the image byte limit of their context), answers fixed responses, optionally slowly or
    failing. Its `s3` reads `Image.S3Object`s (a real S3Reader unless a test gives another)."""

    max_s3_image_bytes: int = MAX_S3_IMAGE_BYTES
    delay: float = 0.0
    fail: BaseException | None = None
    calls: list[tuple] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    s3: Any = field(default_factory=lambda: S3Reader(S3Settings()))

    @property
    def analyzer(self) -> FakeBackend:
        return self

    def warmup(self) -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _run(self, call: tuple) -> None:
        self.calls.append(call)
        self.started.set()
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        if call[1][:1] != b"\xff":  # JPEG magic; anything else is "not an image" for the fake
            raise errors.InvalidImageFormatException("Request has invalid image format")

    def run(self, operation: str, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        box = {"Width": 0.2, "Height": 0.25, "Left": 0.3, "Top": 0.1}
        face = {"BoundingBox": box, "Confidence": 99.9}
        if operation == "DetectFaces":
            self._run(("detect", params["Image"]["Bytes"], params.get("Attributes"), context.max_image_bytes))
            return {"FaceDetails": [face]}
        if operation == "CompareFaces":
            self._run(("compare", params["SourceImage"]["Bytes"], params["TargetImage"]["Bytes"],
                       params.get("SimilarityThreshold"), params.get("QualityFilter"), context.max_image_bytes))
            return {"SourceImageFace": face, "FaceMatches": [{"Similarity": 99.0, "Face": face}],
                    "UnmatchedFaces": []}
        raise errors.InvalidParameterException(f"the fake backend has no {operation}")


FAKE_JPEG = b"\xff\xd8\xff\xe0fake-jpeg"
