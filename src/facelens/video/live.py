"""Live video from a camera: PyAV (FFmpeg) reading rtsp://, http(s):// or a file, sampled, with reconnects.

`CameraFeed.frames()` yields `LiveFrame`s, one per sampling interval of the camera's own timestamps, until
stopped. A reader thread decodes every frame (H.264 needs them all) and keeps only the newest sample, so a slow
consumer skips samples instead of falling behind the camera (`skipped` counts them). When the camera drops (a
read error, a read that stalls past `read_timeout`, the stream's end), the feed reconnects with exponential
backoff (0.5 s doubling to 8 s) and raises `CameraLost` once `retry_seconds` passed since its last frame (or
since it started, if it never got one). A file path plays at its own frame rate, like a camera, and starts over
at its end (as a reconnect). Each connection is one *fragment*: its frames' offsets count from its first frame,
`server_time` is when this server opened the connection (the camera starts sending during the open, and FFmpeg
probes the first frames before handing any over, so the first frame's decoding time would be late; the open is
at or before the camera's first frame, so `server_time + offset` never postdates when a frame was shown).

URLs: `rtsp://` and `rtsp+tcp://` read RTSP over TCP, `rtsp+udp://` over UDP, `rtsps://` over TLS; http(s)://
and paths are opened as they are. Measured in the stream tests: a GStreamer RTSP server's clip, over TCP and UDP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import numpy as np

log = logging.getLogger("facelens.streams")

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0  # seconds between reconnect attempts: doubling from the first to the max


class CameraLost(Exception):
    """The camera stayed unreachable past the retry limit; the message says since when and why."""


@dataclass(frozen=True)
class LiveFrame:
    """One sampled frame: RGB pixels, its offset in seconds from its fragment's first frame, the wall-clock time
    that first frame arrived (epoch seconds), the fragment (connection) number, and when it was decoded."""

    pixels: np.ndarray
    offset: float
    server_time: float
    fragment: int
    decoded_at: float

    @property
    def wall_time(self) -> float:
        """When the camera showed it, as far as this server can tell: fragment start + offset."""
        return self.server_time + self.offset


def open_args(url: str) -> tuple[str, dict[str, str], bool]:
    """(what FFmpeg opens, its options, whether to pace it at its frame rate: a file, not a live source)."""
    if url.startswith(("rtsp+udp://", "rtsp+tcp://")):
        transport = url[5:8]
        return "rtsp://" + url.split("://", 1)[1], {"rtsp_transport": transport}, False
    if url.startswith("rtsp://"):
        return url, {"rtsp_transport": "tcp"}, False
    if url.startswith(("rtsps://", "http://", "https://")):
        return url, {}, False
    return url, {}, True


class CameraFeed:
    """Sampled frames of one camera, reconnecting as needed (see the module docstring)."""

    def __init__(self, name: str, url: str, interval_ms: int, retry_seconds: float, stop: threading.Event, *,
                 open_timeout: float = 10.0, read_timeout: float = 5.0,
                 on_connect: Callable[[int], None] | None = None,
                 on_drop: Callable[[str], None] | None = None) -> None:
        self.name, self.url = name, url
        self.interval = interval_ms / 1000.0
        self.retry_seconds = retry_seconds
        self.stop = stop
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.on_connect = on_connect  # (fragment): a connection's first frame arrived
        self.on_drop = on_drop  # (why): the camera dropped and is being retried
        self.skipped = 0  # samples dropped because the consumer was busy
        self.fragments = 0  # connections made
        self._latest: LiveFrame | None = None
        self._ready = threading.Condition()
        self._failure: str | None = None  # set by the reader when it gives up
        self._done = False
        self._last_frame = time.monotonic()  # when the reader last kept a sample (or started)

    # -- the reader thread: connect, decode, sample, reconnect
    def _connection(self, fragment: int) -> None:
        """Read one connection to its end (raises on errors)."""
        target, options, paced = open_args(self.url)
        opened = time.time()  # the fragment's start: an RTSP camera starts sending (PLAY) during av.open
        container = av.open(target, options=options, timeout=(self.open_timeout, self.read_timeout))
        try:
            stream = container.streams.video[0] if container.streams.video else None
            if stream is None:
                raise av.error.InvalidDataError(0, f"camera {self.name} sends no video")
            stream.thread_type = "AUTO"
            first_pts: float | None = None
            started = 0.0
            due = 0.0
            for frame in container.decode(stream):
                if self.stop.is_set():
                    return
                if frame.time is None:
                    continue
                now = time.time()
                if first_pts is None:  # frames count from the first; av.open may have buffered some already
                    first_pts, started = frame.time, (now if paced else opened)
                    if self.on_connect is not None:
                        self.on_connect(fragment)
                offset = frame.time - first_pts
                if paced:  # a file plays at its own rate, like a camera
                    delay = started + offset - time.time()
                    if delay > 0 and self.stop.wait(delay):
                        return
                if offset + 1e-6 < due:
                    continue
                due = (int(offset / self.interval + 1e-6) + 1) * self.interval
                sample = LiveFrame(frame.to_ndarray(format="rgb24"), round(offset, 3), started, fragment, time.time())
                with self._ready:
                    if self._latest is not None:
                        self.skipped += 1
                    self._latest = sample
                    self._ready.notify_all()
                self._last_frame = time.monotonic()
        finally:
            container.close()

    def _read(self) -> None:
        self._last_frame = time.monotonic()
        backoff = BACKOFF_FIRST
        reason = "never connected"
        while not self.stop.is_set():
            self.fragments += 1
            seen = self._last_frame
            try:
                self._connection(self.fragments)
                reason = "the stream ended"
            except Exception as exc:  # FFmpeg's errors, sockets, anything a broken stream raises: a drop
                reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            if self.stop.is_set():
                break
            if self._last_frame != seen:  # it delivered frames: start the backoff again
                backoff = BACKOFF_FIRST
            down = time.monotonic() - self._last_frame
            if down >= self.retry_seconds:
                self._failure = (f"camera {self.name} unreachable for {down:.0f} s (limit "
                                 f"{self.retry_seconds:g} s): {reason}")
                break
            log.info("camera %s dropped (%s); reconnecting in %.1f s", self.name, reason, backoff)
            if self.on_drop is not None:
                self.on_drop(f"camera {self.name} dropped ({reason}); reconnecting")
            if self.stop.wait(min(backoff, max(0.0, self.retry_seconds - down))):
                break
            backoff = min(backoff * 2, BACKOFF_MAX)
        with self._ready:
            self._done = True
            self._ready.notify_all()

    def frames(self, tick: float = 0.5) -> Iterator[LiveFrame | None]:
        """The newest sample each time the caller asks, or None when none came for `tick` seconds (so the caller
        can look after other things while the camera is down), until stopped; CameraLost after the retry limit."""
        reader = threading.Thread(target=self._read, daemon=True, name=f"facelens-camera-{self.name}")
        reader.start()
        try:
            while True:
                with self._ready:
                    if self._latest is None and not self._done and not self.stop.is_set():
                        self._ready.wait(tick)
                    sample, self._latest = self._latest, None
                    finished = self._done or self.stop.is_set()
                if sample is None and finished:
                    break
                yield sample
            if self._failure is not None and not self.stop.is_set():
                raise CameraLost(self._failure)
        finally:
            self.stop.set()
            reader.join(self.read_timeout + self.open_timeout + 1)
