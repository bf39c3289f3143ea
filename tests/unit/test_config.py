"""Settings: parsed once by `ServerSettings.from_env` into a frozen tree; nothing below config.py reads the
environment."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import facelens
from facelens.config import ConfigError, ServerSettings, StoreSettings, models_from_env
from facelens.models.registry import ModelConfig, ModelNotFoundError


def test_an_empty_environment_gives_the_defaults() -> None:
    settings = ServerSettings.from_env({})
    assert settings.store == StoreSettings()
    assert (settings.store.database_url, settings.store.vector_url) == (None, None)
    assert (settings.store.vector_index, settings.store.faiss_search_threads) == ("auto", 1)
    assert settings.store.job_lease_seconds == 60 and not settings.store.shared
    cache = Path.home() / ".cache" / "facelens" / "models"  # prepared graphs are kept beside the eval cache
    assert settings.models == ModelConfig(threads=1, cache_dir=cache)  # the service's one thread per session
    assert (settings.region, settings.arn_region, settings.account) == (None, "us-east-1", "000000000000")
    assert models_from_env({}) == ModelConfig(cache_dir=cache)  # outside `serve`: onnxruntime's default threads
    assert models_from_env({"FACELENS_CACHE": "/var/cache/fl"}).cache_dir == Path("/var/cache/fl/models")
    assert ModelConfig().threads == 0 and ModelConfig().providers is None


def test_the_job_lease_default_is_the_stores() -> None:
    from facelens.store.jobs import LEASE_SECONDS

    assert StoreSettings().job_lease_seconds == LEASE_SECONDS


def test_each_nested_setting_is_parsed(tmp_path: Path) -> None:
    detector, recognizer = tmp_path / "det.onnx", tmp_path / "rec.onnx"
    detector.write_bytes(b"x")
    recognizer.write_bytes(b"x")
    settings = ServerSettings.from_env({
        "FACELENS_DATABASE_URL": "postgresql://postgres@db:5432/facelens",
        "FACELENS_VECTOR_URL": "milvus://milvus:19530",
        "FACELENS_VECTOR_INDEX": "auto:100:HNSW32",
        "FACELENS_FAISS_SEARCH_THREADS": "4",
        "FACELENS_VIDEO_LEASE_SECONDS": "2.5",
        "FACELENS_DETECTOR_MODEL": str(detector),
        "FACELENS_RECOGNIZER_MODEL": str(recognizer),
        "FACELENS_ORT_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider",
        "FACELENS_ORT_SPIN": "1",
        "FACELENS_FLIP_TTA": "1",
        "FACELENS_THREADS": "3",
        "FACELENS_REGION": "eu-west-1",
        "FACELENS_ACCOUNT_ID": "123456789012",
        "FACELENS_MIN_COMPARE_SIMILARITY": "90",
    })
    assert settings.store == StoreSettings("postgresql://postgres@db:5432/facelens", "milvus://milvus:19530",
                                           "auto:100:HNSW32", 4, 2.5)
    assert settings.store.shared
    vectors = settings.store.vector_config()
    assert (vectors.exact_max, vectors.approximate, vectors.search_threads) == (100, "HNSW32", 4)
    assert settings.models == ModelConfig(detector=detector, recognizer=recognizer,
                                          providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
                                          threads=3, spin=True, flip=True, cache_dir=settings.models.cache_dir)
    assert settings.threads == settings.models.threads == 3
    assert (settings.region, settings.arn_region, settings.account) == ("eu-west-1", "eu-west-1", "123456789012")
    assert settings.policy.min_compare_similarity == 90
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.store.vector_url = None  # type: ignore[misc]


def test_the_thread_flag_is_the_model_sessions_thread_count() -> None:
    assert ServerSettings.from_env({"FACELENS_THREADS": "2"}, threads=5).models.threads == 5
    assert ServerSettings(threads=4).models.threads == 4
    assert ServerSettings(models=ModelConfig(threads=8)).models.threads == 1
    assert models_from_env({"FACELENS_THREADS": "2"}).threads == 2


def test_sqlite_database_urls_are_not_shared() -> None:
    for url in (None, "sqlite:", "sqlite:///srv/facelens"):
        assert not StoreSettings(database_url=url).shared
    assert StoreSettings(database_url="postgres://h/db").shared


def test_models_come_from_the_config_file_unless_the_environment_names_them(tmp_path: Path) -> None:
    named, other = tmp_path / "a.onnx", tmp_path / "b.onnx"
    named.write_bytes(b"x")
    other.write_bytes(b"x")
    config_file = tmp_path / "facelens.toml"
    config_file.write_text(f'[models]\ndetector = "{named}"\nrecognizer = "{named}"\n')
    config = models_from_env({"FACELENS_CONFIG": str(config_file), "FACELENS_RECOGNIZER_MODEL": str(other)})
    assert (config.detector, config.recognizer) == (named, other)


@pytest.mark.parametrize("env", [
    {"FACELENS_FAISS_SEARCH_THREADS": "many"},
    {"FACELENS_FAISS_SEARCH_THREADS": "0"},
    {"FACELENS_VIDEO_LEASE_SECONDS": "soon"},
    {"FACELENS_VIDEO_LEASE_SECONDS": "0"},
    {"FACELENS_VECTOR_INDEX": "auto:lots"},
    {"FACELENS_VECTOR_INDEX": "auto:100:"},
    {"FACELENS_DATABASE_URL": "mysql://db/facelens"},
    {"FACELENS_THREADS": "-1"},
    {"FACELENS_THREADS": "two"},
    {"FACELENS_ACCOUNT_ID": "acme"},
    {"FACELENS_DETECTOR_MODEL": "/nonexistent/det.onnx"},
    {"FACELENS_CONFIG": "/nonexistent/facelens.toml"},
    {"FACELENS_MIN_COMPARE_SIMILARITY": "high"},
])
def test_a_bad_value_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ServerSettings.from_env(env)


def test_a_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        models_from_env({"FACELENS_RECOGNIZER_MODEL": str(tmp_path / "nope.onnx")})
    broken = tmp_path / "broken.toml"
    broken.write_text("[models\n")
    with pytest.raises(ConfigError, match="FACELENS_CONFIG"):
        models_from_env({"FACELENS_CONFIG": str(broken)})


ENVIRONMENT_READ = re.compile(r"\bos\.environ\b|\bos\.getenv\b|\bgetenv\(|\bfrom os import [^\n]*\b(environ|getenv)\b")


def test_no_module_below_config_reads_the_environment() -> None:
    package = Path(facelens.__file__).parent
    readers = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                     if path.name != "config.py" or path.parent != package
                     if ENVIRONMENT_READ.search(path.read_text()))
    assert readers == []
