"""The backend's accountability: policy floors on every search, purpose checks, the audit trail, retention.

Every search is answered at the threshold its collection's policy allows (`facelens.accountability.policy`) and
recorded, with who asked, why, at what threshold and what came back, in the hash-chained audit log before its
answer leaves. Writes (IndexFaces, DeleteFaces, collection and policy changes, retention deletions) are audited
in the very transaction that makes them. FaceLens's own operations (PutCollectionPolicy, GetCollectionPolicy,
ListAuditRecords) live here too.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from facelens import errors, paging, service_model, validation
from facelens.accountability import access
from facelens.accountability.policy import (
    WIRE_NAMES,
    Policy,
    PolicyError,
    Threshold,
    capped,
    compare_threshold,
    search_threshold,
    size_floor,
)
from facelens.analysis import COMPARE_DEFAULT_THRESHOLD
from facelens.backend import BackendBase
from facelens.store.base import CollectionRecord, Session

log = logging.getLogger("facelens.accountability")

EFFECTIVE_THRESHOLD = "effective-threshold"  # disclosed to the caller (the API sends x-facelens-<name>)
FALSE_MATCH_PROBABILITY = "false-match-probability"
RETENTION_KEY = "facelens-retention"  # the "access key" retention deletions are recorded under
_RETENTION_BATCH = 1000
_SNAKE = {wire: name for name, wire in WIRE_NAMES.items()}


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _disclose(threshold: Threshold) -> dict[str, Any]:
    """Tell the caller the threshold a search or comparison is answered at (the API sends the headers), and
    return the fields its audit record holds about it."""
    context = access.current()
    context.disclosures[EFFECTIVE_THRESHOLD] = f"{threshold.effective:.2f}"
    context.disclosures[FALSE_MATCH_PROBABILITY] = f"{threshold.false_match_probability:.3g}"
    return {"requested_threshold": threshold.requested, "effective_threshold": _round(threshold.effective),
            "false_match_probability": _round(threshold.false_match_probability)}


class AccountableBackend(BackendBase):
    """Policy, purpose and audit for the search and write operations of the subclasses."""

    ADMIN_OPERATIONS = ("PutCollectionPolicy", "GetCollectionPolicy", "ListAuditRecords")

    # -- policy
    def _policy(self, session: Session, collection: CollectionRecord) -> Policy:
        """The collection's own settings over the server's."""
        return self.policy.updated(session.get_policy(collection.pk) or {})

    def _audit(self, session: Session, operation: str, collection_id: str | None, **fields: Any) -> None:
        """Append a record of the operation running now, in `session`'s (write) transaction."""
        context = access.current()
        session.append_audit({"operation": operation, "collection": collection_id, "key": context.key_id,
                              "purpose": context.purpose, "request_id": context.request_id, "outcome": "ok",
                              **{k: v for k, v in fields.items() if v is not None}})

    def _search_limits(self, operation: str, params: Mapping[str, Any], threshold_member: str,
                       limit_member: str | None) -> tuple[CollectionRecord, Threshold, int]:
        """The collection, the threshold the search is answered at, and its result cap; refuses (and audits the
        refusal) a search without a purpose where the policy requires one."""
        context = access.current()
        with self.store.transaction() as session:
            collection = self._collection(session, params["CollectionId"])
            policy = self._policy(session, collection)
            gallery = session.count_faces(collection.pk)
        if policy.require_purpose and not context.purpose:
            reason = (f"collection {collection.collection_id} requires a purpose for searches: send the case or "
                      "ticket reference in the x-facelens-purpose header")
            with self.store.transaction(write=True) as session:
                self._audit(session, operation, collection.collection_id, outcome="denied", reason=reason)
            raise errors.AccessDeniedException(reason)
        default = float(service_model.documented_default(operation, threshold_member))
        requested = params.get(threshold_member)
        threshold = search_threshold(policy, None if requested is None else float(requested), default, gallery)
        most = service_model.limit("SearchFaces", "MaxFaces")  # operations without a limit member (video search)
        limit = capped(policy, (params.get(limit_member) or service_model.limit(operation, limit_member))
                       if limit_member else most)
        _disclose(threshold)
        return collection, threshold, limit

    def _audit_search(self, operation: str, collection: CollectionRecord, threshold: Threshold,
                      matches: list[dict[str, Any]], **fields: Any) -> None:
        """Record a search and what it returned; the answer is given only once this has committed."""
        found: dict[str, Any] = {}
        if matches and "Face" in matches[0]:
            found["matches"] = [{"FaceId": m["Face"]["FaceId"], "Similarity": _round(m["Similarity"])}
                                for m in matches]
        elif matches:
            found["users"] = [{"UserId": m["User"]["UserId"], "Similarity": _round(m["Similarity"])}
                              for m in matches]
        else:
            found["matches"] = []
        with self.store.transaction(write=True) as session:
            self._audit(session, operation, collection.collection_id, face_model=collection.face_model_version,
                        **_disclose(threshold), gallery=threshold.gallery, **fields, **found)

    def compare_faces(self, requested: float | None, compare: Callable[[float], dict[str, Any]],
                      model_version: str) -> dict[str, Any]:
        """CompareFaces under the server's `min_compare_similarity`: `compare(threshold)` runs the comparison;
        the result is audited before it is returned."""
        threshold = compare_threshold(self.policy, requested, COMPARE_DEFAULT_THRESHOLD)
        audited = _disclose(threshold)
        response = compare(threshold.effective)
        with self.store.transaction(write=True) as session:
            self._audit(session, "CompareFaces", None, face_model=model_version, **audited,
                        similarities=[_round(m["Similarity"]) for m in response.get("FaceMatches", [])])
        return response

    # -- FaceLens's own operations
    def put_collection_policy(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Set some of a collection's policy settings (the others keep their value); audited."""
        params = self._request("PutCollectionPolicy", request)
        if "MinCompareSimilarity" in params["Policy"]:
            raise errors.InvalidParameterException(
                "MinCompareSimilarity is server-wide (FACELENS_MIN_COMPARE_SIMILARITY): CompareFaces has no collection")
        with self.store.transaction(write=True) as session:
            collection = self._collection(session, params["CollectionId"])
            before = session.get_policy(collection.pk) or {}
            own = {**before, **{_SNAKE[name]: value for name, value in params["Policy"].items()}}
            try:
                self.policy.updated(own)  # the combination must be valid
            except PolicyError as exc:
                raise errors.InvalidParameterException(str(exc)) from None
            session.put_policy(collection.pk, own)
            self._audit(session, "PutCollectionPolicy", collection.collection_id, previous=before, policy=own)
            return self._policy_response(session, collection)

    def get_collection_policy(self, request: Mapping[str, Any]) -> dict[str, Any]:
        params = self._request("GetCollectionPolicy", request)
        with self.store.transaction() as session:
            return self._policy_response(session, self._collection(session, params["CollectionId"]))

    def _policy_response(self, session: Session, collection: CollectionRecord) -> dict[str, Any]:
        own = session.get_policy(collection.pk) or {}
        effective = self.policy.updated(own)
        faces = session.count_faces(collection.pk)
        floor = max(effective.min_search_similarity, size_floor(faces, effective.max_false_match_probability))
        return {"CollectionId": collection.collection_id, "Policy": {WIRE_NAMES[k]: v for k, v in own.items()},
                "EffectivePolicy": effective.to_wire(), "FaceCount": faces, "SearchFloor": _round(min(floor, 100.0))}

    def list_audit_records(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Audit records in chain order: of one collection, from a time on, or naming one FaceId."""
        params = self._request("ListAuditRecords", request)
        since = validation.timestamp(params["Since"]) if params.get("Since") is not None else None
        filters = {"CollectionId": params.get("CollectionId"), "FaceId": params.get("FaceId"),
                   "Since": since.timestamp() if since else None}
        with self.store.transaction() as session:
            def fetch(after: int, limit: int) -> list:
                return session.audit_rows(after, limit, since, params.get("CollectionId"), params.get("FaceId"))

            rows, token = self._page("ListAuditRecords", params, 0, paging.digest(filters), fetch, lambda r: r.seq)
        response: dict[str, Any] = {"AuditRecords": [
            {"Sequence": row.seq, "Record": row.text, "PreviousHash": row.prev_hash, "Hash": row.hash}
            for row in rows]}
        if token:
            response["NextToken"] = token
        return response

    # -- retention
    def enforce_retention(self, now: dt.datetime | None = None) -> int:
        """Delete the faces older than their collection's `retention_days`, auditing each batch; how many."""
        now = now or dt.datetime.now(dt.UTC)
        with self.store.transaction() as session:
            policies = session.retention_policies()
        deleted = 0
        for collection, own in policies:
            days = float(own["retention_days"])
            cutoff = now - dt.timedelta(days=days)
            while True:
                with self.store.transaction(write=True) as session, \
                        access.acting_as(access.RequestContext(key_id=RETENTION_KEY)):
                    if session.get_collection(collection.collection_id) is None:
                        break
                    expired = session.expired_faces(collection.pk, cutoff, _RETENTION_BATCH)
                    if not expired:
                        break
                    session.delete_faces(collection.pk, [face.seq for face in expired])
                    for user_pk in {face.user_pk for face in expired if face.user_pk is not None}:
                        if not session.list_faces(collection.pk, 0, 1, user_pk):
                            session.set_user_status(user_pk, "CREATED")
                    self._audit(session, "RetentionDelete", collection.collection_id, retention_days=days,
                                cutoff=cutoff.isoformat(), deleted=[face.face_id for face in expired])
                deleted += len(expired)
                self.cache.sync(collection.pk)
        if deleted:
            self.store.reclaim()
            log.info("retention: deleted %d faces", deleted)
        return deleted

    def start_retention(self, interval: float) -> None:
        """Enforce retention now and then every `interval` seconds, on a daemon thread, until `close()`."""
        stop = self._retention_stop = threading.Event()

        def loop() -> None:
            while True:
                try:
                    self.enforce_retention()
                except Exception:  # keep sweeping: a failed sweep is retried at the next interval
                    log.exception("retention sweep failed")
                if stop.wait(interval):
                    return

        self._retention_thread = threading.Thread(target=loop, name="facelens-retention", daemon=True)
        self._retention_thread.start()

    def close(self) -> None:
        stop = getattr(self, "_retention_stop", None)
        if stop is not None:
            stop.set()
            self._retention_thread.join(30)
        super().close()

