"""FAISS vector index per collection: a rebuildable cache of the embeddings the metadata store holds.

Choice of index: `facelens.store.index_choice` (`VectorConfig.parse` of `FACELENS_VECTOR_INDEX`: `auto` picks
Flat, SQ8 or PQ64x4fs,Refine(SQ8) by the collection's size; or any FAISS factory string).
A search uses `search_threads` OpenMP threads (`FACELENS_FAISS_SEARCH_THREADS`, default 1: requests run in
parallel on the I/O pool, and one query split over cores measured slower under load, see docs/benchmarks.md);
builds use every core.
Ids are the faces' integer sequence numbers (IVF keeps them natively, other indexes sit in an `IndexIDMap`);
the metric is the inner product of L2-normalised embeddings, i.e. cosine. The index only proposes candidates:
the backend re-ranks them exactly against the stored embeddings, so a Similarity is always an exact one.

Consistency: the index file (`vectors/<collection pk>.faiss`) records the change-log watermark it reflects. On
open, a missing or corrupt file (checksum, size, dimension) is rebuilt from the database; a file behind the
database is caught up from the change log, and one older than the log's pruned floor is rebuilt. Every search
first catches up, so it sees every committed write, whichever process made it.
A server's start opens every collection's index on a background thread (`preload`); the file is read as a
stream (`facelens.store.indexfile`), so loading needs no memory beyond the index itself.

Deletes: `remove_ids` where the index supports it (Flat, SQ8, IVF). HNSW and the Refine indexes cannot remove:
deleted ids become tombstones (HNSW: an ID selector keeps them out of the search itself; the others over-fetch by
their number and drop them), and once they pass `rebuild_fraction` of the
index (at least `rebuild_min`) a rebuild runs in a background thread and is swapped in, then caught up. An index
that still holds a deleted face's vector is never written to disk: applying a delete removes the index file,
which is saved again (and the change log pruned up to its watermark) after `save_every` changes (and at least
`save_fraction` of the index, so a bulk fill saves it a logarithmic number of times), after a
rebuild, and on `flush()`/`close()` — but only while no tombstones remain.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import faiss
import numpy as np

from facelens.store import indexfile
from facelens.store.base import MetadataStore, net_changes
from facelens.store.index_choice import EXACT, VectorConfig, _base, _new_index

__all__ = ["EXACT", "VectorCache", "VectorConfig", "_base", "_new_index"]

log = logging.getLogger(__name__)

class CollectionIndex:
    """One collection's index, its watermark and its tombstones (guarded by `lock`)."""

    def __init__(self, pk: int, path: Path, config: VectorConfig) -> None:
        self.pk = pk
        self.path = path
        self.config = config
        self.lock = threading.RLock()
        self.index: faiss.Index | None = None
        self.factory = EXACT  # what the configuration asked for
        self.kind = EXACT  # what was built (Flat when too few vectors to train the factory)
        self.built_count = 0
        self.watermark = -1  # -1: not opened yet
        self.tombstones: set[int] = set()
        self.selector: tuple[faiss.IDSelector, faiss.IDSelector] | None = None  # excludes the tombstones
        self.unsaved = 0
        self.rebuilding = False
        self.dropped = False

    @property
    def count(self) -> int:
        return (self.index.ntotal if self.index is not None else 0) - len(self.tombstones)

    def forget(self, seqs: list[int]) -> None:
        """Tombstone ids the index cannot remove."""
        self.tombstones.update(seqs)
        self.selector = None

    def search_params(self, k: int) -> tuple[faiss.SearchParameters | None, int]:
        """FAISS search parameters and how many results to ask for: HNSW skips tombstones inside the search
        (an ID selector), other indexes over-fetch by their number (they have none: they remove)."""
        base = _base(self.index)
        if isinstance(base, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, k))
            if self.tombstones:
                if self.selector is None:
                    dead = faiss.IDSelectorBatch(np.fromiter(self.tombstones, np.int64, len(self.tombstones)))
                    self.selector = (faiss.IDSelectorNot(dead), dead)  # the Not keeps a raw pointer: hold both
                params.sel = self.selector[0]
            return params, k
        fetch = k + len(self.tombstones)
        if faiss.try_extract_index_ivf(base) is not None:
            return faiss.SearchParametersIVF(nprobe=self.config.nprobe), fetch
        return None, fetch


class VectorCache:
    """The vector indexes of all collections of a data directory: a `facelens.store.open.VectorIndex`."""

    def __init__(self, store: MetadataStore, directory: str | Path, config: VectorConfig | None = None,
                 background: bool = True) -> None:
        self.store = store
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = config or VectorConfig()
        self.background = background
        self._entries: dict[int, CollectionIndex] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._sweep()

    # -- public
    def search(self, pk: int, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """Up to `k` candidates per query: face sequence numbers (q, k) padded with -1, their inner products
        (best first, padded with -inf), and whether every live vector was considered."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        seqs = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        entry = self._entry(pk)
        with entry.lock:
            self._catch_up(entry)
            if entry.index is None or entry.count == 0:
                return seqs, scores, True
            params, fetch = entry.search_params(k)
            before = faiss.omp_get_max_threads()  # per calling thread: other threads keep theirs
            faiss.omp_set_num_threads(self.config.search_threads)
            try:
                found_scores, found = entry.index.search(queries, min(fetch, entry.index.ntotal), params=params)
            finally:
                faiss.omp_set_num_threads(before)
            dead = np.fromiter(entry.tombstones, np.int64, len(entry.tombstones))
            live = (found >= 0) & ~np.isin(found, dead)
            complete = bool((live.sum(axis=1) >= entry.count).all())  # every live vector came back
        for row in range(len(queries)):
            kept = np.flatnonzero(live[row])[:k]
            seqs[row, :len(kept)] = found[row, kept]
            scores[row, :len(kept)] = found_scores[row, kept]
        return seqs, scores, complete

    def sync(self, pk: int) -> None:
        """Catch the collection's index up with the database now."""
        entry = self._entry(pk)
        with entry.lock:
            self._catch_up(entry)

    def count(self, pk: int) -> int:
        """Live vectors in the index (after catching up)."""
        entry = self._entry(pk)
        with entry.lock:
            self._catch_up(entry)
            return entry.count

    def info(self, pk: int) -> dict[str, object]:
        entry = self._entry(pk)
        with entry.lock:
            self._catch_up(entry)
            return {"factory": entry.factory, "kind": entry.kind, "count": entry.count,
                    "tombstones": len(entry.tombstones), "watermark": entry.watermark, "file": entry.path.is_file()}

    def drop(self, pk: int) -> None:
        """Forget a deleted collection's index and remove its file."""
        with self._lock:
            entry = self._entries.pop(pk, None)
        if entry is not None:
            with entry.lock:
                entry.dropped, entry.index = True, None
        self._path(pk).unlink(missing_ok=True)

    def rebuild(self, pk: int) -> int:
        """Build the collection's index afresh from the database (`facelens reindex`); how many vectors."""
        entry = self._entry(pk)
        with entry.lock:
            self._rebuild(entry)
            return entry.count

    def preload(self) -> None:
        """Open every collection's index (read its file, catch it up) on a background thread, so the first search
        after a start does not wait for it (3.2 GB at 20M faces); a search that comes first waits on its lock."""
        with self.store.transaction() as session:
            pks = [c.pk for c in session.list_collections(0, 1 << 62)]

        def run() -> None:
            for pk in pks:
                if self._closing.is_set():
                    return
                try:
                    self._entry(pk)
                except Exception:  # the next search opens it again and reports
                    log.exception("preloading the index of collection %d", pk)

        thread = threading.Thread(target=run, daemon=True, name="facelens-index-preload")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def wait(self) -> None:
        """Wait for background rebuilds (tests, shutdown)."""
        while True:
            with self._lock:
                threads, self._threads = self._threads, []
            if not threads:
                return
            for thread in threads:
                thread.join()

    def flush(self) -> None:
        """Save every index with unsaved changes (and no tombstones)."""
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            with entry.lock:
                if entry.unsaved and not entry.dropped:
                    self._catch_up(entry)
                    self._save(entry)

    def close(self) -> None:
        self._closing.set()
        self.wait()
        self.flush()

    # -- opening, saving
    def _path(self, pk: int) -> Path:
        return self.directory / f"{pk}.faiss"

    def _sweep(self) -> None:
        """Remove index files of collections that no longer exist (deleted by another process), and temporary
        files a crashed process left."""
        with self.store.transaction() as session:
            live = {c.pk for c in session.list_collections(0, 1 << 62)}
        for path in self.directory.glob("*.faiss"):
            if not path.stem.isdigit() or int(path.stem) not in live:
                path.unlink(missing_ok=True)
        indexfile.sweep_temporaries(self.directory)

    def _entry(self, pk: int) -> CollectionIndex:
        with self._lock:
            entry = self._entries.get(pk)
            if entry is None:
                entry = self._entries[pk] = CollectionIndex(pk, self._path(pk), self.config)
        with entry.lock:
            if entry.watermark < 0:
                self._open(entry)
        return entry

    def _open(self, entry: CollectionIndex) -> None:
        """Load the file and catch it up, or rebuild when it is missing, damaged or disagrees with the database."""
        if self._load(entry):
            with self.store.transaction() as session:
                future = entry.watermark > session.high_water()  # e.g. a database restored from a backup
            if not future:
                self._catch_up(entry)
                with self.store.transaction() as session:
                    if session.count_faces(entry.pk) == entry.count:
                        return
            log.warning("index file %s disagrees with the database: rebuilding", entry.path)
        self._rebuild(entry)

    def _load(self, entry: CollectionIndex) -> bool:
        started = time.perf_counter()
        try:
            loaded = indexfile.read(entry.path)
        except Exception as error:  # any damage: the database has everything, rebuild from it
            log.warning("index file %s unusable (%s): rebuilding", entry.path, error)
            entry.path.unlink(missing_ok=True)
            return False
        if loaded is None:
            return False
        index, header = loaded
        entry.index, entry.watermark = index, int(header["watermark"])
        entry.factory, entry.kind = header["factory"], header["kind"]
        entry.built_count, entry.tombstones, entry.selector, entry.unsaved = index.ntotal, set(), None, 0
        log.info("collection %d: %s index of %d vectors loaded in %.1f s", entry.pk, entry.kind, index.ntotal,
                 time.perf_counter() - started)
        return True

    def _save(self, entry: CollectionIndex) -> None:
        if entry.tombstones or entry.dropped:
            return  # a file must never hold a deleted face's vector
        if entry.index is None or entry.index.ntotal == 0:
            entry.path.unlink(missing_ok=True)
        else:
            indexfile.write(entry.path, entry.index, {"watermark": entry.watermark, "factory": entry.factory,
                                                      "kind": entry.kind})
        entry.unsaved = 0
        with self.store.transaction(write=True) as session:
            session.prune_changes(entry.pk, entry.watermark)

    # -- catching up, rebuilding
    def _catch_up(self, entry: CollectionIndex) -> None:
        if entry.dropped:
            return
        with self.store.transaction() as session:
            if entry.watermark < session.log_floor(entry.pk):
                stale = True
            else:
                stale = False
                changes = session.changes_since(entry.pk, entry.watermark)
                added, removed = net_changes(changes)
                seqs, vectors = session.embeddings_of(entry.pk, added)
        if stale:
            self._rebuild(entry)
            return
        if not changes:
            return
        if removed:
            self._remove(entry, np.asarray(removed, np.int64))
        if len(seqs):
            vectors = np.ascontiguousarray(vectors, np.float32)
            if entry.index is None:
                entry.factory = self.config.factory_for(len(seqs))
                entry.index, entry.kind = _new_index(entry.factory, vectors.shape[1], vectors)
                entry.built_count = len(seqs)
            entry.index.add_with_ids(vectors, seqs)
        entry.watermark = changes[-1].seq
        entry.unsaved += len(changes)
        self._maintain(entry)

    def _remove(self, entry: CollectionIndex, seqs: np.ndarray) -> None:
        entry.path.unlink(missing_ok=True)  # it holds the deleted vectors
        if entry.index is None:
            return
        try:
            entry.index.remove_ids(seqs)
        except RuntimeError:  # HNSW: no removal
            entry.forget(seqs.tolist())

    def _maintain(self, entry: CollectionIndex) -> None:
        count = entry.count
        wanted = self.config.factory_for(count)
        shrunk = self.config.stays(entry.factory, count)  # hysteresis: no rebuild to a smaller tier yet
        untrained = entry.kind != entry.factory and count >= 2 * max(entry.built_count, 1)  # may train now
        limit = max(self.config.rebuild_min, self.config.rebuild_fraction * max(count, 1))
        if len(entry.tombstones) > limit or (wanted != entry.factory and not shrunk) or untrained:
            self._schedule_rebuild(entry)
        elif entry.unsaved >= max(self.config.save_every, self.config.save_fraction * count):
            self._save(entry)

    def _schedule_rebuild(self, entry: CollectionIndex) -> None:
        if entry.rebuilding:
            return
        if not self.background:
            self._rebuild(entry)
            return
        entry.rebuilding = True
        thread = threading.Thread(target=self._rebuild_in_background, args=(entry,), daemon=True,
                                  name=f"facelens-rebuild-{entry.pk}")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _rebuild_in_background(self, entry: CollectionIndex) -> None:
        try:
            built = self._build(entry.pk)
            with entry.lock:
                if not entry.dropped:
                    self._install(entry, built)
        except Exception:
            log.exception("background rebuild of collection %d failed", entry.pk)
        finally:
            entry.rebuilding = False

    def _rebuild(self, entry: CollectionIndex) -> None:
        self._install(entry, self._build(entry.pk))

    def _build(self, pk: int) -> tuple[faiss.Index | None, str, str, int]:
        """A fresh index of the collection's faces from one database snapshot, and that snapshot's watermark. The
        faces are streamed: only the first `train_sample` are held, to train the index on, then added."""
        index, kind, pending, held = None, EXACT, [], 0

        def trained() -> tuple[faiss.Index, str]:
            sample = np.concatenate([vectors for _, vectors in pending])
            made, made_kind = _new_index(factory, sample.shape[1], sample)
            for held_seqs, held_vectors in pending:
                made.add_with_ids(held_vectors, held_seqs)
            return made, made_kind

        with self.store.transaction() as session:  # one snapshot: its count, its faces, its watermark
            watermark = session.high_water()
            factory = self.config.factory_for(session.count_faces(pk))
            for seqs, vectors in session.embeddings(pk):
                if index is not None:
                    index.add_with_ids(vectors.astype(np.float32), seqs)
                    continue
                pending.append((seqs, vectors.astype(np.float32)))
                held += len(seqs)
                if held >= self.config.train_sample:
                    (index, kind), pending = trained(), []
        if index is None and pending:
            index, kind = trained()
        if index is None:
            return None, factory, factory, watermark
        return index, factory, kind, watermark

    def _install(self, entry: CollectionIndex, built: tuple[faiss.Index | None, str, str, int]) -> None:
        entry.index, entry.factory, entry.kind, entry.watermark = built
        entry.built_count = entry.index.ntotal if entry.index is not None else 0
        entry.tombstones, entry.selector, entry.unsaved = set(), None, 1
        self._catch_up(entry)  # changes committed while it was built
        self._save(entry)
