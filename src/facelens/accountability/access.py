"""Who is asking and for what: access-key scopes, and the context an operation records in the audit log.

The HTTP layer builds a `RequestContext` (access key id, its scope, the `x-facelens-purpose` header) and runs the
backend operation inside `acting_as(context)`; the backend reads it with `current()`, checks it, audits it, and
leaves what the caller should be told (effective threshold, false-match probability) in `context.disclosures`.
Code that calls the backend directly (the CLI, benchmarks) acts as a local, unscoped operator.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from facelens import errors

# Operations that only read: a read-only key may call these and nothing else.
READ_ONLY_OPERATIONS = frozenset({
    "DetectFaces", "CompareFaces", "ListCollections", "DescribeCollection", "ListFaces", "ListUsers",
    "SearchFaces", "SearchFacesByImage", "SearchUsers", "SearchUsersByImage", "GetCollectionPolicy",
})
ADMIN_OPERATIONS = frozenset({"PutCollectionPolicy", "ListAuditRecords"})


@dataclass(frozen=True)
class KeyScope:
    """What an access key may do. None means no restriction on that axis."""

    collections: frozenset[str] | None = None
    operations: frozenset[str] | None = None
    read_only: bool = False
    admin: bool = False

    def check(self, operation: str, collection_id: str | None) -> None:
        """AccessDeniedException when the key may not run `operation` (on `collection_id`)."""
        if operation in ADMIN_OPERATIONS and not self.admin:
            raise errors.AccessDeniedException(f"{operation} needs the service's admin key")
        if self.read_only and operation not in READ_ONLY_OPERATIONS:
            raise errors.AccessDeniedException(f"this access key is read-only: it may not call {operation}")
        if self.operations is not None and operation not in self.operations and not (
                self.admin and operation in ADMIN_OPERATIONS):
            raise errors.AccessDeniedException(f"this access key is not allowed to call {operation}")
        if self.collections is not None and collection_id is not None and collection_id not in self.collections:
            raise errors.AccessDeniedException(f"this access key has no access to collection {collection_id}")

    def sees(self, collection_id: str) -> bool:
        """Whether collection listings show this collection to the key."""
        return self.collections is None or collection_id in self.collections


UNRESTRICTED = KeyScope(admin=True)


@dataclass
class RequestContext:
    """One request as the audit log sees it."""

    key_id: str = "local"
    scope: KeyScope = UNRESTRICTED
    purpose: str | None = None
    request_id: str | None = None
    disclosures: dict[str, str] = field(default_factory=dict)  # told to the caller (x-facelens-<name> headers)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("facelens_request", default=None)


def current() -> RequestContext:
    """The context of the operation running now (a local, unscoped operator outside any request)."""
    context = _current.get()
    return RequestContext() if context is None else context


@contextmanager
def acting_as(context: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
