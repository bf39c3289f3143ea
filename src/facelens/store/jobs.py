"""Video jobs in the metadata store: the record of a job and of one result (the session operations that queue,
claim and finish jobs and page through their results are `facelens.store.repos.Jobs`).

A job's results are written in the transaction that marks it finished, all at once, so a job interrupted by a
crash holds none: it is queued again (`requeue_interrupted`: at the next start of a single server, or by any
replica once the dead worker's claim has expired) and run from the beginning, and its results appear once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

QUEUED, RUNNING, SUCCEEDED, FAILED = "QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED"
TIMESTAMPS, SEGMENTS = 0, 1  # the parts of a job's results: per sampled frame, and aggregated into time spans
EXTRAS = "FaceLens"  # the key, in a job's stored metadata, of what Get* reports beside VideoMetadata
LEASE_SECONDS = 60.0  # a running job's worker renews its claim while it works; an expired claim is taken over


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    kind: str  # FaceDetection, FaceSearch, LabelDetection, ContentModeration, TextDetection, PersonTracking, ...
    status: str  # QUEUED (reported as IN_PROGRESS), IN_PROGRESS, SUCCEEDED, FAILED
    status_message: str | None
    request: dict[str, Any]  # the Start request as validated (Video, FaceAttributes, CollectionId, ...)
    key_id: str
    purpose: str | None
    created: dt.datetime
    attempts: int
    metadata: dict[str, Any] | None  # VideoMetadata once known
    result_count: int


@dataclass(frozen=True)
class JobResult:
    timestamp: int
    index: int  # the second sort key: a person's index, a label name's rank among the job's names, else 0
    item: dict[str, Any]  # one result as Get* serves it (a FaceDetection, PersonMatch, LabelDetection, ...)
    part: int = TIMESTAMPS  # TIMESTAMPS, or SEGMENTS: Get*'s AggregateBy chooses the part it pages
