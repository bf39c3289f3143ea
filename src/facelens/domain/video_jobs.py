"""Stored-video jobs: every Start*/Get* pair of Rekognition Video on one durable job machinery.

The kinds (face detection and search, labels, content moderation, text, person tracking, segments) are one
table, `facelens.domain.video_kinds.KINDS`: each with its Start check and its runner. A Start request is
validated, stored as a queued job (idempotent per ClientRequestToken, audited in the same transaction) and
answered with its JobId at once; worker threads claim queued jobs from the database, run them, and store all
results in the transaction that marks the job SUCCEEDED, or a message with FAILED. Jobs left running by a
process that died are queued again at start and rerun from the beginning, so results appear exactly once.
`VideoService` owns its worker threads: `start()` runs them, `close()` stops them.

Video sources (`Video.S3Object`): an S3 object, fetched by the `fetch` callable the service provides; or, as a
FaceLens extension, a file under the video directory, named with the bucket `facelens-local`
(`{"Bucket": "facelens-local", "Name": "cameras/door-1.mp4"}`). A local file is judged when it is opened, on the
opened descriptor (`facelens.video.source.LocalVideo`): at Start, and again at every open while the job runs,
re-queued jobs included, so a file that escaped the folder after Start fails its job and is never read.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facelens import errors, paging
from facelens.context import RequestContext
from facelens.domain.common import Records
from facelens.domain.model import JobPage
from facelens.domain.ports import Analyzer, Gate
from facelens.domain.search import SearchEngine
from facelens.domain.video_kinds import BY_START, KINDS
from facelens.s3 import check_object
from facelens.store.base import Session
from facelens.store.jobs import EXTRAS, FAILED, QUEUED, RUNNING, SUCCEEDED, TIMESTAMPS, JobRecord, JobResult
from facelens.video.decode import DEFAULT_INTERVAL_MS, probe
from facelens.video.source import LocalVideo, VideoError, VideoFile, VideoMissing, VideoOutside, VideoSource

if TYPE_CHECKING:
    from facelens.recognition.labels import LabelService
    from facelens.recognition.moderation import ModerationService
    from facelens.recognition.text import TextService

log = logging.getLogger("facelens.video")

LOCAL_BUCKET = "facelens-local"
MAX_VIDEO_BYTES = 10 * 1024**3  # Rekognition's stored-video limit
PAGE = 1000  # Get* MaxResults default and maximum
RENEW_SECONDS = 5.0  # a running job's claim is renewed this often (at most; a quarter of a shorter lease)
Fetch = Callable[[str, str, str | None, Path, int], None]  # (bucket, key, version, destination, max bytes)
Persist = Callable[[Any], dict[str, Any]]  # a typed result as stored, in the shape Get* serves


class VideoService:
    """The stored-video operations and the workers that run their jobs.

    `video_dir`: local videos (bucket `facelens-local`); `downloads`: where S3 videos are fetched to while a job
    runs; `fetch`: how (None: no S3 endpoint, such jobs fail); `webhook_url`: where completion notices go;
    `persist`: a typed result (`facelens.domain.model.VideoFace`, `facelens.domain.video_results`, a
    `facelens.video.segments.Segment`) in the form it is stored, the shape Get* serves it in
    (`facelens.api.wire_video.persist`, given by the composition root: results are written once and paged
    many times, so they are kept in their wire shape, the one documented exception to a typed domain).
    `labels`, `moderation`, `text`: the image services the analyses run on frames (None: not configured)."""

    def __init__(self, records: Records, analyzer: Analyzer, gate: Gate, search: SearchEngine, *,
                 video_dir: Path, downloads: Path, persist: Persist, fetch: Fetch | None = None,
                 webhook_url: str | None = None, interval_ms: int = DEFAULT_INTERVAL_MS,
                 max_bytes: int = MAX_VIDEO_BYTES, labels: LabelService | None = None,
                 moderation: ModerationService | None = None, text: TextService | None = None) -> None:
        self.records = records
        self.store = records.store
        self.analyzer = analyzer
        self.gate = gate
        self.search = search
        self.video_dir = Path(video_dir)
        self.downloads = Path(downloads)
        self.fetch = fetch
        self.persist = persist
        self.webhook_url = webhook_url
        self.interval_ms = interval_ms
        self.max_bytes = max_bytes
        self.labels = labels
        self.moderation = moderation
        self.text = text
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- Start: the wire adapter admits the job, creates it in the session that records its ClientRequestToken
    #    (`Records.idempotent`), then wakes the workers
    def admit_job(self, operation: str, request: Mapping[str, Any], context: RequestContext) -> None:
        """Refuse now a job the video, the collection or the caller's purpose would make fail for certain."""
        self._check_source(request["Video"])
        kind = BY_START[operation]
        if kind.admit is not None:
            kind.admit(self, request, context)

    def create_job(self, session: Session, operation: str, *, request: Mapping[str, Any],
                   context: RequestContext) -> str:
        """A queued job for `request` (the Start request as validated), audited in the same transaction; its
        JobId. The job stores the request without its ClientRequestToken: what its workers read and Get*
        reports."""
        job_id = uuid.uuid4().hex
        stored = {k: v for k, v in request.items() if k != "ClientRequestToken"}
        session.create_job(job_id, BY_START[operation].name, stored, context.key_id, context.purpose)
        self.gate.record(session, context, operation, request.get("CollectionId"), job_id=job_id,
                         video=request["Video"]["S3Object"]["Name"])
        return job_id

    def queued(self) -> None:
        """Wake the workers: a job was queued."""
        self._wake.set()

    def run_here(self, operation: str, request: Mapping[str, Any], context: RequestContext,
                 progress: Callable[[int], None] | None = None) -> str:
        """A validated Start* request run to the end in this thread (the CLI): created and claimed in one
        transaction, so no server worker sharing the data directory takes it; its JobId (read the results with
        Get*)."""
        self.admit_job(operation, request, context)
        with self.store.transaction(write=True) as session:
            job_id = self.create_job(session, operation, request=request, context=context)
            job = session.claim_job(job_id)
        assert job is not None
        self.run_job(job, progress)
        return job_id

    def _check_source(self, video: Mapping[str, Any]) -> None:
        """Refuse at once what cannot work: no S3Object, a local path outside the video directory or missing,
        a local file over the size limit, S3 without a configured reader."""
        s3 = video.get("S3Object") or {}
        if not s3.get("Bucket") or not s3.get("Name"):
            raise errors.InvalidParameterException("Video.S3Object needs Bucket and Name")
        check_object(s3, "Video")
        if s3["Bucket"] == LOCAL_BUCKET:
            size = self._local_size(s3["Name"])
            if size > self.max_bytes:
                raise errors.VideoTooLargeException(f"{s3['Name']} is {size:,} bytes; the limit is {self.max_bytes:,}")
        elif self.fetch is None:
            raise errors.InvalidS3ObjectException("S3 is not configured on this FaceLens (FACELENS_S3_ENDPOINT_URL), "
                                                  "so Video.S3Object can only name bucket facelens-local")

    def _local_size(self, name: str) -> int:
        """The size of a local video, opened and judged as a job's worker will open it."""
        try:
            with LocalVideo(self.video_dir, name).open() as handle:
                return os.fstat(handle.fileno()).st_size
        except VideoOutside as exc:
            raise errors.InvalidParameterException(str(exc)) from None
        except VideoMissing:
            raise errors.InvalidS3ObjectException(f"no video {name} in the video directory") from None

    # -- Get
    def get(self, operation: str, *, job_id: str, by_index: bool = False, part: int = TIMESTAMPS,
            max_results: int | None, next_token: str | None, context: RequestContext) -> JobPage:
        """One page of a job's results (of one part: per timestamp, or SEGMENTS; by time, or by index / name
        first), for a caller whose key may see the job: a face search's collection must be in the key's scope;
        a key limited to some collections reads only the other jobs it started. Each read is audited, with the
        FaceIds (and similarities) a face search discloses."""
        kind = KINDS[operation.removeprefix("Get")]
        filters = paging.digest({"JobId": job_id, "ByIndex": by_index, "Part": part})
        size = min(max_results or PAGE, PAGE)  # more than 1,000: 1,000
        with self.store.transaction() as session:
            job = session.get_job(job_id)
            if job is None or job.kind != kind.name:
                raise errors.ResourceNotFoundException(f"no {kind.name} job {job_id}")
            collection_id = job.request.get("CollectionId")
            context.scope.check(operation, collection_id)
            if collection_id is None and context.scope.collections is not None and job.key_id != context.key_id:
                raise errors.AccessDeniedException(
                    f"this access key is limited to some collections; job {job_id} was started by another key")

            def fetch(offset: int, limit: int) -> list[tuple[int, JobResult]]:
                """(position, result) pairs: a page token holds the position after the page's last result.
                Results exist once the job has succeeded."""
                if job.status != SUCCEEDED:
                    return []
                return list(enumerate(session.job_results(job.job_id, offset, limit, by_index, part), start=offset))

            page = self.records.page(operation, size, next_token, 0, filters, fetch, lambda row: row[0] + 1)
        status = RUNNING if job.status in (QUEUED, RUNNING) else job.status
        items = [result.item for _, result in page.items] if job.status == SUCCEEDED else []
        matches = [{"FaceId": m["Face"]["FaceId"], "Similarity": m.get("Similarity")}
                   for item in items for m in item.get("FaceMatches") or ()]
        with self.store.transaction(write=True) as session:
            self.gate.record(session, context, operation, collection_id, job_id=job_id, job_status=status,
                             results=len(items), **({"matches": matches} if kind.identifies else {}))
        if job.status != SUCCEEDED:
            return JobPage(job, status)
        return JobPage(job, status, items, page.next_token)

    # -- workers
    def start(self, workers: int = 1, poll_seconds: float = 2.0, shared: bool = False) -> None:
        """Queue again what a dead process left running, then run jobs on `workers` threads until close().
        `shared`: other servers use the same database, so only jobs whose claim expired are taken over."""
        with self.store.transaction(write=True) as session:
            requeued = session.requeue_interrupted(expired_only=shared)
        if requeued:
            log.info("video: %d interrupted jobs queued again", requeued)
        self._threads = [threading.Thread(target=self._loop, args=(poll_seconds,), daemon=True,
                                          name=f"facelens-video-{i}") for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def _loop(self, poll_seconds: float) -> None:
        while not self._stop.is_set():
            with self.store.transaction(write=True) as session:
                if session.requeue_interrupted(expired_only=True):  # a worker elsewhere died: take its job over
                    log.info("video: took over a job whose worker stopped")
                job = session.claim_job()
            if job is None:
                self._wake.wait(poll_seconds)
                self._wake.clear()
                continue
            log.info("video job %s (%s) claimed, attempt %d", job.job_id, job.kind, job.attempts)
            self.run_job(job)

    def run_job(self, job: JobRecord, progress: Callable[[int], None] | None = None) -> None:
        """Run one claimed job to SUCCEEDED or FAILED (never raises); `progress(ms)` as video is analysed.
        The job's claim is renewed as it goes, so no other worker takes it over while this one lives."""
        started = time.perf_counter()
        report = progress

        # a claim is renewed a few times per lease, not at every progress report (a label job reports each frame)
        with self.store.transaction() as session:
            every = min(RENEW_SECONDS, session.lease_seconds / 4)
        renewed = time.monotonic()

        def renewing(ms: int) -> None:
            nonlocal renewed
            if time.monotonic() - renewed >= every:
                with self.store.transaction(write=True) as session:
                    session.renew_job(job.job_id)
                renewed = time.monotonic()
            if report is not None:
                report(ms)

        progress = renewing
        source, cached = self._source_file(job)
        metadata, results, status, message = None, [], SUCCEEDED, None
        try:
            metadata = probe(source).to_wire()
            with self.store.transaction(write=True) as session:
                session.set_job_metadata(job.job_id, metadata)
            context = RequestContext(key_id=job.key_id, purpose=job.purpose)
            results, extras = KINDS[job.kind].run(self, job, source, progress, context)
            if extras:
                metadata = {**metadata, EXTRAS: extras}
        except (VideoError, errors.FaceLensError) as exc:
            status, message = FAILED, str(exc) if isinstance(exc, VideoError) else exc.message
        except Exception as exc:  # a job ends, whatever happens: FAILED with the reason, and the server goes on
            log.exception("video job %s failed", job.job_id)
            status, message = FAILED, f"internal error: {exc.__class__.__name__}"
        finally:
            if cached is not None:
                cached.unlink(missing_ok=True)
        with self.store.transaction(write=True) as session:
            session.finish_job(job.job_id, status, message, metadata, results)
        log.info("video job %s (%s): %s, %d results in %.1fs", job.job_id, job.kind, status, len(results),
                 time.perf_counter() - started)
        self._notify(job, status)

    def _source_file(self, job: JobRecord) -> tuple[VideoSource, Path | None]:
        """What to analyse, and the downloaded copy to remove afterwards (None for a local video)."""
        s3 = job.request["Video"]["S3Object"]
        if s3["Bucket"] == LOCAL_BUCKET:
            return LocalVideo(self.video_dir, s3["Name"]), None
        destination = self.downloads / job.job_id
        try:
            if self.fetch is None:
                raise errors.InvalidS3ObjectException("S3 is not configured on this FaceLens")
            self.fetch(s3["Bucket"], s3["Name"], s3.get("Version"), destination, self.max_bytes)
        except errors.FaceLensError as exc:  # the job fails with that message (probe() sees no file)
            log.info("video job %s: %s", job.job_id, exc.message)
            destination = destination.with_suffix(".missing")
        return VideoFile(destination), destination

    def _notify(self, job: JobRecord, status: str) -> None:
        """POST the SNS-shaped completion notice to the configured webhook (when the job asked for one)."""
        channel = job.request.get("NotificationChannel")
        if not channel or not self.webhook_url:
            return
        s3 = job.request["Video"]["S3Object"]
        message = {"JobId": job.job_id, "Status": status, "API": f"Start{job.kind}", "JobTag": job.request.get(
            "JobTag"), "Timestamp": int(time.time() * 1000), "Video": {"S3ObjectName": s3["Name"],
                                                                      "S3Bucket": s3["Bucket"]}}
        notice = {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": channel["SNSTopicArn"],
                  "Message": json.dumps(message), "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        request = urllib.request.Request(self.webhook_url, data=json.dumps(notice).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except OSError as exc:  # a lost notice is logged; the job's outcome stands
            log.warning("video job %s: webhook %s failed: %s", job.job_id, self.webhook_url, exc)

    def close(self) -> None:
        """Stop the workers (a job in progress is finished first)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(60)

