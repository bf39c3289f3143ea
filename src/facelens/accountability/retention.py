"""Retention: faces older than their collection's `retention_days` are deleted, each batch audited.

`Retention` owns its sweeping thread: `start(interval)` sweeps now and then every `interval` seconds until
`close()`. A failed sweep is logged and retried at the next interval.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING

from facelens.accountability.gate import Gate
from facelens.context import RequestContext
from facelens.store.base import MetadataStore

if TYPE_CHECKING:
    from facelens.store.open import VectorIndex

log = logging.getLogger("facelens.accountability")

RETENTION_KEY = "facelens-retention"  # the "access key" retention deletions are recorded under
BATCH = 1000


class Retention:
    """Deletes expired faces of one store and its vector index."""

    def __init__(self, store: MetadataStore, vectors: VectorIndex, gate: Gate) -> None:
        self.store = store
        self.vectors = vectors
        self.gate = gate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enforce(self, now: dt.datetime | None = None) -> int:
        """Delete the faces older than their collection's `retention_days`, auditing each batch; how many."""
        now = now or dt.datetime.now(dt.UTC)
        context = RequestContext(key_id=RETENTION_KEY)
        with self.store.transaction() as session:
            policies = session.retention_policies()
        deleted = 0
        for collection, own in policies:
            days = float(own["retention_days"])
            cutoff = now - dt.timedelta(days=days)
            while True:
                with self.store.transaction(write=True) as session:
                    if session.get_collection(collection.collection_id) is None:
                        break
                    expired = session.expired_faces(collection.pk, cutoff, BATCH)
                    if not expired:
                        break
                    session.delete_faces(collection.pk, [face.seq for face in expired])
                    for user_pk in {face.user_pk for face in expired if face.user_pk is not None}:
                        if not session.list_faces(collection.pk, 0, 1, user_pk):
                            session.set_user_status(user_pk, "CREATED")
                    self.gate.record(session, context, "RetentionDelete", collection.collection_id,
                                     retention_days=days, cutoff=cutoff.isoformat(),
                                     deleted=[face.face_id for face in expired])
                deleted += len(expired)
                self.vectors.sync(collection.pk)
        if deleted:
            self.store.reclaim()
            log.info("retention: deleted %d faces", deleted)
        return deleted

    def start(self, interval: float) -> None:
        """Enforce retention now and then every `interval` seconds, on a daemon thread, until `close()`."""
        def loop() -> None:
            while True:
                try:
                    self.enforce()
                except Exception:  # keep sweeping: a failed sweep is retried at the next interval
                    log.exception("retention sweep failed")
                if self._stop.wait(interval):
                    return

        self._thread = threading.Thread(target=loop, name="facelens-retention", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
