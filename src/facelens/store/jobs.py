"""Video jobs in the metadata store: the record of a job, and the session operations that queue, claim and
finish jobs and page through their results.

A job's results are written in the transaction that marks it finished, all at once, so a job interrupted by a
crash holds none: it is queued again (`requeue_interrupted`: at the next start of a single server, or by any
replica once the dead worker's claim has expired) and run from the beginning, and its results appear once.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

QUEUED, RUNNING, SUCCEEDED, FAILED = "QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED"
LEASE_SECONDS = 60.0  # a running job's worker renews its claim while it works; an expired claim is taken over


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    kind: str  # "FaceDetection" or "FaceSearch"
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
    index: int  # the person's index (face search), 0 for face detection
    item: dict[str, Any]  # one FaceDetection / PersonMatch


class JobsSession(abc.ABC):
    # How long a claim lasts unrenewed (seconds): the store gives each session its constructor's `lease_seconds`
    # (`StoreSettings.job_lease_seconds`, FACELENS_VIDEO_LEASE_SECONDS).
    lease_seconds: float = LEASE_SECONDS

    @abc.abstractmethod
    def create_job(self, job_id: str, kind: str, request: dict[str, Any], key_id: str,
                   purpose: str | None) -> JobRecord: ...

    @abc.abstractmethod
    def get_job(self, job_id: str) -> JobRecord | None: ...

    @abc.abstractmethod
    def claim_job(self, job_id: str | None = None) -> JobRecord | None:
        """The oldest queued job (or the job `job_id` if it is queued), now marked IN_PROGRESS (attempts + 1);
        None when there is none to claim."""

    @abc.abstractmethod
    def renew_job(self, job_id: str) -> None:
        """Extend the claim of a running job (its worker is alive)."""

    @abc.abstractmethod
    def requeue_interrupted(self, expired_only: bool = True) -> int:
        """Running jobs whose worker stopped renewing its claim (or, with `expired_only=False`, every running job:
        a single server starting on its own data) go back to the queue; how many."""

    @abc.abstractmethod
    def finish_job(self, job_id: str, status: str, message: str | None, metadata: dict[str, Any] | None,
                   results: Sequence[JobResult]) -> None:
        """Record the outcome and, for a success, every result (one transaction)."""

    @abc.abstractmethod
    def set_job_metadata(self, job_id: str, metadata: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def job_results(self, job_id: str, offset: int, limit: int, by_index: bool = False) -> list[JobResult]:
        """Results in time order (or person index, then time), from position `offset`."""
