"""DetectProtectiveEquipment on the wire: validated parameters -> `ProtectiveEquipmentService.detect` ->
DetectProtectiveEquipmentResponse (Persons with BoundingBox, Confidence, Id and their FACE body part; Summary when
SummarizationAttributes are given; ProtectiveEquipmentModelVersion). HEAD and hands are never returned, and a
FACE_COVER carries no BoundingBox: no model here computes them (`facelens.recognition.ppe`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facelens.api.wire import configured, image_bytes

if TYPE_CHECKING:
    from facelens.context import RequestContext
    from facelens.recognition.ppe import Person, PPEResult
    from facelens.service import Backend

Shape = dict[str, Any]


def person(value: Person) -> Shape:
    left, top, width, height = value.box
    parts = []
    if value.face_confidence is not None:
        parts.append({"Name": "FACE", "Confidence": value.face_confidence, "EquipmentDetections": [
            {"Type": "FACE_COVER", "Confidence": cover.confidence,
             "CoversBodyPart": {"Value": True, "Confidence": cover.confidence}} for cover in value.equipment]})
    return {"BodyParts": parts, "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
            "Confidence": value.confidence, "Id": value.id}


def response(result: PPEResult) -> Shape:
    shaped: Shape = {"ProtectiveEquipmentModelVersion": result.model_version,
                     "Persons": [person(p) for p in result.persons]}
    if result.summary is not None:
        shaped["Summary"] = {"PersonsWithRequiredEquipment": result.summary.with_equipment,
                             "PersonsWithoutRequiredEquipment": result.summary.without_equipment,
                             "PersonsIndeterminate": result.summary.indeterminate}
    return shaped


def detect_protective_equipment(backend: Backend, p: dict[str, Any], context: RequestContext) -> Shape:
    service = configured(backend, "ppe", "DetectProtectiveEquipment")
    return response(service.detect(image=image_bytes(p["Image"]), summarization=p.get("SummarizationAttributes"),
                                   max_bytes=context.max_image_bytes))
