"""FaceLens's own operations: PutCollectionPolicy, GetCollectionPolicy and ListAuditRecords.

A policy change is audited in the transaction that makes it, with the settings before and after. The audit log
is read in chain order, filtered by collection, time or FaceId (the subject-access query).
"""

from __future__ import annotations

from typing import Any

from facelens import errors, paging, validation
from facelens.accountability.gate import Gate, rounded
from facelens.accountability.policy import WIRE_NAMES, PolicyError, size_floor
from facelens.context import RequestContext
from facelens.domain.common import Records, require_collection, with_token
from facelens.store.base import CollectionRecord, Session

_SNAKE = {wire: name for name, wire in WIRE_NAMES.items()}


class AdminService:
    """Collection policies and the audit log of one store."""

    def __init__(self, records: Records, gate: Gate) -> None:
        self.records = records
        self.store = records.store
        self.gate = gate

    def put_collection_policy(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """Set some of a collection's policy settings (the others keep their value); audited."""
        if "MinCompareSimilarity" in params["Policy"]:
            raise errors.InvalidParameterException(
                "MinCompareSimilarity is server-wide (FACELENS_MIN_COMPARE_SIMILARITY): CompareFaces has no collection")
        with self.store.transaction(write=True) as session:
            collection = require_collection(session, params["CollectionId"])
            before = session.get_policy(collection.pk) or {}
            own = {**before, **{_SNAKE[name]: value for name, value in params["Policy"].items()}}
            try:
                self.gate.policy.updated(own)  # the combination must be valid
            except PolicyError as exc:
                raise errors.InvalidParameterException(str(exc)) from None
            session.put_policy(collection.pk, own)
            self.gate.record(session, context, "PutCollectionPolicy", collection.collection_id, previous=before,
                             policy=own)
            return self._policy_response(session, collection)

    def get_collection_policy(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        with self.store.transaction() as session:
            return self._policy_response(session, require_collection(session, params["CollectionId"]))

    def _policy_response(self, session: Session, collection: CollectionRecord) -> dict[str, Any]:
        own = session.get_policy(collection.pk) or {}
        effective = self.gate.policy.updated(own)
        faces = session.count_faces(collection.pk)
        floor = max(effective.min_search_similarity, size_floor(faces, effective.max_false_match_probability))
        return {"CollectionId": collection.collection_id, "Policy": {WIRE_NAMES[k]: v for k, v in own.items()},
                "EffectivePolicy": effective.to_wire(), "FaceCount": faces, "SearchFloor": rounded(min(floor, 100.0))}

    def list_audit_records(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """Audit records in chain order: of one collection, from a time on, or naming one FaceId."""
        since = validation.timestamp(params["Since"]) if params.get("Since") is not None else None
        filters = {"CollectionId": params.get("CollectionId"), "FaceId": params.get("FaceId"),
                   "Since": since.timestamp() if since else None}
        with self.store.transaction() as session:
            def fetch(after: int, limit: int) -> list:
                return session.audit_rows(after, limit, since, params.get("CollectionId"), params.get("FaceId"))

            rows, token = self.records.page("ListAuditRecords", params, 0, paging.digest(filters), fetch,
                                            lambda r: r.seq)
        return with_token({"AuditRecords": [
            {"Sequence": row.seq, "Record": row.text, "PreviousHash": row.prev_hash, "Hash": row.hash}
            for row in rows]}, token)
