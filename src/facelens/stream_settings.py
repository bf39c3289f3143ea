"""Live-video settings (stream processors, docs/streams.md), parsed once with the rest by
`facelens.config.ServerSettings.from_env`: the cameras of `FACELENS_CAMERAS`, the Kinesis endpoint and the
stream processors' sampling, retry limit, lease and number per server. Kept apart from `config.py` only for its
length; it reads no environment of its own (it is handed `config`'s mapping).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

CAMERA_SCHEMES = ("rtsp://", "rtsp+tcp://", "rtsp+udp://", "rtsps://", "http://", "https://")


def _cameras(raw: str | None) -> dict[str, str]:
    """FACELENS_CAMERAS: `NAME=URL;NAME=URL`. NAME is the stream name of a Kinesis Video ARN
    (`arn:aws:kinesisvideo:REGION:ACCOUNT:stream/NAME/...`); URL is rtsp:// (TCP), rtsp+udp:// (UDP),
    rtsp+tcp://, rtsps://, http(s):// or a file path."""
    from facelens.config import ConfigError

    cameras: dict[str, str] = {}
    for entry in (raw or "").split(";"):
        if not entry.strip():
            continue
        name, sep, url = entry.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or not url:
            raise ConfigError(f"FACELENS_CAMERAS: {entry.strip()!r} is not NAME=URL")
        if not all(c.isalnum() or c in "_.-" for c in name):
            raise ConfigError(f"FACELENS_CAMERAS: camera name {name!r} may hold only letters, digits, _ . -")
        if name in cameras:
            raise ConfigError(f"FACELENS_CAMERAS: camera {name} is named twice")
        if "://" in url and not url.startswith(CAMERA_SCHEMES):
            raise ConfigError(f"FACELENS_CAMERAS: {name}={url}: the URL must be rtsp://, rtsp+udp://, rtsps://, "
                              "http(s):// or a file path")
        cameras[name] = url
    return cameras


@dataclass(frozen=True)
class StreamSettings:
    """Live video (stream processors, docs/streams.md): the cameras a Kinesis Video ARN's stream name stands
    for, the Kinesis Data Streams endpoint results are written to (None: stream processors are refused), the
    sampling interval, how long a camera may stay unreachable before its processor FAILS, the processors' lease
    (one replica runs each) and how many one server runs at most."""

    cameras: Mapping[str, str] = field(default_factory=dict)  # FACELENS_CAMERAS
    kinesis_endpoint_url: str | None = None  # FACELENS_KINESIS_ENDPOINT_URL
    kinesis_access_key_id: str | None = field(default=None, repr=False)  # FACELENS_KINESIS_ACCESS_KEY_ID
    kinesis_secret_access_key: str | None = field(default=None, repr=False)  # FACELENS_KINESIS_SECRET_ACCESS_KEY
    kinesis_region: str | None = None  # FACELENS_KINESIS_REGION
    interval_ms: int = 200  # FACELENS_STREAM_INTERVAL_MS
    retry_seconds: float = 60.0  # FACELENS_STREAM_RETRY_SECONDS
    lease_seconds: float = 15.0  # FACELENS_STREAM_LEASE_SECONDS
    max_running: int = 8  # FACELENS_STREAM_MAX_RUNNING

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StreamSettings:
        from facelens.config import _float, _int

        return cls(cameras=_cameras(env.get("FACELENS_CAMERAS")),
                   kinesis_endpoint_url=env.get("FACELENS_KINESIS_ENDPOINT_URL") or None,
                   kinesis_access_key_id=env.get("FACELENS_KINESIS_ACCESS_KEY_ID") or None,
                   kinesis_secret_access_key=env.get("FACELENS_KINESIS_SECRET_ACCESS_KEY") or None,
                   kinesis_region=env.get("FACELENS_KINESIS_REGION") or None,
                   interval_ms=_int(env, "FACELENS_STREAM_INTERVAL_MS", 200, minimum=1),
                   retry_seconds=_float(env, "FACELENS_STREAM_RETRY_SECONDS", 60.0),
                   lease_seconds=_float(env, "FACELENS_STREAM_LEASE_SECONDS", 15.0),
                   max_running=_int(env, "FACELENS_STREAM_MAX_RUNNING", 8, minimum=1))
