"""FaceLens's own operations: PutCollectionPolicy, GetCollectionPolicy and ListAuditRecords.

A policy change is audited in the transaction that makes it, with the settings before and after. The audit log
is read in chain order, filtered by collection, time or FaceId (the subject-access query).
Methods take typed keyword arguments and the `RequestContext` and return `facelens.domain.model` results; the
wire adapters (`facelens.api.wire`) shape them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from facelens import errors, paging
from facelens.accountability.gate import Gate, rounded
from facelens.accountability.policy import WIRE_NAMES, PolicyError, size_floor
from facelens.context import RequestContext
from facelens.domain.common import Records, require_collection
from facelens.domain.model import CollectionPolicy, Page
from facelens.store.audit import AuditRow
from facelens.store.base import CollectionRecord, Session

_SNAKE = {wire: name for name, wire in WIRE_NAMES.items()}


class AdminService:
    """Collection policies and the audit log of one store."""

    def __init__(self, records: Records, gate: Gate) -> None:
        self.records = records
        self.store = records.store
        self.gate = gate

    def put_collection_policy(self, *, collection_id: str, policy: Mapping[str, Any],
                              context: RequestContext) -> CollectionPolicy:
        """Set some of a collection's policy settings (`policy`, in wire names; the others keep their value);
        audited."""
        if "MinCompareSimilarity" in policy:
            raise errors.InvalidParameterException(
                "MinCompareSimilarity is server-wide (FACELENS_MIN_COMPARE_SIMILARITY): CompareFaces has no collection")
        with self.store.transaction(write=True) as session:
            collection = require_collection(session, collection_id)
            before = session.get_policy(collection.pk) or {}
            own = {**before, **{_SNAKE[name]: value for name, value in policy.items()}}
            try:
                self.gate.policy.updated(own)  # the combination must be valid
            except PolicyError as exc:
                raise errors.InvalidParameterException(str(exc)) from None
            session.put_policy(collection.pk, own)
            self.gate.record(session, context, "PutCollectionPolicy", collection.collection_id, previous=before,
                             policy=own)
            return self._policy(session, collection)

    def get_collection_policy(self, *, collection_id: str, context: RequestContext) -> CollectionPolicy:
        with self.store.transaction() as session:
            return self._policy(session, require_collection(session, collection_id))

    def _policy(self, session: Session, collection: CollectionRecord) -> CollectionPolicy:
        own = session.get_policy(collection.pk) or {}
        effective = self.gate.policy.updated(own)
        faces = session.count_faces(collection.pk)
        floor = max(effective.min_search_similarity, size_floor(faces, effective.max_false_match_probability))
        return CollectionPolicy(collection.collection_id, own, effective, faces, rounded(min(floor, 100.0)),
                                self.gate.calibration_id(collection.face_model_version))

    def list_audit_records(self, *, collection_id: str | None, face_id: str | None, since: dt.datetime | None,
                           max_results: int | None, next_token: str | None,
                           context: RequestContext) -> Page[AuditRow]:
        """Audit records in chain order: of one collection, from a time on, or naming one FaceId."""
        start = since
        filters = {"CollectionId": collection_id, "FaceId": face_id, "Since": start.timestamp() if start else None}
        with self.store.transaction() as session:
            def fetch(after: int, limit: int) -> list[AuditRow]:
                return session.audit_rows(after, limit, start, collection_id, face_id)

            return self.records.page("ListAuditRecords", max_results, next_token, 0, paging.digest(filters), fetch,
                                     lambda r: r.seq)
