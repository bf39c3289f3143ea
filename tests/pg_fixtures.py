"""A fresh PostgreSQL database per test or module, on the server `make test` makes sure is running
(127.0.0.1:5432, user postgres, trust auth; FACELENS_TEST_POSTGRES overrides)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

ADMIN_URL = os.environ.get("FACELENS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards. Skips when no server answers, unless
    FACELENS_REQUIRE_POSTGRES=1 (as `make test` sets), when it fails."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("FACELENS_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL} ({exc.__class__.__name__}); `make test` starts one")
    name = f"facelens_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url
