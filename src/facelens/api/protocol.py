"""Rekognition's JSON 1.1 protocol: operation routing, body parsing, validation, response encoding.

Everything is driven by botocore's own Rekognition service model (`botocore.loaders` via
`facelens.service_model.model()`), so FaceLens accepts exactly what boto3 sends. Validation is botocore's
`ParamValidator` (required members, types, minimums) extended with the constraints the model declares but the
client-side validator leaves to the server: maxima, enums and patterns.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape

from facelens import service_model, validation
from facelens.api.errors import SerializationException, UnknownOperationException

CONTENT_TYPES = ("application/x-amz-json-1.1", "application/json")


def model() -> ServiceModel:
    return service_model.model()




def operation_for(target: str | None, content_type: str | None) -> OperationModel:
    """The operation named by `X-Amz-Target: RekognitionService.<Op>` (or `FaceLens.<Op>`, FaceLens's own
    operations), or UnknownOperationException."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in CONTENT_TYPES:
        raise UnknownOperationException(f"Content-Type must be {CONTENT_TYPES[0]}")
    prefix, _, name = (target or "").partition(".")
    for service in (model(), service_model.admin_model()):
        if prefix == service.metadata["targetPrefix"] and name in service.operation_names:
            return service.operation_model(name)
    raise UnknownOperationException(f"Unknown operation {validation.shown(target or '')}")


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(body: bytes) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body), or SerializationException."""
    if not body.strip():
        return {}
    try:
        params = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SerializationException(f"Request body is not valid JSON: {validation.shown(str(exc))}") from None
    if not isinstance(params, dict):
        raise SerializationException("Request body must be a JSON object")
    return params


def validated(operation: OperationModel, params: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters with base64 blobs decoded, validated against the operation's input shape
    (`facelens.validation`, shared with the backend)."""
    return validation.validated(operation, params)


# -- responses
def _encode(value: Any, shape: Shape | None) -> Any:
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        return {k: _encode(v, shape.members.get(k)) for k, v in value.items() if v is not None}
    if kind == "list" and isinstance(value, list | tuple):
        return [_encode(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _encode(v, shape.value) for k, v in value.items()}
    if kind == "blob" and isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if kind == "timestamp" and isinstance(value, dt.datetime):
        return value.timestamp()
    return value


def encode_response(operation: OperationModel, response: Mapping[str, Any]) -> bytes:
    """The operation's JSON response body (blobs base64, timestamps epoch seconds, as boto3 expects)."""
    body = _encode(response, operation.output_shape)
    return json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
