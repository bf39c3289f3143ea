"""Errors on the wire: AWS's JSON 1.1 error shape, in one place.

The domain raises `facelens.errors` classes (the Rekognition error types of the service model). The protocol
layer adds the errors AWS's front end answers before an operation runs (authentication, routing, framing);
they are defined here because nothing below the API can raise them. Every error becomes

    HTTP <status>   {"__type": "<Code>", "Code": "<Code>", "Message": "...", "Logref": "<request id>"}

which botocore parses into `client.exceptions.<Code>` (modeled types) or `ClientError` with that code.
"""

from __future__ import annotations

import json
import logging

from facelens import errors

log = logging.getLogger("facelens.api")

CONTENT_TYPE = "application/x-amz-json-1.1"


# -- errors of the protocol layer (names and HTTP statuses as AWS's JSON services answer them)
class UnknownOperationException(errors.ClientError):
    """No such operation, or the request is not framed as AWS JSON 1.1."""

    code = "UnknownOperationException"


class SerializationException(errors.ClientError):
    """The body is not a JSON object."""

    code = "SerializationException"


class NotImplementedOperationException(errors.ClientError):
    """A Rekognition operation FaceLens does not implement (yet): a client error, never a server fault."""

    code = "NotImplementedException"


class RequestEntityTooLargeException(errors.ImageTooLargeException):
    """The request body is over the service's limit; refused before it is read whole."""

    status = 413


class RequestTimeoutException(errors.ClientError):
    """The request body did not arrive within the body deadline (FACELENS_BODY_TIMEOUT); the connection is
    closed after this answer."""

    code = "RequestTimeoutException"
    status = 408


class MissingAuthenticationTokenException(errors.ClientError):
    """The request is not signed."""

    code = "MissingAuthenticationTokenException"


class IncompleteSignatureException(errors.ClientError):
    """The Authorization header is malformed or lacks a part SigV4 needs."""

    code = "IncompleteSignatureException"


class InvalidSignatureException(errors.ClientError):
    """The signature does not match, is scoped wrongly, or is expired."""

    code = "InvalidSignatureException"


class UnrecognizedClientException(errors.ClientError):
    """The access key id is not known to this service."""

    code = "UnrecognizedClientException"


class MethodNotAllowedException(errors.ClientError):
    """Rekognition's endpoint only accepts POST /."""

    code = "UnknownOperationException"
    status = 405


def error_body(exc: errors.FaceLensError, request_id: str) -> dict[str, str]:
    """AWS's JSON error body for a FaceLens error."""
    return {"__type": exc.code, "Code": exc.code, "Message": exc.message, "Logref": request_id}


def to_wire(exc: BaseException, request_id: str) -> tuple[int, bytes]:
    """(HTTP status, JSON body) for any exception; anything not a FaceLensError is a 500 with a bland message."""
    if not isinstance(exc, errors.FaceLensError):
        log.error("request %s failed", request_id, exc_info=exc)
        exc = errors.InternalServerError("Internal server error")
    elif exc.status >= 500:
        log.error("request %s: %s: %s", request_id, exc.code, exc.message)
    body = json.dumps(error_body(exc, request_id), ensure_ascii=True).encode()
    return exc.status, body
