"""Which FAISS index a collection of a given size gets (`VectorConfig`), and how it is made (`_new_index`).

`auto` (FACELENS_VECTOR_INDEX's default) has three tiers, each measured on real LFW probes against realistic
distractors (`benchmarks/search.py`, docs/benchmarks.md):
- below 50,000 faces, `Flat`: the exact inner product;
- from 50,000, `SQ8`: still a scan of every face, over 8-bit scalar-quantized vectors (a quarter of Flat's
  memory; re-rank recall 1.0 at 1M faces, 19 ms per query there);
- from 1,000,000, `PQ64x4fs,Refine(SQ8)`: a fast-scan scan of 4-bit product codes (32 bytes a face) proposes
  `REFINE_K_FACTOR` (32) x k candidates, which their SQ8 codes re-score to k (160 bytes a face in all; re-rank
  recall 1.0 for genuine and stranger probes at 1M faces, 1.9 ms per query, and at 10M, 12.4 ms).
Graph and cluster indexes (`HNSW32`, `IVF...`) can miss a face outright on realistic data (IVF4096 at nprobe 256
found the true nearest face for 85% of genuine probes at 1M), so they are opt-in. The backend always re-ranks
the candidates exactly against the stored float embeddings, so a Similarity is always an exact one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import faiss
import numpy as np

log = logging.getLogger("facelens.store.vectors")

EXACT = "Flat"


@dataclass(frozen=True)
class VectorConfig:
    """Which index to build for a collection of a given size, and when to rebuild or save it."""

    exact_max: int = 50_000  # `auto`: exact below this many faces
    approximate: str = "SQ8"  # `auto`: the index at and above exact_max
    large_min: int | None = 1_000_000  # `auto`: from this many faces, `large` (None: `approximate` at any size)
    large: str = "PQ64x4fs,Refine(SQ8)"
    train_sample: int = 500_000  # a rebuild trains on the collection's first this many faces, streaming the rest
    forced: str | None = None  # one factory string at every size
    ef_search: int = 128  # HNSW: at least this, and at least the number of candidates asked for
    nprobe: int = 32  # IVF lists visited
    rebuild_fraction: float = 0.1  # tombstones (over the index size) that trigger a rebuild
    rebuild_min: int = 1000
    save_every: int = 10_000  # changes applied between saves of the index file...
    save_fraction: float = 0.1  # ...and at least this fraction of its faces: a fill to n faces writes the file
    # O(log n) times (about 11x its final size in all), not n / save_every times (at 20M faces, 2,000 saves of a
    # file growing to 3.2 GB); a restart replays at most this fraction from the change log
    search_threads: int = 1  # OpenMP threads per search (FACELENS_FAISS_SEARCH_THREADS)

    @classmethod
    def parse(cls, text: str = "auto", search_threads: int = 1, **overrides: object) -> VectorConfig:
        """From an index choice as `FACELENS_VECTOR_INDEX` writes it (`auto[:<faces>[:<factory>]]` or a factory
        string) and the OpenMP threads per search; ValueError for a malformed choice."""
        text = text.strip()
        if not text:
            raise ValueError("the vector index must be auto[:<faces>[:<factory>]] or a FAISS factory string")
        if search_threads < 1:
            raise ValueError(f"search threads must be at least 1, not {search_threads}")
        if text == "auto" or text.startswith("auto:"):
            parts = text.split(":", 2)
            try:
                exact_max = int(parts[1]) if len(parts) > 1 and parts[1] else cls.exact_max
            except ValueError:
                raise ValueError(f"{text!r}: the face count after auto: must be an integer") from None
            if len(parts) > 2 and not parts[2]:
                raise ValueError(f"{text!r}: no factory string after the face count")
            if len(parts) > 2:  # `auto:<faces>:<factory>`: that factory from <faces> up, at every larger size
                config = cls(exact_max=exact_max, approximate=parts[2], large_min=None)
            else:
                config = cls(exact_max=exact_max)
        else:
            config = cls(forced=text)
        return replace(config, search_threads=search_threads, **overrides)  # type: ignore[arg-type]

    def tiers(self) -> list[tuple[int, str]]:
        """(the smallest face count, the factory) of each size tier, smallest first."""
        if self.forced:
            return [(0, self.forced)]
        tiers = [(0, EXACT), (self.exact_max, self.approximate)]
        if self.large_min is not None and self.large_min > self.exact_max:
            tiers.append((self.large_min, self.large))
        return tiers

    def factory_for(self, count: int) -> str:
        return [factory for start, factory in self.tiers() if count >= start][-1]

    def stays(self, factory: str, count: int) -> bool:
        """Whether an index built as `factory` is kept at `count` faces although `factory_for(count)` names a
        smaller tier: it is, until the count falls below half of its tier's threshold (no rebuild back and
        forth around a threshold)."""
        starts = {name: start for start, name in self.tiers()}
        return factory in starts and count >= starts[factory] // 2 and starts[factory] > starts.get(
            self.factory_for(count), 0)


REFINE_K_FACTOR = 32  # Refine(...) indexes: first-stage candidates per candidate kept (benchmarks/search.py)


def _new_index(factory: str, dim: int, vectors: np.ndarray) -> tuple[faiss.Index, str]:
    """An empty (trained) index for `factory` and the factory built: Flat when too few vectors to train it."""
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.try_extract_index_ivf(index)
    if not index.is_trained:
        needed = 39 * (ivf.nlist if ivf is not None else 1)
        if len(vectors) < needed:
            log.info("%d vectors cannot train %s (needs %d): using %s", len(vectors), factory, needed, EXACT)
            return _new_index(EXACT, dim, vectors)
        index.train(vectors)
    if isinstance(index, faiss.IndexRefine):
        index.k_factor = REFINE_K_FACTOR
    return (index if ivf is not None else faiss.IndexIDMap(index)), factory


def _base(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index


