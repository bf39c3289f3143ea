"""Bulk indexing of image files into a collection (`facelens index`).

Works on the data directory directly (the server may run meanwhile: SQLite serialises writers and every search
catches its vector index up). Files go through the models in batches, two at once on two cores while finished ones
are stored in order; each batch is stored in one transaction together with the record of which files it held, so
an interrupted run resumes where it stopped, never indexing a file twice and never leaving half an image.
"""

from __future__ import annotations

import glob
import os
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from facelens import errors
from facelens.imaging import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.domain.collections import CollectionService, PreparedImages

EXTERNAL_ID_SOURCES = ("filename", "stem", "parent", "none")
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_.\-:]")  # ExternalImageId's pattern in the service model


def image_files(source: str) -> list[Path]:
    """Image files under a directory (recursively) or matching a glob pattern, sorted."""
    root = Path(source)
    if root.is_dir():
        found = (path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
    else:
        found = (Path(name) for name in glob.glob(source, recursive=True))
    files = sorted(path.resolve() for path in found if path.is_file())
    if not files:
        raise errors.InvalidParameterException(f"no image files in {source}")
    return files


def external_id(path: Path, source: str) -> str | None:
    """The ExternalImageId of a file: its `filename`, `stem`, `parent` folder name, or none. Characters the
    service model does not allow become `_`."""
    if source not in EXTERNAL_ID_SOURCES:
        raise ValueError(f"--external-id-from must be one of {', '.join(EXTERNAL_ID_SOURCES)}")
    if source == "none":
        return None
    name = {"filename": path.name, "stem": path.stem, "parent": path.parent.name}[source]
    return _NOT_ALLOWED.sub("_", name)[:255] or None


@dataclass
class IndexReport:
    """What a bulk run did."""

    files: int = 0
    skipped: int = 0  # already imported by an earlier run
    indexed_images: int = 0
    faces: int = 0
    unindexed_faces: int = 0
    no_face: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, error)


def _batches(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def index_files(collections: CollectionService, collection_id: str, files: Sequence[Path], *,
                external_id_from: str = "filename", quality_filter: str = "AUTO", max_faces: int | None = None,
                batch: int = 16, progress: Callable[[int], None] | None = None,
                context: RequestContext | None = None, workers: int | None = None) -> IndexReport:
    """Index `files` into the collection in batches, audited under `context` (default: the local operator);
    files an earlier run imported are skipped.

    Up to `workers` batches (default: one per core, at most 2) are read, decoded and run through the models at
    once, each on its own thread (`CollectionService.prepare_images`), while this thread stores the finished
    ones in file order, one transaction each (`store_prepared`), and reports them to `progress`. So decoding,
    dlib landmarks and store writes overlap inference. When `progress` or a batch raises (Ctrl-C included),
    nothing after the last stored batch is stored: batches being prepared finish and are dropped."""
    workers = max(1, workers if workers is not None else min(2, os.cpu_count() or 1))
    report = IndexReport(files=len(files))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="facelens-index")
    pending: deque[tuple[Sequence[Path], Future[_Prepared]]] = deque()
    try:
        for chunk in _batches(files, max(1, batch)):
            pending.append((chunk, pool.submit(_prepare, collections, collection_id, chunk, external_id_from,
                                               quality_filter, max_faces)))
            while len(pending) > workers:
                _store(collections, report, *pending.popleft(), progress, context)
        while pending:
            _store(collections, report, *pending.popleft(), progress, context)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return report


_Prepared = tuple[list[tuple[str, str]], list[str], "PreparedImages"]


def _prepare(collections: CollectionService, collection_id: str, chunk: Sequence[Path], external_id_from: str,
             quality_filter: str, max_faces: int | None) -> _Prepared:
    """Read one batch of files and run it through the models: (unreadable files, the others, prepared)."""
    failed, items = [], []
    for path in chunk:
        try:
            data = path.read_bytes()
        except OSError as error:
            failed.append((str(path), error.strerror or str(error)))
            continue
        items.append((str(path), data, external_id(path, external_id_from)))
    return failed, [path for path, _, _ in items], collections.prepare_images(collection_id, items, quality_filter,
                                                                             max_faces)


def _store(collections: CollectionService, report: IndexReport, chunk: Sequence[Path], future: Future[_Prepared],
           progress: Callable[[int], None] | None, context: RequestContext | None) -> None:
    failed, paths, prepared = future.result()
    results = collections.store_prepared(prepared, context=context)
    report.failed.extend(failed)
    for path, result in zip(paths, results, strict=True):
        if result is None:
            report.skipped += 1
        elif isinstance(result, errors.FaceLensError):
            report.failed.append((path, f"{result.code}: {result.message}"))
        else:
            report.indexed_images += 1
            report.faces += len(result.indexed)
            report.unindexed_faces += len(result.unindexed)
            if not result.indexed:
                report.no_face.append(path)
    if progress is not None:
        progress(len(chunk))
