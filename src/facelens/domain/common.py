"""What the collection services share: collection lookup, the model check, defaults, idempotent writes, pages.

`Records(store, tokens)` is one small object, made once by the composition root and given to every service
that reads or writes collections; it holds no other state. Rule kept by every service: no database
transaction is held while calling into the vector index (the index opens its own).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from facelens import errors, paging, service_model
from facelens.domain.model import Page, Refusal
from facelens.store.base import CollectionRecord, FaceRecord, MetadataStore, Session
from facelens.store.repos import Collections

T = TypeVar("T")
IDEMPOTENCY_TTL = dt.timedelta(hours=24)  # how long a ClientRequestToken is remembered


def require_collection(session: Collections, collection_id: str) -> CollectionRecord:
    """The collection, or ResourceNotFoundException."""
    found = session.get_collection(collection_id)
    if found is None:
        raise errors.ResourceNotFoundException(f"The collection id: {collection_id} does not exist")
    return found


def check_model(model_version: str, collection: CollectionRecord) -> None:
    """InvalidParameterException when the collection's embeddings come from another face model."""
    if model_version != collection.face_model_version:
        raise errors.InvalidParameterException(
            f"collection {collection.collection_id} holds face model {collection.face_model_version} "
            f"embeddings; this server runs {model_version}")


def default(operation: str, name: str, value: Any) -> Any:
    """`value`, or (None) the default of `operation`'s member `name` as documented in the service model."""
    return service_model.documented_default(operation, name) if value is None else value


def reason_in(shape: str, name: str) -> str:
    """A refusal reason, checked against the service model's enum `shape`."""
    if name not in service_model.enum(shape):
        raise ValueError(f"{name} is not in {shape}")
    return name


def judged(face_ids: Sequence[str], found: dict[str, FaceRecord], reasons: str,
            judge: Callable[[FaceRecord], Refusal | bool]) -> tuple[list[FaceRecord], list[Refusal]]:
    """The faces `judge` takes (True) and those refused (FACE_NOT_FOUND, or `judge`'s `Refusal`), in request
    order; a face it passes over (False) is in neither, as Rekognition ignores it. `reasons`: the enum of the
    operation's refusal reasons (DeleteFaces, AssociateFaces, DisassociateFaces)."""
    taken: list[FaceRecord] = []
    refused: list[Refusal] = []
    for face_id in face_ids:
        face = found.get(face_id)
        verdict = judge(face) if face is not None else Refusal(face_id, [reason_in(reasons, "FACE_NOT_FOUND")])
        if isinstance(verdict, Refusal):
            refused.append(verdict)
        elif verdict and face is not None:
            taken.append(face)
    return taken, refused


class Records:
    """Idempotent writes and signed pagination over one metadata store."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        with store.transaction() as session:
            self.tokens = paging.PageTokens(session.secret())

    def idempotent(self, operation: str, params: Mapping[str, Any],
                   body: Callable[[Session], tuple[dict[str, Any], int | None]], key_id: str) -> dict[str, Any]:
        """Run a write once per ClientRequestToken of one access key: a repeat with the same parameters gets the
        first response (and changes nothing); one with other parameters is refused. All in one transaction.
        Tokens are the sending key's own: another key's same token is a new request, never that key's answer."""
        field = service_model.idempotency_member(operation)
        token = params.get(field) if field else None
        if token is not None:
            token = f"{key_id}/{token}"
        digest = paging.digest(params, leave_out=(field,) if field else ())
        with self.store.transaction(write=True) as session:
            if token is not None:
                seen = session.recall(operation, token)
                if seen is not None:
                    if seen[0] != digest:
                        raise errors.IdempotentParameterMismatchException(
                            f"ClientRequestToken {token} was used with other parameters")
                    return json.loads(seen[1])
            response, pk = body(session)
            if token is not None:
                session.forget_tokens_before(dt.datetime.now(dt.UTC) - IDEMPOTENCY_TTL)
                session.remember(operation, token, digest, json.dumps(response), pk)
        return response

    def page(self, operation: str, max_results: int | None, next_token: str | None, scope: int, filters: str,
             fetch: Callable[[int, int], Sequence[T]], key: Callable[[T], int]) -> Page[T]:
        """One page of `fetch(after_key, limit)` (at most `max_results`, the operation's default page size
        unless given) and the NextToken of the next (None when none)."""
        size = paging.page_size(operation, max_results)
        after = self.tokens.read(next_token, operation, scope, filters)
        rows = list(fetch(after, size + 1))
        if len(rows) <= size:
            return Page(rows)
        rows = rows[:size]
        return Page(rows, self.tokens.issue(operation, scope, filters, key(rows[-1])))
