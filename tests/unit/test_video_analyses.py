"""The measurements and aggregation of the stored-video analyses, without models or a server: shot boundaries and
black frames on synthetic frames (`facelens.video.segments`), SEGMENTS aggregation and NAME ranks
(`facelens.domain.video_results`)."""

from __future__ import annotations

import numpy as np

from facelens.domain.video_results import Timed, name_ranks, segments
from facelens.recognition.labels import Label
from facelens.video import segments as cuts


def flat(value: tuple[int, int, int], noise: int = 0, seed: int = 0) -> np.ndarray:
    frame = np.empty((90, 160, 3), np.uint8)
    frame[:] = value
    if noise:
        jitter = np.random.default_rng(seed).integers(-noise, noise + 1, frame.shape)
        frame = np.clip(frame.astype(int) + jitter, 0, 255).astype(np.uint8)
    return frame


def clip(*runs: tuple[int, tuple[int, int, int]]) -> list[tuple[int, int, np.ndarray]]:
    """(number, ms, frame) at 25 fps: `count` frames of each colour, with a little noise."""
    frames, number = [], 0
    for count, colour in runs:
        for _ in range(count):
            frames.append((number, number * 40, flat(colour, noise=6, seed=number)))
            number += 1
    return frames


def test_a_cut_between_two_colours_starts_a_shot_at_its_frame() -> None:
    found = cuts.measure(clip((10, (200, 60, 40)), (15, (40, 90, 200))), cuts.SegmentSettings(cues=False), 25.0)
    assert [(s.type, s.start_frame, s.end_frame, s.shot_index) for s in found] == [
        ("SHOT", 0, 9, 0), ("SHOT", 10, 24, 1)]
    assert (found[1].start_ms, found[1].end_ms) == (400, 1000) and found[0].confidence == 100.0
    assert found[1].confidence > 90  # no colour in common: a confident cut


def test_noise_alone_is_not_a_cut_and_a_higher_min_confidence_needs_a_bigger_change() -> None:
    assert len(cuts.measure(clip((30, (120, 120, 120))), cuts.SegmentSettings(cues=False), 25.0)) == 1
    # half the picture changes colour: a cut at the default threshold, not at MinSegmentConfidence 80
    before, after = flat((100, 100, 100)), flat((100, 100, 100))
    before[:, 80:], after[:, 80:] = 200, 30
    frames = [(n, n * 40, before if n < 10 else after) for n in range(20)]
    distance = cuts.distance(cuts.histogram(before), cuts.histogram(after))
    assert distance == 0.5 and 60 < cuts.shot_confidence(distance) < 80
    assert [s.start_frame for s in cuts.measure(frames, cuts.SegmentSettings(cues=False), 25.0)] == [0, 10]
    strict = cuts.SegmentSettings(cues=False, shot_min_confidence=80)
    assert [s.start_frame for s in cuts.measure(frames, strict, 25.0)] == [0]


def test_black_frames_are_a_technical_cue_with_the_filters_thresholds() -> None:
    frames = clip((5, (150, 150, 150)), (8, (10, 10, 10)), (5, (150, 150, 150)))
    (cue,) = [s for s in cuts.measure(frames, cuts.SegmentSettings(shots=False), 25.0)]
    assert (cue.cue, cue.start_frame, cue.end_frame, cue.start_ms, cue.end_ms) == ("BlackFrames", 5, 12, 200, 520)
    assert cue.confidence == 100.0
    # luma 10 is "black" below MaxPixelThreshold 0.2 of white, not below 0.02
    assert cuts.measure(frames, cuts.SegmentSettings(shots=False, max_pixel=0.02), 25.0) == []
    # one bright corner in a black frame: 99% coverage holds, 99.9% does not
    dotted = [(n, ms, f.copy()) for n, ms, f in frames]
    for _, _, frame in dotted[5:13]:
        frame[:5, :10] = 255  # 50 of 14,400 pixels
    assert len(cuts.measure(dotted, cuts.SegmentSettings(shots=False), 25.0)) == 1
    assert cuts.measure(dotted, cuts.SegmentSettings(shots=False, min_coverage=99.9), 25.0) == []


def test_timecodes() -> None:
    assert cuts.timecode(0, 30) == "00:00:00:00"
    assert cuts.timecode(30 * 61 + 7, 30) == "00:01:01:07"
    assert cuts.timecode(25 * 3600, 25) == "01:00:00:00"


def label(name: str, confidence: float) -> Label:
    return Label(name, confidence)


def test_segments_merge_consecutive_samples_of_a_label_and_split_at_a_gap() -> None:
    detections = [Timed(t, label("Cat", c)) for t, c in ((0, 60), (200, 80), (400, 70), (1200, 90), (1400, 50))]
    detections += [Timed(200, label("Dog", 55))]
    merged = segments(detections, 300, lambda value: value.name)
    assert [(d.label.name, d.span.start_ms, d.span.end_ms, d.label.confidence) for d in merged] == [
        ("Cat", 0, 400, 80), ("Dog", 200, 200, 55), ("Cat", 1200, 1400, 90)]
    assert [d.timestamp_ms for d in merged] == [0, 200, 1200] and merged[1].span.duration_ms == 0


def test_name_ranks_are_alphabetical_ignoring_case() -> None:
    assert name_ranks(["cup", "Cat", "Animal", "cup"]) == {"Animal": 0, "Cat": 1, "cup": 2}
