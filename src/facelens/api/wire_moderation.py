"""DetectModerationLabels on the wire: validated parameters -> `ModerationService` -> the response's shape.

The response has the members of botocore's `DetectModerationLabelsResponse` that a model computes here:
`ModerationLabels` (each label's Confidence, Name, ParentName and TaxonomyLevel, highest Confidence first),
`ModerationModelVersion` and `ContentTypes` (each type's Confidence and Name; here only "Illustrated", sent when it
reaches MinConfidence; an empty list otherwise). `HumanLoopActivationOutput` (no human review) and `ProjectVersion`
(no custom adapters) are never sent. Imports no service at runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facelens.api.wire import configured, image_bytes

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.recognition.moderation import ContentType, Moderation, ModerationLabel
    from facelens.service import Backend

Shape = dict[str, Any]


def moderation_label(label: ModerationLabel) -> Shape:
    """Rekognition's ModerationLabel, members in the order it documents them."""
    return {"Confidence": label.confidence, "Name": label.name, "ParentName": label.parent_name,
            "TaxonomyLevel": label.taxonomy_level}


def content_type(kind: ContentType) -> Shape:
    """Rekognition's ContentType."""
    return {"Confidence": kind.confidence, "Name": kind.name}


def moderation_response(result: Moderation) -> Shape:
    """DetectModerationLabelsResponse: the labels (highest Confidence first), the models' version and the content
    types."""
    ordered = sorted(result.labels, key=lambda label: label.confidence, reverse=True)
    return {"ModerationLabels": [moderation_label(label) for label in ordered],
            "ModerationModelVersion": result.model_version,
            "ContentTypes": [content_type(kind) for kind in result.content_types]}


def detect_moderation_labels(backend: Backend, p: dict[str, Any], context: RequestContext) -> Shape:
    service = configured(backend, "moderation", "DetectModerationLabels")
    return moderation_response(service.detect_moderation_labels(
        image=image_bytes(p["Image"]), min_confidence=p.get("MinConfidence"), project_version=p.get("ProjectVersion"),
        human_loop=p.get("HumanLoopConfig") is not None, context=context))
