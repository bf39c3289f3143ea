"""Rekognition's service model as botocore ships it (and FaceLens's own beside it): limits, enums, documented
defaults; request validation against it lives in `facelens.validation`.

Identifiers, defaults and limits are read from `botocore/data/rekognition/2016-06-27/service-2.json` rather than
copied, so FaceLens follows the model botocore (and therefore boto3) speaks. Defaults that the model states only
in prose ("The default value is 80%") are parsed from the member's documentation; a model whose wording changed
fails loudly here instead of silently changing behaviour.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.paginate import PaginatorModel

SERVICE = "rekognition"
ADMIN_SERVICE = "facelens"  # FaceLens's own operations (policies, audit), a botocore model shipped in the package

# Java's Unicode classes in a few TagMap patterns, approximated with Python `re` equivalents.
_JAVA_CLASSES = {r"\p{L}": r"\w", r"\p{N}": r"\d", r"\p{Z}": r"\s"}


@cache
def model() -> ServiceModel:
    """The Rekognition service model of the installed botocore."""
    return botocore.session.get_session().get_service_model(SERVICE)


def data_path() -> str:
    """The folder holding FaceLens's own botocore service model (add it to a botocore loader's search path)."""
    return str(resources.files("facelens") / "data" / "models")


def botocore_session() -> botocore.session.Session:
    """A botocore session that knows FaceLens's own service model beside AWS's."""
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.append(data_path())
    return session


@cache
def admin_model() -> ServiceModel:
    """FaceLens's own service model: PutCollectionPolicy, GetCollectionPolicy, ListAuditRecords."""
    return botocore_session().get_service_model(ADMIN_SERVICE)


@cache
def paginators() -> PaginatorModel:
    """Rekognition's paginator configuration (which operations take NextToken / MaxResults)."""
    return botocore.session.get_session().get_paginator_model(SERVICE)


def operation(name: str) -> OperationModel:
    """A Rekognition operation, or one of FaceLens's own."""
    if name in admin_model().operation_names:
        return admin_model().operation_model(name)
    return model().operation_model(name)


def member(operation_name: str, name: str) -> Shape:
    """The input shape member `name` of an operation."""
    return operation(operation_name).input_shape.members[name]


def shape(name: str) -> Shape:
    return model().shape_for(name)


def enum(shape_name: str) -> list[str]:
    """The values of an enum shape, e.g. `enum("UnsuccessfulFaceAssociationReason")`."""
    return list(shape(shape_name).enum)


def limit(operation_name: str, name: str, bound: str = "max") -> int:
    """A numeric `min`/`max` constraint of an input member (a range for numbers, a length for lists)."""
    value = member(operation_name, name).metadata.get(bound)
    if value is None:
        raise KeyError(f"{operation_name}.{name} has no {bound} in the service model")
    return int(value)


_DEFAULT = re.compile(r"[Dd]efault value (?:is|of) (\w+)")


def _prose(documentation: str | None) -> str:
    """Documentation HTML as plain text with single spaces."""
    return " ".join(re.sub(r"<[^>]+>", " ", documentation or "").split())


@cache
def documented_default(operation_name: str, name: str) -> Any:
    """A default stated in the member's documentation, converted to the member's type."""
    shape_ = member(operation_name, name)
    found = _DEFAULT.search(_prose(shape_.documentation))
    if found is None:
        raise LookupError(f"the service model documents no default for {operation_name}.{name}")
    text = found.group(1)
    if shape_.type_name in ("float", "double"):
        return float(text)
    if shape_.type_name in ("integer", "long"):
        return int(text)
    return text


@cache
def documented_number(operation_name: str, name: str | None, pattern: str) -> int:
    """A number stated in prose by a member's documentation (the operation's when `name` is None); `pattern`
    has one group of digits."""
    shape_ = operation(operation_name) if name is None else member(operation_name, name)
    found = re.search(pattern, _prose(shape_.documentation))
    if found is None:
        raise LookupError(f"the documentation of {operation_name}.{name or ''} no longer matches {pattern!r}")
    return int(found.group(1))


def idempotency_member(operation_name: str) -> str | None:
    """The input member that makes a request idempotent: the one botocore fills with a token, else a
    `ClientRequestToken` the caller may send (Start* video operations)."""
    members = operation(operation_name).input_shape.members
    for name, shape_ in members.items():
        if shape_.metadata.get("idempotencyToken"):
            return name
    return "ClientRequestToken" if "ClientRequestToken" in members else None


def paginated(operation_name: str) -> bool:
    """Whether the model paginates the operation (NextToken in, NextToken out)."""
    try:
        paginators().get_paginator(operation_name)
    except ValueError:
        return False
    return True


@cache
def pattern(java: str) -> re.Pattern[str] | None:
    """A model `pattern` (Java regex syntax) as a Python regex; None for a Java-only construct."""
    for java_class, python_class in _JAVA_CLASSES.items():
        java = java.replace(java_class, python_class)
    try:
        return re.compile(java)
    except re.error:
        return None
