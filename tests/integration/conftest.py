"""Tests that need real processes: `facelens serve` with real boto3 clients (on SQLite + FAISS and on
PostgreSQL + Milvus), SIGKILL durability, replicas, the stores' servers, the model card in Chromium. Every test
here is marked `integration` (`pytest -m "not integration"` runs the in-process suites alone)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.integration)
