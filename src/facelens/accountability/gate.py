"""The accountability gate: every comparison, search and identification passes it, whatever the entry point.

`Gate(store, policy)` is made once by the composition root (`facelens.service.build`) and given to each service
that compares or identifies faces. It decides the threshold a search or comparison is answered at (the policy's
floors, `facelens.accountability.policy`), refuses a search without a purpose where the collection requires one
(and audits the refusal), tells the caller the effective threshold (`RequestContext.disclosures`), and appends
the audit record: a write's in the transaction that makes it, a search's or comparison's before its answer is
returned. The HTTP service, the CLI and the Python API all reach the services through the same gate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from facelens import errors, service_model
from facelens.accountability.policy import (
    Policy,
    Threshold,
    capped,
    compare_threshold,
    false_match_probability,
    search_threshold,
)
from facelens.calibration import Calibration
from facelens.context import RequestContext
from facelens.domain.common import require_collection
from facelens.domain.model import FaceMatch, UserMatch
from facelens.store.audit import AuditRow
from facelens.store.base import CollectionRecord, MetadataStore
from facelens.store.repos import AuditLog, Policies

EFFECTIVE_THRESHOLD = "effective-threshold"  # disclosed to the caller (the API sends x-facelens-<name>)
FALSE_MATCH_PROBABILITY = "false-match-probability"
COMPARE_DEFAULT_THRESHOLD = 80.0  # Rekognition's CompareFaces default (stated in its API reference, not the model)


def rounded(value: float) -> float:
    """Six significant digits: how similarities and thresholds are written to the audit log."""
    return float(f"{value:.6g}")


class Gate:
    """Floors, purpose rule and audit trail over one store, under the server-wide `policy`."""

    def __init__(self, store: MetadataStore | None, policy: Policy,
                 calibration_for: Callable[[str], Calibration] | None = None) -> None:
        """`store` None: no audit log (an in-process `facelens.compare()` without a data directory): floors
        still apply and comparisons are still disclosed, but nothing is recorded. `calibration_for`: the
        Similarity scale in force per face model, whose id each record of a comparison or search names."""
        self.store = store
        self.policy = policy  # server-wide; collections may set their own over it
        self.calibration_for = calibration_for

    def calibration_id(self, model_version: str) -> str | None:
        """Which table turned this model's cosines into Similarity (None when none is known)."""
        if self.calibration_for is None:
            return None
        try:
            return self.calibration_for(model_version).id
        except (FileNotFoundError, ValueError):
            return None

    @property
    def _log(self) -> MetadataStore:
        if self.store is None:
            raise errors.InvalidParameterException("this FaceLens has no data directory: collections, searches "
                                                   "and the audit log need one")
        return self.store

    def policy_for(self, session: Policies, collection: CollectionRecord) -> Policy:
        """The collection's own settings over the server's."""
        return self.policy.updated(session.get_policy(collection.pk) or {})

    def record(self, session: AuditLog, context: RequestContext, operation: str, collection_id: str | None,
               **fields: Any) -> AuditRow:
        """Append a record of `operation` in `session`'s (write) transaction; the sealed row."""
        return session.append_audit({"operation": operation, "collection": collection_id, "key": context.key_id,
                              "purpose": context.purpose, "request_id": context.request_id, "outcome": "ok",
                              **{k: v for k, v in fields.items() if v is not None}})

    @staticmethod
    def _disclose(context: RequestContext, threshold: Threshold) -> dict[str, Any]:
        """Tell the caller the threshold it is answered at; the fields its audit record holds about it."""
        context.disclosures[EFFECTIVE_THRESHOLD] = f"{threshold.effective:.2f}"
        context.disclosures[FALSE_MATCH_PROBABILITY] = f"{threshold.false_match_probability:.3g}"
        return {"requested_threshold": threshold.requested, "effective_threshold": rounded(threshold.effective),
                "false_match_probability": rounded(threshold.false_match_probability)}

    def check_purpose(self, context: RequestContext, operation: str, collection: CollectionRecord,
                      policy: Policy) -> None:
        """Refuse, and audit the refusal, an identification whose purpose the collection's policy rejects."""
        reason = policy.purpose_refusal(collection.collection_id, context.purpose)
        if reason is not None:
            with self._log.transaction(write=True) as session:
                self.record(session, context, operation, collection.collection_id, outcome="denied", reason=reason)
            raise errors.AccessDeniedException(reason)

    # -- 1:N searches
    def admit_search(self, context: RequestContext, operation: str, collection_id: str, requested: float | None,
                     max_results: int | None, threshold_member: str,
                     limit_member: str | None, *,
                     default: float | None = None) -> tuple[CollectionRecord, Threshold, int]:
        """The collection, the threshold the search is answered at (`requested`, or `threshold_member`'s
        documented default, or `default` for a member nested deeper than the request, raised to the floors), and
        its result cap (`max_results`, or `limit_member`'s limit); refuses (and audits the refusal) a search
        without a purpose where the policy requires one."""
        with self._log.transaction() as session:
            collection = require_collection(session, collection_id)
            policy = self.policy_for(session, collection)
            gallery = session.count_faces(collection.pk)
        self.check_purpose(context, operation, collection, policy)
        if default is None:
            default = float(service_model.documented_default(operation, threshold_member))
        threshold = search_threshold(policy, None if requested is None else float(requested), default, gallery)
        most = service_model.limit("SearchFaces", "MaxFaces")  # operations without a limit member (video search)
        limit = capped(policy, (max_results or service_model.limit(operation, limit_member))
                       if limit_member else most)
        self._disclose(context, threshold)
        return collection, threshold, limit

    def record_search(self, context: RequestContext, operation: str, collection: CollectionRecord,
                      threshold: Threshold, matches: Sequence[FaceMatch] | Sequence[UserMatch],
                      **fields: Any) -> None:
        """Record a search and what it returned (FaceIds or UserIds with their Similarity); the answer is given
        only once this has committed."""
        found: dict[str, Any] = {}
        if matches and isinstance(matches[0], FaceMatch):
            found["matches"] = [{"FaceId": m.face.face_id, "Similarity": rounded(m.similarity)}
                                for m in matches if isinstance(m, FaceMatch)]
        elif matches:
            found["users"] = [{"UserId": m.user.user_id, "Similarity": rounded(m.similarity)}
                              for m in matches if isinstance(m, UserMatch)]
        else:
            found["matches"] = []
        with self._log.transaction(write=True) as session:
            self.record(session, context, operation, collection.collection_id,
                        face_model=collection.face_model_version,
                        calibration=self.calibration_id(collection.face_model_version),
                        **self._disclose(context, threshold), gallery=threshold.gallery, **fields, **found)

    # -- associations: a face joins a user only if it matches the user's faces (a 1:K comparison)
    def admit_association(self, context: RequestContext, operation: str, collection_id: str) -> None:
        """Refuse (and audit the refusal) an AssociateFaces whose purpose the collection's policy rejects; runs
        before the write's transaction, so the refusal's record is kept."""
        with self._log.transaction() as session:
            collection = require_collection(session, collection_id)
            policy = self.policy_for(session, collection)
        self.check_purpose(context, operation, collection, policy)

    def association_threshold(self, context: RequestContext, requested: float | None, default: float,
                              references: int) -> Threshold:
        """The Similarity a face must reach to join a user with `references` faces: the request's
        UserMatchThreshold (or its default), raised to the server's CompareFaces floor."""
        threshold = compare_threshold(self.policy, requested, default)
        threshold = replace(threshold, gallery=max(references, 1),
                            false_match_probability=false_match_probability(threshold.effective,
                                                                            max(references, 1)))
        self._disclose(context, threshold)
        return threshold

    def record_association(self, session: AuditLog, context: RequestContext, operation: str,
                           collection: CollectionRecord, threshold: Threshold, user_id: str,
                           associated: Sequence[tuple[str, float | None]],
                           refused: Sequence[tuple[str, str, float | None]]) -> None:
        """Record an AssociateFaces in its transaction: the faces that joined the user and those refused, each
        with the Similarity it reached (None for a user's first face, which is compared with nothing)."""
        self.record(session, context, operation, collection.collection_id, face_model=collection.face_model_version,
                    calibration=self.calibration_id(collection.face_model_version),
                    user_id=user_id, **self._disclose(context, threshold),
                    associated=[{"FaceId": f, "Similarity": None if s is None else rounded(s)} for f, s in associated],
                    refused=[{"FaceId": f, "Reason": r, "Similarity": None if s is None else rounded(s)}
                             for f, r, s in refused])

    # -- 1:1 comparisons
    def admit_compare(self, context: RequestContext, requested: float | None) -> Threshold:
        """The threshold a CompareFaces is answered at: the request's (80 by default), raised to the server's
        `min_compare_similarity`."""
        threshold = compare_threshold(self.policy, requested, COMPARE_DEFAULT_THRESHOLD)
        self._disclose(context, threshold)
        return threshold

    def record_compare(self, context: RequestContext, threshold: Threshold, model_version: str,
                       similarities: Sequence[float]) -> None:
        """Record a comparison and the similarities it returned (nowhere, without an audit log)."""
        if self.store is None:
            return
        with self.store.transaction(write=True) as session:
            self.record(session, context, "CompareFaces", None, face_model=model_version,
                        calibration=self.calibration_id(model_version),
                        **self._disclose(context, threshold), similarities=[rounded(s) for s in similarities])
