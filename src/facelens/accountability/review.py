"""Human review of search candidates: a reviewer's decision about one returned face, kept in the audit chain.

A 1:N search returns *candidates*, never identifications (docs/accountability.md). A reviewer records, per
candidate, CONFIRMED, REJECTED or INCONCLUSIVE with a note. Invariants:
- the decision is one audit record (`ReviewDecision`) appended in its own write transaction, hash-chained like
  every other record, naming the search's record by sequence number and hash (`search_seq`, `search_hash`) and
  by request id, so an export shows which search and which answer the decision is about;
- a decision can only be about a face the named search actually returned (its record's `matches`), in the same
  collection: a FaceId that search did not return is InvalidParameterException, an unknown search is
  ResourceNotFoundException; nothing is written then;
- the reviewed FaceId is listed under `reviewed`, so the subject-access query (`audit export --face-id`) finds
  the decision beside the search;
- several decisions about one candidate are all kept (a second opinion does not overwrite the first).
Recording a decision changes no collection, face, user, policy or job (the registry's definition of read-only),
so a read-only key that may search may also record what its reviewer concluded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from facelens import errors
from facelens.accountability.gate import Gate
from facelens.context import RequestContext
from facelens.domain.common import require_collection
from facelens.store.audit import AuditRow
from facelens.store.base import MetadataStore
from facelens.store.repos import AuditLog

DECISIONS = ("CONFIRMED", "REJECTED", "INCONCLUSIVE")
REVIEWED_OPERATIONS = frozenset({"SearchFaces", "SearchFacesByImage"})  # records whose `matches` are faces
OPERATION = "ReviewDecision"  # the audit record's operation name
PAGE = 1000


@dataclass(frozen=True)
class Review:
    """A recorded decision: its own audit sequence number, the search record it is linked to, and the
    Similarity that search gave the face."""

    seq: int
    search_seq: int
    search_hash: str
    similarity: float | None


class ReviewService:
    """Records reviewers' decisions about the candidates of searches in one store's audit chain."""

    def __init__(self, store: MetadataStore, gate: Gate) -> None:
        self.store = store
        self.gate = gate

    def record_decision(self, *, collection_id: str, search_request_id: str, face_id: str, decision: str,
                        note: str | None, context: RequestContext) -> Review:
        """Append the decision about `face_id`, returned by the search whose request id is `search_request_id`."""
        if decision not in DECISIONS:
            raise errors.InvalidParameterException(f"Decision must be one of {', '.join(DECISIONS)}")
        with self.store.transaction(write=True) as session:
            require_collection(session, collection_id)
            search = _search_record(session, collection_id, search_request_id, face_id)
            match = next(m for m in search.record.get("matches") or () if m.get("FaceId") == face_id)
            similarity = match.get("Similarity")
            row = self.gate.record(session, context, OPERATION, collection_id, search_seq=search.seq,
                                   search_hash=search.hash, search_request_id=search_request_id,
                                   search_operation=search.operation, decision=decision, note=note or None,
                                   reviewed=[{"FaceId": face_id, "Similarity": similarity}])
        return Review(row.seq, search.seq, search.hash, similarity)


def _search_record(session: AuditLog, collection_id: str, request_id: str, face_id: str) -> AuditRow:
    """The search's record that returned `face_id` (found through the subject-access index), or the error."""
    for row in _rows(session, collection_id, face_id):
        record = row.record
        if (row.operation in REVIEWED_OPERATIONS and record.get("request_id") == request_id
                and any(m.get("FaceId") == face_id for m in record.get("matches") or ())):
            return row
    if any(r.operation in REVIEWED_OPERATIONS and r.record.get("request_id") == request_id
           for r in _rows(session, collection_id, None)):
        raise errors.InvalidParameterException(f"search {request_id} did not return face {face_id}")
    raise errors.ResourceNotFoundException(f"no search {request_id} of collection {collection_id} is in the audit log")


def _rows(session: AuditLog, collection_id: str, face_id: str | None) -> Iterator[AuditRow]:
    """The collection's records (naming `face_id`, when given) in chain order, a page at a time."""
    after = 0
    while True:
        rows = session.audit_rows(after, PAGE, None, collection_id, face_id)
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1].seq
