"""The typed results of the stored-video analyses, before they are shaped for the wire and stored, and the
aggregation GetLabelDetection / GetContentModeration serve with AggregateBy SEGMENTS.

Each analysis' runner (`facelens.domain.video_analyses`) returns these; the service's `persist` (given by the
composition root: `facelens.api.wire_video.persist`) turns each into the dict Get* pages out. Timestamps are
milliseconds from the video's first frame; boxes are ratios of the frame (left, top, width, height).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from facelens.domain.model import FoundFace
from facelens.recognition.labels import Label
from facelens.recognition.moderation import ModerationLabel
from facelens.recognition.text import Quad

L = TypeVar("L", Label, ModerationLabel)


@dataclass(frozen=True)
class Span:
    """A run of consecutive detections: first and last timestamp (ms)."""

    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class Timed(Generic[L]):
    """A label (image label or moderation label) seen at `timestamp_ms`; with `span`, an aggregated segment
    (its Timestamp is the span's start, its label the span's most confident detection)."""

    timestamp_ms: int
    label: L
    span: Span | None = None


@dataclass(frozen=True)
class TimedText:
    """One LINE or WORD read in the frame at `timestamp_ms` (a `width` x `height` frame; polygon in pixels).
    Ids count per frame, LINEs first, as DetectText numbers them."""

    timestamp_ms: int
    type: str  # LINE or WORD
    id: int
    parent_id: int | None
    text: str
    confidence: float
    polygon: Quad
    width: int
    height: int


@dataclass(frozen=True)
class TrackedPerson:
    """A person of the frame at `timestamp_ms` with the index of its track and, when one lies inside the
    person's box, its face."""

    timestamp_ms: int
    index: int
    box: tuple[float, float, float, float]  # left, top, width, height (ratios)
    face: FoundFace | None


def segments(detections: Sequence[Timed[L]], max_gap_ms: int,
             name: Callable[[L], str]) -> list[Timed[L]]:
    """AggregateBy SEGMENTS: each label's detections merged while consecutive ones are at most `max_gap_ms`
    apart (the next sampled frame), in time order."""
    by_name: dict[str, list[Timed[L]]] = {}
    for detection in sorted(detections, key=lambda d: d.timestamp_ms):
        by_name.setdefault(name(detection.label), []).append(detection)
    found: list[Timed[L]] = []
    for runs in by_name.values():
        start = 0
        for i in range(1, len(runs) + 1):
            if i == len(runs) or runs[i].timestamp_ms - runs[i - 1].timestamp_ms > max_gap_ms:
                run = runs[start:i]
                best = max(run, key=lambda d: d.label.confidence)
                found.append(Timed(run[0].timestamp_ms, best.label, Span(run[0].timestamp_ms, run[-1].timestamp_ms)))
                start = i
    found.sort(key=lambda d: (d.timestamp_ms, name(d.label)))
    return found


def name_ranks(names: Sequence[str]) -> dict[str, int]:
    """Each name's position in alphabetical order (case-insensitive): the sort key of SortBy NAME."""
    return {n: i for i, n in enumerate(sorted(set(names), key=lambda n: (n.casefold(), n)))}
