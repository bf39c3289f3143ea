"""Stream processors: Rekognition's live-video face search on cameras this server knows (docs/streams.md).

A processor is created STOPPED with a Kinesis Video ARN whose stream name is a camera of `FACELENS_CAMERAS`, a
Kinesis Data Streams output and FaceSearch settings; Start makes it STARTING, a replica claims it (the row's
lease, `facelens.store.streams`), connects to the camera (RUNNING), and writes one Kinesis record per face
search (`facelens.domain.stream_runner`). Stop makes it STOPPING until its runner has stopped (STOPPED); a camera
unreachable past the retry limit makes it FAILED with a StatusMessage. The processor rows are the truth: a
server that dies leaves RUNNING rows that it (single server) or another replica (leases expired) resumes.

Accountability: the FaceMatchThreshold is raised to the collection's floor (again at each session and every
`READMIT_SECONDS` while it runs, as the collection grows); where the collection requires a purpose the processor
must carry one, given (`x-facelens-purpose`) at Create and fixed for its life; Create, Start, Stop, Update and
Delete are audited, and so is every search that matched someone (FaceIds, similarities, processor, camera, frame
time). `watchers()` says who watches which camera for which collection and why.

ConnectedHome (label detection) processors find PERSON and PET (`facelens.domain.stream_labels`): first sightings
to their S3Destination and SNS-shaped notices to the webhook; they run for their StopSelector's duration.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from facelens import errors
from facelens.context import RequestContext
from facelens.domain.common import Records, check_model
from facelens.domain.model import Page
from facelens.domain.ports import Analyzer, Gate
from facelens.domain.search import SearchEngine
from facelens.domain.stream_labels import LabelDetection, wanted_labels
from facelens.domain.stream_runner import DEFAULT_THRESHOLD, Runner, StreamEvent
from facelens.kinesis import KinesisWriter, stream_name
from facelens.store.streams import (
    ACTIVE,
    FAILED,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    ProcessorRecord,
    ProcessorRows,
    camera_name,
)
from facelens.stream_settings import StreamSettings

log = logging.getLogger("facelens.streams")

LIST_DEFAULT = 1000  # ListStreamProcessors' MaxResults: "The default is 1000" (its model states no maximum)
Shape = Callable[[StreamEvent], bytes]  # a Kinesis record's data (Rekognition's JSON), given by the composition root


class StreamService:
    """The stream-processor operations, and the scheduler that runs this replica's share of the processors."""

    def __init__(self, records: Records, analyzer: Analyzer, gate: Gate, search: SearchEngine,
                 settings: StreamSettings, *, shape: Shape, region: str, account: str,
                 writer: KinesisWriter | None = None, labels: Any = None, s3: Any = None,
                 webhook_url: str | None = None) -> None:
        """`labels` (`LabelService`), `s3` (`S3Reader`, its client writes) and `webhook_url` (SNS-shaped notices)
        serve ConnectedHome processors; without them such processors are refused at Create."""
        self.records = records
        self.store = records.store
        self.analyzer, self.gate, self.search = analyzer, gate, search
        self.settings = settings
        self.shape = shape
        self.region, self.account = region, account
        self.writer = writer or KinesisWriter(settings)
        self.labels, self.s3, self.webhook_url = labels, s3, webhook_url
        self.owner = uuid.uuid4().hex  # this replica, as the processors' leases name it
        self._runners: dict[str, Runner] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- helpers
    def _rows(self, session: Any) -> ProcessorRows:
        return ProcessorRows(session)

    def _get(self, name: str, operation: str, context: RequestContext) -> ProcessorRecord:
        with self.store.transaction() as session:
            record = self._rows(session).get(name)
        if record is None:
            raise errors.ResourceNotFoundException(f"no stream processor {name}")
        context.scope.check(operation, record.collection_id)
        return record

    def _audit(self, context: RequestContext, operation: str, record: ProcessorRecord, **fields: Any) -> None:
        with self.store.transaction(write=True) as session:
            self.gate.record(session, context, operation, record.collection_id, stream_processor=record.name,
                             camera=record.camera, **fields)

    def camera_url(self, name: str | None) -> str | None:
        return self.settings.cameras.get(name or "")

    # -- Create
    def create_stream_processor(self, *, name: str, request: Mapping[str, Any], tags: Mapping[str, str] | None,
                                context: RequestContext) -> str:
        """A new STOPPED processor for the validated Create request; its ARN."""
        arn = self.processor_arn(name)
        camera = camera_name(request["Input"]["KinesisVideoStream"]["Arn"]) if request["Input"].get(
            "KinesisVideoStream") else None
        if camera is None:
            raise errors.InvalidParameterException("Input.KinesisVideoStream.Arn must name a stream "
                                                   "(arn:aws:kinesisvideo:REGION:ACCOUNT:stream/NAME/...)")
        if self.camera_url(camera) is None:
            raise errors.InvalidParameterException(f"no camera {camera} is registered with this server "
                                                   "(FACELENS_CAMERAS)")
        settings = request["Settings"]
        if settings.get("ConnectedHome") is not None:
            return self._create_labels(name, arn, camera, request, tags, context)
        if request["Output"].get("S3Destination") is not None:
            raise errors.InvalidParameterException("S3Destination is for ConnectedHome processors; a face search "
                                                   "processor writes to Output.KinesisDataStream")
        search = settings.get("FaceSearch")
        if not search or not search.get("CollectionId"):
            raise errors.InvalidParameterException("Settings.FaceSearch.CollectionId is required")
        output = (request["Output"].get("KinesisDataStream") or {}).get("Arn")
        if not output or stream_name(output) is None:
            raise errors.InvalidParameterException("Output.KinesisDataStream.Arn must name a Kinesis data stream "
                                                   "(arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)")
        if not self.writer.configured:
            raise errors.InvalidParameterException("Kinesis is not configured on this FaceLens "
                                                   "(FACELENS_KINESIS_ENDPOINT_URL)")
        if request.get("NotificationChannel") is not None:
            raise errors.InvalidParameterException("NotificationChannel is for ConnectedHome processors")
        context.scope.check("CreateStreamProcessor", search["CollectionId"])
        try:
            collection, threshold, _ = self.gate.admit_search(
                context, "CreateStreamProcessor", search["CollectionId"], search.get("FaceMatchThreshold"), None,
                "FaceMatchThreshold", None, default=DEFAULT_THRESHOLD)
        except errors.ResourceNotFoundException as exc:  # not among CreateStreamProcessor's modelled errors
            raise errors.InvalidParameterException(exc.message) from None
        check_model(self.analyzer.model_version, collection)
        stored = {k: v for k, v in request.items() if k not in ("Name", "Tags")}
        with self.store.transaction(write=True) as session:
            if not self._rows(session).create(name, arn, stored, dict(tags or {}), context.key_id, context.purpose):
                raise errors.ResourceInUseException(f"a stream processor named {name} exists")
            self.gate.record(session, context, "CreateStreamProcessor", collection.collection_id,
                             stream_processor=name, camera=camera, requested_threshold=threshold.requested,
                             effective_threshold=threshold.effective)
        return arn

    def _create_labels(self, name: str, arn: str, camera: str, request: Mapping[str, Any],
                       tags: Mapping[str, str] | None, context: RequestContext) -> str:
        """A ConnectedHome processor: labels PERSON / PET, frames to S3Destination, notices to the webhook."""
        if request["Settings"].get("FaceSearch") is not None:
            raise errors.InvalidParameterException("Settings takes FaceSearch or ConnectedHome, not both")
        wanted_labels(request["Settings"]["ConnectedHome"]["Labels"])
        if not (request["Output"].get("S3Destination") or {}).get("Bucket"):
            raise errors.InvalidParameterException("a ConnectedHome processor needs Output.S3Destination.Bucket")
        if request.get("NotificationChannel") is None:
            raise errors.InvalidParameterException("a ConnectedHome processor needs NotificationChannel.SNSTopicArn")
        if self.labels is None or self.s3 is None or not self.s3.configured:
            raise errors.InvalidParameterException("S3 is not configured on this FaceLens (FACELENS_S3_ENDPOINT_URL)"
                                                   ": ConnectedHome processors write their frames there")
        if not self.webhook_url:
            raise errors.InvalidParameterException("FACELENS_VIDEO_WEBHOOK_URL is not set: a ConnectedHome "
                                                   "processor's notices would go nowhere")
        stored = {k: v for k, v in request.items() if k not in ("Name", "Tags")}
        with self.store.transaction(write=True) as session:
            if not self._rows(session).create(name, arn, stored, dict(tags or {}), context.key_id, context.purpose):
                raise errors.ResourceInUseException(f"a stream processor named {name} exists")
            self.gate.record(session, context, "CreateStreamProcessor", None, stream_processor=name, camera=camera,
                             labels=request["Settings"]["ConnectedHome"]["Labels"])
        return arn

    def processor_arn(self, name: str) -> str:
        return f"arn:aws:rekognition:{self.region}:{self.account}:streamprocessor/{name}"

    # -- Start / Stop
    def start_stream_processor(self, *, name: str, start_selector: Mapping[str, Any] | None,
                               stop_selector: Mapping[str, Any] | None, context: RequestContext) -> str:
        """STARTING with a new session; its SessionId. The processor's own key and purpose search, whoever starts
        it (the purpose was fixed at Create)."""
        record = self._get(name, "StartStreamProcessor", context)
        labels = "ConnectedHome" in record.request["Settings"]
        if (start_selector or stop_selector) and not labels:
            raise errors.InvalidParameterException("StartSelector and StopSelector are for label detection "
                                                   "processors and are not used to start a face search processor")
        if ((start_selector or {}).get("KVSStreamStartSelector") or {}).get("FragmentNumber"):
            raise errors.InvalidParameterException("a camera cannot be replayed from a FragmentNumber; use "
                                                   "KVSStreamStartSelector.ProducerTimestamp (epoch ms)")
        selectors = {k: dict(v) for k, v in (("StartSelector", start_selector), ("StopSelector", stop_selector))
                     if v}
        if record.status not in (STOPPED, FAILED):
            raise errors.ResourceInUseException(f"stream processor {name} is {record.status}")
        if self.camera_url(record.camera) is None:
            raise errors.ResourceNotFoundException(f"camera {record.camera} is no longer registered with this "
                                                   "server (FACELENS_CAMERAS)")
        session_id = str(uuid.uuid4())
        with self.store.transaction(write=True) as session:
            self._rows(session).start(name, session_id, selectors)
            self.gate.record(session, context, "StartStreamProcessor", record.collection_id, stream_processor=name,
                             camera=record.camera, session_id=session_id)
        self._wake.set()
        return session_id

    def stop_stream_processor(self, *, name: str, context: RequestContext) -> None:
        record = self._get(name, "StopStreamProcessor", context)
        if record.status not in (STARTING, RUNNING):
            raise errors.ResourceInUseException(f"stream processor {name} is {record.status}, not running")
        with self.store.transaction(write=True) as session:
            self._rows(session).set_status(name, STOPPING)
            self.gate.record(session, context, "StopStreamProcessor", record.collection_id, stream_processor=name,
                             camera=record.camera, session_id=record.session_id)
        self._wake.set()

    # -- Describe / List
    def describe_stream_processor(self, *, name: str, context: RequestContext) -> ProcessorRecord:
        return self._get(name, "DescribeStreamProcessor", context)

    def list_stream_processors(self, *, max_results: int | None, next_token: str | None,
                               context: RequestContext) -> Page[ProcessorRecord]:
        """Processors by name, those of collections outside the key's scope left out."""
        with self.store.transaction() as session:
            visible = [r for r in self._rows(session).list() if r.collection_id is None
                       or context.scope.sees(r.collection_id)]

        def fetch(after: int, limit: int) -> list[tuple[int, ProcessorRecord]]:
            return list(enumerate(visible, start=1))[after:after + limit]

        page = self.records.page("ListStreamProcessors", max_results or LIST_DEFAULT, next_token, 0, "", fetch,
                                 lambda row: row[0])
        return Page([record for _, record in page.items], page.next_token)

    # -- Update / Delete
    def update_stream_processor(self, *, name: str, settings_for_update: Mapping[str, Any] | None,
                                regions_of_interest: list | None, data_sharing: Mapping[str, Any] | None,
                                parameters_to_delete: list[str] | None, context: RequestContext) -> None:
        """RegionsOfInterest and DataSharingPreference can change; ConnectedHome settings do not exist on a face
        search processor. The collection, threshold and purpose never change."""
        record = self._get(name, "UpdateStreamProcessor", context)
        home = record.request["Settings"].get("ConnectedHome")
        update = (settings_for_update or {}).get("ConnectedHomeForUpdate")
        if home is None and (update is not None or "ConnectedHomeMinConfidence" in (parameters_to_delete or ())):
            raise errors.InvalidParameterException(f"stream processor {name} is a face search processor; "
                                                   "ConnectedHome settings do not apply")
        if record.status in (STOPPING,):
            raise errors.ResourceInUseException(f"stream processor {name} is {record.status}")
        request = dict(record.request)
        if home is not None:
            home = {**home, **(update or {})}
            wanted_labels(home["Labels"])
            if "ConnectedHomeMinConfidence" in (parameters_to_delete or ()):
                home.pop("MinConfidence", None)
            request["Settings"] = {"ConnectedHome": home}
        if regions_of_interest is not None:
            request["RegionsOfInterest"] = regions_of_interest
        if "RegionsOfInterest" in (parameters_to_delete or ()):
            request.pop("RegionsOfInterest", None)
        if data_sharing is not None:
            request["DataSharingPreference"] = dict(data_sharing)
        with self.store.transaction(write=True) as session:
            self._rows(session).set_request(name, request)
            self.gate.record(session, context, "UpdateStreamProcessor", record.collection_id, stream_processor=name,
                             camera=record.camera)

    def delete_stream_processor(self, *, name: str, context: RequestContext) -> None:
        record = self._get(name, "DeleteStreamProcessor", context)
        if record.status in ACTIVE:
            raise errors.ResourceInUseException(f"stream processor {name} is {record.status}; stop it first")
        with self.store.transaction(write=True) as session:
            self._rows(session).delete(name)
            self.gate.record(session, context, "DeleteStreamProcessor", record.collection_id, stream_processor=name,
                             camera=record.camera)

    # -- tags
    def _by_arn(self, arn: str, operation: str, context: RequestContext) -> ProcessorRecord:
        with self.store.transaction() as session:
            record = self._rows(session).by_arn(arn)
        if record is None:
            raise errors.ResourceNotFoundException(f"no stream processor {arn} (FaceLens tags stream processors "
                                                   "through TagResource; collections take Tags at creation)")
        context.scope.check(operation, record.collection_id)
        return record

    def tag_resource(self, *, arn: str, tags: Mapping[str, str], context: RequestContext) -> None:
        record = self._by_arn(arn, "TagResource", context)
        merged = {**record.tags, **tags}
        if len(merged) > 200:  # Rekognition's limit of tags per resource
            raise errors.ServiceQuotaExceededException(f"{arn} would have {len(merged)} tags; the limit is 200")
        with self.store.transaction(write=True) as session:
            self._rows(session).set_tags(record.name, merged)

    def untag_resource(self, *, arn: str, keys: list[str], context: RequestContext) -> None:
        record = self._by_arn(arn, "UntagResource", context)
        with self.store.transaction(write=True) as session:
            self._rows(session).set_tags(record.name, {k: v for k, v in record.tags.items() if k not in keys})

    def list_tags(self, *, arn: str, context: RequestContext) -> dict[str, str]:
        return self._by_arn(arn, "ListTagsForResource", context).tags

    # -- oversight
    def watchers(self) -> list[ProcessorRecord]:
        """Every processor: who created it (key), which camera it watches, for which collection, why (purpose),
        and whether it runs now."""
        with self.store.transaction() as session:
            return self._rows(session).list()

    def running(self) -> dict[str, Runner]:
        """The sessions this replica runs now, by processor name (their counters: frames analysed, searches)."""
        return dict(self._runners)

    # -- the scheduler: claim what nobody runs, run it, let go of what is stopped
    def start(self, shared: bool = False, poll_seconds: float = 1.0) -> None:
        """Run this replica's processors until close(). A single server (not `shared`) takes back at once the
        processors it ran before it died; replicas wait for a dead holder's lease to expire."""
        if not shared:
            with self.store.transaction(write=True) as session:
                taken = self._rows(session).release_all()
            if taken:
                log.info("streams: %d processors left running are resumed", taken)
        self._thread = threading.Thread(target=self._loop, args=(poll_seconds,), daemon=True,
                                        name="facelens-streams")
        self._thread.start()

    def _loop(self, poll_seconds: float) -> None:
        while not self._stop.is_set():
            try:
                self._schedule()
            except Exception:  # the scheduler survives a database hiccup; the next round tries again
                log.exception("streams: scheduling failed")
            self._wake.wait(poll_seconds)
            self._wake.clear()

    def _schedule(self) -> None:
        for name, runner in list(self._runners.items()):
            if not runner.alive:
                del self._runners[name]
        with self.store.transaction() as session:
            names = self._rows(session).claimable(time.time())
        for name in names:
            if name in self._runners or len(self._runners) >= self.settings.max_running:
                continue
            with self.store.transaction(write=True) as session:
                record = self._rows(session).claim(name, self.owner, self.settings.lease_seconds)
                if record is not None and record.status == STOPPING:  # stopped while nobody ran it
                    self._rows(session).set_status(name, STOPPED, owner=self.owner)
                    continue
            if record is None:
                continue
            url = self.camera_url(record.camera)
            if url is None:
                with self.store.transaction(write=True) as session:
                    self._rows(session).set_status(name, FAILED, f"camera {record.camera} is not registered with "
                                                   "this server (FACELENS_CAMERAS)", owner=self.owner)
                continue
            log.info("streams: running %s on camera %s", name, record.camera)
            runner = Runner(self, record, url, LabelDetection if "ConnectedHome" in record.request["Settings"]
                            else None)
            self._runners[name] = runner
            runner.start()

    def close(self) -> None:
        """Stop the scheduler and this replica's runners; their processors stay RUNNING in the store, so they
        resume when a server starts again (or another replica takes them over once their leases expire)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        for runner in list(self._runners.values()):
            runner.close(release=True)
        self._runners.clear()


__all__ = ["FAILED", "RUNNING", "STARTING", "STOPPED", "STOPPING", "StreamService"]
