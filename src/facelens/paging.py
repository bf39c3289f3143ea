"""Opaque pagination tokens and idempotency digests for the collection backend.

A NextToken is `base64url(JSON [operation, collection pk, filter digest, last key]) "." base64url(HMAC)`, signed
with the store's secret: it cannot be forged or moved to another operation, collection or filter, it survives a
restart, and it pages by key (`seq > last`), so writes between pages neither repeat nor skip rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from facelens import service_model
from facelens.errors import InvalidPaginationTokenException


def digest(params: Mapping[str, Any], leave_out: tuple[str, ...] = ()) -> str:
    """A stable digest of request parameters (canonical JSON)."""
    kept = {key: value for key, value in params.items() if key not in leave_out and value is not None}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return hashlib.sha256(bytes(value)).hexdigest()
    return str(value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Issues and checks NextTokens."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:16]

    def issue(self, operation: str, scope: int, filters: str, last: int) -> str:
        body = json.dumps([operation, scope, filters[:16], last], separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def read(self, token: str | None, operation: str, scope: int, filters: str) -> int:
        """The last key the token's page ended at (0 without a token)."""
        if token is None:
            return 0
        try:
            body_text, mac_text = token.split(".")
            body, mac = _unb64(body_text), _unb64(mac_text)
            if not hmac.compare_digest(mac, self._mac(body)):
                raise ValueError("signature")
            token_operation, token_scope, token_filters, last = json.loads(body)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise InvalidPaginationTokenException("Invalid pagination token") from None
        if (token_operation, token_scope, token_filters) != (operation, scope, filters[:16]) or not isinstance(
                last, int):
            raise InvalidPaginationTokenException(
                "Invalid pagination token: it belongs to another request (operation, collection or filters)")
        return last


def page_size(operation: str, requested: int | None) -> int:
    """MaxResults, or the model's maximum when absent (or 0, which the model allows for some operations)."""
    return requested or service_model.limit(operation, "MaxResults")
