"""DetectText's model: RapidOCR's PP-OCRv6 (small) detector and recogniser on onnxruntime, read into lines and
words.

The ONNX graphs ship inside the `rapidocr` wheel (`rapidocr/models/`) and are opened by path, so nothing is
downloaded; the engine is made on the first call (a server that never answers DetectText never loads it) and
reused. What is measured and what is derived:

* a LINE is one detected text region: its polygon is the detector's quadrilateral, its text and confidence
  (the mean of the recogniser's per-character probabilities) are the recogniser's;
* a WORD is a run of the line's text between spaces. Its text and confidence (the mean probability of its
  characters) are the recogniser's. Its polygon comes from the recogniser's character positions: the CTC
  column where its first and last character were emitted, widened by half the line's mean character pitch
  (RapidOCR's `return_single_char_box`), mapped back through the line's crop; it spans the line's full
  height. Where those positions cannot be matched to the text, the line's quadrilateral is split in
  proportion to character counts (`ReadWord.from_characters` is False).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from facelens import errors
from facelens.imaging import MAX_IMAGE_BYTES, decode_image
from facelens.models.registry import ModelConfig, bundled

if TYPE_CHECKING:
    from facelens.context import RequestContext

Point = tuple[float, float]  # (x, y) in pixels
Quad = tuple[Point, Point, Point, Point]  # top-left, top-right, bottom-right, bottom-left

DETECTOR = ("rapidocr", "models", "PP-OCRv6_det_small.onnx")
RECOGNIZER = ("rapidocr", "models", "PP-OCRv6_rec_small.onnx")
CLASSIFIER = ("rapidocr", "models", "ch_ppocr_mobile_v2.0_cls_mobile.onnx")
# The detector's input size: RapidOCR's default ("min", 736) enlarges every image until its short side is 736 px,
# which splits the words of a small image's line into lines of their own and costs 4x the time; ("max", 960),
# PaddleOCR's own default, only shrinks images whose long side is over 960 (benchmarks/text.py, docs/models.md).
DET_LIMIT: tuple[str, int] = ("max", 960)
MIN_LINE_SCORE = 0.5  # RapidOCR's default `text_score`: lines the recogniser reads below 50% are dropped


@dataclass(frozen=True)
class ReadWord:
    """One word: its text, confidence (0-100) and quadrilateral in pixels."""

    text: str
    confidence: float
    polygon: Quad
    from_characters: bool  # True: placed by the recogniser's character positions; False: split proportionally


@dataclass(frozen=True)
class ReadLine:
    """One line of text as detected and read, with its words in reading order."""

    text: str
    confidence: float
    polygon: Quad
    words: tuple[ReadWord, ...]


def model_version() -> str:
    """TextModelVersion: the package and the models it runs."""
    return f"rapidocr-{metadata.version('rapidocr')}/PP-OCRv6_small"


class TextReader:
    """RapidOCR made once, on first use, with the sessions' threads and providers from `config`."""

    def __init__(self, config: ModelConfig | None = None, det_limit: tuple[str, int] = DET_LIMIT) -> None:
        self.config = config or ModelConfig()
        self.det_limit = det_limit
        self._engine: Any = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return model_version()

    def load(self) -> Any:
        """The engine, made (and its three sessions opened) on the first call."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = _make_engine(self.config, self.det_limit)
        return self._engine

    def read(self, pixels: np.ndarray) -> list[ReadLine]:
        """Every line (with its words) of an RGB uint8 image, top to bottom."""
        engine = self.load()
        result = engine(np.ascontiguousarray(pixels[..., ::-1]))  # RapidOCR takes arrays as BGR
        texts = getattr(result, "txts", None)
        if not texts or getattr(result, "boxes", None) is None:
            return []
        details: Sequence[Any] = result.word_results or ()
        if len(details) != len(texts):
            details = [None] * len(texts)
        lines = []
        for box, text, score, chars in zip(result.boxes, texts, result.scores, details, strict=True):
            quad = _quad(box)
            words = _words_from_characters(text, chars) or _words_by_proportion(text, float(score), quad)
            lines.append(ReadLine(text, float(score) * 100.0, quad, tuple(words)))
        return lines


def _make_engine(config: ModelConfig, det_limit: tuple[str, int]) -> Any:
    from rapidocr import RapidOCR

    from facelens.models.runtime import providers

    cuda = "CUDAExecutionProvider" in providers(config.providers)
    params: dict[str, Any] = {
        "Global.log_level": "error",
        "Global.text_score": MIN_LINE_SCORE,
        "Global.return_word_box": True,
        "Global.return_single_char_box": True,
        "Det.model_path": str(bundled(*DETECTOR)),
        "Rec.model_path": str(bundled(*RECOGNIZER)),
        "Cls.model_path": str(bundled(*CLASSIFIER)),
        "Det.limit_type": det_limit[0],
        "Det.limit_side_len": det_limit[1],
        "EngineConfig.onnxruntime.intra_op_num_threads": config.threads if config.threads > 0 else -1,
        "EngineConfig.onnxruntime.use_cuda": cuda,
    }
    engine = RapidOCR(params=params)
    # open the three sessions now (RapidOCR would on its first image), so a request never pays for them
    engine._load_det_model()
    engine._load_cls_model()
    engine._load_rec_model()
    return engine


def _quad(points: Any) -> Quad:
    p = np.asarray(points, dtype=np.float64).reshape(4, 2)
    return tuple((float(x), float(y)) for x, y in p)  # type: ignore[return-value]


def _spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each run of non-space characters."""
    spans, start = [], None
    for i, char in enumerate(text):
        if char.isspace():
            if start is not None:
                spans.append((start, i))
            start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _words_from_characters(text: str, chars: Any) -> list[ReadWord]:
    """Words placed by the recogniser's characters, or [] where they do not match the line's text."""
    if not isinstance(chars, Sequence) or not chars:
        return []
    try:
        glyphs = [(str(c), float(conf), _quad(box)) for c, conf, box in chars]
    except (TypeError, ValueError):
        return []
    if "".join(g for g, _, _ in glyphs) != "".join(text.split()):
        return []
    words, at = [], 0
    for start, end in _spans(text):
        run = glyphs[at:at + end - start]
        at += end - start
        first, last = run[0][2], run[-1][2]
        polygon = (first[0], last[1], last[2], first[3])
        confidence = float(np.mean([conf for _, conf, _ in run])) * 100.0
        words.append(ReadWord(text[start:end], confidence, polygon, True))
    return words


def _words_by_proportion(text: str, score: float, quad: Quad) -> list[ReadWord]:
    """Words cut from the line's quadrilateral in proportion to their character offsets (confidence: the
    line's)."""
    tl, tr, br, bl = (np.asarray(p) for p in quad)
    n = max(len(text), 1)

    def along(a: np.ndarray, b: np.ndarray, t: float) -> Point:
        x, y = a + (b - a) * t
        return float(x), float(y)

    return [ReadWord(text[s:e], score * 100.0,
                     (along(tl, tr, s / n), along(tl, tr, e / n), along(bl, br, e / n), along(bl, br, s / n)),
                     False)
            for s, e in _spans(text)]


# -- DetectText: filters, the 100-word cap, and the service
MAX_WORDS = 100  # Rekognition's DetectText returns at most 100 words


@dataclass(frozen=True)
class Region:
    """A RegionOfInterest in ratios of the image: a box (left, top, width, height), a polygon, or both (the
    region is where they overlap)."""

    box: tuple[float, float, float, float] | None = None
    polygon: tuple[Point, ...] | None = None


@dataclass(frozen=True)
class TextFilters:
    """DetectText's Filters: WordFilter's minima (confidence 0-100, box height and width as ratios) and the
    regions of interest (none: the whole image)."""

    min_confidence: float = 0.0
    min_height: float = 0.0
    min_width: float = 0.0
    regions: tuple[Region, ...] = ()

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any] | None) -> TextFilters:
        """`DetectTextFilters` or `StartTextDetectionFilters` (the same members), validated at the wire; an absent
        member is its default (no filter)."""
        wire = wire or {}
        word = wire.get("WordFilter") or {}
        regions = []
        for region in wire.get("RegionsOfInterest") or ():
            box, polygon = region.get("BoundingBox"), region.get("Polygon")
            regions.append(Region(
                box=None if box is None else (box.get("Left", 0.0), box.get("Top", 0.0), box.get("Width", 0.0),
                                              box.get("Height", 0.0)),
                polygon=None if polygon is None else tuple((p.get("X", 0.0), p.get("Y", 0.0)) for p in polygon)))
        return cls(min_confidence=word.get("MinConfidence", 0.0), min_height=word.get("MinBoundingBoxHeight", 0.0),
                   min_width=word.get("MinBoundingBoxWidth", 0.0), regions=tuple(regions))


@dataclass(frozen=True)
class TextReading:
    """DetectText's result: the lines kept (each with only its kept words), the image size, the model."""

    lines: tuple[ReadLine, ...]
    width: int
    height: int
    model_version: str


class Reader(Protocol):
    """What `TextService` needs of a reader (`TextReader`, or a test's fake)."""

    @property
    def version(self) -> str: ...

    def read(self, pixels: np.ndarray) -> list[ReadLine]: ...


def ratio_box(polygon: Sequence[Point], width: int, height: int) -> tuple[float, float, float, float]:
    """(left, top, width, height) in ratios of the image, of a polygon in pixels clipped to the image."""
    p = np.clip(np.asarray(polygon, dtype=np.float64), 0, [width, height])
    left, top = p.min(axis=0)
    right, bottom = p.max(axis=0)
    return left / width, top / height, (right - left) / width, (bottom - top) / height


def ratio_polygon(polygon: Sequence[Point], width: int, height: int) -> tuple[Point, ...]:
    """The polygon's points in ratios of the image, clipped to it."""
    p = np.clip(np.asarray(polygon, dtype=np.float64), 0, [width, height]) / [width, height]
    return tuple((float(x), float(y)) for x, y in p)


def _region_shape(region: Region) -> Any:
    from shapely.geometry import Polygon, box

    shapes = []
    if region.box is not None:
        left, top, w, h = region.box
        shapes.append(box(left, top, left + w, top + h))
    if region.polygon is not None:
        if len(region.polygon) < 3:
            raise errors.InvalidParameterException("a RegionOfInterest Polygon needs at least 3 points")
        shapes.append(Polygon(region.polygon).buffer(0))  # buffer(0): a self-crossing outline made valid
    if not shapes:
        raise errors.InvalidParameterException("a RegionOfInterest needs a BoundingBox or a Polygon")
    shape = shapes[0]
    for other in shapes[1:]:
        shape = shape.intersection(other)
    return shape


def _in_regions(word: Sequence[Point], regions: Sequence[Any]) -> bool:
    """Rekognition's rule: a word is kept when more than half of it lies in some region."""
    from shapely.geometry import Polygon

    shape = Polygon(word).buffer(0)
    if shape.area <= 0:  # a degenerate word: its centre decides
        shape = shape.centroid
        return any(region.covers(shape) for region in regions)
    return any(shape.intersection(region).area > 0.5 * shape.area for region in regions)


def apply_filters(lines: Sequence[ReadLine], filters: TextFilters, width: int, height: int) -> tuple[ReadLine, ...]:
    """The words that pass WordFilter and lie in a region of interest, the first `MAX_WORDS` in reading order;
    a line is kept (as it was read) when at least one of its words is."""
    regions = [_region_shape(region) for region in filters.regions]
    kept: list[ReadLine] = []
    count = 0
    for line in lines:
        words = []
        for word in line.words:
            if count >= MAX_WORDS:
                break
            _, _, w, h = ratio_box(word.polygon, width, height)
            if word.confidence < filters.min_confidence or h < filters.min_height or w < filters.min_width:
                continue
            if regions and not _in_regions(ratio_polygon(word.polygon, width, height), regions):
                continue
            words.append(word)
            count += 1
        if words:
            kept.append(ReadLine(line.text, line.confidence, line.polygon, tuple(words)))
    return tuple(kept)


class TextService:
    """DetectText with one reader (loaded on its first image)."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def detect_text(self, *, image: bytes, filters: TextFilters | None, context: RequestContext) -> TextReading:
        """DetectText: every line and word of the image that passes `filters` (at most 100 words)."""
        decoded = decode_image(image, max_bytes=context.max_image_bytes or MAX_IMAGE_BYTES)
        lines = self.reader.read(decoded.pixels)
        kept = apply_filters(lines, filters or TextFilters(), decoded.width, decoded.height)
        return TextReading(kept, decoded.width, decoded.height, self.reader.version)
