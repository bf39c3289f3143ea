"""Video decoding (PyAV) on clips the tests encode themselves, bad files, and the face tracker."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from facelens.video.decode import VideoError, frames, probe
from facelens.video.tracker import FaceTracker, iou


def write_video(path: Path, count: int, fps: int = 30, codec: str = "libx264", size: tuple[int, int] = (160, 96),
                draw: Callable[[int], np.ndarray] | None = None) -> Path:
    """A clip of `count` frames `draw(i)`; by default frame i is flat grey level 2*i (so a decoded frame tells
    which one it was)."""
    width, height = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(count):
            image = draw(i) if draw else np.full((height, width, 3), min(2 * i, 255), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_metadata_and_sampling_every_200_ms(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.mp4", 60)  # 2 s at 30 fps
    meta = probe(clip)
    assert (meta.codec, meta.frame_rate, meta.width, meta.height) == ("h264", 30.0, 160, 96)
    assert abs(meta.duration_ms - 2000) <= 40 and meta.format == "QuickTime / MOV"  # as Rekognition reports MP4
    assert meta.to_wire()["DurationMillis"] == meta.duration_ms
    sampled = list(frames(clip))
    assert [t for t, _ in sampled] == list(range(0, 2000, 200))
    for timestamp, image in sampled:  # the frame shown at t is frame round(t * 30 / 1000), grey 2i
        assert image.shape == (96, 160, 3)
        assert abs(int(np.median(image)) - 2 * round(timestamp * 30 / 1000)) <= 3
    assert [t for t, _ in frames(clip, interval_ms=500, start_ms=1000)] == [1000, 1500]


@pytest.mark.parametrize(("name", "codec"), [("clip.mkv", "libx265"), ("clip.webm", "libvpx-vp9"),
                                             ("clip.avi", "mpeg4"), ("clip.mov", "libx264")])
def test_codecs_and_containers(tmp_path: Path, name: str, codec: str) -> None:
    clip = write_video(tmp_path / name, 15, fps=15, codec=codec)  # 1 s
    meta = probe(clip)
    assert meta.codec in {"hevc", "vp9", "mpeg4", "h264"} and (meta.width, meta.height) == (160, 96)
    assert [t for t, _ in frames(clip)] == [0, 200, 400, 600, 800]


def test_bad_files_fail_with_a_clear_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    clip = write_video(tmp_path / "whole.mp4", 30)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    audio = tmp_path / "audio.mp4"
    with av.open(str(audio), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 16000), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    cases = {empty: "empty", text: "not a video", truncated: "not a video", audio: "no video stream",
             tmp_path / "missing.mp4": "not found"}
    for path, expected in cases.items():
        with pytest.raises(VideoError, match=expected):
            probe(path)
            list(frames(path))


def test_8k_video_is_refused(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "8k.avi", 1, codec="mpeg4", size=(7680, 4320))
    with pytest.raises(VideoError, match="7680x4320"):
        probe(clip)
    with pytest.raises(VideoError, match="downscale"):
        next(frames(clip))


# -- tracking
def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 128))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_iou() -> None:
    assert iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]).round(3).tolist() == [
        [1.0, 0.333, 0.0]]


def test_two_people_keep_their_indices_and_one_is_recognised_on_return() -> None:
    rng = np.random.default_rng(0)
    alice, bob = unit(rng, 2)
    noisy = lambda v: (v + 0.02 * rng.standard_normal(128)) / np.linalg.norm(v)  # noqa: E731
    tracker = FaceTracker()
    seen = []
    for step in range(10):  # both walk right; Alice leaves after step 4 and comes back at step 8 elsewhere
        boxes, vectors = [[100 + 10 * step, 50, 160 + 10 * step, 120]], [noisy(bob)]
        if step < 5 or step >= 8:
            x = 300 + 8 * step if step < 5 else 20
            boxes.insert(0, [x, 40, x + 60, 110])
            vectors.insert(0, noisy(alice))
        seen.append(tracker.update(200 * step, np.array(boxes), np.array(vectors)))
    assert seen[0] == [0, 1] and all(s == [0, 1] for s in seen[:5])
    assert all(s == [1] for s in seen[5:8])
    assert seen[8] == [0, 1] and seen[9] == [0, 1]  # Alice again: far from her last box, known by her face
    assert tracker.tracks[0].detections == 7


def test_without_embeddings_overlap_tracks_and_a_gap_starts_a_new_track() -> None:
    tracker = FaceTracker(max_gap_ms=500)
    assert tracker.update(0, [[0, 0, 50, 50]]) == [0]
    assert tracker.update(200, [[5, 0, 55, 50], [200, 200, 250, 250]]) == [0, 1]
    assert tracker.update(2000, [[5, 0, 55, 50]]) == [2]  # too long unseen: overlap alone does not re-identify
    assert tracker.update(2200, []) == []


# -- faces in video, with the real models
def face_crop(analyzer, image: np.ndarray, size: int = 160) -> np.ndarray:
    """The largest face of an image with a margin, resized to `size` px."""
    import cv2

    (face, *_) = sorted(analyzer.detect([image])[0], key=lambda f: -f.area)
    x1, y1, x2, y2 = face.box
    pad = 0.35 * (x2 - x1)
    crop = image[max(0, int(y1 - pad)): int(y2 + pad), max(0, int(x1 - pad)): int(x2 + pad)]
    return cv2.resize(np.ascontiguousarray(crop), (size, size))


def test_faces_are_found_at_the_right_times_and_places_and_tracked(tmp_path: Path, astronaut: np.ndarray,
                                                                   cameraman: np.ndarray) -> None:
    from facelens.pipeline import default_analyzer, resolve_attributes
    from facelens.video.faces import detect_in_video

    analyzer = default_analyzer()
    eileen = face_crop(analyzer, astronaut)
    other = face_crop(analyzer, cameraman)
    fps, width, height = 30, 640, 360

    def scene(i: int) -> np.ndarray:  # 3 s: Eileen at the left 0.6-1.6 s, the other man at the right 1.0-2.4 s
        image = np.full((height, width, 3), 90, np.uint8)
        if 0.6 <= i / fps < 1.6:
            image[60:220, 40:200] = eileen
        if 1.0 <= i / fps < 2.4:
            image[100:260, 420:580] = other
        return image

    path = write_video(tmp_path / "scene.mp4", 90, fps, size=(width, height), draw=scene)
    progress: list[int] = []
    meta, faces = detect_in_video(path, analyzer, resolve_attributes(None), progress=progress.append)
    assert meta.width == width and progress[-1] == 2800
    left = [f for f in faces if f.detail["BoundingBox"]["Left"] < 0.5]
    right = [f for f in faces if f.detail["BoundingBox"]["Left"] >= 0.5]
    assert [f.timestamp_ms for f in left] == [600, 800, 1000, 1200, 1400]
    assert [f.timestamp_ms for f in right] == [1000, 1200, 1400, 1600, 1800, 2000, 2200]
    for face in left:  # the pasted square is x 40-200, y 60-220 of 640x360; the face box lies inside it
        box = face.detail["BoundingBox"]
        assert 40 / width <= box["Left"] and box["Left"] + box["Width"] <= 200 / width + 0.01
        assert 60 / height <= box["Top"] + 0.02 and box["Top"] + box["Height"] <= 220 / height + 0.02
    assert {f.track for f in left} == {0} and {f.track for f in right} == {1}  # two people, two indices
    assert faces == sorted(faces, key=lambda f: f.timestamp_ms)
