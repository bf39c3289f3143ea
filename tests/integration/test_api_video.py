"""Stored-video jobs through a real `facelens serve` and real boto3: face detection and face search at the right
times and places, S3 and local sources, paging, idempotency, webhook notices, bad files, and a server killed
mid-job that finishes the job after restart with the results of an uninterrupted run."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.pipeline import default_analyzer
from tests.service_fixtures import (  # noqa: F401 - fixtures
    BUCKET,
    STORES,
    Server,
    client,
    moto_s3,
    s3_env,
    start_server,
    store_env,
)
from tests.video_fixtures import (
    EILEEN_AT,
    EILEEN_MS,
    OTHER_MS,
    Webhook,
    assert_inside,
    local,
    two_people,
    wait,
    wait_running,
    webhook,  # noqa: F401 - fixture
    write_audio,
    write_video,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, astronaut, cameraman) -> Path:
    """The data directory's videos/ with the test clips, made before the server starts."""
    folder = tmp_path_factory.mktemp("video-service") / "data" / "videos"
    folder.mkdir(parents=True)
    analyzer = default_analyzer()
    two_people(folder / "scene.mp4", analyzer, astronaut, cameraman)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("not a video\n" * 100)
    whole = write_video(folder / "whole.mp4", 30).read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    write_audio(folder / "audio.mp4")
    write_video(folder / "8k.avi", 1, codec="mpeg4", size=(7680, 4320))
    return folder


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest, videos: Path, moto_s3, webhook: Webhook) -> Iterator[Server]:  # noqa: F811
    env = {"FACELENS_ACCESS_KEYS": "FLKTESTKEY0000000001:test-secret-do-not-use", "FACELENS_WORKERS": "2",
           "FACELENS_VIDEO_WEBHOOK_URL": webhook.url, "FACELENS_VIDEO_DIR": str(videos), **s3_env(moto_s3)}
    with contextlib.ExitStack() as stack:
        env.update(store_env(request.param, stack, request))
        server = start_server(videos.parent.parent / f"data-{request.param}", env)
        stack.callback(server.stop)
        yield server


def test_face_detection_reports_faces_at_the_right_times_and_places(server: Server, webhook: Webhook) -> None:  # noqa: F811
    rek = client(server.url)
    started = rek.start_face_detection(Video=local("scene.mp4"), JobTag="door-1", ClientRequestToken="t-1",
                                       NotificationChannel={"SNSTopicArn": "arn:aws:sns:us-east-1:000000000000:jobs",
                                                            "RoleArn": "arn:aws:iam::000000000000:role/r"})
    again = rek.start_face_detection(Video=local("scene.mp4"), JobTag="door-1", ClientRequestToken="t-1",
                                     NotificationChannel={"SNSTopicArn": "arn:aws:sns:us-east-1:000000000000:jobs",
                                                          "RoleArn": "arn:aws:iam::000000000000:role/r"})
    assert again["JobId"] == started["JobId"]  # the same token and parameters: the same job
    with pytest.raises(rek.exceptions.IdempotentParameterMismatchException):
        rek.start_face_detection(Video=local("scene.mp4"), JobTag="door-2", ClientRequestToken="t-1")
    done = wait(rek.get_face_detection, started["JobId"])
    assert done["JobStatus"] == "SUCCEEDED" and done["JobTag"] == "door-1"
    meta = done["VideoMetadata"]
    assert (meta["Codec"], meta["FrameWidth"], meta["FrameHeight"], meta["FrameRate"]) == ("h264", 640, 360, 30)
    assert abs(meta["DurationMillis"] - 3000) <= 40 and meta["Format"] == "QuickTime / MOV"
    faces = done["Faces"]
    left = [f for f in faces if f["Face"]["BoundingBox"]["Left"] < 0.5]
    right = [f for f in faces if f["Face"]["BoundingBox"]["Left"] >= 0.5]
    assert [f["Timestamp"] for f in left] == EILEEN_MS and [f["Timestamp"] for f in right] == OTHER_MS
    for face in left:
        assert_inside(face["Face"]["BoundingBox"], EILEEN_AT)
        assert face["Face"]["Confidence"] > 90 and "Landmarks" in face["Face"]
    paged, token = [], None
    while True:
        page = rek.get_face_detection(JobId=started["JobId"], MaxResults=5, **({"NextToken": token} if token else {}))
        paged += page["Faces"]
        token = page.get("NextToken")
        if not token:
            break
    assert paged == faces
    deadline = time.monotonic() + 10
    while not any(json.loads(n["Message"])["JobId"] == started["JobId"] for n in webhook.received):
        assert time.monotonic() < deadline, "no webhook notice"
        time.sleep(0.2)
    notice = next(n for n in webhook.received if json.loads(n["Message"])["JobId"] == started["JobId"])
    message = json.loads(notice["Message"])
    assert notice["TopicArn"] == "arn:aws:sns:us-east-1:000000000000:jobs" and notice["Type"] == "Notification"
    assert (message["Status"], message["API"], message["JobTag"]) == ("SUCCEEDED", "StartFaceDetection", "door-1")


def test_face_search_finds_the_indexed_person_at_her_times(server: Server, astronaut_jpeg: bytes) -> None:
    rek = client(server.url)
    rek.create_collection(CollectionId="video-search")
    eileen = rek.index_faces(CollectionId="video-search", Image={"Bytes": astronaut_jpeg})["FaceRecords"][0]
    started = rek.start_face_search(Video=local("scene.mp4"), CollectionId="video-search", FaceMatchThreshold=50)
    done = wait(rek.get_face_search, started["JobId"])
    assert done["JobStatus"] == "SUCCEEDED"
    persons = done["Persons"]
    matched = [p for p in persons if p["FaceMatches"]]
    assert [p["Timestamp"] for p in matched] == EILEEN_MS
    assert {m["Face"]["FaceId"] for p in matched for m in p["FaceMatches"]} == {eileen["Face"]["FaceId"]}
    assert all(m["Similarity"] >= 80 for p in matched for m in p["FaceMatches"])  # 50 requested, the floor is 80
    indices = {p["Person"]["Index"] for p in matched}
    others = {p["Person"]["Index"] for p in persons if not p["FaceMatches"]}
    assert len(indices) == 1 and others and not indices & others  # two people, two indices
    assert [p["Timestamp"] for p in persons if p["Person"]["Index"] in others] == OTHER_MS
    by_index = wait(rek.get_face_search, started["JobId"], SortBy="INDEX")["Persons"]
    assert [p["Person"]["Index"] for p in by_index] == sorted(p["Person"]["Index"] for p in persons)
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.get_face_detection(JobId=started["JobId"])  # a search job is not a detection job


def test_a_video_in_s3(server: Server, moto_s3, videos: Path) -> None:  # noqa: F811
    s3 = moto_s3.client()
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="clips/scene.mp4", Body=(videos / "scene.mp4").read_bytes())
    rek = client(server.url)
    found = wait(rek.get_face_detection, rek.start_face_detection(
        Video={"S3Object": {"Bucket": BUCKET, "Name": "clips/scene.mp4"}})["JobId"])
    assert found["JobStatus"] == "SUCCEEDED" and len(found["Faces"]) == len(EILEEN_MS) + len(OTHER_MS)
    missing = wait(rek.get_face_detection, rek.start_face_detection(
        Video={"S3Object": {"Bucket": BUCKET, "Name": "clips/none.mp4"}})["JobId"])
    assert missing["JobStatus"] == "FAILED" and missing["StatusMessage"]


@pytest.mark.parametrize(("name", "message"), [
    ("empty.mp4", "empty"), ("notes.mp4", "not a video"), ("truncated.mp4", "not a video"),
    ("audio.mp4", "no video stream"), ("8k.avi", "7680x4320"),
])
def test_bad_videos_fail_with_a_message_while_images_are_still_served(server: Server, name: str, message: str,
                                                                      astronaut_jpeg: bytes) -> None:
    rek = client(server.url)
    job = rek.start_face_detection(Video=local(name))["JobId"]
    assert rek.detect_faces(Image={"Bytes": astronaut_jpeg})["FaceDetails"]  # the service keeps serving
    failed = wait(rek.get_face_detection, job, timeout=60)
    assert failed["JobStatus"] == "FAILED" and message in failed["StatusMessage"] and "Faces" not in failed


def test_bad_requests_are_refused_at_start(server: Server) -> None:
    rek = client(server.url)
    with pytest.raises(rek.exceptions.InvalidS3ObjectException):
        rek.start_face_detection(Video=local("nothing-here.mp4"))
    with pytest.raises(rek.exceptions.InvalidParameterException, match="outside"):
        rek.start_face_detection(Video=local("../credentials"))
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.start_face_search(Video=local("scene.mp4"), CollectionId="no-such-collection")
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.get_face_detection(JobId="0123456789abcdef")


def test_a_job_interrupted_by_sigkill_completes_after_restart(tmp_path: Path, astronaut, cameraman) -> None:
    data = tmp_path / "data"
    clip = two_people(data / "videos" / "long.mp4", default_analyzer(), astronaut, cameraman, seconds=20)
    assert clip.is_file()
    env = {"FACELENS_ACCESS_KEYS": "FLKTESTKEY0000000001:test-secret-do-not-use"}
    first = start_server(data, env)
    rek = client(first.url)
    job = rek.start_face_detection(Video=local("long.mp4"))["JobId"]
    wait_running(rek.get_face_detection, job)
    time.sleep(0.5)
    first.process.kill()
    first.process.wait(10)
    second = start_server(data, env)
    try:
        rek = client(second.url)
        resumed = wait(rek.get_face_detection, job)
        fresh = wait(rek.get_face_detection, rek.start_face_detection(Video=local("long.mp4"))["JobId"])
        assert resumed["JobStatus"] == fresh["JobStatus"] == "SUCCEEDED"
        assert resumed["Faces"] == fresh["Faces"] and len(resumed["Faces"]) == len(EILEEN_MS) + len(OTHER_MS)
        assert "interrupted jobs queued again" in second.output()
    finally:
        second.stop()
