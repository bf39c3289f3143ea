"""Segments of stored video (StartSegmentDetection), from two frame-by-frame measurements on every frame.

* SHOT: a hard cut is where the colour histograms of two consecutive frames differ. Each frame (scaled to
  `MEASURE_WIDTH` px wide) gets a 16-bin histogram per RGB channel, normalised; the distance of two frames is half
  the L1 distance of their histograms averaged over the channels, 0 (same colours) to 1 (no colour in common).
  A boundary is where it reaches `SHOT_DISTANCE`. Its Confidence maps that distance onto Rekognition's scale,
  where 50 is the lowest MinSegmentConfidence: 50 at `SHOT_DISTANCE`, 100 at 1, linearly; so a ShotFilter
  MinSegmentConfidence above 50 asks for a larger colour change before a cut counts. The first shot starts at
  the first frame with Confidence 100 (a video's start is a boundary by definition). Gradual transitions
  (dissolves, fades) and cuts between shots of the same colours are not detected.
* TECHNICAL_CUE BlackFrames: a run of frames in which at least MinCoveragePercentage (default 99) of the pixels
  are black, a pixel being black when its luma (BT.601, full range) is at most MaxPixelThreshold (default 0.2)
  of white. Its Confidence is the run's mean black coverage (percent). Other cue types (ColorBars, EndCredits,
  OpeningCredits, StudioLogo, Slate, Content) are not detected: nothing here measures them.

Measured (docs/video.md, on scikit-image's sample photographs scaled to 720p and measured at 160 px): a cut
between two of six photographs scores 0.36 (coffee -> astronaut) to 0.89, a cut to or from black 0.85-0.99; a
pan across one photograph at 1-16 px a frame at most 0.013. SHOT_DISTANCE = 0.2 lies between, with a margin on
both sides. These are stills, not camera footage: a flash or a sudden change of lighting can score like a cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

MEASURE_WIDTH = 160  # frames are measured at this width (the histogram and black coverage barely depend on it)
BINS = 16
SHOT_DISTANCE = 0.2
SHOT_MODEL = "facelens-rgb-histogram-1"  # SelectedSegmentTypes ModelVersion of SHOT
CUE_MODEL = "facelens-black-frames-1"  # ... and of TECHNICAL_CUE
DEFAULT_MIN_CONFIDENCE = 50.0  # Rekognition's MinSegmentConfidence default and minimum
DEFAULT_MAX_PIXEL = 0.2  # BlackFrame.MaxPixelThreshold default
DEFAULT_MIN_COVERAGE = 99.0  # BlackFrame.MinCoveragePercentage default
SHOT, TECHNICAL_CUE, BLACK_FRAMES = "SHOT", "TECHNICAL_CUE", "BlackFrames"


@dataclass(frozen=True)
class SegmentSettings:
    """What StartSegmentDetection asked for: which types, and the filters of each."""

    shots: bool = True
    cues: bool = True
    shot_min_confidence: float = DEFAULT_MIN_CONFIDENCE
    cue_min_confidence: float = DEFAULT_MIN_CONFIDENCE
    max_pixel: float = DEFAULT_MAX_PIXEL
    min_coverage: float = DEFAULT_MIN_COVERAGE


@dataclass(frozen=True)
class Segment:
    """One segment: frames `start_frame`..`end_frame` (inclusive); `end_ms` is where its last frame ends."""

    type: str  # SHOT or TECHNICAL_CUE
    start_frame: int
    end_frame: int
    start_ms: int
    end_ms: int
    confidence: float
    frame_rate: float
    shot_index: int | None = None  # SHOT: 0, 1, ... in time order
    cue: str | None = None  # TECHNICAL_CUE: BlackFrames


def histogram(frame: np.ndarray) -> np.ndarray:
    """(3, BINS) per-channel colour histograms of an RGB frame, each summing to 1."""
    pixels = frame.reshape(-1, 3)
    counts = np.stack([np.bincount(pixels[:, c] >> 4, minlength=BINS) for c in range(3)]).astype(np.float64)
    return counts / max(len(pixels), 1)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """0 (the same colours) .. 1 (no colour in common): half the L1 distance, averaged over the channels."""
    return float(np.abs(a - b).sum() / 6.0)


def black_coverage(frame: np.ndarray, max_pixel: float) -> float:
    """Percent of the frame's pixels whose luma is at most `max_pixel` of white."""
    luma = frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114
    return float(np.count_nonzero(luma <= max_pixel * 255.0)) * 100.0 / max(luma.size, 1)


def shot_confidence(d: float) -> float:
    """A boundary's Confidence: 50 at SHOT_DISTANCE, 100 at distance 1."""
    return 50.0 + 50.0 * float(np.clip((d - SHOT_DISTANCE) / (1.0 - SHOT_DISTANCE), 0.0, 1.0))


def measure(frames: Iterable[tuple[int, int, np.ndarray]], settings: SegmentSettings, frame_rate: float,
            progress: Callable[[int], None] | None = None) -> list[Segment]:
    """The segments of `frames` ((number, ms, RGB) of every frame, `facelens.video.decode.every_frame`), in time
    order; `progress(ms)` every second of video."""
    frame_ms = 1000.0 / frame_rate if frame_rate > 0 else 40.0
    shots: list[list] = []  # [start frame, start ms, confidence, last frame, last ms]
    cues: list[list] = []  # [start frame, start ms, coverage sum, last frame, last ms]
    previous, reported = None, 0
    for number, ms, frame in frames:
        if settings.shots:
            current = histogram(frame)
            d = 1.0 if previous is None else distance(previous, current)
            if previous is None:
                shots.append([number, ms, 100.0, number, ms])
            elif d >= SHOT_DISTANCE and shot_confidence(d) >= settings.shot_min_confidence:
                shots.append([number, ms, shot_confidence(d), number, ms])
            shots[-1][3:] = [number, ms]
            previous = current
        if settings.cues:
            coverage = black_coverage(frame, settings.max_pixel)
            if coverage >= settings.min_coverage:
                if cues and cues[-1][3] == number - 1:
                    cues[-1][2] += coverage
                    cues[-1][3:] = [number, ms]
                else:
                    cues.append([number, ms, coverage, number, ms])
        if progress is not None and ms - reported >= 1000:
            progress(ms)
            reported = ms
    found = [Segment(SHOT, start, last, ms, round(last_ms + frame_ms), confidence, frame_rate, shot_index=i)
             for i, (start, ms, confidence, last, last_ms) in enumerate(shots)]
    found += [Segment(TECHNICAL_CUE, start, last, ms, round(last_ms + frame_ms), total / (last - start + 1),
                      frame_rate, cue=BLACK_FRAMES)
              for start, ms, total, last, last_ms in cues if total / (last - start + 1) >= settings.cue_min_confidence]
    found.sort(key=lambda s: (s.start_ms, s.type))
    return found


def timecode(frame: int, frame_rate: float) -> str:
    """SMPTE HH:MM:SS:FF of a frame number, non-drop-frame at the nominal (rounded) rate."""
    rate = max(1, round(frame_rate))
    seconds, frames = divmod(frame, rate)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"
