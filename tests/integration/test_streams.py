"""Stream processors end to end: a real `facelens serve`, real boto3, a real RTSP camera (GStreamer's RTSP server)
serving a clip with an indexed person and a stranger at known times, and Kinesis on moto's standalone server.

What a user sees: matches of the indexed person in Kinesis at the right offsets within a stated delay, the
stranger never matched, a person searched about once a second, the camera dropping and returning, FAILED after
the retry limit, the server SIGKILLed and the processor RUNNING again, purpose rules, audit records, and who is
watching which camera."""

from __future__ import annotations

import contextlib
import json
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.config import Config

from facelens.client import admin_client, with_purpose
from facelens.pipeline import default_analyzer
from tests.key_fixtures import ADMIN, admin, credentials_file, write_credentials
from tests.service_fixtures import BIN, REGION, Server, client, free_port, moto_s3, start_server  # noqa: F401
from tests.stream_fixtures import (
    EILEEN_AT,
    EILEEN_ON,
    SIZE,
    STRANGER_ON,
    Camera,
    KinesisReader,
    delay,
    fragment,
    kinesis_client,
    kinesis_env,
    matched,
    offset,
    render_clip,
)

pytestmark = pytest.mark.slow

CREDENTIALS = credentials_file(admin())
ROLE = "arn:aws:iam::123456789012:role/facelens"
MAX_DELAY = 3.0  # seconds from a frame's arrival to its record in Kinesis, on 2 loaded cores
RETRY_SECONDS = 6


def video_arn(camera: str) -> str:
    return f"arn:aws:kinesisvideo:{REGION}:123456789012:stream/{camera}/1700000000000"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, astronaut, cameraman) -> Path:
    return render_clip(tmp_path_factory.mktemp("streams") / "door.mp4", default_analyzer(), astronaut, cameraman)


@pytest.fixture(scope="module")
def cameras(clip: Path) -> Iterator[dict[str, Camera]]:
    started = {"door": Camera(clip).start(), "yard": Camera(clip).start(), "flaky": Camera(clip).start()}
    yield started
    for camera in started.values():
        camera.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cameras: dict[str, Camera], moto_s3) -> Iterator[Server]:  # noqa: F811
    data = tmp_path_factory.mktemp("streams-server") / "data"
    data.mkdir(parents=True)
    write_credentials(data, CREDENTIALS)
    gone = f"rtsp://127.0.0.1:{free_port()}/camera"  # nothing listens there
    env = {"FACELENS_CAMERAS": f"door={cameras['door'].url};yard=rtsp+udp://{cameras['yard'].url[7:]};"
                               f"flaky={cameras['flaky'].url};gone={gone}",
           "FACELENS_STREAM_RETRY_SECONDS": str(RETRY_SECONDS), "FACELENS_WORKERS": "2", **kinesis_env(moto_s3.url)}
    server = start_server(data, env)
    yield server
    server.stop()


def rek(server: Server, purpose: str | None = None):
    made = client(server.url, *ADMIN)
    return with_purpose(made, purpose) if purpose else made


def admin(server: Server):
    return admin_client(server.url, region_name=REGION, aws_access_key_id=ADMIN[0], aws_secret_access_key=ADMIN[1],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


@pytest.fixture(scope="module")
def eileen(server: Server, astronaut_jpeg: bytes) -> str:
    rek(server).create_collection(CollectionId="staff")
    return rek(server).index_faces(CollectionId="staff", Image={"Bytes": astronaut_jpeg})["FaceRecords"][0][
        "Face"]["FaceId"]


def processor(server: Server, name: str, camera: str, output: KinesisReader, collection: str = "staff",
              purpose: str | None = None, **extra) -> str:
    return rek(server, purpose).create_stream_processor(
        Name=name, Input={"KinesisVideoStream": {"Arn": video_arn(camera)}},
        Output={"KinesisDataStream": {"Arn": output.arn}}, RoleArn=ROLE,
        Settings={"FaceSearch": {"CollectionId": collection, **extra}})["StreamProcessorArn"]


def wait_status(server: Server, name: str, wanted: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while (described := rek(server).describe_stream_processor(Name=name))["Status"] != wanted:
        assert time.monotonic() < deadline, f"{name} is {described['Status']}, not {wanted}: {described}"
        time.sleep(0.3)
    return described


def eileen_side(face: dict) -> bool:
    return face["DetectedFace"]["BoundingBox"]["Left"] < 0.5


def test_face_search_processor_finds_the_person_at_her_times_and_never_the_stranger(
        server: Server, eileen: str, moto_s3) -> None:  # noqa: F811
    out = KinesisReader.create(kinesis_client(moto_s3.url), "door-faces")
    arn = processor(server, "door-1", "door", out, FaceMatchThreshold=50)
    assert arn.endswith(":streamprocessor/door-1")
    described = rek(server).describe_stream_processor(Name="door-1")
    assert described["Status"] == "STOPPED" and described["Settings"]["FaceSearch"]["CollectionId"] == "staff"
    assert described["Input"]["KinesisVideoStream"]["Arn"] == video_arn("door")
    session = rek(server).start_stream_processor(Name="door-1")["SessionId"]
    assert session
    wait_status(server, "door-1", "RUNNING", 20)
    # one pass of the clip from the connection on: Eileen 2-5 s, the stranger 6-9 s
    records = out.until(lambda rs: any(offset(r) >= STRANGER_ON[1] - 1 or fragment(r) != fragment(rs[0])
                                       for r in rs), 40, "record of the stranger's last second")
    rek(server).stop_stream_processor(Name="door-1")
    wait_status(server, "door-1", "STOPPED", 10)
    first = [r for r in records if fragment(r) == fragment(records[0])]
    hers = [r for r in first if eileen in matched(r)]
    assert hers, f"no match of the indexed person in {first}"
    for record in hers:
        assert EILEEN_ON[0] <= offset(record) <= EILEEN_ON[1] + 0.1, offset(record)
        (face,) = record["FaceSearchResponse"]
        box = face["DetectedFace"]["BoundingBox"]
        assert abs(box["Left"] - EILEEN_AT[0] / SIZE[0]) < 0.08 and face["MatchedFaces"][0]["Similarity"] > 90
        assert record["InputInformation"]["KinesisVideo"]["StreamArn"] == video_arn("door")
        assert record["StreamProcessorInformation"] == {"Status": "RUNNING"}
    assert offset(hers[0]) <= EILEEN_ON[0] + 1.0  # found within a second of appearing
    # searched about once a second while on screen, not on every sampled frame
    assert 2 <= len(hers) <= 4, [offset(r) for r in hers]
    assert all(b - a >= 0.95 for a, b in zip(map(offset, hers), map(offset, hers[1:]), strict=False))
    strangers = [face for r in first for face in r["FaceSearchResponse"] if not eileen_side(face)]
    assert strangers and all(face["MatchedFaces"] == [] for face in strangers)
    assert all(STRANGER_ON[0] <= offset(r) <= STRANGER_ON[1] + 0.1 for r in first if not eileen_side(
        r["FaceSearchResponse"][0]))
    delays = sorted(delay(r) for r in first)
    assert delays[-1] < MAX_DELAY, delays
    print(f"\nframe-to-Kinesis delay over {len(delays)} records: p50 {statistics.median(delays):.3f} s, "
          f"max {delays[-1]:.3f} s")
    # each match is audited: FaceId, similarity, processor, camera, frame time
    audit = [json.loads(r["Record"]) for r in admin(server).list_audit_records(CollectionId="staff",
                                                                               MaxResults=1000)["AuditRecords"]]
    found = [r for r in audit if r["operation"] == "StreamProcessorFaceSearch" and r["stream_processor"] == "door-1"]
    for record in hers:  # each match written to Kinesis has its audit record: same frame, same FaceId
        video = record["InputInformation"]["KinesisVideo"]
        when = video["ServerTimestamp"] + video["FrameOffsetInSeconds"]
        assert any(abs(r["frame_time"] - when) < 0.01 and r["offset"] == offset(record) for r in found), when
    assert all(r["camera"] == "door" and r["matches"][0]["FaceId"] == eileen and r["matches"][0]["Similarity"] > 90
               and r["frame_time"] > 0 and r["effective_threshold"] >= 80 for r in found)
    assert {r["operation"] for r in audit} >= {"CreateStreamProcessor", "StartStreamProcessor", "StopStreamProcessor"}


def test_udp_camera_and_the_threshold_raised_to_the_floor(server: Server, eileen: str, moto_s3) -> None:  # noqa: F811
    out = KinesisReader.create(kinesis_client(moto_s3.url), "yard-faces")
    processor(server, "yard-1", "yard", out, FaceMatchThreshold=10)
    started = rek(server).start_stream_processor(Name="yard-1")
    assert started["SessionId"]
    records = out.until(lambda rs: any(eileen in matched(r) for r in rs), 40, "match over UDP")
    rek(server).stop_stream_processor(Name="yard-1")
    assert all(not matched(r) for r in records if not eileen_side(r["FaceSearchResponse"][0]))
    audit = [json.loads(r["Record"]) for r in admin(server).list_audit_records(CollectionId="staff",
                                                                               MaxResults=1000)["AuditRecords"]]
    create = next(r for r in audit if r["operation"] == "CreateStreamProcessor" and r["stream_processor"] == "yard-1")
    assert create["requested_threshold"] == 10 and create["effective_threshold"] >= 80  # 10 was raised to the floor
    wait_status(server, "yard-1", "STOPPED", 10)


def test_camera_drops_and_returns_then_failed_after_the_limit(server: Server, eileen: str, cameras, moto_s3) -> None:  # noqa: F811
    out = KinesisReader.create(kinesis_client(moto_s3.url), "flaky-faces")
    processor(server, "flaky-1", "flaky", out)
    rek(server).start_stream_processor(Name="flaky-1")
    out.until(lambda rs: len(rs) >= 1, 30, "first record")
    cameras["flaky"].kill()
    time.sleep(2)
    retrying = rek(server).describe_stream_processor(Name="flaky-1")
    assert retrying["Status"] == "RUNNING"  # retrying, not failed, and saying so
    assert "camera flaky dropped" in retrying["StatusMessage"] and "reconnecting" in retrying["StatusMessage"]
    seen = len(out.poll())
    cameras["flaky"].start()  # the camera comes back (the clip from its start)
    records = out.until(lambda rs: len(rs) > seen and any(fragment(r) != fragment(rs[0]) for r in rs[seen:]), 40,
                        "record after the camera returned")
    assert {fragment(r) for r in records[seen:]} - {fragment(records[0])}
    assert "StatusMessage" not in rek(server).describe_stream_processor(Name="flaky-1")  # back: no message
    cameras["flaky"].kill()  # and now it stays away: FAILED once the limit has passed
    described = wait_status(server, "flaky-1", "FAILED", RETRY_SECONDS + 25)
    assert "unreachable" in described["StatusMessage"] and f"{RETRY_SECONDS} s" in described["StatusMessage"]


def test_a_camera_that_never_answers_fails_with_a_message(server: Server, eileen: str, moto_s3) -> None:  # noqa: F811
    out = KinesisReader.create(kinesis_client(moto_s3.url), "gone-faces")
    processor(server, "gone-1", "gone", out)
    rek(server).start_stream_processor(Name="gone-1")
    assert rek(server).describe_stream_processor(Name="gone-1")["Status"] in ("STARTING", "FAILED")
    described = wait_status(server, "gone-1", "FAILED", RETRY_SECONDS + 20)
    assert "camera gone unreachable" in described["StatusMessage"]
    rek(server).delete_stream_processor(Name="gone-1")  # a failed processor can be deleted
    names = [p["Name"] for p in rek(server).list_stream_processors()["StreamProcessors"]]
    assert "gone-1" not in names


def test_requests_rekognition_refuses(server: Server, eileen: str, moto_s3) -> None:  # noqa: F811
    out = KinesisReader.create(kinesis_client(moto_s3.url), "refusals")
    rk = rek(server)
    with pytest.raises(rk.exceptions.InvalidParameterException, match="no camera lobby"):
        processor(server, "lobby", "lobby", out)
    with pytest.raises(rk.exceptions.InvalidParameterException, match=r"nobody"):
        processor(server, "c-missing", "door", out, collection="nobody")
    arn = processor(server, "tags-1", "door", out)
    with pytest.raises(rk.exceptions.ResourceInUseException):
        processor(server, "tags-1", "door", out)
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.describe_stream_processor(Name="nope")
    with pytest.raises(rk.exceptions.InvalidParameterException, match="StartSelector"):
        rk.start_stream_processor(Name="tags-1", StopSelector={"MaxDurationInSeconds": 10})
    with pytest.raises(rk.exceptions.ResourceInUseException):
        rk.stop_stream_processor(Name="tags-1")  # not running
    rk.tag_resource(ResourceArn=arn, Tags={"site": "hq", "floor": "1"})
    rk.untag_resource(ResourceArn=arn, TagKeys=["floor"])
    assert rk.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"site": "hq"}
    rk.update_stream_processor(Name="tags-1", DataSharingPreferenceForUpdate={"OptIn": False})
    assert rk.describe_stream_processor(Name="tags-1")["DataSharingPreference"] == {"OptIn": False}
    with pytest.raises(rk.exceptions.InvalidParameterException):
        rk.update_stream_processor(Name="tags-1", SettingsForUpdate={"ConnectedHomeForUpdate": {"MinConfidence": 5}})
    processor(server, "tags-2", "door", out)
    page = rk.list_stream_processors(MaxResults=1)
    assert len(page["StreamProcessors"]) == 1 and page["NextToken"]
    rest = rk.list_stream_processors(MaxResults=1000, NextToken=page["NextToken"])["StreamProcessors"]
    names = [p["Name"] for p in page["StreamProcessors"] + rest]
    assert names == sorted(names) and {"tags-1", "tags-2"} <= set(names)
    assert {"Name": "tags-2", "Status": "STOPPED"} in rest + page["StreamProcessors"]
    for name in ("tags-1", "tags-2"):
        rk.delete_stream_processor(Name=name)
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.list_tags_for_resource(ResourceArn=arn)


def test_a_purpose_is_required_where_the_collection_says_so_and_shown_to_the_admin(
        server: Server, astronaut_jpeg: bytes, moto_s3) -> None:  # noqa: F811
    out = KinesisReader.create(kinesis_client(moto_s3.url), "purpose-faces")
    rek(server).create_collection(CollectionId="watchlist")
    rek(server).index_faces(CollectionId="watchlist", Image={"Bytes": astronaut_jpeg})
    admin(server).put_collection_policy(CollectionId="watchlist", Policy={"RequirePurpose": True})
    with pytest.raises(rek(server).exceptions.AccessDeniedException, match="purpose"):
        processor(server, "watch-1", "door", out, collection="watchlist")
    processor(server, "watch-1", "door", out, collection="watchlist", purpose="CASE-2026-117")
    shown = subprocess.run([str(BIN / "facelens"), "streams", "watchers", "--data-dir", str(server.data_dir)],
                           capture_output=True, text=True, timeout=60, env=server.env)
    assert shown.returncode == 0, shown.stderr
    (row,) = [line for line in shown.stdout.splitlines() if "watch-1" in line]
    assert "door" in row and "watchlist" in row and "CASE-2026-117" in row and ADMIN[0] in row and "STOPPED" in row


def test_server_killed_the_processor_runs_again_after_restart(
        tmp_path: Path, eileen: str, cameras, moto_s3) -> None:  # noqa: F811
    """A separate server (its own data directory) SIGKILLed while its processor runs."""
    data = tmp_path / "data"
    data.mkdir()
    write_credentials(data, CREDENTIALS)
    env = {"FACELENS_CAMERAS": f"door={cameras['door'].url}", "FACELENS_WORKERS": "1", **kinesis_env(moto_s3.url)}
    first = start_server(data, env)
    out = KinesisReader.create(kinesis_client(moto_s3.url), "restart-faces")
    try:
        rek(first).create_collection(CollectionId="staff")
        processor(first, "door-restart", "door", out)
        rek(first).start_stream_processor(Name="door-restart")
        out.until(lambda rs: len(rs) >= 1, 40, "first record")
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    seen = len(out.poll())
    second = start_server(data, env)
    with contextlib.ExitStack() as stack:
        stack.callback(second.stop)
        assert rek(second).describe_stream_processor(Name="door-restart")["Status"] in ("RUNNING", "STARTING")
        out.until(lambda rs: len(rs) > seen, 40, "record after the restart")
        wait_status(second, "door-restart", "RUNNING", 5)
        rek(second).stop_stream_processor(Name="door-restart")
        wait_status(second, "door-restart", "STOPPED", 10)


def test_replicas_on_one_database_run_each_processor_exactly_once(
        tmp_path: Path, cameras, moto_s3, astronaut_jpeg: bytes) -> None:  # noqa: F811
    """Two servers on one PostgreSQL database: one of them runs the processor; SIGKILLed, the other takes it over
    once its lease has expired, and records keep coming."""
    from tests.pg_fixtures import fresh_database

    out = KinesisReader.create(kinesis_client(moto_s3.url), "replica-faces")
    with contextlib.ExitStack() as stack:
        env = {"FACELENS_DATABASE_URL": stack.enter_context(fresh_database()), "FACELENS_WORKERS": "1",
               "FACELENS_CAMERAS": f"door={cameras['door'].url}", "FACELENS_STREAM_LEASE_SECONDS": "3",
               **kinesis_env(moto_s3.url)}
        replicas = []
        for i in range(2):
            data = tmp_path / f"replica-{i}"
            data.mkdir()
            write_credentials(data, CREDENTIALS)
            replicas.append(start_server(data, env))
            stack.callback(replicas[-1].stop)
        rek(replicas[0]).create_collection(CollectionId="staff")
        eileen = rek(replicas[0]).index_faces(CollectionId="staff", Image={"Bytes": astronaut_jpeg})[
            "FaceRecords"][0]["Face"]["FaceId"]
        processor(replicas[0], "door-shared", "door", out)
        rek(replicas[1]).start_stream_processor(Name="door-shared")
        records = out.until(lambda rs: any(eileen in matched(r) for r in rs), 40, "match through a replica")
        time.sleep(2)
        running = [s for s in replicas if "streams: running door-shared" in s.output()]
        assert len(running) == 1, [s.output()[-2000:] for s in replicas]
        assert len({fragment(r) for r in out.poll()}) == 1  # one connection: nobody else reads the camera
        (other,) = [s for s in replicas if s is not running[0]]
        running[0].process.send_signal(signal.SIGKILL)
        running[0].process.wait(10)
        seen = len(out.poll())
        records = out.until(lambda rs: len(rs) > seen, 40, "record after the replica died")
        assert "streams: running door-shared" in other.output()
        assert fragment(records[-1]) != fragment(records[0])
        assert rek(other).describe_stream_processor(Name="door-shared")["Status"] == "RUNNING"
        rek(other).stop_stream_processor(Name="door-shared")
        wait_status(other, "door-shared", "STOPPED", 10)
