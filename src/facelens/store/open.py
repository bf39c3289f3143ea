"""The stores URLs name, and the vector-index protocol both vector stores implement.

The metadata store (`facelens.config.StoreSettings.database_url`, `FACELENS_DATABASE_URL`):
- None, or `sqlite:` : SQLite in the data directory (the embedded default);
- `sqlite:///path/to/dir` : SQLite in that directory;
- `postgresql://user@host:port/db` (or `postgres://`) : PostgreSQL, shared by any number of servers.

The vector store (`StoreSettings.vector_url`, `FACELENS_VECTOR_URL`):
- None, or `faiss:` : a FAISS index per collection in this process, cached under the data directory;
- `milvus://host:port[?index=FLAT|HNSW|IVF_SQ8|...&<Milvus index and search parameters>]` : a Milvus server
  or cluster, shared by every replica (`facelens.store.milvus`).

URLs are passed in; nothing here reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from facelens.store.base import MetadataStore
from facelens.store.jobs import LEASE_SECONDS

if TYPE_CHECKING:
    from facelens.store.vectors import VectorConfig

SHARED_SCHEMES = ("postgresql:", "postgres:")


@runtime_checkable
class VectorIndex(Protocol):
    """What the backend asks of a vector store (`VectorCache`: FAISS in the process; `MilvusVectors`: Milvus).

    The index only proposes candidates, by collection primary key; the metadata store stays the source of truth
    and each method catches up from its change log first."""

    def search(self, pk: int, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """Up to `k` candidates per query: face sequence numbers (q, k) padded with -1, their inner products
        (best first, padded with -inf), and whether every live vector was considered."""
        ...

    def sync(self, pk: int) -> None:
        """Catch the collection's vectors up with the database now."""
        ...

    def drop(self, pk: int) -> None:
        """Forget a deleted collection's vectors."""
        ...

    def rebuild(self, pk: int) -> int:
        """Refill the collection's vectors from the database (`facelens reindex`); how many vectors."""
        ...

    def preload(self) -> None:
        """Start loading every collection's vectors in the background (a server's start)."""
        ...

    def close(self) -> None:
        """Finish background work and release what the index holds."""
        ...


def is_shared(url: str | None) -> bool:
    """Whether the database at `url` may be used by other processes too (so local state must not be trusted
    alone): PostgreSQL is, SQLite (None included) is not."""
    return (url or "").startswith(SHARED_SCHEMES)


def database_kind(url: str | None) -> str:
    """"sqlite" or "postgresql" for a database URL (None: the embedded SQLite); ValueError for any other."""
    if not url or url in ("sqlite:", "sqlite://") or url.startswith("sqlite:///"):
        return "sqlite"
    if url.startswith(SHARED_SCHEMES):
        return "postgresql"
    raise ValueError(f"a database URL must be sqlite:///DIR or postgresql://..., not {url.split(':', 1)[0]}:...")


def open_store(url: str | None, data_dir: str | Path, lease_seconds: float = LEASE_SECONDS) -> MetadataStore:
    """The metadata store of `url`; None (or `sqlite:`) means SQLite under `data_dir`. `lease_seconds`: how long
    a video job's claim lasts unrenewed (`StoreSettings.job_lease_seconds`)."""
    if database_kind(url) == "postgresql":
        from facelens.store.sql.postgres import PostgresMetadataStore

        return PostgresMetadataStore(url, lease_seconds=lease_seconds)  # type: ignore[arg-type]
    from facelens.store.sql.sqlite import SqliteMetadataStore

    directory = url.removeprefix("sqlite://") if url and url.startswith("sqlite:///") else data_dir
    return SqliteMetadataStore(directory, lease_seconds=lease_seconds)


def open_vectors(url: str | None, store: MetadataStore, directory: str | Path, config: VectorConfig | None = None,
                 background: bool = True) -> VectorIndex:
    """The vector store of `url`; None (or `faiss:`) means FAISS indexes cached under `directory`, built as
    `config` says (Milvus ignores `config` and `background`: its URL names its index)."""
    if not url or url.startswith("faiss:"):
        from facelens.store.vectors import VectorCache

        return VectorCache(store, directory, config, background)
    from facelens.store.milvus import MilvusVectors

    return MilvusVectors(store, url)
