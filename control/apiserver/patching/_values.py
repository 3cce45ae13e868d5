"""Helpers on decoded JSON values shared by the patch engines.

`identity` matches values the way apimachinery does (Go `==` on `encoding/json` output):
`true` is not `1`, but `1` is `1.0`, since Go decodes every number to float64.  `json_equal` is
stricter, for deciding whether a value must be re-sent: `1` and `1.0` encode differently.
"""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["JSON", "JSONObject", "identity", "json_equal"]

JSON: TypeAlias = Any
"""Any decoded JSON value: dict, list, str, int, float, bool or None."""

JSONObject: TypeAlias = dict[str, Any]


def identity(value: JSON) -> tuple[str, Any]:
    """A hashable stand-in for `value`, for matching merge keys and scalar list items."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, identity(v)) for k, v in value.items())))
    return ("array", tuple(identity(v) for v in value))


def json_equal(a: JSON, b: JSON) -> bool:
    """Deep equality of two JSON values that would encode alike: `true` is not `1`, and `1` is
    not `1.0`; key order does not matter."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b
