"""One stream processor's session, run on this replica while it holds the processor's lease.

Sampled camera frames (`facelens.video.live.CameraFeed`) go through the face path (detection and the DEFAULT
FaceDetail fields); faces are tracked by box overlap (`facelens.video.tracker.FaceTracker`) so each person is
searched when they appear and again after each second (`SEARCH_INTERVAL_MS`), not on every frame, and only the
faces due for a search are aligned and embedded (`analyzer.embed`, as `find_faces` does). Each sampled frame
in which someone was searched becomes one Kinesis record holding those searches (the composition root's `shape`
writes Rekognition's JSON). Every search that matched is audited before its record is written. The lease is
renewed every `RENEW_SECONDS`, which is also how a Stop (the row turns STOPPING) or a lost lease is noticed; the
threshold is decided again every `READMIT_SECONDS` (the floor rises as the collection grows, and a purpose rule
added since Create fails the processor).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from facelens import errors
from facelens.analysis import FaceSet, find_faces
from facelens.context import RequestContext
from facelens.domain.common import check_model
from facelens.domain.model import FaceMatch, FoundFace
from facelens.imaging import DecodedImage
from facelens.kinesis import KinesisError
from facelens.pipeline import resolve_attributes
from facelens.store.streams import FAILED, RUNNING, STARTING, STOPPED, STOPPING, ProcessorRecord, ProcessorRows
from facelens.video.live import CameraFeed, CameraLost, LiveFrame
from facelens.video.tracker import FaceTracker

if TYPE_CHECKING:
    from facelens.domain.streams import StreamService

log = logging.getLogger("facelens.streams")

DEFAULT_THRESHOLD = 80.0  # FaceSearchSettings.FaceMatchThreshold: "The default is 80" (Rekognition's API reference)
SEARCH_INTERVAL_MS = 1000  # a tracked person is searched again after this long
MAX_MATCHES = 10  # MatchedFaces per detected face (before the policy's MaxResults cap)
RENEW_SECONDS = 1.0  # lease renewal, and how soon a Stop is noticed
READMIT_SECONDS = 30.0  # the threshold and purpose rule are decided again this often
AUDIT_OPERATION = "StreamProcessorFaceSearch"  # the audit records of matches a processor found


@dataclass(frozen=True)
class StreamFace:
    """A face searched in a frame: what was found, its track, and the collection's faces it matched."""

    found: FoundFace
    track: int
    matches: list[FaceMatch]


@dataclass(frozen=True)
class StreamEvent:
    """One Kinesis record's content: the processor, its camera's Kinesis Video ARN, the frame, its searches."""

    processor: str
    camera_arn: str
    frame: LiveFrame
    faces: list[StreamFace]


class Work(Protocol):
    """What a session does with its frames: face search (`FaceSearch` here) or label detection
    (`facelens.domain.stream_labels.LabelDetection`)."""

    records: int  # results written

    def admit(self) -> None:
        """Decide (again) what the session may do; a FaceLensError fails the processor."""

    def frame(self, frame: LiveFrame) -> None:
        """Analyse one sampled frame and write what it found."""

    def done(self) -> bool:
        """Whether the session reached its own end (a StopSelector's MaxDurationInSeconds)."""

    def finish(self) -> None:
        """The session stopped (Stop, or its own end): write what closes it."""


class Runner:
    """A processor's session on its own thread; `close()` stops it."""

    def __init__(self, service: StreamService, record: ProcessorRecord, url: str,
                 work: Callable[[Runner], Work] | None = None) -> None:
        self.service, self.record, self.url = service, record, url
        self.stop = threading.Event()
        self.context = RequestContext(key_id=record.key_id, purpose=record.purpose)
        self.work: Work = (work or FaceSearch)(self)
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"facelens-stream-{record.name}")
        self.analysed = 0  # frames analysed
        self.stopped = False  # the session ended STOPPED (a Stop, or its own end)
        self.feed: CameraFeed | None = None  # its `skipped` counts samples dropped while this one was busy
        self.latencies: deque[float] = deque(maxlen=10_000)  # seconds from a frame's decoding to its result written

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def close(self, release: bool = False) -> None:
        """Stop the session; `release`: let go of the lease (the processor stays RUNNING for whoever runs it
        next: this server after a restart, or another replica)."""
        self.stop.set()
        self._thread.join(20)
        if release:
            with self.service.store.transaction(write=True) as session:
                ProcessorRows(session).release_all(self.service.owner)

    # -- the store
    def _set(self, status: str, message: str | None = None) -> None:
        with self.service.store.transaction(write=True) as session:
            ProcessorRows(session).set_status(self.record.name, status, message, owner=self.service.owner)

    def _connected(self, fragment: int) -> None:
        with self.service.store.transaction(write=True) as session:
            rows = ProcessorRows(session)
            current = rows.get(self.record.name)
            if current is not None and current.status == STARTING and current.owner == self.service.owner:
                rows.set_status(self.record.name, RUNNING, owner=self.service.owner)
            elif current is not None and current.status_message is not None:  # back after a drop
                rows.set_message(self.record.name, None, self.service.owner)
        log.info("stream %s: camera %s connected (fragment %d)", self.record.name, self.record.camera, fragment)

    def _dropped(self, why: str) -> None:
        with self.service.store.transaction(write=True) as session:
            ProcessorRows(session).set_message(self.record.name, why, self.service.owner)

    def _renew(self) -> bool:
        """Keep the lease; False when the session must end here (stopped, lost, replaced)."""
        with self.service.store.transaction(write=True) as session:
            rows = ProcessorRows(session)
            current = rows.renew(self.record.name, self.service.owner, self.record.session_id or "",
                                 self.service.settings.lease_seconds)
            if current is None:
                log.warning("stream %s: lease lost; another replica runs it", self.record.name)
                return False
            if current.status == STOPPING:
                rows.set_status(self.record.name, STOPPED, owner=self.service.owner)
                self.stopped = True
                return False
        return True

    # -- the session
    def _run(self) -> None:
        name = self.record.name
        try:
            self._session()
        except (errors.FaceLensError, CameraLost, KinesisError) as exc:
            message = exc.message if isinstance(exc, errors.FaceLensError) else str(exc)
            log.warning("stream %s FAILED: %s", name, message)
            self._set(FAILED, message)
        except Exception as exc:  # a processor fails with the reason; the server goes on
            log.exception("stream %s failed", name)
            self._set(FAILED, f"internal error: {exc.__class__.__name__}")

    def _session(self) -> None:
        service, record, work = self.service, self.record, self.work
        work.admit()
        admitted = renewed = time.monotonic()
        feed = self.feed = CameraFeed(record.camera, self.url, service.settings.interval_ms,
                                      service.settings.retry_seconds, self.stop, on_connect=self._connected,
                                      on_drop=self._dropped)
        for frame in feed.frames():
            now = time.monotonic()
            if now - renewed >= RENEW_SECONDS:
                if not self._renew():
                    self.stop.set()
                    continue  # the feed ends
                renewed = now
            if now - admitted >= READMIT_SECONDS:
                work.admit()
                admitted = now
            if frame is None or self.stop.is_set():
                continue
            self.analysed += 1
            work.frame(frame)
            if work.done():
                self._set(STOPPED)
                self.stopped = True
                self.stop.set()
        if self.stopped:
            log.info("stream %s stopped: %d frames analysed, %d samples skipped, %d results written", record.name,
                     self.analysed, feed.skipped, work.records)
            work.finish()


class FaceSearch:
    """Face search on a session's frames: tracked faces searched once a second, a Kinesis record per frame with a
    search, every match audited."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.service = runner.service
        record = runner.record
        self.camera_arn = record.request["Input"]["KinesisVideoStream"]["Arn"]
        self.output = record.request["Output"]["KinesisDataStream"]["Arn"]
        self.fields = resolve_attributes(None)
        self.tracker = FaceTracker()
        self.searched: dict[int, int] = {}  # track -> ms of its last search
        self.origin = time.time()
        self.failing_since: float | None = None
        self.searches = self.records = 0
        self.collection: Any = None
        self.threshold: Any = None
        self.limit = MAX_MATCHES

    def admit(self) -> None:
        search = self.runner.record.request["Settings"]["FaceSearch"]
        collection, threshold, limit = self.service.gate.admit_search(
            self.runner.context, "StartStreamProcessor", search["CollectionId"], search.get("FaceMatchThreshold"),
            None, "FaceMatchThreshold", None, default=DEFAULT_THRESHOLD)
        check_model(self.service.analyzer.model_version, collection)
        self.collection, self.threshold, self.limit = collection, threshold, min(limit, MAX_MATCHES)

    def done(self) -> bool:
        return False  # a face search processor runs until stopped

    def finish(self) -> None:
        pass

    def frame(self, frame: LiveFrame) -> None:
        event = self._search(frame)
        if event is None:
            return
        try:
            self.service.writer.put(self.output, self.service.shape(event), self.runner.record.name)
            self.records += 1
            self.runner.latencies.append(time.time() - frame.decoded_at)
            self.failing_since = None
        except KinesisError:
            self.failing_since = self.failing_since or time.monotonic()
            if time.monotonic() - self.failing_since > self.service.settings.retry_seconds:
                raise
            log.warning("stream %s: a Kinesis record was lost", self.runner.record.name, exc_info=True)

    def _search(self, frame: LiveFrame) -> StreamEvent | None:
        """The searches of one frame (None when nobody in it was due for one), audited when they matched."""
        service, record = self.service, self.runner.record
        pixels = frame.pixels
        pixels.flags.writeable = False
        (result,) = find_faces(service.analyzer, [DecodedImage(pixels, "VIDEO")], self.fields, embed=0)
        assert isinstance(result, FaceSet)  # decoded pixels cannot fail to decode
        faces = result.passed
        if not faces:
            return None
        ms = round((frame.wall_time - self.origin) * 1000)  # the session's clock: increasing across reconnects
        # tracked by box overlap alone: only the faces due for a search are embedded (the costly half of the face
        # path); someone who leaves and comes back starts a new track, and so is searched at once
        tracks = self.tracker.update(ms, np.stack([f.box for f in faces]))
        due = [(face, track) for face, track in zip(faces, tracks, strict=True)
               if track not in self.searched or ms - self.searched[track] >= SEARCH_INTERVAL_MS]
        if not due:
            return None
        service.analyzer.embed([pixels], [[face for face, _ in due]])
        width, height = result.image.width, result.image.height
        found: list[StreamFace] = []
        for face, track in due:
            self.searched[track] = ms
            assert face.embedding is not None
            matches = service.search.face_matches(self.collection, face.embedding[None, :],
                                                  self.threshold.effective, self.limit)
            found.append(StreamFace(FoundFace(face, width, height, self.fields), track, matches))
        self.searches += len(found)
        matched = [m for f in found for m in f.matches]
        if matched:
            service.gate.record_search(
                self.runner.context, AUDIT_OPERATION, self.collection, self.threshold,
                sorted(matched, key=lambda m: -m.similarity), stream_processor=record.name, camera=record.camera,
                session_id=record.session_id, frame_time=round(frame.wall_time, 3), fragment=frame.fragment,
                offset=frame.offset)
        return StreamEvent(record.name, self.camera_arn, frame, found)
