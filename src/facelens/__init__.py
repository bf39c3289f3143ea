"""FaceLens: self-hosted face analysis that speaks Amazon Rekognition's wire protocol.

    import facelens
    facelens.analyze(open("a.jpg", "rb").read(), attributes=["ALL"])          # DetectFaces response
    facelens.compare(source_bytes, target_bytes, threshold=80)                # CompareFaces response
    facelens.compare(a, b, data_dir="./data", purpose="case 17")             # ... and audited there
    facelens.search("staff", probe_bytes, data_dir="./data", purpose="...")  # SearchFacesByImage response

Every call goes through the same composition root and accountability gate as the HTTP service
(`facelens.service.build`): the server's floors apply (FACELENS_MIN_COMPARE_SIMILARITY, the collection's policy),
and with a data directory each comparison and search is written to that directory's audit log as the local
operator (`local-python`, with the purpose given). Without a data directory there is no audit log: the floors
still apply, but nothing is recorded.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import facelens.config  # noqa: F401 - first: it turns the model runtimes' telemetry off before they can load

__version__ = "0.1.0"

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.service import Backend

_backends: dict[str | None, Backend] = {}
_lock = threading.Lock()


def _backend(data_dir: str | Path | None) -> Backend:
    """One backend per data directory in this process (None: faces only, no audit log); closed at exit."""
    from facelens.config import ServerSettings
    from facelens.service import build, build_faces

    key = None if data_dir is None else str(Path(data_dir).resolve())
    with _lock:
        if key not in _backends:
            settings = ServerSettings.from_env(data_dir=key)
            _backends[key] = build_faces(settings) if key is None else build(settings)
            if len(_backends) == 1:
                atexit.register(_close_all)
        return _backends[key]


def _close_all() -> None:
    with _lock:
        for backend in _backends.values():
            backend.close()
        _backends.clear()


def _context(purpose: str | None) -> RequestContext:
    from facelens.context import RequestContext

    return RequestContext("local-python", purpose=purpose)


def analyze(image: bytes, attributes: Sequence[str] | None = None) -> dict[str, Any]:
    """DetectFaces on image bytes: `{"FaceDetails": [...]}` in Rekognition's shape."""
    request: dict[str, Any] = {"Image": {"Bytes": image}}
    if attributes:
        request["Attributes"] = list(attributes)
    return _backend(None).call("DetectFaces", request, _context(None))


def compare(source: bytes, target: bytes, threshold: float = 80.0, quality_filter: str = "NONE", *,
            data_dir: str | Path | None = None, purpose: str | None = None) -> dict[str, Any]:
    """CompareFaces on image bytes: the largest source face against every target face, answered at
    max(threshold, the server's compare floor); audited in `data_dir`'s log when given."""
    request = {"SourceImage": {"Bytes": source}, "TargetImage": {"Bytes": target},
               "SimilarityThreshold": threshold, "QualityFilter": quality_filter}
    return _backend(data_dir).call("CompareFaces", request, _context(purpose))


def search(collection_id: str, image: bytes, threshold: float = 80.0, max_faces: int = 10, *,
           data_dir: str | Path, purpose: str | None = None, quality_filter: str = "NONE") -> dict[str, Any]:
    """SearchFacesByImage of a collection in `data_dir`: the collection's floors and purpose rule apply, and the
    search is audited there."""
    request = {"CollectionId": collection_id, "Image": {"Bytes": image}, "FaceMatchThreshold": threshold,
               "MaxFaces": max_faces, "QualityFilter": quality_filter}
    return _backend(data_dir).call("SearchFacesByImage", request, _context(purpose))


__all__ = ["__version__", "analyze", "compare", "search"]
