"""A camera feed read from a file (PyAV): sampled on the clip's own timestamps, played at its own pace like a
camera, and started over at its end as a new fragment; a camera that never answers is lost after the limit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from facelens.video.live import CameraFeed, CameraLost
from tests.video_fixtures import write_video


def test_a_file_camera_is_sampled_paced_and_looped(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.mp4", 10, fps=10)  # one second
    stop = threading.Event()
    frames = []
    began = time.monotonic()
    for frame in CameraFeed("file", str(clip), 200, 5, stop).frames():
        if frame is not None:
            frames.append((frame.fragment, frame.offset, time.monotonic() - began, frame.pixels[0, 0, 0]))
        if frames and frames[-1][0] == 2:
            break
    first = [f for f in frames if f[0] == 1]
    assert [offset for _, offset, _, _ in first] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8], abs=0.011)
    assert [level for *_, level in first] == pytest.approx([0, 4, 8, 12, 16], abs=3)  # frames 0, 2, 4, 6, 8
    # played in real time, not decoded as fast as possible: the frame at 0.8 s arrives no sooner than that after
    # the feed began (load can only delay a frame, so this holds on a busy machine too)
    assert first[-1][2] >= 0.75
    assert frames[-1][:2] == (2, 0.0)  # then from the start again, as a new fragment


def test_a_camera_that_never_answers_is_lost_after_the_limit() -> None:
    stop = threading.Event()
    began = time.monotonic()
    with pytest.raises(CameraLost, match=r"camera none unreachable for \d+ s \(limit 1.5 s\)"):
        for _ in CameraFeed("none", "rtsp://127.0.0.1:9/camera", 200, 1.5, stop, open_timeout=1).frames():
            pass
    assert time.monotonic() - began < 10
