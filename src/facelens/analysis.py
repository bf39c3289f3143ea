"""DetectFaces and CompareFaces: image bytes in, Rekognition-shaped response dicts out.

Shared by the Python API, the CLI and the HTTP service, so all three answer identically.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from facelens import calibration, errors, filtering, geometry
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
    """The `limit` largest faces, largest first."""
    return sorted(faces, key=lambda face: face.area, reverse=True)[:limit]


def find_faces(analyzer: FaceAnalyzer, images: Sequence[bytes], fields: Collection[str] | None,
               limit: int = MAX_FACES, max_bytes: int | None = None,
               ) -> list[tuple[DecodedImage, list[Face]] | errors.FaceLensError]:
    """Decode each image (at most `max_bytes`: `Image.Bytes`'s 5 MiB unless given), detect faces in one batch,
    keep the `limit` largest (largest first), describe them when `fields` is given. An image that cannot be
    decoded has its error in its place."""
    decoded: list[DecodedImage | errors.FaceLensError] = []
    for data in images:
        try:
            decoded.append(decode_image(data, max_bytes=max_bytes or MAX_IMAGE_BYTES))
        except errors.FaceLensError as error:
            decoded.append(error)
    pixels = [item.pixels for item in decoded if isinstance(item, DecodedImage)]
    detections = iter(analyzer.detect(pixels) if pixels else [])
    results: list[tuple[DecodedImage, list[Face]] | errors.FaceLensError] = []
    for item in decoded:
        if isinstance(item, DecodedImage):
            faces = largest(next(detections), limit)
            if fields:
                analyzer.describe(item.pixels, faces, fields)
            results.append((item, faces))
        else:
            results.append(item)
    return results


def find_faces_in(analyzer: FaceAnalyzer, image: bytes, fields: Collection[str] | None, limit: int = MAX_FACES,
                  max_bytes: int | None = None) -> tuple[DecodedImage, list[Face]]:
    """`find_faces` of one image; its decoding error raised."""
    (result,) = find_faces(analyzer, [image], fields, limit, max_bytes)
    if isinstance(result, errors.FaceLensError):
        raise result
    return result


def detect_faces(image: bytes, attributes: Sequence[str] | None = None,
                 analyzer: FaceAnalyzer | None = None, max_bytes: int | None = None) -> dict:
    """The DetectFaces response for one image (`max_bytes`: the byte limit, 5 MiB unless given)."""
    fields = resolve_attributes(attributes)
    decoded, faces = find_faces_in(analyzer or default_analyzer(), image, fields, max_bytes=max_bytes)
    return {"FaceDetails": [face_detail(f, decoded.width, decoded.height, fields) for f in faces]}


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
                  max_bytes: int | None = None) -> dict:
    """The CompareFaces response: the largest source face against every target face."""
    analyzer = analyzer or default_analyzer()
    threshold = COMPARE_DEFAULT_THRESHOLD if similarity_threshold is None else float(similarity_threshold)
    level = quality_filter or "NONE"
    limit = max_bytes or MAX_IMAGE_BYTES
    images = [decode_image(source, max_bytes=limit), decode_image(target, max_bytes=limit)]
    pixels = [image.pixels for image in images]
    detected = analyzer.detect(pixels)
    fields = frozenset({"Pose", "Quality"})
    source_faces = largest(detected[0], 1)
    analyzer.describe(pixels[0], source_faces, fields)
    source_faces = [f for f in source_faces if not filtering.rejection_reasons(f, level, images[0].pixels.shape)]
    if not source_faces:
        raise errors.InvalidParameterException("Request has invalid parameters: no face found in the source image")
    target_faces = largest(detected[1])
    analyzer.describe(pixels[1], target_faces, fields)
    target_faces = [f for f in target_faces if not filtering.rejection_reasons(f, level, images[1].pixels.shape)]
    analyzer.embed(pixels, [source_faces, target_faces])
    model = calibration.for_model(analyzer.model_version)
    matches, unmatched = [], []
    if target_faces:
        cosines = np.stack([f.embedding for f in target_faces]) @ source_faces[0].embedding
        similarities = model.similarity(cosines)
        for face, similarity in zip(target_faces, similarities, strict=True):
            shaped = compared_face(face, images[1].width, images[1].height)
            if similarity >= threshold:
                matches.append({"Similarity": float(similarity), "Face": shaped})
            else:
                unmatched.append(shaped)
    matches.sort(key=lambda match: match["Similarity"], reverse=True)
    src = source_faces[0]
    return {
        "SourceImageFace": {"BoundingBox": bounding_box(src.box, images[0].width, images[0].height),
                            "Confidence": src.confidence},
        "FaceMatches": matches,
        "UnmatchedFaces": unmatched,
    }
