"""The composition root: `build(settings) -> Backend` makes every part of FaceLens once.

`facelens serve` (through `create_app(settings, backend)`), every CLI command and the Python API build their
backend here, so a floor, a purpose rule or an audit record cannot depend on the entry point:

    store (SQLite | PostgreSQL) ─┬─ Records (idempotency, page tokens)
    vectors (FAISS | Milvus) ────┼─ SearchEngine (exact re-rank, calibrated Similarity)
    analyzer (the face path) ────┤
    Gate (policy floors, purpose, audit) ── FaceService, CollectionService, UserService, VideoService,
                                            AdminService, Retention

Operations reach the services only through the registry (`facelens.operations`) and its wire adapters
(`facelens.api.wire`: parameters -> a typed service call -> `facelens.api.shapes`): `Backend.run` for parameters
already validated at the wire (the HTTP layer), `Backend.call` for in-process callers (validated here, once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

from facelens import calibration, operations, validation
from facelens.accountability.admin import AdminService
from facelens.accountability.anchors import Anchoring, S3Witness, WebhookWitness, Witness
from facelens.accountability.gate import Gate
from facelens.accountability.policy import Policy
from facelens.accountability.retention import Retention
from facelens.accountability.review import ReviewService
from facelens.api import wire_streams, wire_video
from facelens.config import ServerSettings
from facelens.context import RequestContext
from facelens.domain.collections import CollectionService
from facelens.domain.common import Records
from facelens.domain.faces import FaceService
from facelens.domain.ports import Analyzer
from facelens.domain.search import SearchEngine
from facelens.domain.streams import StreamService
from facelens.domain.users import UserService
from facelens.domain.video_jobs import VideoService
from facelens.recognition.labels import LabelService
from facelens.recognition.moderation import ModerationService
from facelens.recognition.ppe import ProtectiveEquipmentService
from facelens.recognition.text import TextReader, TextService
from facelens.s3 import S3Reader
from facelens.store.audit import AuditRow
from facelens.store.base import MetadataStore

if TYPE_CHECKING:
    from facelens.store.open import VectorIndex
    from facelens.store.vectors import VectorConfig

CalibrationFor = Callable[[str], calibration.Calibration]


@dataclass(eq=False)
class Backend:
    """Every service of one FaceLens, and the one way to run an operation on them. Services other than
    `faces` are None for a backend without a data directory (`build_faces`)."""

    settings: ServerSettings
    analyzer: Analyzer
    gate: Gate
    faces: FaceService
    _: KW_ONLY
    store: MetadataStore | None = None
    vectors: VectorIndex | None = None
    search: SearchEngine | None = None
    collections: CollectionService | None = None
    users: UserService | None = None
    video: VideoService | None = None
    admin: AdminService | None = None
    retention: Retention | None = None
    s3: S3Reader | None = None  # `Image.S3Object` and `Video.S3Object` are read through it
    anchors: Anchoring | None = None  # the audit chain's head outside the database (file, log, witnesses)
    moderation: ModerationService | None = None  # DetectModerationLabels (its model loads on the first call)
    text: TextService | None = None  # DetectText (its model loads on the first image)
    labels: LabelService | None = None  # DetectLabels (its model loads on the first request)
    ppe: ProtectiveEquipmentService | None = None  # DetectProtectiveEquipment (persons, faces, face covers)
    review: ReviewService | None = None  # reviewers' decisions about search candidates (RecordReviewDecision)
    streams: StreamService | None = None  # stream processors on cameras (their runners start with `start`)

    def __post_init__(self) -> None:
        if self.s3 is None:
            self.s3 = S3Reader(self.settings.s3)

    def run(self, operation: str, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """Answer a registered operation whose parameters were validated at the wire, for `context`."""
        entry = operations.require(operation)
        context.scope.check(operation, params.get("CollectionId"))
        return entry.handler(self, params, context)

    @staticmethod
    def validate(operation: str, request: dict[str, Any] | None = None,
                 max_image_bytes: int | None = None) -> dict[str, Any]:
        """An in-process request checked against the service model (once), as the wire checks one from HTTP; an
        image member may be given as its bytes."""
        entry = operations.require(operation)
        request = dict(request or {})
        for name in entry.images:  # an image given as its bytes stands for {"Bytes": ...}
            if isinstance(request.get(name), bytes | bytearray | memoryview):
                request[name] = {"Bytes": bytes(request[name])}
        return validation.checked(entry.model, request, max_image_bytes)

    def call(self, operation: str, request: dict[str, Any] | None = None,
             context: RequestContext | None = None) -> dict[str, Any]:
        """An operation called in process (CLI, Python API, tests): the request is validated against the
        service model, then answered like one that came over HTTP; `context` defaults to the local operator."""
        context = context or RequestContext()
        return self.run(operation, self.validate(operation, request, context.max_image_bytes), context)

    def start(self) -> None:
        """Start the background work a server runs: the audit anchors, the retention sweep, the video job
        workers, and (with `warmup`, as the models) loading the collections' vector indexes."""
        if self.vectors is not None and self.settings.warmup:
            self.vectors.preload()
        if self.anchors is not None and self.store is not None:
            store = self.store

            def head() -> AuditRow | None:
                with store.transaction() as session:
                    return session.audit_head()

            self.anchors.start(head)
        if self.retention is not None:
            self.retention.start(self.settings.retention_interval)
        if self.video is not None:
            self.video.start(self.settings.video_workers, shared=self.settings.store.shared)
        if self.streams is not None:
            self.streams.start(shared=self.settings.store.shared)

    def close(self) -> None:
        """Stop the background work, save the vector indexes, close the database."""
        for part in (self.streams, self.video, self.retention, self.anchors, self.vectors, self.store):
            if part is not None:
                part.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def default_analyzer(settings: ServerSettings) -> Analyzer:
    """The real face pipeline with the configured models, one per model configuration in a process."""
    from facelens.pipeline import analyzer_for

    return analyzer_for(settings.models)


def calibration_in_force(settings: ServerSettings) -> CalibrationFor:
    """The Similarity scale `settings` name (FACELENS_CALIBRATION). A site table whose data cannot support the
    server's MinSearchSimilarity is refused here, at start, with the reason."""
    from facelens.config import ConfigError

    try:
        return calibration.chooser(settings.calibration, settings.policy.min_search_similarity)
    except ValueError as exc:
        raise ConfigError(f"FACELENS_CALIBRATION {settings.calibration}: {exc}") from None


def build_faces(settings: ServerSettings, *, analyzer: Analyzer | None = None,
                calibration_for: CalibrationFor | None = None) -> Backend:
    """A backend for DetectFaces and CompareFaces only, without a data directory: floors apply and comparisons
    are disclosed, but there is no audit log, so nothing is recorded."""
    analyzer = analyzer or default_analyzer(settings)
    calibration_for = calibration_for or calibration_in_force(settings)
    gate = Gate(None, settings.policy, calibration_for)  # no audit log
    return Backend(settings, analyzer, gate, FaceService(analyzer, gate, calibration_for),
                   **recognizers(settings, analyzer))


def recognizers(settings: ServerSettings, analyzer: Analyzer) -> dict[str, Any]:
    """The services of image recognition beyond faces (each loads its model on its first request); PPE shares
    the label detector and the face analyzer."""
    labels = LabelService(settings.models)
    return {"moderation": ModerationService(settings.models), "text": TextService(TextReader(settings.models)),
            "labels": labels, "ppe": ProtectiveEquipmentService(labels.detector, analyzer)}  # type: ignore[arg-type]


def anchoring(settings: ServerSettings, s3: S3Reader) -> Anchoring:
    """The data directory's audit anchors, with the witnesses `settings.audit` names."""
    witnesses: list[Witness] = []
    if settings.audit.witness_s3:
        witnesses.append(S3Witness(s3.client, settings.audit.witness_s3))
    if settings.audit.witness_url:
        witnesses.append(WebhookWitness(settings.audit.witness_url))
    return Anchoring(settings.collections_dir, witnesses, settings.audit.anchor_interval)


def build(settings: ServerSettings, *, analyzer: Analyzer | None = None,
          calibration_for: CalibrationFor | None = None, store: MetadataStore | None = None,
          vectors: VectorIndex | None = None, vector_config: VectorConfig | None = None,
          background_rebuilds: bool = True,
          gate_factory: Callable[[MetadataStore, Policy, CalibrationFor], Gate] = Gate) -> Backend:
    """Every part of FaceLens for `settings`, made once. `analyzer`, `calibration_for`, `store`, `vectors` and
    `gate_factory` replace the configured ones, `vector_config` the FAISS index settings (tests pass fakes; the
    server always runs `Gate`)."""
    from facelens.store.open import open_store, open_vectors

    analyzer = analyzer or default_analyzer(settings)
    calibration_for = calibration_for or calibration_in_force(settings)
    store = store or open_store(settings.store.database_url, settings.collections_dir,
                                settings.store.job_lease_seconds)
    if vectors is None:
        vectors = open_vectors(settings.store.vector_url, store, settings.collections_dir / "vectors",
                               vector_config or settings.store.vector_config(), background_rebuilds)
    s3 = S3Reader(settings.s3, pool_size=max(4, settings.workers))
    anchors = anchoring(settings, s3)
    store.audit_listener = anchors.committed
    gate = gate_factory(store, settings.policy, calibration_for)
    records = Records(store)
    search = SearchEngine(store, vectors, calibration_for)
    image_services = recognizers(settings, analyzer)
    return Backend(
        settings, analyzer, gate, FaceService(analyzer, gate, calibration_for),
        store=store, vectors=vectors, search=search,
        collections=CollectionService(records, vectors, analyzer, gate, search, settings.arn_region,
                                      settings.account),
        users=UserService(records, analyzer, gate, search),
        video=VideoService(records, analyzer, gate, search, persist=wire_video.persist,
                           video_dir=settings.videos_dir, downloads=settings.data_dir / "video-downloads",
                           fetch=s3.download if s3.configured else None, webhook_url=settings.video_webhook_url,
                           interval_ms=settings.video_interval_ms, labels=image_services["labels"],
                           moderation=image_services["moderation"], text=image_services["text"]),
        admin=AdminService(records, gate),
        streams=StreamService(records, analyzer, gate, search, settings.streams, shape=wire_streams.kinesis_record,
                              region=settings.arn_region, account=settings.account, labels=image_services["labels"],
                              s3=s3, webhook_url=settings.video_webhook_url),
        retention=Retention(store, vectors, gate),
        review=ReviewService(store, gate),
        s3=s3,
        anchors=anchors,
        **image_services,
    )
