"""Input that is refused (docs/service.md), through a real `facelens serve` and real boto3: a local video swapped
for a symlink after Start (and after a restart re-queued its job), NUL and other invalid S3 object names, a
truncated JPEG with an EOI appended, a JPEG decompression bomb, and `S3Object`s on a server with no S3
configured, which must make no network call at all."""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from tests.service_fixtures import (  # noqa: F401 - fixtures
    BUCKET,
    Server,
    client,
    moto_s3,
    s3_env,
    start_server,
)
from tests.video_fixtures import LOCAL, local, wait, wait_running, write_video

pytestmark = pytest.mark.slow
KEYS = {"FACELENS_ACCESS_KEYS": "FLKTESTKEY0000000001:test-secret-do-not-use"}


def bomb() -> bytes:
    """A ~630-byte JPEG (one flat 8x8 block of data) whose frame header claims 10000x8000 pixels."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buffer, "JPEG", quality=50)
    small = buffer.getvalue()
    sof = small.index(b"\xff\xc0")
    return small[: sof + 5] + struct.pack(">HH", 8000, 10000) + small[sof + 9:]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the server's video directory, a directory outside it), each with a readable clip."""
    base = tmp_path_factory.mktemp("input")
    videos, outside = base / "data" / "videos", base / "outside"
    write_video(videos / "long.mp4", 240, size=(320, 180))  # 8 s: keeps the one video worker busy
    write_video(outside / "secret.mp4", 30)
    return videos, outside


@pytest.fixture(scope="module")
def server(folders: tuple[Path, Path], moto_s3) -> Iterator[Server]:  # noqa: F811
    videos, _ = folders
    env = {**KEYS, "FACELENS_WORKERS": "2", "FACELENS_VIDEO_DIR": str(videos), **s3_env(moto_s3)}
    server = start_server(videos.parent.parent / "data-input", env)
    yield server
    server.stop()


def test_a_local_video_swapped_for_a_symlink_after_start_fails(server: Server, folders: tuple[Path, Path]) -> None:
    videos, outside = folders
    write_video(videos / "swap.mp4", 30)
    rek = client(server.url)
    busy = rek.start_face_detection(Video=local("long.mp4"))["JobId"]  # the one video worker runs this first
    job = rek.start_face_detection(Video=local("swap.mp4"))["JobId"]  # checked at Start: a plain file inside
    (videos / "swap.mp4").unlink()
    (videos / "swap.mp4").symlink_to(outside / "secret.mp4")
    failed = wait(rek.get_face_detection, job)
    assert failed["JobStatus"] == "FAILED", failed
    assert "outside the video directory" in failed["StatusMessage"] and "VideoMetadata" not in failed
    assert wait(rek.get_face_detection, busy)["JobStatus"] == "SUCCEEDED"
    (videos / "inside.mp4").symlink_to(videos / "long.mp4")  # a link that stays inside is still a video
    assert rek.get_face_detection(JobId=rek.start_face_detection(Video=local("inside.mp4"))["JobId"])


def test_a_requeued_job_is_checked_again_when_its_file_is_opened(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    _, outside = folders
    data = tmp_path / "data"
    write_video(data / "videos" / "clip.mp4", 600, size=(320, 180))  # 20 s
    first = start_server(data, KEYS)
    rek = client(first.url)
    job = rek.start_face_detection(Video=local("clip.mp4"))["JobId"]
    wait_running(rek.get_face_detection, job)
    first.process.kill()
    first.process.wait(10)
    (data / "videos" / "clip.mp4").unlink()
    (data / "videos" / "clip.mp4").symlink_to(outside / "secret.mp4")
    second = start_server(data, KEYS)
    try:
        failed = wait(client(second.url).get_face_detection, job)
        assert "interrupted jobs queued again" in second.output()
        assert failed["JobStatus"] == "FAILED" and "outside the video directory" in failed["StatusMessage"]
    finally:
        second.stop()


@pytest.mark.parametrize("s3_object", [
    {"Bucket": LOCAL, "Name": "long\x00.mp4"},
    {"Bucket": BUCKET, "Name": "clips/a\x00b.mp4"},
    {"Bucket": BUCKET, "Name": "clips/a\x07b.mp4"},
    {"Bucket": BUCKET, "Name": "clips/\ud800.mp4"},
    {"Bucket": BUCKET, "Name": "é" * 600},  # 600 characters, 1,200 bytes: over S3's 1,024-byte key limit
    {"Bucket": BUCKET, "Name": "clips/a.mp4", "Version": "v\x001"},
    {"Bucket": "bucket\x00", "Name": "clips/a.mp4"},
])
def test_invalid_s3_object_names_are_invalid_parameters(server: Server, s3_object: dict) -> None:
    rek = client(server.url, parameter_validation=False)
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.start_face_detection(Video={"S3Object": s3_object})
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.detect_faces(Image={"S3Object": s3_object})
    with pytest.raises(rek.exceptions.InvalidParameterException):
        rek.compare_faces(SourceImage={"S3Object": s3_object}, TargetImage={"Bytes": bomb()})


def test_a_truncated_jpeg_with_an_eoi_appended_is_not_indexed(server: Server, astronaut_jpeg: bytes) -> None:
    rek = client(server.url)
    rek.create_collection(CollectionId="input-truncated")
    cut = astronaut_jpeg[: len(astronaut_jpeg) // 2] + b"\xff\xd9"
    with pytest.raises(rek.exceptions.InvalidImageFormatException):
        rek.index_faces(CollectionId="input-truncated", Image={"Bytes": cut})
    with pytest.raises(rek.exceptions.InvalidImageFormatException):
        rek.detect_faces(Image={"Bytes": cut})
    assert rek.list_faces(CollectionId="input-truncated")["Faces"] == []
    assert rek.index_faces(CollectionId="input-truncated", Image={"Bytes": astronaut_jpeg})["FaceRecords"]


def test_a_jpeg_bomb_is_refused_before_it_is_decoded(server: Server) -> None:
    rek = client(server.url)
    data = bomb()
    assert len(data) < 1000
    with pytest.raises(rek.exceptions.InvalidImageFormatException, match="too little"):
        rek.detect_faces(Image={"Bytes": data})


class Recorder(BaseHTTPRequestHandler):
    """Stands in for the instance-metadata address and for any HTTP(S) proxy: records who called."""

    calls: ClassVar[list[str]] = []

    def _any(self) -> None:
        Recorder.calls.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_POST = do_HEAD = do_CONNECT = _any

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def unconfigured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with no S3 settings whose every outgoing call (metadata address, AWS through a proxy) is seen."""
    recorder = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    seen = f"http://127.0.0.1:{recorder.server_address[1]}"
    nowhere = str(tmp_path_factory.mktemp("no-aws") / "none")
    home = tmp_path_factory.mktemp("home")  # its own home: what a library keeps there is seen too
    models = os.environ.get("FACELENS_CACHE") or str(Path.home() / ".cache" / "facelens")  # converted models
    env = {**KEYS, "AWS_EC2_METADATA_SERVICE_ENDPOINT": seen, "HTTPS_PROXY": seen, "HTTP_PROXY": seen,
           "https_proxy": seen, "http_proxy": seen, "NO_PROXY": "", "no_proxy": "",
           "AWS_SHARED_CREDENTIALS_FILE": nowhere, "AWS_CONFIG_FILE": nowhere,
           "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "FACELENS_CACHE": models}
    with contextlib.ExitStack() as stack:
        server = start_server(tmp_path_factory.mktemp("unconfigured") / "data", env)
        stack.callback(server.stop)
        stack.callback(recorder.shutdown)
        yield server


def test_s3_objects_without_s3_configured_make_no_network_call(unconfigured: Server) -> None:
    rek = client(unconfigured.url)
    s3 = {"S3Object": {"Bucket": BUCKET, "Name": "astronaut.jpg"}}
    with pytest.raises(rek.exceptions.InvalidS3ObjectException, match="not configured"):
        rek.detect_faces(Image=s3)
    with pytest.raises(rek.exceptions.InvalidS3ObjectException, match="not configured"):
        rek.start_face_detection(Video=s3)
    assert Recorder.calls == []


def test_the_models_report_to_no_one(unconfigured: Server, astronaut_jpeg: bytes) -> None:
    """The model runtimes phone home unless told not to (onnxruntime 1.30 to Microsoft, OpenVINO to Google
    Analytics): after real inference the server has called no one and left nothing in its home directory."""
    rek = client(unconfigured.url)
    assert rek.detect_faces(Image={"Bytes": astronaut_jpeg}, Attributes=["ALL"])["FaceDetails"]
    assert "Labels" in rek.detect_labels(Image={"Bytes": astronaut_jpeg}, MaxLabels=3)
    home = Path(unconfigured.env["HOME"])
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []
    time.sleep(5)  # onnxruntime's uploader sent its first event within 5 s of the first session
    assert Recorder.calls == []
