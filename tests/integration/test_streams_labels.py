"""ConnectedHome (label detection) stream processors end to end: a real `facelens serve`, boto3, an RTSP camera
(GStreamer) serving a clip with a person and then a cat at known times, S3 on moto, notices on a webhook.

What a user sees: one LABEL_DETECTED notice per label of interest, at its first sighting's offset, with the frame
and the crop in S3; the session ends after its MaxDurationInSeconds with a STREAM_PROCESSING_COMPLETE notice and
a summary; what FaceLens cannot detect (PACKAGE) or replay (a FragmentNumber) is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from skimage import data

from tests.service_fixtures import BUCKET, REGION, Server, client, moto_s3, s3_env, start_server  # noqa: F401
from tests.stream_fixtures import Camera, render_scenes
from tests.video_fixtures import Webhook, webhook  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::123456789012:role/facelens"
TOPIC = "arn:aws:sns:us-east-1:123456789012:doorbell"
PERSON_ON, PET_ON = (2.0, 6.0), (4.0, 8.0)
KEY = ("FLKTESTKEY0000000001", "test-secret-do-not-use")


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Camera]:
    person = cv2.resize(data.astronaut(), (300, 300))
    cat = cv2.resize(data.chelsea(), (280, 210))
    clip = render_scenes(tmp_path_factory.mktemp("labels") / "porch.mp4",
                         [(person, (20, 40, 320, 340), PERSON_ON), (cat, (340, 100, 620, 310), PET_ON)])
    started = Camera(clip).start()
    yield started
    started.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, camera: Camera, moto_s3, webhook: Webhook) -> Iterator[Server]:  # noqa: F811
    env = {"FACELENS_ACCESS_KEYS": f"{KEY[0]}:{KEY[1]}", "FACELENS_CAMERAS": f"porch={camera.url}",
           "FACELENS_VIDEO_WEBHOOK_URL": webhook.url, "FACELENS_WORKERS": "2", **s3_env(moto_s3)}
    server = start_server(tmp_path_factory.mktemp("labels-server") / "data", env)
    yield server
    server.stop()


def create(server: Server, name: str, labels: list[str], **extra) -> dict:
    return client(server.url, *KEY).create_stream_processor(
        Name=name, RoleArn=ROLE, NotificationChannel={"SNSTopicArn": TOPIC},
        Input={"KinesisVideoStream": {"Arn": f"arn:aws:kinesisvideo:{REGION}:123456789012:stream/porch/1"}},
        Output={"S3Destination": {"Bucket": BUCKET, "KeyPrefix": "porch-events"}},
        Settings={"ConnectedHome": {"Labels": labels, "MinConfidence": 60}}, **extra)


def messages(hook: Webhook, session_id: str) -> list[dict]:
    return [json.loads(n["Message"]) for n in hook.received if json.loads(n["Message"])["sessionId"] == session_id]


def test_person_and_pet_are_noticed_once_at_their_first_sighting(server: Server, moto_s3, webhook: Webhook) -> None:  # noqa: F811
    rek = client(server.url, *KEY)
    create(server, "porch-1", ["PERSON", "PET"], Tags={"home": "42"})
    described = rek.describe_stream_processor(Name="porch-1")
    assert described["Settings"]["ConnectedHome"] == {"Labels": ["PERSON", "PET"], "MinConfidence": 60}
    session = rek.start_stream_processor(Name="porch-1", StopSelector={"MaxDurationInSeconds": 10})["SessionId"]
    deadline = time.monotonic() + 40
    while not any(m["eventNamespace"]["type"] == "STREAM_PROCESSING_COMPLETE" for m in messages(webhook, session)):
        assert time.monotonic() < deadline, messages(webhook, session)
        time.sleep(0.5)
    assert rek.describe_stream_processor(Name="porch-1")["Status"] == "STOPPED"  # after MaxDurationInSeconds
    notices = messages(webhook, session)
    detected = [m for m in notices if m["eventNamespace"]["type"] == "LABEL_DETECTED"]
    labels = {m["labels"][0]["name"]: m["labels"][0] for m in detected}
    assert sorted(labels) == ["PERSON", "PET"] and len(detected) == 2  # once each, though seen for seconds
    offsets = {name: label["videoMapping"]["kinesisVideoMapping"]["frameOffsetMillis"] for name, label in
               labels.items()}
    assert PERSON_ON[0] * 1000 <= offsets["PERSON"] <= PERSON_ON[0] * 1000 + 800, offsets
    assert PET_ON[0] * 1000 <= offsets["PET"] <= PET_ON[0] * 1000 + 800, offsets
    assert labels["PERSON"]["boundingBox"]["left"] < 0.5 < labels["PET"]["boundingBox"]["left"]
    assert all(m["tags"] == {"home": "42"} and m["inputInformation"]["kinesisVideo"]["streamArn"].endswith(
        "stream/porch/1") for m in notices)
    s3 = moto_s3.client()
    for label in labels.values():
        assert label["frameImageUri"].startswith(f"s3://{BUCKET}/porch-events/porch-1/{session}/")
        key = label["frameImageUri"].removeprefix(f"s3://{BUCKET}/")
        frame = cv2.imdecode(np.frombuffer(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read(), np.uint8), 1)
        assert frame.shape == (360, 640, 3)
        crop_key = label["croppedImageUri"].removeprefix(f"s3://{BUCKET}/")
        crop = cv2.imdecode(np.frombuffer(s3.get_object(Bucket=BUCKET, Key=crop_key)["Body"].read(), np.uint8), 1)
        assert 100 < crop.shape[0] < 360 and 100 < crop.shape[1] < 640
    (complete,) = [m for m in notices if m["eventNamespace"]["type"] == "STREAM_PROCESSING_COMPLETE"]
    assert 9000 <= complete["inputInformation"]["kinesisVideo"]["processedVideoDurationMillis"] <= 11000
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=f"porch-events/porch-1/{session}/summary.json")[
        "Body"].read())
    assert {label["name"] for label in summary["labels"]} == {"PERSON", "PET"}


def test_what_cannot_be_detected_or_replayed_is_refused(server: Server) -> None:
    rek = client(server.url, *KEY)
    with pytest.raises(rek.exceptions.InvalidParameterException, match="PACKAGE"):
        create(server, "porch-2", ["PACKAGE"])
    with pytest.raises(rek.exceptions.InvalidParameterException, match="NotificationChannel"):
        rek.create_stream_processor(
            Name="porch-3", RoleArn=ROLE,
            Input={"KinesisVideoStream": {"Arn": f"arn:aws:kinesisvideo:{REGION}:123456789012:stream/porch/1"}},
            Output={"S3Destination": {"Bucket": BUCKET}}, Settings={"ConnectedHome": {"Labels": ["PET"]}})
    create(server, "porch-4", ["ALL"])
    with pytest.raises(rek.exceptions.InvalidParameterException, match="FragmentNumber"):
        rek.start_stream_processor(Name="porch-4", StartSelector={"KVSStreamStartSelector": {"FragmentNumber": "1"}})
    rek.update_stream_processor(Name="porch-4", SettingsForUpdate={"ConnectedHomeForUpdate": {"MinConfidence": 75}})
    assert rek.describe_stream_processor(Name="porch-4")["Settings"]["ConnectedHome"]["MinConfidence"] == 75
    rek.update_stream_processor(Name="porch-4", ParametersToDelete=["ConnectedHomeMinConfidence"])
    assert "MinConfidence" not in rek.describe_stream_processor(Name="porch-4")["Settings"]["ConnectedHome"]
    rek.delete_stream_processor(Name="porch-4")
