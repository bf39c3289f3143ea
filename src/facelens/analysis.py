"""The face path (`find_faces`), and DetectFaces and CompareFaces on it: image bytes in, Rekognition shapes out.

`find_faces` is the only way from an image to faces and embeddings: DetectFaces, CompareFaces, the collection
operations (IndexFaces, Search*ByImage, bulk indexing), stored video and `facelens eval` all go through it, so
the published evaluation measures exactly the embeddings the service stores and searches.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facelens import calibration as calibration_tables
from facelens import errors, filtering, geometry
from facelens.calibration import Calibration
from facelens.imaging import MAX_IMAGE_BYTES, DecodedImage, decode_image
from facelens.pipeline import Face, FaceAnalyzer, default_analyzer, resolve_attributes

MAX_FACES = 100  # Rekognition: DetectFaces reports, and CompareFaces compares, the 100 largest faces


def bounding_box(box: np.ndarray, width: int, height: int) -> dict[str, float]:
    """Rekognition's BoundingBox: ratios of the image size (may reach slightly outside 0..1, as AWS's do)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return {"Width": (x2 - x1) / width, "Height": (y2 - y1) / height, "Left": x1 / width, "Top": y1 / height}


def face_detail(face: Face, width: int, height: int, fields: frozenset[str]) -> dict:
    """One FaceDetail with the requested fields that FaceLens computes (others are omitted, never invented)."""
    detail: dict = {"BoundingBox": bounding_box(face.box, width, height)}
    if face.age_gender is not None and "AgeRange" in fields:
        detail["AgeRange"] = {"Low": face.age_gender.age_low, "High": face.age_gender.age_high}
    if face.age_gender is not None and "Gender" in fields:
        detail["Gender"] = {"Value": face.age_gender.gender, "Confidence": face.age_gender.gender_confidence}
    if face.eyes_open is not None:
        detail["EyesOpen"] = {"Value": face.eyes_open[0], "Confidence": face.eyes_open[1]}
    if face.mouth_open is not None:
        detail["MouthOpen"] = {"Value": face.mouth_open[0], "Confidence": face.mouth_open[1]}
    detail["Landmarks"] = geometry.rekognition_landmarks(
        face.landmarks, face.landmarks68 if "AllLandmarks" in fields else None, width, height
    )
    if face.pose is not None:
        roll, yaw, pitch = face.pose
        detail["Pose"] = {"Roll": roll, "Yaw": yaw, "Pitch": pitch}
    if face.quality is not None:
        detail["Quality"] = {"Brightness": face.quality[0], "Sharpness": face.quality[1]}
    detail["Confidence"] = face.confidence
    return detail


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
    return _raised(result)


def _raised(result: FaceSet | errors.FaceLensError) -> FaceSet:
    if isinstance(result, errors.FaceLensError):
        raise result
    return result


def detect_faces(image: bytes, attributes: Sequence[str] | None = None,
                 analyzer: FaceAnalyzer | None = None, max_bytes: int | None = None) -> dict:
    """The DetectFaces response for one image (`max_bytes`: the byte limit, 5 MiB unless given)."""
    fields = resolve_attributes(attributes)
    found = find_faces_in(analyzer or default_analyzer(), image, fields, max_bytes=max_bytes)
    width, height = found.image.width, found.image.height
    return {"FaceDetails": [face_detail(face, width, height, fields) for face, _ in found.faces]}


def compared_face(face: Face, width: int, height: int) -> dict:
    """Rekognition's ComparedFace (BoundingBox, Confidence, Landmarks, and Pose/Quality when computed)."""
    shaped = {
        "BoundingBox": bounding_box(face.box, width, height),
        "Confidence": face.confidence,
        "Landmarks": geometry.rekognition_landmarks(face.landmarks, None, width, height),
    }
    if face.pose is not None:
        shaped["Pose"] = dict(zip(("Roll", "Yaw", "Pitch"), face.pose, strict=True))
    if face.quality is not None:
        shaped["Quality"] = dict(zip(("Brightness", "Sharpness"), face.quality, strict=True))
    return shaped


COMPARE_DEFAULT_THRESHOLD = 80.0  # Rekognition's CompareFaces default (stated in its API reference, not the model)


def compare_faces(source: bytes, target: bytes, similarity_threshold: float | None = None,
                  quality_filter: str | None = None, analyzer: FaceAnalyzer | None = None,
                  max_bytes: int | None = None, calibration: Calibration | None = None) -> dict:
    """The CompareFaces response: the largest source face (it must pass the quality filter) against every target
    face that passes it, scored on `calibration` (default: the shipped table of the analyzer's model)."""
    analyzer = analyzer or default_analyzer()
    threshold = COMPARE_DEFAULT_THRESHOLD if similarity_threshold is None else float(similarity_threshold)
    # Pose and Quality always: ComparedFace reports them
    found = find_faces(analyzer, [source, target], FILTER_FIELDS, (1, MAX_FACES), max_bytes,
                       quality_filter=quality_filter or "NONE", embed=None)
    source_set, target_set = (_raised(result) for result in found)
    if not source_set.passed:
        raise errors.InvalidParameterException("Request has invalid parameters: no face found in the source image")
    src, targets = source_set.passed[0], target_set.passed
    model = calibration or calibration_tables.for_model(analyzer.model_version)
    matches, unmatched = [], []
    if targets:
        similarities = model.similarity(np.stack([face.embedding for face in targets]) @ src.embedding)
        width, height = target_set.image.width, target_set.image.height
        for face, similarity in zip(targets, similarities, strict=True):
            shaped = compared_face(face, width, height)
            if similarity >= threshold:
                matches.append({"Similarity": float(similarity), "Face": shaped})
            else:
                unmatched.append(shaped)
    matches.sort(key=lambda match: match["Similarity"], reverse=True)
    return {
        "SourceImageFace": {"BoundingBox": bounding_box(src.box, source_set.image.width, source_set.image.height),
                            "Confidence": src.confidence},
        "FaceMatches": matches,
        "UnmatchedFaces": unmatched,
    }
