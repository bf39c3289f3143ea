"""FaceAnalyzer: images in, `Face` records out (detect -> align -> embed -> landmarks/attributes).

Composes one model object per kind (InsightFace's `FaceAnalysis` pattern). Each model loads on first use and is
reused; batches of images go through the detector and recognizer together. Knows nothing of HTTP or storage.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from facelens.align import align_face
from facelens.models.registry import ModelConfig

log = logging.getLogger("facelens.models")

if TYPE_CHECKING:
    from facelens.models.detector import ScrfdDetector, YuNetDetector
    from facelens.models.embedder import OnnxEmbedder

# Rekognition `Attributes` values, and the attribute groups FaceLens computes for each.
DEFAULT_ATTRIBUTES = frozenset({"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"})
ATTRIBUTE_GROUPS: dict[str, frozenset[str]] = {
    "DEFAULT": DEFAULT_ATTRIBUTES,
    "ALL": DEFAULT_ATTRIBUTES | {"AgeRange", "Gender", "EyesOpen", "MouthOpen", "AllLandmarks", "Emotions",
                                 "Smile", "FaceOccluded", "EyeDirection"},
    "AGE_RANGE": frozenset({"AgeRange"}),
    "GENDER": frozenset({"Gender"}),
    "EYES_OPEN": frozenset({"EyesOpen"}),
    "MOUTH_OPEN": frozenset({"MouthOpen"}),
    "EMOTIONS": frozenset({"Emotions"}),
    "SMILE": frozenset({"Smile"}),
    "FACE_OCCLUDED": frozenset({"FaceOccluded"}),
    "EYE_DIRECTION": frozenset({"EyeDirection"}),
}
# Attributes Rekognition has but no FaceLens model computes: accepted in requests, never answered.
UNSUPPORTED_ATTRIBUTES = frozenset(
    {"BEARD", "EYEGLASSES", "MUSTACHE", "SUNGLASSES"}
)


def resolve_attributes(requested: Sequence[str] | None) -> frozenset[str]:
    """Expand Rekognition's `Attributes` list to the FaceDetail fields to compute.

    As in Rekognition, the DEFAULT fields are always returned; named attributes add to them.
    """
    fields: set[str] = set(DEFAULT_ATTRIBUTES)
    for name in requested or ():
        fields |= ATTRIBUTE_GROUPS.get(name, frozenset())
    return frozenset(fields)


@dataclass
class Face:
    """One detected face, in pixel coordinates of the decoded image; optional parts filled on request."""

    box: np.ndarray  # x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2)
    confidence: float  # 0..100
    embedding: np.ndarray | None = None
    landmarks68: np.ndarray | None = None
    pose: tuple[float, float, float] | None = None  # roll, yaw, pitch
    quality: tuple[float, float] | None = None  # brightness, sharpness
    age_gender: object | None = None  # facelens.models.attributes.AgeGender
    eyes_open: tuple[bool, float] | None = None
    mouth_open: tuple[bool, float] | None = None
    emotions: np.ndarray | None = None  # expression probabilities, facelens.models.emotion.CLASSES order
    masked: float | None = None  # P(the face is covered by a mask), facelens.models.mask
    eye_direction: tuple[float, float] | None = None  # yaw, pitch of the eyes in the head, facelens.models.iris

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


MODEL_KINDS = ("detector", "embedder", "landmarks", "age_gender", "emotion", "mask", "iris")


class FaceAnalyzer:
    """The face pipeline with lazily loaded, shared models; thread-safe for concurrent callers."""

    def __init__(self, config: ModelConfig | None = None, flip: bool | None = None) -> None:
        """Models and session options from `config` (default `ModelConfig()`: bundled models, no settings);
        `flip` overrides `config.flip`."""
        self.config = config or ModelConfig()
        # Mirror-image test-time augmentation doubles the recognizer's work for no measured gain with SFace
        # on LFW (docs/benchmarks.md), so it is off unless asked for (ModelConfig.flip, FACELENS_FLIP_TTA=1).
        self.flip = self.config.flip if flip is None else flip
        # one lock per kind: kinds load concurrently, each exactly once (age/gender loads on the landmark model)
        self._locks = {kind: threading.Lock() for kind in MODEL_KINDS}
        self._models: dict[str, object] = {}

    def _model(self, kind: str) -> object:
        model = self._models.get(kind)
        if model is not None:
            return model
        with self._locks[kind]:
            if kind not in self._models:
                self._models[kind] = self._load(kind)
            return self._models[kind]

    def _load(self, kind: str) -> object:
        if kind == "detector":
            from facelens.models.detector import load_detector

            return load_detector(self.config)
        if kind == "embedder":
            from facelens.models.embedder import load_embedder

            return load_embedder(self.config, flip=self.flip)
        if kind == "landmarks":
            from facelens.models.landmarks import DlibLandmarker

            return DlibLandmarker()
        if kind == "age_gender":
            from facelens.models.attributes import AgeGenderEstimator

            return AgeGenderEstimator(landmarker=self._model("landmarks"), config=self.config)  # one dlib load
        if kind == "emotion":
            from facelens.models.emotion import EmotionModel

            return EmotionModel(self.config)
        if kind == "mask":
            from facelens.models.mask import MaskModel

            return MaskModel(self.config)
        if kind == "iris":
            from facelens.models.iris import IrisModel
            from facelens.models.runtime import runtime_for

            # MediaPipe Iris runs 3x faster on OpenVINO than on onnxruntime here (2, 24 and 98 eyes at one thread:
            # 2.1 vs 6.2, 21 vs 78, 175 vs 522 ms; points within 6e-5 crop pixels), so `auto` takes OpenVINO for
            # it as for the recognizer; a graph OpenVINO cannot compile falls back to the configured runtime.
            if runtime_for(self.config, openvino_first=True) == "openvino" and self.config.runtime == "auto":
                try:
                    return IrisModel(replace(self.config, runtime="openvino"))
                except Exception as exc:  # any compile failure: onnxruntime as configured
                    log.warning("MediaPipe Iris on OpenVINO failed (%s); running it on onnxruntime", exc)
            return IrisModel(self.config)
        raise KeyError(kind)

    @property
    def detector(self) -> YuNetDetector | ScrfdDetector:
        return self._model("detector")  # type: ignore[return-value]

    @property
    def embedder(self) -> OnnxEmbedder:
        return self._model("embedder")  # type: ignore[return-value]

    @property
    def model_version(self) -> str:
        """Recognizer name (+ augmentation), which determines whether two embeddings are comparable."""
        return self.embedder.version

    def warmup(self) -> None:
        """Load every model now (the service does this at start, so the first request is not slow): the
        recognition models on one thread while dlib's landmarks and the age/gender models load on another
        (1.0 s -> 0.7 s on two cores)."""
        other = threading.Thread(target=lambda: self._model("age_gender"), name="facelens-warmup", daemon=True)
        other.start()
        self._model("detector")
        self._model("embedder")
        other.join()

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces per image, highest detector score first; boxes and landmarks only."""
        detections = self.detector.detect(list(images))
        return [
            [Face(box=d.box, landmarks=d.landmarks, confidence=100.0 * d.score) for d in per_image]
            for per_image in detections
        ]

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> None:
        """Fill `embedding` for every face, aligning and running all crops of all images as one batch."""
        crops = [align_face(image, face.landmarks) for image, per in zip(images, faces, strict=True) for face in per]
        vectors = self.embedder.embed(crops)
        flat = [face for per in faces for face in per]
        for face, vector in zip(flat, vectors, strict=True):
            face.embedding = vector

    def describe(self, image: np.ndarray, faces: Sequence[Face], fields: Collection[str]) -> None:
        """Fill the FaceDetail attributes named in `fields` (see `resolve_attributes`).

        Each model sees the faces in batches (one session call per model per part); for many faces the
        independent parts (68 points -> pose, eyes, mouth, eye direction; quality; age/gender; expressions; mask)
        run as tasks on the shared describe pool and the calling thread (`run_tasks`). Every task writes only
        its own fields of each face, so the answers are those of running the tasks one after another."""
        faces = list(faces)
        if faces:
            run_tasks(self.describe_tasks(image, faces, frozenset(fields)))

    def describe_tasks(self, image: np.ndarray, faces: list[Face],
                       fields: frozenset[str]) -> list[Callable[[], None]]:
        """The independent units of `describe`, largest first: the faces in parts of `PART` for the
        per-face work and the three heaviest models (the mask, the 68 points with the eyes, and age/gender,
        which cuts dlib chips per face), whole batches for the light ones, so that the pool's threads and the
        caller finish together."""
        from facelens import geometry, quality

        height, width = image.shape[:2]
        parts = [faces[start:start + PART] for start in range(0, len(faces), PART)] if len(faces) >= 2 * PART \
            else [faces]
        tasks: list[Callable[[], None]] = []
        if {"Pose", "EyesOpen", "MouthOpen", "AllLandmarks", "EyeDirection"} & fields:
            landmarker = self._model("landmarks")
            iris = self._model("iris") if "EyeDirection" in fields else None

            def shape(part: list[Face]) -> None:
                for face in part:
                    face.landmarks68 = landmarker.landmarks68(image, face.box)
                    if "Pose" in fields:
                        face.pose = geometry.head_pose(face.landmarks68, width, height)
                    if "EyesOpen" in fields:
                        face.eyes_open = geometry.eyes_open(face.landmarks68)
                    if "MouthOpen" in fields:
                        face.mouth_open = geometry.mouth_open(face.landmarks68)
                if iris is not None:
                    gazes = iris.predict(image, [face.landmarks68 for face in part])
                    for face, gaze in zip(part, gazes, strict=True):
                        face.eye_direction = gaze

            tasks += [partial(shape, part) for part in parts]
        if "FaceOccluded" in fields:
            mask = self._model("mask")

            def covered(part: list[Face]) -> None:
                for face, p in zip(part, mask.predict(image, [face.box for face in part]), strict=True):
                    face.masked = float(p)

            tasks += [partial(covered, part) for part in parts]
        if {"AgeRange", "Gender"} & fields:
            estimator = self._model("age_gender")

            def age_gender(part: list[Face]) -> None:
                for face, estimate in zip(part, estimator.predict(image, [face.box for face in part]), strict=True):
                    face.age_gender = estimate

            tasks += [partial(age_gender, part) for part in parts]
        if {"Emotions", "Smile"} & fields:
            emotion = self._model("emotion")

            def emotions() -> None:
                for face, row in zip(faces, emotion.predict(image, [face.box for face in faces]), strict=True):
                    face.emotions = row

            tasks.append(emotions)
        if "Quality" in fields:

            def qualities() -> None:
                for face in faces:
                    face.quality = quality.face_quality(image, face.box)

            tasks.append(qualities)
        return tasks


# Faces per part of the per-face work and of the heavy models in `describe` (parts only from 2 * PART faces:
# fewer faces run as one batch, where splitting costs more than it overlaps).
PART = 12
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _describe_pool() -> ThreadPoolExecutor:
    """The process-wide pool `run_tasks` shares: one thread fewer than the cores (the caller is the other)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="facelens-describe")
        return _pool


def run_tasks(tasks: Sequence[Callable[[], None]]) -> None:
    """Run independent tasks to completion, the first exception raised.

    One task runs inline. Otherwise all but the first go to the shared pool and the caller runs the first,
    then takes back, from the last, every task no pool thread has started (`Future.cancel` succeeds only on a
    task still queued) and runs it itself, then waits for the rest. The caller always makes progress, so a
    busy pool (other requests) only means the caller does more of the work, never a deadlock."""
    if len(tasks) <= 1 or (os.cpu_count() or 1) < 2:
        for task in tasks:
            task()
        return
    pool = _describe_pool()
    futures = [pool.submit(task) for task in tasks[1:]]
    error: BaseException | None = None
    try:
        tasks[0]()
    except BaseException as exc:  # re-raised once the pool's tasks have finished
        error = exc
    for task, future in zip(reversed(tasks[1:]), reversed(futures), strict=True):
        if future.cancel():
            try:
                task()
            except BaseException as exc:  # re-raised once the pool's tasks have finished
                error = error or exc
    for future in futures:
        if not future.cancelled():
            exc = future.exception()
            error = error or exc
    if error is not None:
        raise error


_analyzers: dict[ModelConfig, FaceAnalyzer] = {}
_analyzers_lock = threading.Lock()


def analyzer_for(config: ModelConfig) -> FaceAnalyzer:
    """The process-wide analyzer of a model configuration (each model loads once per process, on first use)."""
    with _analyzers_lock:
        if config not in _analyzers:
            _analyzers[config] = FaceAnalyzer(config)
        return _analyzers[config]


def default_analyzer() -> FaceAnalyzer:
    """The process-wide analyzer of the default `ModelConfig()` (tests, benchmarks, eval without settings)."""
    return analyzer_for(ModelConfig())
