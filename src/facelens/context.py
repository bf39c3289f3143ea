"""Who is asking and for what: an access key's scope, and the context every operation is called with.

The HTTP layer builds a `RequestContext` from the verified access key, its scope and the `x-facelens-purpose`
header; the CLI and the Python API build one for the local operator. Services receive it as an argument (never
from a global), check it, audit it, and leave what the caller must be told (the effective threshold and the
false-match probability) in `disclosures`, which the HTTP layer sends as `x-facelens-<name>` headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from facelens import errors
from facelens.operations import ADMIN_OPERATIONS, READ_ONLY_OPERATIONS


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


UNSCOPED = KeyScope()  # an HTTP key without a scope entry: every non-admin operation
UNRESTRICTED = KeyScope(admin=True)  # the local operator (CLI, Python API)


@dataclass
class RequestContext:
    """One call as the audit log sees it. `max_image_bytes`: the byte limit of the call's images (None: the
    5 MiB of `Image.Bytes`; the HTTP layer raises it for images read from S3)."""

    key_id: str = "local"
    scope: KeyScope = UNRESTRICTED
    purpose: str | None = None
    request_id: str | None = None
    max_image_bytes: int | None = None
    disclosures: dict[str, str] = field(default_factory=dict)  # told to the caller (x-facelens-<name> headers)
