"""Server settings: command-line flags over `FACELENS_*` environment variables over defaults.

Parsed once, by `ServerSettings.from_env`, into a frozen tree (`.store`, `.models`, `.s3`, `.policy`); no module
below this one reads the environment.

| setting          | flag         | environment                  | default       |
|------------------|--------------|------------------------------|---------------|
| host             | --host       | FACELENS_HOST                | 127.0.0.1     |
| port             | --port       | FACELENS_PORT                | 8080          |
| data_dir         | --data-dir   | FACELENS_DATA_DIR            | ./data        |
| access keys      |              | FACELENS_ACCESS_KEYS         | data_dir/credentials (generated) |
| workers          |              | FACELENS_WORKERS             | cores         |
| threads/session  |              | FACELENS_THREADS             | 1 (also models.threads) |
| queue            |              | FACELENS_QUEUE               | 64            |
| body limit       |              | FACELENS_MAX_BODY_BYTES      | 16 MiB        |
| S3 endpoint      |              | FACELENS_S3_ENDPOINT_URL     | none: S3Object refused |
| S3 credentials   |              | FACELENS_S3_ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _REGION | boto3's chain, no IMDS |
| region           |              | FACELENS_REGION              | any (ARNs: us-east-1) |
| account (ARNs)   |              | FACELENS_ACCOUNT_ID          | 000000000000  |
| model warm-up    |              | FACELENS_WARMUP              | 1             |
| shutdown grace   |              | FACELENS_SHUTDOWN_TIMEOUT    | 30 s          |
| header deadline  |              | FACELENS_HEADER_TIMEOUT      | 10 s          |
| body deadline    |              | FACELENS_BODY_TIMEOUT        | 30 s          |
| client sockets   |              | FACELENS_MAX_CONNECTIONS     | fd limit less a reserve |
| admin keys       |              | FACELENS_ADMIN_KEYS          | (credentials file: facelens_admin) |
| search floor     |              | FACELENS_MIN_SEARCH_SIMILARITY | 80          |
| false matches    |              | FACELENS_MAX_FALSE_MATCH_PROBABILITY | 0.01  |
| compare floor    |              | FACELENS_MIN_COMPARE_SIMILARITY | 70         |
| purpose required |              | FACELENS_REQUIRE_PURPOSE     | 0             |
| purpose pattern  |              | FACELENS_PURPOSE_PATTERN     | none          |
| calibration      |              | FACELENS_CALIBRATION         | conservative (or pooled, or a table's path) |
| retention sweep  |              | FACELENS_RETENTION_INTERVAL  | 3600 s        |
| audit head noted |              | FACELENS_AUDIT_ANCHOR_INTERVAL | 60 s (log, fsync, witnesses) |
| audit S3 witness |              | FACELENS_AUDIT_WITNESS_S3    | none (s3://bucket/prefix) |
| audit webhook    |              | FACELENS_AUDIT_WITNESS_URL   | none          |
| metadata store   |              | FACELENS_DATABASE_URL        | SQLite in data_dir/collections |
| vector store     |              | FACELENS_VECTOR_URL          | FAISS in the process |
| FAISS index      |              | FACELENS_VECTOR_INDEX        | auto          |
| FAISS search threads |          | FACELENS_FAISS_SEARCH_THREADS | 1            |
| video job lease  |              | FACELENS_VIDEO_LEASE_SECONDS | 60 s          |
| local videos     |              | FACELENS_VIDEO_DIR           | data_dir/videos |
| video job threads|              | FACELENS_VIDEO_WORKERS       | 1             |
| video sampling   |              | FACELENS_VIDEO_INTERVAL_MS   | 200           |
| job notices      |              | FACELENS_VIDEO_WEBHOOK_URL   | none          |
| models file      |              | FACELENS_CONFIG              | none (TOML, [models] detector/recognizer) |
| detector model   |              | FACELENS_DETECTOR_MODEL      | bundled YuNet |
| recognizer model |              | FACELENS_RECOGNIZER_MODEL    | bundled SFace |
| model runtime    |              | FACELENS_RUNTIME             | auto (OpenVINO on CPU, onnxruntime CUDA on a GPU) |
| ORT providers    |              | FACELENS_ORT_PROVIDERS       | CUDA if present, CPU |
| ORT spinning     |              | FACELENS_ORT_SPIN            | 0             |
| flip TTA         |              | FACELENS_FLIP_TTA            | 0             |
| caches           |              | FACELENS_CACHE               | ~/.cache/facelens (prepared models, embeddings) |
| npm model tarballs |            | FACELENS_NPM_DIR             | sys.prefix/share/facelens/npm (`make install`) |
| cameras          |              | FACELENS_CAMERAS             | none (`NAME=URL;NAME=URL`, docs/streams.md) |
| Kinesis endpoint |              | FACELENS_KINESIS_ENDPOINT_URL | none: stream processors refused |
| Kinesis credentials |           | FACELENS_KINESIS_ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _REGION | boto3's chain |
| stream sampling  |              | FACELENS_STREAM_INTERVAL_MS  | 200           |
| camera retry limit |            | FACELENS_STREAM_RETRY_SECONDS | 60 s (then FAILED) |
| processor lease  |              | FACELENS_STREAM_LEASE_SECONDS | 15 s          |
| processors/server |             | FACELENS_STREAM_MAX_RUNNING  | 8             |
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from facelens.accountability.policy import Policy, PolicyError
from facelens.models.registry import RUNTIMES, ModelConfig, ModelNotFoundError, existing_model
from facelens.stream_settings import StreamSettings

# onnxruntime 1.30 reports usage to Microsoft (mobile.events.data.microsoft.com) and keeps a device id under
# ~/.cache/Microsoft from its import on, unless this is set first (`disable_telemetry_events()` does not stop
# it); `facelens/__init__.py` imports this module before anything can import onnxruntime (docs/models.md).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

if TYPE_CHECKING:
    from facelens.store.vectors import VectorConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DATA_DIR = "./data"
# Two 5 MiB images base64-encoded (CompareFaces) plus JSON framing fit; anything larger is refused unread.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_ACCOUNT = "000000000000"
DEFAULT_ARN_REGION = "us-east-1"
DEFAULT_JOB_LEASE_SECONDS = 60.0  # = facelens.store.jobs.LEASE_SECONDS (checked by tests/unit/test_config.py)


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


def _account(env: Mapping[str, str]) -> str:
    account = (env.get("FACELENS_ACCOUNT_ID") or "").strip() or DEFAULT_ACCOUNT
    if not (len(account) == 12 and account.isdigit()):
        raise ConfigError(f"FACELENS_ACCOUNT_ID must be 12 digits, not {account!r}")
    return account


@dataclass(frozen=True)
class S3Settings:
    """Where `Image.S3Object` and `Video.S3Object` are read from: an S3-compatible endpoint (None: S3 is not
    configured and every S3Object is refused without a network call; for AWS S3 name its endpoint)."""

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
class AuditSettings:
    """Where the audit chain's head is noted outside the database (`facelens.accountability.anchors`): the data
    directory's anchor file always; every `anchor_interval` seconds the log and the witnesses configured."""

    anchor_interval: float = 60.0  # FACELENS_AUDIT_ANCHOR_INTERVAL: seconds between heads logged and witnessed
    witness_s3: str | None = None  # FACELENS_AUDIT_WITNESS_S3: s3://bucket[/prefix] on the S3 endpoint (S3Settings)
    witness_url: str | None = None  # FACELENS_AUDIT_WITNESS_URL: each head POSTed as JSON

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuditSettings:
        from facelens.accountability.anchors import split_s3_url

        settings = cls(anchor_interval=_float(env, "FACELENS_AUDIT_ANCHOR_INTERVAL", 60.0),
                       witness_s3=(env.get("FACELENS_AUDIT_WITNESS_S3") or "").strip() or None,
                       witness_url=(env.get("FACELENS_AUDIT_WITNESS_URL") or "").strip() or None)
        if settings.witness_s3:
            try:
                split_s3_url(settings.witness_s3)
            except ValueError as exc:
                raise ConfigError(f"FACELENS_AUDIT_WITNESS_S3: {exc}") from None
        if settings.witness_url and not settings.witness_url.startswith(("http://", "https://")):
            raise ConfigError(f"FACELENS_AUDIT_WITNESS_URL must be an http(s) URL, not {settings.witness_url!r}")
        return settings


@dataclass(frozen=True)
class ConnectionSettings:
    """Client connections (facelens.api.connections): seconds for a request's headers (from the connection's
    start or its last response) and for its body (from its headers); the most open client sockets (None: the
    file-descriptor limit less a reserve; a larger number is lowered to that)."""

    header_timeout: float = 10.0  # FACELENS_HEADER_TIMEOUT
    body_timeout: float = 30.0  # FACELENS_BODY_TIMEOUT
    max_connections: int | None = None  # FACELENS_MAX_CONNECTIONS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectionSettings:
        cap = _int(env, "FACELENS_MAX_CONNECTIONS", 0, minimum=0)
        return cls(header_timeout=_float(env, "FACELENS_HEADER_TIMEOUT", 10.0),
                   body_timeout=_float(env, "FACELENS_BODY_TIMEOUT", 30.0), max_connections=cap or None)


def _calibration(value: str | None) -> str | None:
    """FACELENS_CALIBRATION: `conservative`, `pooled`, or the path of an existing table."""
    value = (value or "").strip()
    if value in ("", "conservative", "pooled"):
        return value or None
    if not Path(value).expanduser().is_file():
        raise ConfigError(f"FACELENS_CALIBRATION {value!r} is neither conservative, pooled nor a table file")
    return str(Path(value).expanduser())


def models_from_env(env: Mapping[str, str] | None = None) -> ModelConfig:
    """Which models to load and how their sessions run, from FACELENS_DETECTOR_MODEL / FACELENS_RECOGNIZER_MODEL
    (else the `[models]` table of the TOML file FACELENS_CONFIG names), FACELENS_ORT_PROVIDERS (comma-separated),
    FACELENS_THREADS (default 0: the runtime's), FACELENS_RUNTIME, FACELENS_ORT_SPIN and FACELENS_FLIP_TTA. A
    named model file that does not exist is ModelNotFoundError; any other bad value ConfigError."""
    env = os.environ if env is None else env
    table: dict[str, object] = {}
    config_file = env.get("FACELENS_CONFIG")
    if config_file:
        try:
            with open(config_file, "rb") as handle:
                table = tomllib.load(handle).get("models", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"FACELENS_CONFIG {config_file}: {exc}") from None
    detector = env.get("FACELENS_DETECTOR_MODEL") or table.get("detector")
    recognizer = env.get("FACELENS_RECOGNIZER_MODEL") or table.get("recognizer")
    for kind, value in (("detector", detector), ("recognizer", recognizer)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"FACELENS_CONFIG [models] {kind} must be a path, not {value!r}")
    names = tuple(name.strip() for name in (env.get("FACELENS_ORT_PROVIDERS") or "").split(",") if name.strip())
    runtime = (env.get("FACELENS_RUNTIME") or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise ConfigError(f"FACELENS_RUNTIME must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    return ModelConfig(
        detector=existing_model(detector, "detector") if detector else None,
        recognizer=existing_model(recognizer, "recognizer") if recognizer else None,
        providers=names or None,
        threads=_int(env, "FACELENS_THREADS", 0),
        spin=_flag(env, "FACELENS_ORT_SPIN", False),
        flip=_flag(env, "FACELENS_FLIP_TTA", False),
        cache_dir=EvalSettings.from_env(env).cache_dir / "models",
        runtime=runtime,
        npm_dir=Path(env["FACELENS_NPM_DIR"]) if env.get("FACELENS_NPM_DIR") else None,
    )


@dataclass(frozen=True)
class StoreSettings:
    """Where collections live: the metadata database (None: SQLite under the data directory) and the vector
    store (None: FAISS in the process), with the FAISS index choice and the video job lease."""

    database_url: str | None = None  # FACELENS_DATABASE_URL: sqlite:///DIR or postgresql://...
    vector_url: str | None = None  # FACELENS_VECTOR_URL: faiss: or milvus://host:port[?index=...]
    vector_index: str = "auto"  # FACELENS_VECTOR_INDEX: auto[:<faces>[:<factory>]] or a FAISS factory string
    faiss_search_threads: int = 1  # FACELENS_FAISS_SEARCH_THREADS: OpenMP threads per search
    job_lease_seconds: float = DEFAULT_JOB_LEASE_SECONDS  # FACELENS_VIDEO_LEASE_SECONDS: an unrenewed claim's life

    @property
    def shared(self) -> bool:
        """Whether other servers may use the same database (PostgreSQL), so local state is not trusted alone."""
        from facelens.store.open import is_shared

        return is_shared(self.database_url)

    def vector_config(self) -> VectorConfig:
        """The FAISS `facelens.store.vectors.VectorConfig` these settings name."""
        from facelens.store.vectors import VectorConfig

        return VectorConfig.parse(self.vector_index, self.faiss_search_threads)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreSettings:
        from facelens.store.open import database_kind

        settings = cls(
            database_url=env.get("FACELENS_DATABASE_URL") or None,
            vector_url=env.get("FACELENS_VECTOR_URL") or None,
            vector_index=(env.get("FACELENS_VECTOR_INDEX") or "").strip() or "auto",
            faiss_search_threads=_int(env, "FACELENS_FAISS_SEARCH_THREADS", 1, minimum=1),
            job_lease_seconds=_float(env, "FACELENS_VIDEO_LEASE_SECONDS", DEFAULT_JOB_LEASE_SECONDS),
        )
        try:
            database_kind(settings.database_url)
        except ValueError as exc:
            raise ConfigError(f"FACELENS_DATABASE_URL: {exc}") from None
        try:
            settings.vector_config()
        except ValueError as exc:
            raise ConfigError(f"FACELENS_VECTOR_INDEX: {exc}") from None
        return settings


DEFAULT_LFW = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lfw"  # ../shared beside the checkout


@dataclass(frozen=True)
class EvalSettings:
    """Where `facelens eval`, `facelens calibrate` and the accuracy benchmarks find LFW and keep embeddings."""

    lfw: Path = DEFAULT_LFW  # FACELENS_LFW
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "facelens")  # FACELENS_CACHE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EvalSettings:
        env = os.environ if env is None else env
        default = cls()
        return cls(lfw=Path(env.get("FACELENS_LFW") or default.lfw),
                   cache_dir=Path(env.get("FACELENS_CACHE") or default.cache_dir))


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
    region: str | None = None  # FACELENS_REGION: the one region SigV4 accepts; None: any (see arn_region)
    account: str = DEFAULT_ACCOUNT  # FACELENS_ACCOUNT_ID: the account in collection ARNs
    warmup: bool = True
    shutdown_timeout: int = 30
    s3: S3Settings = field(default_factory=S3Settings)
    connections: ConnectionSettings = field(default_factory=ConnectionSettings)
    admin_keys: str | None = None  # FACELENS_ADMIN_KEYS: key ids (of FACELENS_ACCESS_KEYS) that are admin keys
    policy: Policy = field(default_factory=Policy)  # server-wide defaults of collections without their own
    retention_interval: float = 3600.0  # seconds between retention sweeps
    audit: AuditSettings = field(default_factory=AuditSettings)  # anchors and witnesses of the audit chain
    video_dir: Path | None = None  # local videos (bucket facelens-local); None: data_dir/videos
    video_workers: int = 1
    video_interval_ms: int = 200
    video_webhook_url: str | None = None  # SNS-shaped job completion notices are POSTed here
    calibration: str | None = None  # FACELENS_CALIBRATION: conservative (None), pooled, or a site table's path
    store: StoreSettings = field(default_factory=StoreSettings)
    models: ModelConfig = field(default_factory=ModelConfig)  # its threads are always this `threads`
    console_session_seconds: float = 1800.0  # FACELENS_CONSOLE_SESSION_SECONDS: a console session's idle expiry
    streams: StreamSettings = field(default_factory=StreamSettings)  # cameras and stream processors

    def __post_init__(self) -> None:
        # The service's model sessions run with its own thread count (FACELENS_THREADS, default 1).
        if self.models.threads != self.threads:
            object.__setattr__(self, "models", replace(self.models, threads=self.threads))

    @property
    def arn_region(self) -> str:
        """The region written into ARNs: FACELENS_REGION, else us-east-1."""
        return self.region or DEFAULT_ARN_REGION

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
        try:
            models = models_from_env(env)
        except ModelNotFoundError as exc:  # named by FACELENS_DETECTOR_MODEL, _RECOGNIZER_MODEL or FACELENS_CONFIG
            raise ConfigError(str(exc)) from None
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
            account=_account(env),
            warmup=_flag(env, "FACELENS_WARMUP", True),
            shutdown_timeout=_int(env, "FACELENS_SHUTDOWN_TIMEOUT", 30),
            s3=S3Settings.from_env(env),
            connections=ConnectionSettings.from_env(env),
            admin_keys=env.get("FACELENS_ADMIN_KEYS") or None,
            policy=_policy(env),
            retention_interval=_float(env, "FACELENS_RETENTION_INTERVAL", 3600.0),
            audit=AuditSettings.from_env(env),
            video_dir=Path(env["FACELENS_VIDEO_DIR"]) if env.get("FACELENS_VIDEO_DIR") else None,
            video_workers=_int(env, "FACELENS_VIDEO_WORKERS", 1, minimum=1),
            video_interval_ms=_int(env, "FACELENS_VIDEO_INTERVAL_MS", 200, minimum=1),
            video_webhook_url=env.get("FACELENS_VIDEO_WEBHOOK_URL") or None,
            calibration=_calibration(env.get("FACELENS_CALIBRATION")),
            store=StoreSettings.from_env(env),
            models=models,
            console_session_seconds=_float(env, "FACELENS_CONSOLE_SESSION_SECONDS", 1800.0),
            streams=StreamSettings.from_env(env),
        )
        given = {key: value for key, value in overrides.items() if value is not None}
        if "data_dir" in given:
            given["data_dir"] = Path(given["data_dir"])  # type: ignore[arg-type]
        settings = replace(settings, **given)  # type: ignore[arg-type]
        if not 0 <= settings.port <= 65535:
            raise ConfigError(f"port must be 0..65535, not {settings.port}")
        return settings
