"""DetectFaces and CompareFaces: the image operations that need no collection.

`detect` and `compare` are the engines (the face path, `facelens.analysis.find_faces`, and the calibrated
score); `FaceService` answers the operations through them. CompareFaces passes the accountability gate like
every identification: its threshold is raised to the server's compare floor, disclosed, and the comparison is
audited (where there is an audit log) before it is answered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from facelens import errors
from facelens.analysis import FILTER_FIELDS, MAX_FACES, Analyzer, find_faces, find_faces_in, raised
from facelens.calibration import Calibration
from facelens.context import RequestContext
from facelens.domain import ports
from facelens.domain.model import ComparedMatch, Comparison, FoundFace
from facelens.pipeline import resolve_attributes


def detect(analyzer: Analyzer, image: bytes, attributes: Sequence[str] | None = None,
           max_bytes: int | None = None) -> list[FoundFace]:
    """Every face of one image (the 100 largest) with the requested attributes (`max_bytes`: the byte limit,
    5 MiB unless given)."""
    fields = resolve_attributes(attributes)
    found = find_faces_in(analyzer, image, fields, max_bytes=max_bytes)
    width, height = found.image.width, found.image.height
    return [FoundFace(face, width, height, fields) for face, _ in found.faces]


def compare(analyzer: Analyzer, source: bytes, target: bytes, threshold: float, calibration: Calibration,
            quality_filter: str | None = None, max_bytes: int | None = None) -> Comparison:
    """The largest source face (it must pass the quality filter) against every target face that passes it,
    scored on `calibration`; the matches reach `threshold`, best first."""
    # Pose and Quality always: ComparedFace reports them
    found = find_faces(analyzer, [source, target], FILTER_FIELDS, (1, MAX_FACES), max_bytes,
                       quality_filter=quality_filter or "NONE", embed=None)
    source_set, target_set = (raised(result) for result in found)
    if not source_set.passed:
        raise errors.InvalidParameterException(
            "There are no faces in the image. Should be at least 1.")
    src, targets = source_set.passed[0], target_set.passed
    matches: list[ComparedMatch] = []
    unmatched: list[FoundFace] = []
    if targets:
        similarities = calibration.similarity(np.stack([face.embedding for face in targets]) @ src.embedding)
        width, height = target_set.image.width, target_set.image.height
        for face, similarity in zip(targets, similarities, strict=True):
            found_face = FoundFace(face, width, height)
            if similarity >= threshold:
                matches.append(ComparedMatch(float(similarity), found_face))
            else:
                unmatched.append(found_face)
    matches.sort(key=lambda match: match.similarity, reverse=True)
    return Comparison(FoundFace(src, source_set.image.width, source_set.image.height), matches, unmatched)


class FaceService:
    """Face detection and 1:1 comparison with one analyzer."""

    def __init__(self, analyzer: ports.Analyzer, gate: ports.Gate,
                 calibration_for: Callable[[str], Calibration]) -> None:
        self.analyzer = analyzer
        self.gate = gate
        self.calibration_for = calibration_for

    def detect_faces(self, *, image: bytes, attributes: Sequence[str] | None,
                     context: RequestContext) -> list[FoundFace]:
        """DetectFaces: every face (the 100 largest), with the requested attributes."""
        return detect(self.analyzer, image, attributes, context.max_image_bytes)

    def compare_faces(self, *, source: bytes, target: bytes, threshold: float | None, quality_filter: str | None,
                      context: RequestContext) -> Comparison:
        """CompareFaces: the largest source face against every target face, at the gate's threshold; audited."""
        ruling = self.gate.admit_compare(context, threshold)
        result = compare(self.analyzer, source, target, ruling.effective,
                         self.calibration_for(self.analyzer.model_version), quality_filter,
                         context.max_image_bytes)
        self.gate.record_compare(context, ruling, self.analyzer.model_version,
                                 [match.similarity for match in result.matches])
        return result
