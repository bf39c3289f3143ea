"""Operation handlers by Rekognition operation name; anything else in the service model is not implemented."""

from __future__ import annotations

from facelens.api.operations import collections, faces
from facelens.api.operations.base import Handler, Services

OPERATIONS: dict[str, Handler] = {
    "DetectFaces": faces.detect_faces,
    "CompareFaces": faces.compare_faces,
    **collections.HANDLERS,
}

__all__ = ["OPERATIONS", "Handler", "Services"]
