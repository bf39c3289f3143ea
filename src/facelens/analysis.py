"""The face path (`find_faces`): image bytes in, faces (with their attributes and embeddings) out.

`find_faces` is the only way from an image to faces and embeddings: DetectFaces, CompareFaces, the collection
operations (IndexFaces, Search*ByImage, bulk indexing), stored video and `facelens eval` all go through it, so
the published evaluation measures exactly the embeddings the service stores and searches.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facelens import errors, filtering
from facelens.imaging import MAX_IMAGE_BYTES, DecodedImage, decode_image
from facelens.pipeline import Face

MAX_FACES = 100  # Rekognition: DetectFaces reports, and CompareFaces compares, the 100 largest faces


def largest(faces: list[Face], limit: int = MAX_FACES) -> list[Face]:
    """The `limit` largest faces, largest first (ties keep the detector's order)."""
    return sorted(faces, key=lambda face: face.area, reverse=True)[:limit]


class Analyzer(Protocol):
    """What the face path needs of `facelens.pipeline.FaceAnalyzer` (tests pass scripted stand-ins)."""

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...

    def describe(self, image: np.ndarray, faces: Sequence[Face], fields: Collection[str]) -> None: ...

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> None: ...


FILTER_FIELDS = frozenset({"Pose", "Quality"})  # what `filtering.rejection_reasons` reads besides box/confidence


@dataclass
class FaceSet:
    """The faces of one image as the face path leaves them.

    Invariants: `faces` holds at most `limit` faces, largest first, each with its quality-filter rejection
    reasons (empty: it passes); only passing faces carry an `embedding`, the first `embed` of them (all when
    `embed` was None); coordinates are pixels of `image` (upright, after EXIF orientation).
    """

    image: DecodedImage
    faces: list[tuple[Face, list[str]]]

    @property
    def passed(self) -> list[Face]:
        """The faces that pass the quality filter, largest first."""
        return [face for face, reasons in self.faces if not reasons]


def find_faces(analyzer: Analyzer, images: Sequence[bytes | DecodedImage], fields: Collection[str] | None,
               limit: int | Sequence[int] = MAX_FACES, max_bytes: int | None = None, *,
               quality_filter: str = "NONE", embed: int | None = 0) -> list[FaceSet | errors.FaceLensError]:
    """The one face path: decode -> detect -> keep the largest -> describe -> quality filter -> align + embed.

    Bytes are decoded with `imaging.decode_image` (at most `max_bytes`, `Image.Bytes`'s 5 MiB unless given); a
    `DecodedImage` (a video frame, say) is used as is. All images go through one detector batch; each keeps its
    `limit` largest faces (one limit for all, or one per image), described with `fields` (plus Pose and Quality
    when `quality_filter` is not NONE, since the filter reads them) and given their rejection reasons at that
    level. Then `embed` passing faces of each image (0: none, None: all, N: the N largest) are aligned and
    embedded, those of all images in one `analyzer.embed` batch. An image that cannot be decoded has its
    `FaceLensError` in its slot; the others are unaffected.
    """
    limits = [limit] * len(images) if isinstance(limit, int) else list(limit)
    if len(limits) != len(images):
        raise ValueError(f"{len(limits)} limits for {len(images)} images")
    level = quality_filter or "NONE"
    wanted = frozenset(fields or ()) | (FILTER_FIELDS if level != "NONE" else frozenset())
    decoded: list[DecodedImage | errors.FaceLensError] = []
    for data in images:
        if isinstance(data, DecodedImage):
            decoded.append(data)
            continue
        try:
            decoded.append(decode_image(data, max_bytes=max_bytes or MAX_IMAGE_BYTES))
        except errors.FaceLensError as error:
            decoded.append(error)
    usable = [item for item in decoded if isinstance(item, DecodedImage)]
    detections = iter(analyzer.detect([item.pixels for item in usable]) if usable else [])
    results: list[FaceSet | errors.FaceLensError] = []
    for item, keep in zip(decoded, limits, strict=True):
        if not isinstance(item, DecodedImage):
            results.append(item)
            continue
        faces = largest(next(detections), keep)
        if wanted and faces:
            analyzer.describe(item.pixels, faces, wanted)
        results.append(FaceSet(item, [(face, filtering.rejection_reasons(face, level, item.pixels.shape))
                                      for face in faces]))
    if embed != 0:
        chosen = [(found.image.pixels, found.passed[:embed]) for found in results if isinstance(found, FaceSet)]
        chosen = [(pixels, faces) for pixels, faces in chosen if faces]
        if chosen:
            analyzer.embed([pixels for pixels, _ in chosen], [faces for _, faces in chosen])
    return results


def find_faces_in(analyzer: Analyzer, image: bytes | DecodedImage, fields: Collection[str] | None,
                  limit: int = MAX_FACES, max_bytes: int | None = None, *, quality_filter: str = "NONE",
                  embed: int | None = 0) -> FaceSet:
    """`find_faces` of one image; its decoding error raised."""
    (result,) = find_faces(analyzer, [image], fields, limit, max_bytes, quality_filter=quality_filter, embed=embed)
    return raised(result)


def raised(result: FaceSet | errors.FaceLensError) -> FaceSet:
    """The face set, or its decoding error raised."""
    if isinstance(result, errors.FaceLensError):
        raise result
    return result
