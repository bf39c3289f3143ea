"""A bounded worker pool: blocking work off the event loop, and ThrottlingException instead of a growing queue.

`WorkerPool(workers, queue)` runs at most `workers` jobs at once and admits at most `queue` more waiting; a job
beyond that is refused at once with ThrottlingException (which boto3 retries with backoff). A slot is held
until the job itself finishes, even if the client that asked for it has gone away, so the bound is real.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from facelens import errors

T = TypeVar("T")


class WorkerPool:
    """Threads for blocking calls with admission control; use from one event loop."""

    def __init__(self, workers: int, queue: int, name: str = "facelens-worker") -> None:
        if workers < 1 or queue < 0:
            raise ValueError("workers must be >= 1 and queue >= 0")
        self.workers = workers
        self.capacity = workers + queue
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._admitted = 0
        self._closed = False

    @property
    def admitted(self) -> int:
        """Jobs running or waiting."""
        return self._admitted

    def _release(self, _: Future) -> None:
        with self._lock:
            self._admitted -= 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on a worker thread; ThrottlingException when the pool and its queue are full."""
        with self._lock:
            if self._closed:
                raise errors.ThrottlingException("The service is shutting down; retry against another instance.")
            if self._admitted >= self.capacity:
                raise errors.ThrottlingException(
                    "Amazon Rekognition is temporarily unable to process the request. Try your call again."
                )
            self._admitted += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            with self._lock:
                self._admitted -= 1
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new jobs; finish (wait=True) or drop the queued ones."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
