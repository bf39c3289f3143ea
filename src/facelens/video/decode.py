"""Stored video -> metadata and frames sampled every N milliseconds, decoded with PyAV (FFmpeg).

Any container and codec FFmpeg reads (H.264, H.265, VP9, MPEG-4 in MP4, MOV, MKV, WebM, AVI) with threaded
decoding. Frames are taken at the first decoded frame at or after each multiple of the sampling interval
(Rekognition reports faces about every 200 ms), so a 30 fps clip yields 5 frames a second. Everything that makes
a file unusable (missing, empty, not a video, audio only, corrupt, over the resolution limit) is a `VideoError`
with a message a user can act on, raised before or while decoding, never a hang. The bytes come from a
`VideoSource` (`facelens.video.source`): each probe and decode opens it anew, and PyAV reads the very file
object the source opened and checked.

`prefetched(frames(...), depth)` decodes ahead on a thread of its own, so that decoding the next frames overlaps
the models on the current ones (PyAV and onnxruntime both release the GIL): the frames, their order and the
point where a VideoError is raised are those of the plain iterator.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from facelens.video.source import VideoError, VideoSource, as_source

__all__ = ["DEFAULT_INTERVAL_MS", "PREFETCH", "AudioMetadata", "VideoError", "VideoMetadata", "audio", "every_frame",
           "frames", "prefetched", "probe"]

DEFAULT_INTERVAL_MS = 200
PREFETCH = 8  # frames decoded ahead of the models: one detector batch (1080p: 8 x 6 MB)
MAX_WIDTH, MAX_HEIGHT = 4096, 2304  # 4K; 8K video is refused (memory per frame, and faces are found at 640 px)


@dataclass(frozen=True)
class VideoMetadata:
    """What Rekognition reports as `VideoMetadata`."""

    codec: str
    duration_ms: int
    frame_rate: float
    width: int
    height: int
    format: str

    def to_wire(self) -> dict[str, object]:
        return {"Codec": self.codec, "DurationMillis": self.duration_ms, "Format": self.format,
                "FrameRate": self.frame_rate, "FrameHeight": self.height, "FrameWidth": self.width}


@dataclass(frozen=True)
class AudioMetadata:
    """What Rekognition reports as `AudioMetadata` (GetSegmentDetection), one per audio stream."""

    codec: str
    duration_ms: int
    sample_rate: int
    channels: int

    def to_wire(self) -> dict[str, object]:
        return {"Codec": self.codec, "DurationMillis": self.duration_ms, "SampleRate": self.sample_rate,
                "NumberOfChannels": self.channels}


@contextlib.contextmanager
def _open(source: VideoSource) -> Iterator[av.container.InputContainer]:
    """The source opened (and checked) once, and a PyAV container reading that file object; both closed after."""
    with source.open() as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise VideoError(f"video file {source.name} is empty (0 bytes)")
        try:
            container = av.open(handle, mode="r", timeout=30)
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise VideoError(f"{source.name} is not a video FaceLens can read: {_reason(exc)}") from None
        with container:
            yield container


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__


def _stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise VideoError(f"{name} has no video stream (it holds {', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        raise VideoError(f"{name}: the video codec is not supported")
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise VideoError(f"{name}: the video stream has no frame size (corrupt header?)")
    if width * height > MAX_WIDTH * MAX_HEIGHT or max(width, height) > MAX_WIDTH:
        raise VideoError(f"{name} is {width}x{height}; FaceLens analyses video up to {MAX_WIDTH}x{MAX_HEIGHT} "
                         "(downscale it first, e.g. ffmpeg -vf scale=1920:-2)")
    return stream


def _metadata(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> VideoMetadata:
    rate = stream.average_rate or stream.guessed_rate or Fraction(0)
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    return VideoMetadata(codec=stream.codec_context.name, duration_ms=round(duration * 1000),
                         frame_rate=round(float(rate), 3), width=stream.codec_context.width,
                         height=stream.codec_context.height, format=container.format.long_name or
                         container.format.name)


def probe(source: VideoSource | str | Path) -> VideoMetadata:
    """The video's metadata (codec, duration, frame rate, size, container format), or VideoError."""
    source = as_source(source)
    with _open(source) as container:
        return _metadata(container, _stream(container, source.name))


def audio(source: VideoSource | str | Path) -> list[AudioMetadata]:
    """The metadata of each audio stream of a video (none: [])."""
    source = as_source(source)
    found = []
    with _open(source) as container:
        for stream in container.streams.audio:
            context = stream.codec_context
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = (container.duration or 0) / av.time_base
            found.append(AudioMetadata(codec=context.name if context is not None else "unknown",
                                       duration_ms=round(duration * 1000), sample_rate=int(context.sample_rate or 0),
                                       channels=int(context.channels or 0)))
    return found


def every_frame(source: VideoSource | str | Path, width: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(frame number, timestamp in ms, RGB frame scaled to `width` px wide) of every frame, in order: the input
    of frame-accurate measurements (shot boundaries, black frames), at a size that keeps them cheap."""
    source = as_source(source)
    with _open(source) as container:
        stream = _stream(container, source.name)
        stream.thread_type = "AUTO"
        offset = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        height = max(2, round(stream.codec_context.height * width / stream.codec_context.width / 2) * 2)
        number = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is None or frame.time is None:
                    continue
                small = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
                yield number, round((frame.time - offset) * 1000), small
                number += 1
        except av.error.FFmpegError as exc:
            if number == 0:
                raise VideoError(f"{source.name} could not be decoded: {_reason(exc)}") from None
            raise VideoError(f"{source.name} is damaged after {number} frames: {_reason(exc)}") from None
        if number == 0:
            raise VideoError(f"{source.name} holds no decodable video frames (truncated or corrupt)")


def frames(source: VideoSource | str | Path, interval_ms: int = DEFAULT_INTERVAL_MS,
           start_ms: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """(timestamp in ms, RGB frame) every `interval_ms`, from `start_ms` on (resuming a job), in order."""
    source = as_source(source)
    if interval_ms < 1:
        raise ValueError("interval_ms must be positive")
    with _open(source) as container:
        stream = _stream(container, source.name)
        stream.thread_type = "AUTO"  # frame and slice threads
        due = max(0, start_ms)
        # timestamps count from the stream's first frame (AVI, MPEG-TS and edited MP4s start later than 0)
        offset = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        if start_ms > 0 and stream.time_base is not None:
            container.seek(int((start_ms / 1000 + offset) / stream.time_base), stream=stream, backward=True)
        decoded = 0
        try:
            for frame in container.decode(stream):
                decoded += 1
                if frame.pts is None or frame.time is None:
                    continue
                timestamp = round((frame.time - offset) * 1000)
                if timestamp < due:
                    continue
                yield timestamp, frame.to_ndarray(format="rgb24")
                due = (timestamp // interval_ms + 1) * interval_ms
        except av.error.FFmpegError as exc:
            if decoded == 0:
                raise VideoError(f"{source.name} could not be decoded: {_reason(exc)}") from None
            raise VideoError(f"{source.name} is damaged after {decoded} frames: {_reason(exc)}") from None
        if decoded == 0:
            raise VideoError(f"{source.name} holds no decodable video frames (truncated or corrupt)")


T = TypeVar("T")
_ITEM, _END, _ERROR = "item", "end", "error"
_POLL_SECONDS = 0.05  # how soon a decode thread blocked on a full queue sees that it should stop


@contextlib.contextmanager
def prefetched(items: Iterable[T], depth: int = PREFETCH) -> Iterator[Iterator[T]]:
    """`items` (e.g. `frames(...)`), iterated on a decode thread at most `depth` items ahead of the consumer.

    Invariants: the same items in the same order; an exception of `items` (VideoError) is raised to the consumer
    at the same position, after every item before it; at most `depth` items wait in the queue (plus the one the
    decode thread holds); when the `with` block exits, by exhaustion, an error or early (a job failed, cancelled),
    the decode thread has stopped and `items` is closed (its container and file with it). `depth` 0: no thread,
    `items` is iterated on the caller's thread as it always was (and closed at exit too).
    """
    if depth < 0:
        raise ValueError("depth must be >= 0")
    if depth == 0:
        iterator = iter(items)
        try:
            yield iterator
        finally:
            _close(iterator)
        return
    ready: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(items, ready, stop), name="facelens-decode", daemon=True)
    thread.start()
    try:
        yield _consume(ready)
    finally:
        stop.set()
        thread.join()


def _consume(ready: queue.Queue[tuple[str, object]]) -> Iterator[T]:
    while True:
        kind, value = ready.get()
        if kind == _END:
            return
        if kind == _ERROR:
            assert isinstance(value, BaseException)
            raise value
        yield value  # type: ignore[misc]


def _produce(items: Iterable[T], ready: queue.Queue[tuple[str, object]], stop: threading.Event) -> None:
    """Put every item, then _END (or _ERROR and the exception), until `stop`; `items` closed on this thread."""

    def offer(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                ready.put((kind, value), timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    iterator: Iterator[T] | None = None
    try:
        iterator = iter(items)
        for item in iterator:
            if not offer(_ITEM, item):
                return
        offer(_END, None)
    except BaseException as exc:  # every failure reaches the consumer, which re-raises it
        offer(_ERROR, exc)
    finally:
        if iterator is not None:
            _close(iterator)


def _close(iterator: Iterator[object]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
