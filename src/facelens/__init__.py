"""FaceLens: self-hosted face analysis that speaks Amazon Rekognition's wire protocol.

    import facelens
    facelens.analyze(open("a.jpg", "rb").read(), attributes=["ALL"])   # DetectFaces response
    facelens.compare(source_bytes, target_bytes, threshold=80)         # CompareFaces response
"""

from __future__ import annotations

from collections.abc import Sequence

__version__ = "0.1.0"


def analyze(image: bytes, attributes: Sequence[str] | None = None) -> dict:
    """DetectFaces on image bytes: `{"FaceDetails": [...]}` in Rekognition's shape."""
    from facelens.analysis import detect_faces

    return detect_faces(image, attributes=attributes)


def compare(source: bytes, target: bytes, threshold: float = 80.0, quality_filter: str = "NONE") -> dict:
    """CompareFaces on image bytes: the largest source face against every face of the target."""
    from facelens.analysis import compare_faces

    return compare_faces(source, target, similarity_threshold=threshold, quality_filter=quality_filter)


__all__ = ["__version__", "analyze", "compare"]
