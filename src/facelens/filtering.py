"""Rekognition's QualityFilter (NONE, AUTO, LOW, MEDIUM, HIGH) and the reasons a face is filtered out.

Reasons use Rekognition's `Reason` enum (as reported in IndexFaces' `UnindexedFaces`). The bars are FaceLens's
own, documented in docs/quality-filter.md: Rekognition does not publish its values.
"""

from __future__ import annotations

from dataclasses import dataclass

from facelens.pipeline import Face


@dataclass(frozen=True)
class QualityBar:
    """Minimums a face must meet at one filter level."""

    confidence: float  # detector confidence, 0..100
    min_side: float  # pixels, shorter side of the face box
    max_angle: float  # degrees, |yaw| and |pitch|
    sharpness: float  # Quality.Sharpness, 0..100
    brightness: tuple[float, float]  # Quality.Brightness range, 0..100


BARS: dict[str, QualityBar] = {
    "LOW": QualityBar(confidence=60.0, min_side=16.0, max_angle=75.0, sharpness=2.0, brightness=(3.0, 99.0)),
    "MEDIUM": QualityBar(confidence=75.0, min_side=32.0, max_angle=60.0, sharpness=5.0, brightness=(8.0, 97.0)),
    "HIGH": QualityBar(confidence=85.0, min_side=64.0, max_angle=40.0, sharpness=10.0, brightness=(15.0, 95.0)),
}
BARS["AUTO"] = BARS["MEDIUM"]


def rejection_reasons(face: Face, level: str, image_shape: tuple[int, ...] | None = None) -> list[str]:
    """Why `face` fails the `level` bar (empty when it passes, or when the level is NONE)."""
    bar = BARS.get(level)
    if bar is None:
        return []
    reasons = []
    if face.confidence < bar.confidence:
        reasons.append("LOW_CONFIDENCE")
    x1, y1, x2, y2 = face.box
    if min(x2 - x1, y2 - y1) < bar.min_side:
        reasons.append("SMALL_BOUNDING_BOX")
    if face.pose is not None and max(abs(face.pose[1]), abs(face.pose[2])) > bar.max_angle:
        reasons.append("EXTREME_POSE")
    if face.quality is not None:
        brightness, sharpness = face.quality
        if brightness < bar.brightness[0]:
            reasons.append("LOW_BRIGHTNESS")
        if sharpness < bar.sharpness:
            reasons.append("LOW_SHARPNESS")
    return reasons
