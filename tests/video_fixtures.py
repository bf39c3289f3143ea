"""Clips the video tests encode themselves with PyAV: flat test patterns, and two people pasted on a background
at known times and places (scikit-image's astronaut and cameraman; no data set needed)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import av
import numpy as np
import pytest

SIZE = (640, 360)
FPS = 30
EILEEN_AT = (40, 60, 200, 220)  # x1, y1, x2, y2 of her 160-px square, on screen 0.6-1.6 s
OTHER_AT = (420, 100, 580, 260)  # the cameraman's, on screen 1.0-2.4 s
EILEEN_MS, OTHER_MS = [600, 800, 1000, 1200, 1400], [1000, 1200, 1400, 1600, 1800, 2000, 2200]


def write_video(path: Path, count: int, fps: int = 30, codec: str = "libx264", size: tuple[int, int] = (160, 96),
                draw: Callable[[int], np.ndarray] | None = None, options: dict[str, str] | None = None,
                bit_rate: int | None = None) -> Path:
    """A clip of `count` frames `draw(i)` (called in order, i = 0, 1, ...; RGB uint8 of `size`), yuv420p, with
    the encoder's `options` and `bit_rate` when given; by default frame i is flat grey level 2*i (so a decoded
    frame tells which one it was). The one clip writer of the tests and the benchmarks."""
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        for i in range(count):
            image = draw(i) if draw else np.full((height, width, 3), min(2 * i, 255), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def face_crop(analyzer, image: np.ndarray, size: int = 160) -> np.ndarray:
    """The largest face of an image with a margin, resized to `size` px."""
    import cv2

    (face, *_) = sorted(analyzer.detect([image])[0], key=lambda f: -f.area)
    x1, y1, x2, y2 = face.box
    pad = 0.35 * (x2 - x1)
    crop = image[max(0, int(y1 - pad)): int(y2 + pad), max(0, int(x1 - pad)): int(x2 + pad)]
    return cv2.resize(np.ascontiguousarray(crop), (size, size))


def two_people(path: Path, analyzer, astronaut: np.ndarray, cameraman: np.ndarray, seconds: float = 3.0,
               codec: str = "libx264") -> Path:
    """A clip at SIZE, FPS: Eileen (the astronaut) at EILEEN_AT 0.6-1.6 s, the cameraman at OTHER_AT 1.0-2.4 s."""
    eileen, other = face_crop(analyzer, astronaut), face_crop(analyzer, cameraman)

    def scene(i: int) -> np.ndarray:
        image = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        for face, (x1, y1, x2, y2), (start, stop) in ((eileen, EILEEN_AT, (0.6, 1.6)), (other, OTHER_AT, (1.0, 2.4))):
            if start <= i / FPS < stop:
                image[y1:y2, x1:x2] = face
        return image

    return write_video(path, round(seconds * FPS), FPS, codec, SIZE, scene)


def assert_inside(box: dict, square: tuple[int, int, int, int], slack: float = 0.02) -> None:
    """A Rekognition BoundingBox (ratios of SIZE) lies inside a pasted square (pixels)."""
    x1, y1, x2, y2 = square
    width, height = SIZE
    assert x1 / width - slack <= box["Left"] and box["Left"] + box["Width"] <= x2 / width + slack
    assert y1 / height - slack <= box["Top"] and box["Top"] + box["Height"] <= y2 / height + slack


def write_audio(path: Path) -> Path:
    """An MP4 holding one second of silence and no video stream."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


LOCAL = "facelens-local"  # the bucket name of the server's video directory


def local(name: str) -> dict:
    """A `Video` in the video directory."""
    return {"S3Object": {"Bucket": LOCAL, "Name": name}}


def wait(get, job_id: str, timeout: float = 180, **params: object) -> dict:
    """The first Get* answer of a job that is no longer IN_PROGRESS."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = get(JobId=job_id, **params)
        if response["JobStatus"] != "IN_PROGRESS":
            return response
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still IN_PROGRESS after {timeout}s")


def wait_running(get, job_id: str, timeout: float = 60) -> None:
    """Until a job has probed its file (its VideoMetadata is known): it is running."""
    deadline = time.monotonic() + timeout
    while get(JobId=job_id).get("VideoMetadata") is None:
        assert time.monotonic() < deadline, f"job {job_id} did not start within {timeout}s"
        time.sleep(0.1)


@dataclass
class Webhook:
    """An HTTP receiver of the SNS-style notices FaceLens POSTs to FACELENS_VIDEO_WEBHOOK_URL: `received` holds each
    notice's JSON body, in arrival order (this receiver's only, so test modules do not see each other's)."""

    url: str
    received: list[dict] = field(default_factory=list)


class _Receiver(HTTPServer):
    notices: list[dict]


class _Notices(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        self.server.notices.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    """A `Webhook` listening on 127.0.0.1 for the module's server."""
    receiver = _Receiver(("127.0.0.1", 0), _Notices)
    hook = Webhook(f"http://127.0.0.1:{receiver.server_address[1]}/notices")
    receiver.notices = hook.received
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    yield hook
    receiver.shutdown()


# -- clips for the analyses (labels, moderation, text, persons, segments), with known content at known frames
def fit(image: np.ndarray, size: tuple[int, int] = SIZE, shift: int = 0) -> np.ndarray:
    """`image` resized to cover `size`, shifted `shift` px right to left (a slow pan)."""
    import cv2

    width, height = size
    scale = max((width + 60) / image.shape[1], height / image.shape[0])
    big = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    top = (big.shape[0] - height) // 2
    return np.ascontiguousarray(big[top:top + height, shift:shift + width])


def text_card(lines: tuple[str, ...], size: tuple[int, int] = SIZE) -> np.ndarray:
    """Black words on white, one line per entry, large."""
    import cv2

    width, height = size
    image = np.full((height, width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        y = round(height * (i + 1) / (len(lines) + 1)) + 20
        cv2.putText(image, line, (40, y), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (0, 0, 0), 6, cv2.LINE_AA)
    return image


# the programme: (first frame, frames, what) at FPS; cuts at frames 60, 90, 150
PROGRAMME = ((0, 60, "cat"), (60, 30, "black"), (90, 60, "coffee"), (150, 30, "text"))
CUTS = (60, 90, 150)
TEXT_LINES = ("FACELENS", "VIDEO 2026")


def programme(path: Path, cat: np.ndarray, coffee: np.ndarray, with_audio: bool = True) -> Path:
    """6 s at SIZE, FPS: the cat panning slowly (0-2 s), black (2-3 s), coffee (3-5 s), a text card (5-6 s);
    with a mono 16 kHz AAC track of silence when `with_audio`."""
    card = text_card(TEXT_LINES)
    black = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)

    def draw(i: int) -> np.ndarray:
        if i < 60:
            return fit(cat, shift=i)  # 1 px a frame
        if i < 90:
            return black
        return fit(coffee) if i < 150 else card

    width, height = SIZE
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=16000, layout="mono") if with_audio else None
        for i in range(180):
            frame = av.VideoFrame.from_ndarray(draw(i), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 16000 * 6), np.float32), format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 16000, 0
            for packet in [*sound.encode(samples), *sound.encode()]:
                container.mux(packet)
    return path


def walker(path: Path, person: np.ndarray, coffee: np.ndarray) -> Path:
    """3 s at SIZE, FPS: a photograph of a person panning slowly (0-2 s), then coffee (2-3 s)."""
    return write_video(path, 90, FPS, "libx264", SIZE, lambda i: fit(person, shift=i) if i < 60 else fit(coffee))
