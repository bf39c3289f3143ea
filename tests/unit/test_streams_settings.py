"""Stream settings and names: FACELENS_CAMERAS parsed once (bad entries refused with the reason), the camera a
Kinesis Video ARN names, the data stream a Kinesis ARN names, and how each camera URL is opened."""

from __future__ import annotations

import pytest

from facelens.config import ConfigError, ServerSettings
from facelens.kinesis import stream_name
from facelens.store.streams import camera_name
from facelens.video.live import open_args


def test_cameras_are_parsed_once_into_the_settings() -> None:
    settings = ServerSettings.from_env({"FACELENS_CAMERAS": " door=rtsp://10.0.0.5/live ; yard=rtsp+udp://cam/1;"
                                                            "lobby=/srv/clips/lobby.mp4;web=https://cam/stream",
                                        "FACELENS_STREAM_RETRY_SECONDS": "30"})
    assert dict(settings.streams.cameras) == {"door": "rtsp://10.0.0.5/live", "yard": "rtsp+udp://cam/1",
                                              "lobby": "/srv/clips/lobby.mp4", "web": "https://cam/stream"}
    assert settings.streams.retry_seconds == 30 and settings.streams.interval_ms == 200
    assert settings.streams.kinesis_endpoint_url is None  # no Kinesis: processors are refused at Create


@pytest.mark.parametrize(("value", "reason"), [
    ("door", "not NAME=URL"), ("door=", "not NAME=URL"), ("do or=rtsp://x", "letters"),
    ("door=rtsp://a;door=rtsp://b", "named twice"), ("door=ftp://cam/1", "must be rtsp"),
])
def test_bad_camera_entries_are_refused_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        ServerSettings.from_env({"FACELENS_CAMERAS": value})


def test_names_in_arns() -> None:
    assert camera_name("arn:aws:kinesisvideo:us-east-1:123456789012:stream/door/1700000000000") == "door"
    assert camera_name("arn:aws:kinesisvideo:us-east-1:123456789012:stream/door") == "door"
    assert camera_name("arn:aws:kinesisvideo:us-east-1:123456789012:channel/door/1") is None
    assert camera_name("arn:aws:kinesis:us-east-1:123456789012:stream/door") is None
    assert stream_name("arn:aws:kinesis:us-east-1:123456789012:stream/faces") == "faces"
    assert stream_name("arn:aws:kinesisvideo:us-east-1:123456789012:stream/faces/1") is None


def test_camera_urls_are_opened_with_their_transport() -> None:
    assert open_args("rtsp://cam/1") == ("rtsp://cam/1", {"rtsp_transport": "tcp"}, False)
    assert open_args("rtsp+udp://cam/1") == ("rtsp://cam/1", {"rtsp_transport": "udp"}, False)
    assert open_args("rtsp+tcp://cam/1") == ("rtsp://cam/1", {"rtsp_transport": "tcp"}, False)
    assert open_args("https://cam/live.m3u8") == ("https://cam/live.m3u8", {}, False)
    assert open_args("/srv/lobby.mp4") == ("/srv/lobby.mp4", {}, True)  # a file plays at its own pace
