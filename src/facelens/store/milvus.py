"""Milvus as the vector store shared by every replica (`FACELENS_VECTOR_URL=milvus://host:port`, or a Milvus
Lite path), in place of each process's own FAISS cache.

The metadata database stays the source of truth: each FaceLens collection has a Milvus collection
(`facelens_<database id>_<pk>`, primary key = the face's sequence number, inner-product metric) caught up from
the database's change log. Catching up happens in a write transaction of the metadata store, which serializes
it across replicas (the database records how far Milvus has got: `vector_marks`), so changes are applied in
order, once. A search catches up first, so a face indexed through any replica is searchable through any other
at once; the backend re-reads and re-ranks every candidate from the database, so a face the database has
deleted is never returned. `rebuild()` (`facelens reindex`) refills a collection from the database's
embeddings. The same client code talks to a Milvus standalone server and to a cluster.

The index is named in the URL (`?index=HNSW`, FLAT by default: exact) with Milvus's own build and search
parameters beside it (`&M=16&efConstruction=200&ef=128`, `&nlist=1024&nprobe=64`); an index type without
parameters gets the defaults in `INDEX_DEFAULTS`, measured with real probes against realistic distractors
(benchmarks/search_milvus.py, docs/scaling.md). A search parameter that bounds the candidates (HNSW's `ef`,
DiskANN's `search_list`) is raised to the number of candidates asked, as Milvus requires.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from facelens.store.base import MetadataStore, Session, net_changes

log = logging.getLogger("facelens.store")

MAX_TOPK = 16384  # Milvus's largest search limit
_BATCH = 2000


# index type -> (build parameters, search parameters) sent when the URL names none. Measured on Milvus 2.3.5 with
# realistic distractors at 100k faces (docs/scaling.md), recall = the exact top-1 among the 64 candidates:
# HNSW M 48 / efConstruction 500 / ef 512 kept 1.000 genuine / 0.999 stranger; M 16 / efConstruction 200 reached
# only 0.92 at ef 512 (0.71 at the customary ef 128); IVF_SQ8 nlist 1024 needed nprobe 256 for 0.98 (0.86 at 64).
# FLAT (exact) stays the default: see docs/scaling.md for when HNSW pays.
INDEX_DEFAULTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "FLAT": ({}, {}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 256}),
    "IVF_SQ8": ({"nlist": 1024}, {"nprobe": 256}),
    "IVF_PQ": ({"nlist": 1024, "m": 32, "nbits": 8}, {"nprobe": 256}),
    "HNSW": ({"M": 48, "efConstruction": 500}, {"ef": 1024}),  # 512 kept 0.98 of genuine mates at 1M, 1024 0.996
    "DISKANN": ({}, {"search_list": 512}),  # unmeasured: needs a Milvus built with DiskANN (the PyPI standalone is not)
}
SEARCH_KEYS = frozenset({"nprobe", "ef", "search_list", "reorder_k", "max_empty_result_buckets"})
AT_LEAST_LIMIT = ("ef", "search_list")  # Milvus refuses a search whose candidate list is shorter than its limit


@dataclass(frozen=True)
class MilvusIndex:
    """The index FaceLens creates on each Milvus collection, and the parameters it searches it with."""

    type: str = "FLAT"
    build: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)

    def search_params(self, limit: int) -> dict[str, Any]:
        params = {key: max(value, limit) if key in AT_LEAST_LIMIT else value for key, value in self.search.items()}
        return {"metric_type": "IP", "params": params}


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def index_of(url: str) -> MilvusIndex:
    """The `MilvusIndex` a `FACELENS_VECTOR_URL` names: `index=TYPE`, then any Milvus build or search parameter
    (`nprobe`, `ef`, `search_list`, `reorder_k` search; everything else builds); unnamed ones take the type's
    defaults."""
    query = {key: values[-1] for key, values in parse_qs(urlparse(url).query).items()}
    kind = query.pop("index", "FLAT").upper()
    build, search = INDEX_DEFAULTS.get(kind, ({}, {}))
    given = {key: _number(value) for key, value in query.items()}
    return MilvusIndex(kind, {**build, **{k: v for k, v in given.items() if k not in SEARCH_KEYS}},
                       {**search, **{k: v for k, v in given.items() if k in SEARCH_KEYS}})


def client_uri(url: str) -> tuple[str, str]:
    """(pymilvus uri, index type) of `milvus://host:port[?index=HNSW...]` or `milvus+https://...`. A local path
    (Milvus Lite, embedded in this process) is refused: FaceLens talks to Milvus servers only."""
    parsed = urlparse(url)
    if parsed.scheme not in ("milvus", "milvus+http", "milvus+https") or not parsed.netloc:
        raise ValueError(f"FACELENS_VECTOR_URL={url!r} must name a Milvus server: milvus://host:port "
                         "(Milvus Lite paths are not supported; leave it unset for the embedded FAISS index)")
    scheme = "https" if parsed.scheme.endswith("https") else "http"
    return f"{scheme}://{parsed.netloc}", index_of(url).type


class MilvusVectors:
    """A `facelens.store.open.VectorIndex` (as `facelens.store.vectors.VectorCache` is one), backed by Milvus."""

    def __init__(self, store: MetadataStore, url: str) -> None:
        from pymilvus import MilvusClient

        self.store = store
        self.uri = client_uri(url)[0]
        self.index = index_of(url)
        self.client = MilvusClient(uri=self.uri)
        with store.transaction() as session:
            self.namespace = hashlib.sha256(session.secret()).hexdigest()[:12]
        self._lock = threading.Lock()
        self._known: set[str] = set()

    def name(self, pk: int) -> str:
        return f"facelens_{self.namespace}_{pk}"

    # -- VectorIndex: what the backend uses
    def search(self, pk: int, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """Up to `k` candidates per query: sequence numbers (padded with -1), inner products (padded with -inf),
        and whether every vector of the collection was considered."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        seqs = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        count = self._catch_up(pk)
        if count == 0 or not self._exists(pk):
            return seqs, scores, True
        limit = min(k, MAX_TOPK, count)
        try:
            found = self._search(pk, queries, limit)
        except Exception:
            self._known.discard(self.name(pk))
            if self._exists(pk):
                raise
            log.warning("Milvus lost collection %s; refilling it from the database", self.name(pk))
            self.rebuild(pk)
            found = self._search(pk, queries, limit)
        for row, hits in enumerate(found):
            for column, hit in enumerate(hits[:k]):
                seqs[row, column] = int(hit["id"])
                scores[row, column] = float(hit["distance"])
        return seqs, scores, count <= limit

    def _search(self, pk: int, queries: np.ndarray, limit: int) -> list:
        return self.client.search(self.name(pk), data=queries.tolist(), limit=limit,
                                  search_params=self.index.search_params(limit), consistency_level="Strong")

    def sync(self, pk: int) -> None:
        self._catch_up(pk)

    def count(self, pk: int) -> int:
        return self._catch_up(pk)

    def drop(self, pk: int) -> None:
        """Remove a deleted collection's vectors."""
        if self._exists(pk):
            self.client.drop_collection(self.name(pk))
        self._known.discard(self.name(pk))

    def rebuild(self, pk: int) -> int:
        """Refill the collection's Milvus collection from the database's embeddings; how many vectors."""
        with self.store.transaction(write=True) as session:
            self.drop(pk)
            return self._refill(session, pk)

    def flush(self) -> None:
        """Nothing is held in this process."""

    def preload(self) -> None:
        """Nothing to load: the Milvus server holds its collections loaded."""

    def wait(self) -> None:
        """No background work."""

    def close(self) -> None:
        self.client.close()

    # -- catching up
    def _exists(self, pk: int) -> bool:
        name = self.name(pk)
        if name not in self._known and self.client.has_collection(name):
            self._known.add(name)
        return name in self._known

    def _create(self, pk: int, dim: int) -> None:
        from pymilvus import DataType

        if self._exists(pk):
            return
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type=self.index.type, metric_type="IP", params=self.index.build)
        self.client.create_collection(self.name(pk), schema=schema, index_params=index, consistency_level="Strong")
        self.client.load_collection(self.name(pk))
        self._known.add(self.name(pk))

    def _upsert(self, pk: int, seqs: Sequence[int], vectors: np.ndarray) -> None:
        if not len(seqs):
            return
        self._create(pk, vectors.shape[1])
        for start in range(0, len(seqs), _BATCH):
            rows = [{"id": int(seq), "vector": vector.tolist()}
                    for seq, vector in zip(seqs[start:start + _BATCH], vectors[start:start + _BATCH], strict=True)]
            self.client.upsert(self.name(pk), rows)

    def _refill(self, session: Session, pk: int) -> int:
        """Everything from the embeddings themselves (a new collection, or a log pruned past the mark)."""
        count = 0
        for seqs, vectors in session.embeddings(pk):
            self._upsert(pk, seqs.tolist(), vectors)
            count += len(seqs)
        session.set_vector_mark(pk, session.high_water(), count)
        return count

    def _catch_up(self, pk: int) -> int:
        """Apply the collection's changes Milvus has not seen; the number of vectors it holds after."""
        with self.store.transaction() as session:
            mark = session.vector_mark(pk)
            if mark is not None and mark[0] >= session.log_floor(pk) \
                    and not session.changes_since(pk, mark[0]):
                return mark[1]
        with self._lock, self.store.transaction(write=True) as session:  # one replica at a time, in log order
            mark = session.vector_mark(pk)
            if mark is None or mark[0] < session.log_floor(pk):
                self.drop(pk)
                return self._refill(session, pk)
            changes = session.changes_since(pk, mark[0])
            if not changes:
                return mark[1]
            added, removed = net_changes(changes)
            seqs, vectors = session.embeddings_of(pk, added)
            if removed and self._exists(pk):
                self.client.delete(self.name(pk), ids=removed)
            if len(seqs):
                self._upsert(pk, seqs.tolist(), vectors.astype(np.float32))
            count = session.count_faces(pk)
            session.set_vector_mark(pk, changes[-1].seq, count)
            return count
