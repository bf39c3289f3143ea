"""The metadata store a URL names: `FACELENS_DATABASE_URL`.

- unset, or `sqlite:` : SQLite in the data directory (the embedded default);
- `sqlite:///path/to/dir` : SQLite in that directory;
- `postgresql://user@host:port/db` (or `postgres://`) : PostgreSQL, shared by any number of servers.
"""

from __future__ import annotations

import os
from pathlib import Path

from facelens.store.base import MetadataStore

DATABASE_URL = "FACELENS_DATABASE_URL"


def database_url(url: str | None = None) -> str | None:
    return url if url is not None else (os.environ.get(DATABASE_URL) or None)


def is_shared(url: str | None) -> bool:
    """Whether other processes may use the same database (so local state must not be trusted alone)."""
    return (database_url(url) or "").startswith(("postgresql:", "postgres:"))


def open_store(url: str | None, data_dir: str | Path) -> MetadataStore:
    """The store of `url` (default: FACELENS_DATABASE_URL, else SQLite under `data_dir`)."""
    url = database_url(url)
    if not url or url in ("sqlite:", "sqlite://"):
        from facelens.store.metadata import SqliteMetadataStore

        return SqliteMetadataStore(data_dir)
    if url.startswith("sqlite:///"):
        from facelens.store.metadata import SqliteMetadataStore

        return SqliteMetadataStore(url.removeprefix("sqlite://"))
    if url.startswith(("postgresql:", "postgres:")):
        from facelens.store.postgres import PostgresMetadataStore

        return PostgresMetadataStore(url)
    raise ValueError(f"{DATABASE_URL} must be sqlite:///DIR or postgresql://..., not {url.split(':', 1)[0]}:...")
