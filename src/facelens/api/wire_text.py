"""DetectText on the wire: the adapter (validated parameters -> `TextService.detect_text`) and the response's
shape (`DetectTextResponse`: TextDetections, TextModelVersion).

TextDetections lists the LINEs first, top to bottom (Ids 0..n-1), then the WORDs in reading order (Ids from n),
each WORD's ParentId the Id of its LINE, as Rekognition orders them. Geometry has the BoundingBox (ratios of the
image) and the Polygon (the four corners, clockwise from the top-left, in ratios), both clipped to the image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facelens.api.wire import configured, image_bytes
from facelens.recognition.text import TextFilters, TextReading, ratio_box, ratio_polygon

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.service import Backend

Shape = dict[str, Any]


def filters(wire: Any) -> TextFilters | None:
    """`DetectTextFilters` as the service takes them (None: no filter)."""
    return TextFilters.from_wire(wire) if wire else None


def _geometry(polygon: Any, width: int, height: int) -> Shape:
    left, top, w, h = ratio_box(polygon, width, height)
    return {"BoundingBox": {"Width": w, "Height": h, "Left": left, "Top": top},
            "Polygon": [{"X": x, "Y": y} for x, y in ratio_polygon(polygon, width, height)]}


def text_detections(reading: TextReading) -> Shape:
    """DetectTextResponse."""
    width, height = reading.width, reading.height
    lines: list[Shape] = []
    words: list[Shape] = []
    for line_id, line in enumerate(reading.lines):
        lines.append({"DetectedText": line.text, "Type": "LINE", "Id": line_id, "Confidence": line.confidence,
                      "Geometry": _geometry(line.polygon, width, height)})
        for word in line.words:
            words.append({"DetectedText": word.text, "Type": "WORD", "Id": len(reading.lines) + len(words),
                          "ParentId": line_id, "Confidence": word.confidence,
                          "Geometry": _geometry(word.polygon, width, height)})
    return {"TextDetections": lines + words, "TextModelVersion": reading.model_version}


def detect_text(backend: Backend, p: dict[str, Any], context: RequestContext) -> Shape:
    service = configured(backend, "text", "DetectText")
    return text_detections(service.detect_text(image=image_bytes(p["Image"]), filters=filters(p.get("Filters")),
                                               context=context))
