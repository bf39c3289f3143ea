"""The stores URLs name.

`FACELENS_DATABASE_URL`, the metadata store:
- unset, or `sqlite:` : SQLite in the data directory (the embedded default);
- `sqlite:///path/to/dir` : SQLite in that directory;
- `postgresql://user@host:port/db` (or `postgres://`) : PostgreSQL, shared by any number of servers.

`FACELENS_VECTOR_URL`, the vector store:
- unset, or `faiss:` : a FAISS index per collection in this process, cached under the data directory;
- `milvus://host:port[?index=FLAT|HNSW|IVF_SQ8|...]` : a Milvus server (or Milvus Lite's gRPC server),
  shared by every replica; `milvus:///path` or a plain path: an embedded Milvus Lite.
"""

from __future__ import annotations

import os
from pathlib import Path

from facelens.store.base import MetadataStore

DATABASE_URL = "FACELENS_DATABASE_URL"
VECTOR_URL = "FACELENS_VECTOR_URL"


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


def vector_url(url: str | None = None) -> str | None:
    return url if url is not None else (os.environ.get(VECTOR_URL) or None)


def open_vectors(url: str | None, store: MetadataStore, directory: str | Path, config: object = None,
                 background: bool = True) -> object:
    """The vector store of `url` (default: FACELENS_VECTOR_URL, else FAISS under `directory`)."""
    url = vector_url(url)
    if not url or url.startswith("faiss:"):
        from facelens.store.vectors import VectorCache

        return VectorCache(store, directory, config, background)  # type: ignore[arg-type]
    from facelens.store.milvus import MilvusVectors

    return MilvusVectors(store, url)
