"""The strict check of a response body, as sent, against its botocore output shape (what boto3's own parser lets
pass silently: members the model lacks, wrong JSON types, values outside the documented bounds or enum)."""

from __future__ import annotations

from typing import Any

from botocore.model import Shape


def conforms(value: Any, shape: Shape, where: str = "") -> None:
    """`value` is exactly of `shape`: no member the model lacks, each of its type and within its bounds."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), (where, value)
        assert set(value) <= set(shape.members), (where, set(value) - set(shape.members))
        assert set(shape.required_members) <= set(value), where
        for name, member in value.items():
            conforms(member, shape.members[name], f"{where}.{name}")
    elif kind == "list":
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            conforms(item, shape.member, f"{where}[{i}]")
    elif kind == "string":
        assert isinstance(value, str) and value in shape.metadata.get("enum", [value]), (where, value)
    elif kind in ("float", "integer", "long"):
        assert isinstance(value, int | float) and not isinstance(value, bool), where
        assert kind == "float" or isinstance(value, int), (where, value)
        assert shape.metadata.get("min", value) <= value <= shape.metadata.get("max", value), (where, value)
    elif kind == "boolean":
        assert isinstance(value, bool), where
    else:
        raise AssertionError(f"{where}: unexpected {kind}")
