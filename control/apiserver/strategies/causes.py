"""Field errors as Kubernetes words them: the ``Cause`` values every strategy's validation
returns, built here so reasons, bodies and value formatting are the same everywhere.

The body of each message follows apimachinery ``field.Error.ErrorBody``: ``Required value``,
``Invalid value: <value>``, ``Forbidden``, ``Too long``, ``Unsupported value: <value>``,
``Duplicate value: <value>``, ``Not found: <value>``, then ``: <detail>`` when there is one.
Values print as Go does: strings quoted, numbers and booleans bare, ``null`` for nothing and
compact JSON for maps (keys sorted, like Go maps) and lists.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from control.api.errors import Cause

__all__ = [
    "Raw",
    "as_mapping",
    "child",
    "duplicate",
    "forbidden",
    "format_value",
    "immutable",
    "index",
    "invalid",
    "key",
    "mappings",
    "not_found",
    "not_supported",
    "one_of",
    "required",
    "too_long",
]


@dataclass(frozen=True)
class Raw:
    """A value already formatted (a Go struct whose field order must be kept)."""

    text: str

    @classmethod
    def struct(cls, fields: Iterable[tuple[str, Any]]) -> Raw:
        """Compact JSON of a struct: fields in the given order, empty ones left out."""
        kept = {k: v for k, v in fields if v not in (None, "", [], {})}
        return cls(json.dumps(kept, separators=(",", ":"), ensure_ascii=False))


def child(path: str, *names: str) -> str:
    """``child("spec", "template")`` → ``spec.template``; an empty base is the root."""
    return ".".join(p for p in (path, *names) if p)


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


def format_value(value: Any) -> str:
    """A bad value as ``field.Error`` prints it."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _body(head: str, detail: str) -> str:
    return f"{head}: {detail}" if detail else head


def required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", _body("Required value", detail), field)


def invalid(field: str, value: Any, detail: str = "") -> Cause:
    return Cause("FieldValueInvalid", _body(f"Invalid value: {format_value(value)}", detail),
                 field)


def immutable(field: str, value: Any) -> Cause:
    return invalid(field, value, "field is immutable")


def forbidden(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueForbidden", _body("Forbidden", detail), field)


def too_long(field: str, limit: int) -> Cause:
    return Cause("FieldValueTooLong", f"Too long: must have at most {limit} bytes", field)


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    choices = ", ".join(json.dumps(s) for s in supported)
    return Cause("FieldValueNotSupported",
                 f"Unsupported value: {format_value(value)}: supported values: {choices}", field)


def one_of(value: Any, field: str, supported: tuple[str, ...]) -> list[Cause]:
    """Required when absent or empty, Unsupported when not one of ``supported``."""
    if value in (None, ""):
        return [required(field)]
    return [] if value in supported else [not_supported(field, value, supported)]


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else ``{}`` (a malformed field reads as empty)."""
    return value if isinstance(value, Mapping) else {}


def mappings(values: Any) -> list[Mapping[str, Any]]:
    """The entries of a JSON list, each non-object replaced by ``{}`` so that checks of a
    malformed entry report its missing fields instead of raising."""
    if not isinstance(values, list):
        return []
    return [v if isinstance(v, Mapping) else {} for v in values]


def duplicate(field: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {format_value(value)}", field)


def not_found(field: str, value: Any) -> Cause:
    return Cause("FieldValueNotFound", f"Not found: {format_value(value)}", field)
