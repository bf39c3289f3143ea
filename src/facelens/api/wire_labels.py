"""DetectLabels on the wire: validated parameters -> `LabelService.detect_labels` -> DetectLabelsResponse.

Shaped per botocore's DetectLabelsResponse: Labels (Name, Confidence, Instances with BoundingBox, Confidence
and, with IMAGE_PROPERTIES, DominantColors; Parents, Aliases and Categories from the WordNet taxonomy) and
LabelModelVersion when GENERAL_LABELS was asked for; ImageProperties (Quality, DominantColors) when
IMAGE_PROPERTIES was. Foreground, Background and OrientationCorrection are never sent: nothing here computes them
(docs/models.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facelens.api.wire import configured, image_bytes

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.recognition.image_properties import DominantColor, ImageProperties
    from facelens.recognition.labels import Label, LabelResult
    from facelens.service import Backend

Shape = dict[str, Any]


def color(value: DominantColor) -> Shape:
    return {"Red": value.red, "Blue": value.blue, "Green": value.green, "HexCode": value.hex_code,
            "CSSColor": value.css_color, "SimplifiedColor": value.simplified_color,
            "PixelPercent": value.pixel_percent}


def properties(value: ImageProperties) -> Shape:
    quality = value.quality
    return {"Quality": {"Brightness": quality.brightness, "Sharpness": quality.sharpness,
                        "Contrast": quality.contrast},
            "DominantColors": [color(c) for c in value.dominant_colors]}


def label(value: Label) -> Shape:
    instances = []
    for instance in value.instances:
        left, top, width, height = instance.box
        shaped: Shape = {"BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
                         "Confidence": instance.confidence}
        if instance.dominant_colors is not None:
            shaped["DominantColors"] = [color(c) for c in instance.dominant_colors]
        instances.append(shaped)
    return {"Name": value.name, "Confidence": value.confidence, "Instances": instances,
            "Parents": [{"Name": parent} for parent in value.parents],
            "Aliases": [{"Name": alias} for alias in value.aliases],
            "Categories": [{"Name": category} for category in value.categories]}


def labels_response(result: LabelResult) -> Shape:
    """The DetectLabelsResponse of a `LabelResult`."""
    shaped: Shape = {}
    if result.labels is not None:
        shaped["Labels"] = [label(value) for value in result.labels]
        shaped["LabelModelVersion"] = result.model_version
    if result.properties is not None:
        shaped["ImageProperties"] = properties(result.properties)
    return shaped


def detect_labels(backend: Backend, p: dict[str, Any], context: RequestContext) -> Shape:
    return labels_response(configured(backend, "labels", "DetectLabels").detect_labels(
        image=image_bytes(p["Image"]), features=p.get("Features"), max_labels=p.get("MaxLabels"),
        min_confidence=p.get("MinConfidence"), settings=p.get("Settings"), max_bytes=context.max_image_bytes))
