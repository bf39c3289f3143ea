"""Request validation against a botocore service model, shared by the HTTP layer and the backend.

botocore's own `ParamValidator` (required members, types, minimums), extended with the constraints the model
declares but the client-side validator leaves to the server: maxima, enums and patterns. Offending values are
shortened in messages and never echo image bytes. `validated()` checks a request from the wire once;
`checked()` one made in process (`facelens.service.Backend.call`).
"""

from __future__ import annotations

import binascii
import datetime as dt
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ParamValidationError
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator, ValidationErrors

from facelens import errors, service_model

_MAX_SHOWN = 80  # characters of an offending value echoed in a message


def shown(value: Any) -> str:
    """A value as echoed in messages: short, and never the bytes of an image."""
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    text = str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


class _Errors(ValidationErrors):
    """botocore's report, plus the server-side constraints, with offending values shortened."""

    def _format_error(self, error: tuple[str, str, dict[str, Any]]) -> str:
        kind, name, extra = error
        label = self._get_name(name)
        if kind == "invalid type":
            valid = ", ".join(extra["valid_types"])
            return (f"Invalid type for parameter {label}, value: {shown(extra['param'])}, "
                    f"type: {type(extra['param'])}, valid types: {valid}")
        if "param" in extra:
            extra = {**extra, "param": shown(extra["param"])}
        if kind == "invalid max range":
            return f"Invalid value for parameter {label}, value: {extra['param']}, valid max value: {extra['limit']}"
        if kind == "invalid max length":
            return f"Invalid length for parameter {label}, value: {extra['param']}, valid max length: {extra['limit']}"
        if kind == "invalid enum":
            return f"Invalid value for parameter {label}, value: {extra['param']}, valid values: {extra['limit']}"
        if kind == "blob too large":
            return f"Invalid length for parameter {label}, value: {extra['param']}, valid max length: {extra['limit']}"
        if kind == "invalid pattern":
            return f"Invalid value for parameter {label}, value: {extra['param']}, must match pattern: {extra['limit']}"
        return super()._format_error((kind, name, extra))

    def find(self, kind: str) -> tuple[str, dict[str, Any]] | None:
        """(parameter name, details) of the first error of a kind."""
        for found, name, extra in self._errors:
            if found == kind:
                return self._get_name(name), extra
        return None


def _too_big(name: str, measure: float, shape: Shape, kind: str, errors_: ValidationErrors, value: Any) -> None:
    limit = shape.metadata.get("max")
    if limit is not None and measure > limit:
        errors_.report(name, kind, param=value, limit=limit)


class ServiceValidator(ParamValidator):
    """`ParamValidator` that also enforces max, enum and pattern, and refuses booleans as numbers."""

    VALIDATED_METADATA_ATTRS = ParamValidator.VALIDATED_METADATA_ATTRS | {"max", "enum", "pattern"}

    def __init__(self, max_blob_bytes: int | None = None) -> None:
        super().__init__()
        self.max_blob_bytes = max_blob_bytes  # replaces the model's blob maximum (images read from S3)

    def validate(self, params: Mapping[str, Any], shape: Shape) -> _Errors:
        report = _Errors()
        self._validate(params, shape, report, name="")
        return report

    def _validate_string(self, param: Any, shape: Shape, errors_: ValidationErrors, name: str) -> None:
        before = len(errors_._errors)
        super()._validate_string(param, shape, errors_, name)
        if len(errors_._errors) > before or not isinstance(param, str):
            return
        _too_big(name, len(param), shape, "invalid max length", errors_, param)
        if shape.enum and param not in shape.enum:
            errors_.report(name, "invalid enum", param=param, limit=", ".join(shape.enum))
        pattern = shape.metadata.get("pattern")
        if pattern and (compiled := service_model.pattern(pattern)) is not None and not compiled.fullmatch(param):
            errors_.report(name, "invalid pattern", param=param, limit=pattern)

    def _number(self, param: Any, shape: Shape, errors_: ValidationErrors, name: str, check: Any) -> None:
        if isinstance(param, bool):
            errors_.report(name, "invalid type", param=param, valid_types=[f"<{shape.type_name}>"])
            return
        before = len(errors_._errors)
        check(self, param, shape, errors_, name)
        if len(errors_._errors) == before:
            _too_big(name, param, shape, "invalid max range", errors_, param)

    def _validate_integer(self, param: Any, shape: Shape, errors_: ValidationErrors, name: str) -> None:
        self._number(param, shape, errors_, name, ParamValidator._validate_integer)

    _validate_long = _validate_integer

    def _validate_double(self, param: Any, shape: Shape, errors_: ValidationErrors, name: str) -> None:
        self._number(param, shape, errors_, name, ParamValidator._validate_double)

    _validate_float = _validate_double

    def _validate_list(self, param: Any, shape: Shape, errors_: ValidationErrors, name: str) -> None:
        super()._validate_list(param, shape, errors_, name)
        if isinstance(param, list | tuple):
            _too_big(name, len(param), shape, "invalid max length", errors_, len(param))

    def _validate_blob(self, param: Any, shape: Shape, errors_: ValidationErrors, name: str) -> None:
        if not isinstance(param, bytes):  # decoded from base64 before validation; anything else is mistyped
            errors_.report(name, "invalid type", param=param, valid_types=["<base64 string>"])
            return
        range_kind = "invalid length"
        if "min" in shape.metadata and len(param) < shape.metadata["min"]:
            errors_.report(name, range_kind, param=param, min_allowed=shape.metadata["min"])
        limit = self.max_blob_bytes or shape.metadata.get("max")
        if limit is not None and len(param) > limit:
            errors_.report(name, "blob too large", param=param, limit=limit)

    def _validate_timestamp(self, param: Any, shape: Shape, errors_: ValidationErrors, name: str) -> None:
        if isinstance(param, bool) or not isinstance(param, int | float | str | dt.datetime):
            errors_.report(name, "invalid type", param=param, valid_types=["<epoch seconds>"])
        elif not isinstance(param, dt.datetime):
            try:
                timestamp(param)
            except ValueError:
                errors_.report(name, "invalid type", param=param, valid_types=["<epoch seconds or ISO 8601>"])


def decode_blobs(value: Any, shape: Shape, name: str = "") -> Any:
    """A copy of the parameters with every base64 blob (per the model) decoded to bytes; wrong types kept."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: decode_blobs(v, shape.members[k], f"{name}.{k}") if k in shape.members else v
                for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [decode_blobs(item, shape.member, f"{name}[{i}]") for i, item in enumerate(value)]
    if kind == "map" and isinstance(value, dict):
        return {k: decode_blobs(v, shape.value, f"{name}.{k}") for k, v in value.items()}
    if kind == "blob" and isinstance(value, str):
        try:
            return binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError):
            raise errors.InvalidParameterException(
                f"Parameter validation failed:\nInvalid base64 for parameter {name.lstrip('.')}"
            ) from None
    return value


def _drop_unknown(value: Any, shape: Shape) -> Any:
    """Members the model does not know are ignored, as AWS's JSON services do (forward compatibility)."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: _drop_unknown(v, shape.members[k]) for k, v in value.items() if k in shape.members}
    if kind == "list" and isinstance(value, list):
        return [_drop_unknown(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _drop_unknown(v, shape.value) for k, v in value.items()}
    return value


def validated(operation: OperationModel, params: dict[str, Any], max_blob_bytes: int | None = None) -> dict[str, Any]:
    """The request's parameters with blobs decoded, validated against the operation's input shape (blobs up to
    `max_blob_bytes` when given, else the model's maximum).

    Raises InvalidParameterException with the validator's message, or ImageTooLargeException when a blob
    (Rekognition's only blobs are images) is over the model's maximum.
    """
    shape = operation.input_shape
    if shape is None:
        return {}
    params = _drop_unknown(decode_blobs(params, shape), shape)
    report = ServiceValidator(max_blob_bytes).validate(params, shape)
    too_large = report.find("blob too large")
    if too_large is not None:
        name, extra = too_large
        raise errors.ImageTooLargeException(
            f"{name} is {len(extra['param']):,} bytes; the limit is {extra['limit']:,} bytes "
            "(larger images, up to the S3 limit, can be given as an S3Object)."
        )
    if report.has_errors():
        raise errors.InvalidParameterException(str(ParamValidationError(report=report.generate_report())))
    return params


def timestamp(value: Any) -> dt.datetime:
    """A timestamp member's value (epoch seconds, ISO 8601 text or a datetime) as an aware UTC datetime;
    ValueError when it is none of these."""
    from botocore.utils import parse_timestamp

    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = parse_timestamp(value)
        except (ValueError, OverflowError, OSError, TypeError, RuntimeError) as exc:  # RuntimeError: out of range
            raise ValueError(f"not a timestamp: {shown(value)}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def checked(operation: OperationModel, params: Mapping[str, Any], max_blob_bytes: int | None = None) -> dict[str, Any]:
    """An in-process request validated like one from the wire (`validated`), except that a member the model does
    not know is refused rather than ignored (a caller in process has misspelt it); None values are dropped."""
    shape = operation.input_shape
    request = {k: v for k, v in params.items() if v is not None}
    if shape is None:
        return {}
    unknown = sorted(set(request) - set(shape.members))
    if unknown:
        raise errors.InvalidParameterException(f"Unknown parameter {unknown[0]}")
    return validated(operation, request, max_blob_bytes)
