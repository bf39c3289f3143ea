"""Decoding ahead on a decode thread (`facelens.video.decode.prefetched`): the same frames in the same order, errors
at the same position with the same message, bounded look-ahead, and no decode thread or open file left behind
when the consumer stops early (a job that fails or is cancelled)."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

from facelens.video.decode import VideoError, every_frame, frames, prefetched
from facelens.video.faces import detect_in_video
from tests.video_fixtures import write_video


class TrackedFile:
    """A VideoSource that keeps every file object it hands out, to tell whether the decoder closed them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handles: list[BinaryIO] = []

    @property
    def name(self) -> str:
        return self.path.name

    def open(self) -> BinaryIO:
        handle = self.path.open("rb")
        self.handles.append(handle)
        return handle

    @property
    def all_closed(self) -> bool:
        return bool(self.handles) and all(handle.closed for handle in self.handles)


def decode_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "facelens-decode"]


def outcome(items: Iterator[int]) -> tuple[list[int], str | None]:
    """What a consumer sees: the items it got, then the message of the VideoError that ended them (if any)."""
    got: list[int] = []
    try:
        for item in items:
            got.append(item)
    except VideoError as exc:
        return got, str(exc)
    return got, None


def damaged(count: int) -> Iterator[int]:
    yield from range(count)
    raise VideoError(f"clip.mp4 is damaged after {count} frames: Invalid data found when processing input")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4", 60)  # 2 s at 30 fps


@pytest.mark.parametrize("depth", [1, 2, 8])
def test_the_same_frames_in_the_same_order_with_the_same_timestamps(clip: Path, depth: int) -> None:
    expected = list(frames(clip, interval_ms=100, start_ms=300))
    with prefetched(frames(clip, interval_ms=100, start_ms=300), depth) as decoded:
        got = list(decoded)
    assert [t for t, _ in got] == [t for t, _ in expected] == list(range(300, 2000, 100))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))
    with prefetched(every_frame(clip, 80), depth) as decoded:
        assert [(n, ms) for n, ms, _ in decoded] == [(n, ms) for n, ms, _ in every_frame(clip, 80)]
    assert decode_threads() == []


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_an_error_is_raised_after_the_same_items_with_the_same_message(depth: int) -> None:
    with prefetched(damaged(5), depth) as decoded:
        assert outcome(decoded) == outcome(damaged(5)) == (
            [0, 1, 2, 3, 4], "clip.mp4 is damaged after 5 frames: Invalid data found when processing input")
    assert decode_threads() == []


def test_a_bad_file_fails_at_the_first_frame_as_without_prefetching(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    for path in (text, tmp_path / "missing.mp4"):
        with pytest.raises(VideoError) as plain:
            next(frames(path))
        with prefetched(frames(path), 2) as decoded, pytest.raises(VideoError) as ahead:
            next(decoded)
        assert str(ahead.value) == str(plain.value) and type(ahead.value) is type(plain.value)


def test_stopping_early_stops_the_decode_thread_and_closes_the_file(clip: Path) -> None:
    source = TrackedFile(clip)
    with prefetched(frames(source, interval_ms=33), 2) as decoded:
        first = next(decoded)
        assert decode_threads() and not source.all_closed  # decoding ahead, the file open
    assert first[0] == 0
    assert decode_threads() == [] and source.all_closed


def test_a_consumer_that_fails_leaves_no_decode_thread_and_no_open_file(clip: Path) -> None:
    source = TrackedFile(clip)
    with pytest.raises(RuntimeError, match="model crashed"), prefetched(frames(source), 2) as decoded:
        for timestamp, _ in decoded:
            if timestamp >= 400:
                raise RuntimeError("model crashed")
    assert decode_threads() == [] and source.all_closed


def test_look_ahead_is_bounded_by_the_depth() -> None:
    produced = 0

    def counting() -> Iterator[int]:
        nonlocal produced
        for i in range(1000):
            produced += 1
            yield i

    with prefetched(counting(), 3) as decoded:
        assert next(decoded) == 0
        deadline = time.monotonic() + 5
        while produced < 5 and time.monotonic() < deadline:  # 1 consumed + 3 queued + 1 held by the thread
            time.sleep(0.01)
        time.sleep(0.1)
        assert produced == 5
        assert list(decoded) == list(range(1, 1000))


class FailingAnalyzer:
    """No faces in the first batch; the detector fails on the second (a job that fails half-way)."""

    def __init__(self) -> None:
        self.batches = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[list[object]]:
        self.batches += 1
        if self.batches > 1:
            raise RuntimeError("detector failed")
        return [[] for _ in images]

    def describe(self, image: np.ndarray, faces: Sequence[object], fields: Collection[str]) -> None:
        raise AssertionError("no faces to describe")

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[object]]) -> None:
        pass


def test_a_video_job_that_fails_half_way_stops_decoding(clip: Path) -> None:
    source = TrackedFile(clip)
    analyzer = FailingAnalyzer()
    with pytest.raises(RuntimeError, match="detector failed"):
        detect_in_video(source, analyzer, (), interval_ms=100)  # 20 sampled frames: batches of 8
    assert analyzer.batches == 2
    assert decode_threads() == [] and source.all_closed


def test_depth_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="depth"), prefetched(iter(()), -1):
        pass
