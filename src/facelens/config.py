"""Server settings: command-line flags over `FACELENS_*` environment variables over defaults.

| setting          | flag         | environment                  | default       |
|------------------|--------------|------------------------------|---------------|
| host             | --host       | FACELENS_HOST                | 127.0.0.1     |
| port             | --port       | FACELENS_PORT                | 8080          |
| data_dir         | --data-dir   | FACELENS_DATA_DIR            | ./data        |
| access keys      |              | FACELENS_ACCESS_KEYS         | data_dir/credentials (generated) |
| workers          |              | FACELENS_WORKERS             | cores         |
| threads/session  |              | FACELENS_THREADS             | 1             |
| queue            |              | FACELENS_QUEUE               | 64            |
| body limit       |              | FACELENS_MAX_BODY_BYTES      | 16 MiB        |
| S3 endpoint      |              | FACELENS_S3_ENDPOINT_URL     | AWS S3        |
| S3 credentials   |              | FACELENS_S3_ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _REGION | boto3's chain |
| region           |              | FACELENS_REGION              | any           |
| model warm-up    |              | FACELENS_WARMUP              | 1             |
| shutdown grace   |              | FACELENS_SHUTDOWN_TIMEOUT    | 30 s          |
| admin keys       |              | FACELENS_ADMIN_KEYS          | (credentials file: facelens_admin) |
| search floor     |              | FACELENS_MIN_SEARCH_SIMILARITY | 80          |
| false matches    |              | FACELENS_MAX_FALSE_MATCH_PROBABILITY | 0.01  |
| compare floor    |              | FACELENS_MIN_COMPARE_SIMILARITY | 70         |
| purpose required |              | FACELENS_REQUIRE_PURPOSE     | 0             |
| retention sweep  |              | FACELENS_RETENTION_INTERVAL  | 3600 s        |
| metadata store   |              | FACELENS_DATABASE_URL        | SQLite in data_dir/collections |
| vector store     |              | FACELENS_VECTOR_URL          | FAISS in the process |
| local videos     |              | FACELENS_VIDEO_DIR           | data_dir/videos |
| video job threads|              | FACELENS_VIDEO_WORKERS       | 1             |
| video sampling   |              | FACELENS_VIDEO_INTERVAL_MS   | 200           |
| job notices      |              | FACELENS_VIDEO_WEBHOOK_URL   | none          |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from facelens.accountability.policy import Policy, PolicyError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DATA_DIR = "./data"
# Two 5 MiB images base64-encoded (CompareFaces) plus JSON framing fit; anything larger is refused unread.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, not {value}")
    return value


def _policy(env: Mapping[str, str]) -> Policy:
    try:
        return Policy.from_env(env)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class S3Settings:
    """Where `Image.S3Object` is read from: an S3-compatible endpoint (None: AWS S3 itself)."""

    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings:
        return cls(
            endpoint_url=env.get("FACELENS_S3_ENDPOINT_URL") or None,
            access_key_id=env.get("FACELENS_S3_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("FACELENS_S3_SECRET_ACCESS_KEY") or None,
            region=env.get("FACELENS_S3_REGION") or None,
        )


@dataclass(frozen=True)
class ServerSettings:
    """Everything `facelens serve` needs to know; immutable once built."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    access_keys: str | None = field(default=None, repr=False)  # FACELENS_ACCESS_KEYS, "ID:SECRET[,ID:SECRET]"
    workers: int = 2
    threads: int = 1  # onnxruntime threads per model session: the service parallelises across requests
    queue: int = 64
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    region: str | None = None
    warmup: bool = True
    shutdown_timeout: int = 30
    s3: S3Settings = field(default_factory=S3Settings)
    admin_keys: str | None = None  # FACELENS_ADMIN_KEYS: key ids (of FACELENS_ACCESS_KEYS) that are admin keys
    policy: Policy = field(default_factory=Policy)  # server-wide defaults of collections without their own
    retention_interval: float = 3600.0  # seconds between retention sweeps
    video_dir: Path | None = None  # local videos (bucket facelens-local); None: data_dir/videos
    video_workers: int = 1
    video_interval_ms: int = 200
    video_webhook_url: str | None = None  # SNS-shaped job completion notices are POSTed here

    @property
    def videos_dir(self) -> Path:
        """Where local videos (bucket `facelens-local`) are read from: FACELENS_VIDEO_DIR, else data_dir/videos."""
        return self.video_dir or self.data_dir / "videos"

    @property
    def collections_dir(self) -> Path:
        """Where the collection store (SQLite database, vector indexes) lives under the data directory."""
        return self.data_dir / "collections"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServerSettings:
        """Settings from the environment; keyword overrides (command-line flags) win when not None."""
        env = os.environ if env is None else env
        settings = cls(
            host=env.get("FACELENS_HOST") or DEFAULT_HOST,
            port=_int(env, "FACELENS_PORT", DEFAULT_PORT),
            data_dir=Path(env.get("FACELENS_DATA_DIR") or DEFAULT_DATA_DIR),
            access_keys=env.get("FACELENS_ACCESS_KEYS") or None,
            workers=_int(env, "FACELENS_WORKERS", os.cpu_count() or 1, minimum=1),
            threads=_int(env, "FACELENS_THREADS", 1),
            queue=_int(env, "FACELENS_QUEUE", 64),
            max_body_bytes=_int(env, "FACELENS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024),
            region=env.get("FACELENS_REGION") or None,
            warmup=_flag(env, "FACELENS_WARMUP", True),
            shutdown_timeout=_int(env, "FACELENS_SHUTDOWN_TIMEOUT", 30),
            s3=S3Settings.from_env(env),
            admin_keys=env.get("FACELENS_ADMIN_KEYS") or None,
            policy=_policy(env),
            retention_interval=_float(env, "FACELENS_RETENTION_INTERVAL", 3600.0),
            video_dir=Path(env["FACELENS_VIDEO_DIR"]) if env.get("FACELENS_VIDEO_DIR") else None,
            video_workers=_int(env, "FACELENS_VIDEO_WORKERS", 1, minimum=1),
            video_interval_ms=_int(env, "FACELENS_VIDEO_INTERVAL_MS", 200, minimum=1),
            video_webhook_url=env.get("FACELENS_VIDEO_WEBHOOK_URL") or None,
        )
        given = {key: value for key, value in overrides.items() if value is not None}
        if "data_dir" in given:
            given["data_dir"] = Path(given["data_dir"])  # type: ignore[arg-type]
        settings = replace(settings, **given)  # type: ignore[arg-type]
        if not 0 <= settings.port <= 65535:
            raise ConfigError(f"port must be 0..65535, not {settings.port}")
        return settings
