"""Video decoding (PyAV) on clips the tests encode themselves, bad files, and the face tracker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens.video.decode import VideoError, frames, probe
from facelens.video.tracker import FaceTracker, iou
from tests.video_fixtures import (
    EILEEN_AT,
    EILEEN_MS,
    OTHER_MS,
    SIZE,
    assert_inside,
    two_people,
    write_audio,
    write_video,
)


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
    audio = write_audio(tmp_path / "audio.mp4")
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
def test_faces_are_found_at_the_right_times_and_places_and_tracked(tmp_path: Path, astronaut: np.ndarray,
                                                                   cameraman: np.ndarray) -> None:
    from facelens.pipeline import default_analyzer, resolve_attributes
    from facelens.video.faces import detect_in_video

    analyzer = default_analyzer()
    path, width = two_people(tmp_path / "scene.mp4", analyzer, astronaut, cameraman), SIZE[0]
    progress: list[int] = []
    meta, faces = detect_in_video(path, analyzer, resolve_attributes(None), progress=progress.append)
    assert meta.width == width and progress[-1] == 2800
    left = [f for f in faces if f.box["Left"] < 0.5]
    right = [f for f in faces if f.box["Left"] >= 0.5]
    assert [f.timestamp_ms for f in left] == EILEEN_MS and [f.timestamp_ms for f in right] == OTHER_MS
    for face in left:  # the face box lies inside the pasted square
        assert_inside(face.box, EILEEN_AT)
    assert {f.track for f in left} == {0} and {f.track for f in right} == {1}  # two people, two indices
    assert faces == sorted(faces, key=lambda f: f.timestamp_ms)


def test_cli_detects_and_searches_a_video_file(tmp_path: Path, astronaut: np.ndarray, cameraman: np.ndarray,
                                               astronaut_jpeg: bytes, capsys: pytest.CaptureFixture) -> None:
    import json

    from facelens.cli import main
    from facelens.pipeline import default_analyzer

    clip = two_people(tmp_path / "clips" / "scene.mp4", default_analyzer(), astronaut, cameraman)
    data = str(tmp_path / "data")
    assert main(["video", "detect", str(clip), "--data-dir", data]) == 0
    detected = json.loads(capsys.readouterr().out)
    assert detected["JobStatus"] == "SUCCEEDED" and detected["VideoMetadata"]["FrameWidth"] == SIZE[0]
    assert sorted(f["Timestamp"] for f in detected["Faces"]) == sorted(EILEEN_MS + OTHER_MS)

    (tmp_path / "people").mkdir()
    (tmp_path / "people" / "eileen.jpg").write_bytes(astronaut_jpeg)
    assert main(["index", "staff", str(tmp_path / "people"), "--data-dir", data]) == 0
    capsys.readouterr()
    assert main(["video", "search", "staff", str(clip), "--purpose", "case 7", "--data-dir", data]) == 0
    persons = json.loads(capsys.readouterr().out)["Persons"]
    assert [p["Timestamp"] for p in persons if p["FaceMatches"]] == EILEEN_MS
    assert {m["Face"]["ExternalImageId"] for p in persons for m in p["FaceMatches"]} == {"eileen.jpg"}

    (tmp_path / "clips" / "broken.mp4").write_text("not a video")
    assert main(["video", "detect", str(tmp_path / "clips" / "broken.mp4"), "--data-dir", data]) == 1
    failed = json.loads(capsys.readouterr().out)
    assert failed["JobStatus"] == "FAILED" and "not a video" in failed["StatusMessage"]
    assert main(["audit", "export", "--data-dir", data, "--collection", "staff"]) == 0
    searches = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["operation"] for r in searches[-2:]] == ["StartFaceSearch", "GetFaceSearch"]  # the read is audited
    assert {r["purpose"] for r in searches[-2:]} == {"case 7"}
    assert searches[-1]["matches"] and searches[-1]["results"] == len(persons)
