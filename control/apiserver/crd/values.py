"""Custom objects against their structural schema: defaulting, pruning and validation, with
Kubernetes' algorithms (apiextensions ``schema/defaulting``, ``schema/pruning``, kube-openapi's
validator and ``schema/listtype``) and field errors worded as kube-apiserver words them
(``spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer:
"string"``).

Objects are plain JSON values changed in place by :func:`default` and :func:`prune`;
:func:`validate` only reads.  The object's root ``apiVersion``, ``kind`` and ``metadata`` (and
those of embedded resources) are never pruned: metadata is ObjectMeta, pruned of unknown fields
by the built-in tables.  Pure.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause
from control.apiserver.codec import drop_unknown_fields, unknown_fields
from control.apiserver.strategies.causes import (
    child,
    duplicate,
    format_value,
    index,
    invalid,
    required,
)

from .schema import Schema

__all__ = ["default", "prune", "type_name", "validate"]

_META_KEYS = ("apiVersion", "kind", "metadata")


# --- defaulting ------------------------------------------------------------------------------

def default(value: Any, schema: Schema) -> None:
    """Fill every missing (or null but not nullable) field that has a default, recursively,
    in place; defaults are copied, never shared."""
    if isinstance(value, dict):
        for name, prop in schema.properties.items():
            if prop.has_default and (name not in value or (value[name] is None
                                                           and not prop.nullable)):
                value[name] = copy.deepcopy(prop.default)
        for name, v in value.items():
            sub = schema.child_of(name)
            if sub is not None:
                default(v, sub)
    elif isinstance(value, list) and schema.items is not None:
        for i, v in enumerate(value):
            if v is None and schema.items.has_default and not schema.items.nullable:
                value[i] = copy.deepcopy(schema.items.default)
            default(value[i], schema.items)


# --- pruning ---------------------------------------------------------------------------------

def prune(value: Any, schema: Schema, *, path: str = "", root: bool = True,
          drop: bool = True) -> list[str]:
    """The paths of fields the schema does not specify (``spec.foo``), removed in place when
    ``drop``.  ``x-kubernetes-preserve-unknown-fields`` keeps a subtree's unknown fields."""
    out: list[str] = []
    _prune(value, schema, path, root or schema.embedded, drop, out)
    return out


def _prune(value: Any, schema: Schema, path: str, meta_level: bool, drop: bool,
           out: list[str]) -> None:
    if isinstance(value, dict):
        for name in list(value):
            where = child(path, name)
            if meta_level and name in _META_KEYS:
                if name == "metadata" and isinstance(value[name], dict):
                    _prune_meta(value[name], where, drop, out)
                continue
            sub = schema.child_of(name)
            if sub is None:
                if schema.preserve_unknown or schema.additional is True:
                    continue
                out.append(where)
                if drop:
                    del value[name]
                continue
            _prune(value[name], sub, where, sub.embedded, drop, out)
    elif isinstance(value, list) and schema.items is not None:
        for i, v in enumerate(value):
            _prune(v, schema.items, index(path, i), schema.items.embedded, drop, out)


def _prune_meta(meta: dict[str, Any], path: str, drop: bool, out: list[str]) -> None:
    # ObjectMeta's own table knows its fields; any object kind holds the same ObjectMeta.
    holder = {"metadata": meta}
    found = unknown_fields("v1", "ConfigMap", holder)
    out.extend(path + p[len("metadata"):] for p in found)
    if drop and found:
        drop_unknown_fields("v1", "ConfigMap", holder)


# --- validation ------------------------------------------------------------------------------

def type_name(value: Any) -> str:
    """The JSON type of a value as kube-openapi names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def validate(value: Any, schema: Schema, path: str = "") -> list[Cause]:
    """Every schema violation in ``value`` (the whole object at the root), as field errors."""
    out: list[Cause] = []
    _validate(value, schema, path, out)
    return out


def _in_body(path: str) -> str:
    return f"{path} in body" if path else "body"


def _type_ok(value: Any, schema: Schema) -> bool:
    if value is None:
        return schema.nullable or (not schema.type and not schema.int_or_string)
    if schema.int_or_string:
        return type_name(value) in ("integer", "string")
    if not schema.type:
        return True
    actual = type_name(value)
    return actual == schema.type or (schema.type == "number" and actual == "integer")


def _validate(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    if not _type_ok(value, schema):
        want = "integer,string" if schema.int_or_string else schema.type
        actual = type_name(value)
        out.append(Cause("FieldValueTypeInvalid", f"Invalid value: {format_value(actual)}: "
                         f'{_in_body(path)} must be of type {want}: "{actual}"', path))
        return
    if value is None:
        return
    raw = schema.raw
    if "enum" in raw and isinstance(raw["enum"], list) and not any(
            _json_equal(value, e) for e in raw["enum"]):
        out.append(Cause("FieldValueNotSupported", f"Unsupported value: {format_value(value)}: "
                         f"supported values: {_quoted(raw['enum'])}", path))
    if isinstance(value, str):
        _validate_string(value, schema, path, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, raw, path, out)
    elif isinstance(value, list):
        _validate_list(value, schema, path, out)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, out)
    for combinator in ("allOf", "anyOf", "oneOf", "not"):
        _combinators(value, schema, combinator, path, out)


def _quoted(values: list[Any]) -> str:
    """apiextensions lists strings as they are and other values as JSON, each quoted."""
    return ", ".join(json.dumps(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
                     for v in values)


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _validate_string(value: str, schema: Schema, path: str, out: list[Cause]) -> None:
    raw = schema.raw
    max_len, min_len = raw.get("maxLength"), raw.get("minLength")
    if isinstance(max_len, int) and len(value) > max_len:
        out.append(Cause("FieldValueTooLong", f"Too long: may not be more than {max_len} "
                         f"{'byte' if max_len == 1 else 'bytes'}", path))
    if isinstance(min_len, int) and len(value) < min_len:
        out.append(invalid(path, value, f"{_in_body(path)} should be at least {min_len} chars "
                                        "long"))
    if schema.pattern is not None and not schema.pattern.search(value):
        out.append(invalid(path, value, f"{_in_body(path)} should match '{raw['pattern']}'"))
    fmt = raw.get("format")
    if isinstance(fmt, str) and fmt and not _format_ok(fmt, value):
        out.append(Cause("FieldValueTypeInvalid", f"Invalid value: {format_value(value)}: "
                         f'{_in_body(path)} must be of type {fmt}: "{value}"', path))


def _number(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _validate_number(value: float, raw: Mapping[str, Any], path: str,
                     out: list[Cause]) -> None:
    maximum, minimum = raw.get("maximum"), raw.get("minimum")
    if isinstance(maximum, int | float):
        if raw.get("exclusiveMaximum") and value >= maximum:
            out.append(invalid(path, value, f"{_in_body(path)} should be less than "
                                            f"{_number(maximum)}"))
        elif value > maximum:
            out.append(invalid(path, value, f"{_in_body(path)} should be less than or equal to "
                                            f"{_number(maximum)}"))
    if isinstance(minimum, int | float):
        if raw.get("exclusiveMinimum") and value <= minimum:
            out.append(invalid(path, value, f"{_in_body(path)} should be greater than "
                                            f"{_number(minimum)}"))
        elif value < minimum:
            out.append(invalid(path, value, f"{_in_body(path)} should be greater than or equal "
                                            f"to {_number(minimum)}"))
    factor = raw.get("multipleOf")
    if isinstance(factor, int | float) and factor > 0:
        quotient = value / factor
        if not math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9):
            out.append(invalid(path, value, f"{_in_body(path)} should be a multiple of "
                                            f"{_number(factor)}"))


def _validate_list(value: list[Any], schema: Schema, path: str, out: list[Cause]) -> None:
    raw = schema.raw
    max_items, min_items = raw.get("maxItems"), raw.get("minItems")
    if isinstance(max_items, int) and len(value) > max_items:
        out.append(Cause("FieldValueTooMany", f"Too many: {len(value)}: must have at most "
                         f"{max_items} items", path))
    if isinstance(min_items, int) and len(value) < min_items:
        out.append(invalid(path, len(value), f"{_in_body(path)} should have at least "
                                             f"{min_items} items"))
    if raw.get("uniqueItems") and len({_canonical(v) for v in value}) != len(value):
        out.append(invalid(path, "", f"{_in_body(path)} shouldn't contain duplicates"))
    if schema.items is not None:
        for i, v in enumerate(value):
            _validate(v, schema.items, index(path, i), out)
    if schema.list_type == "set":
        seen: set[str] = set()
        for i, v in enumerate(value):
            c = _canonical(v)
            if c in seen:
                out.append(duplicate(index(path, i), v))
            seen.add(c)
    elif schema.list_type == "map" and schema.map_keys:
        keys: set[str] = set()
        for i, v in enumerate(value):
            if not isinstance(v, dict):
                continue
            k = {name: v[name] for name in schema.map_keys if name in v}
            c = _canonical(k)
            if c in keys:
                out.append(duplicate(index(path, i), k))
            keys.add(c)


def _validate_object(value: dict[str, Any], schema: Schema, path: str,
                     out: list[Cause]) -> None:
    raw = schema.raw
    for name in raw.get("required") or ():
        if name not in value:
            out.append(required(child(path, name)))
    max_props, min_props = raw.get("maxProperties"), raw.get("minProperties")
    if isinstance(max_props, int) and len(value) > max_props:
        out.append(Cause("FieldValueTooMany", f"Too many: {len(value)}: must have at most "
                         f"{max_props} items", path))
    if isinstance(min_props, int) and len(value) < min_props:
        out.append(invalid(path, len(value), f"{_in_body(path)} should have at least "
                                             f"{min_props} properties"))
    meta_level = not path or schema.embedded
    for name, v in value.items():
        if meta_level and name in _META_KEYS and name not in schema.properties:
            continue
        sub = schema.child_of(name)
        if sub is not None:
            _validate(v, sub, child(path, name), out)
    if schema.embedded:
        for name in ("apiVersion", "kind"):
            if not value.get(name):
                out.append(required(child(path, name), "must not be empty"))


def _combinators(value: Any, schema: Schema, combinator: str, path: str,
                 out: list[Cause]) -> None:
    subs = schema.raw.get(combinator)
    if subs is None:
        return
    from .schema import compile_schema

    if combinator == "not":
        if isinstance(subs, Mapping) and not validate(value, compile_schema(subs), path):
            out.append(invalid(path, "", f"{_in_body(path)} must not validate the schema (not)"))
        return
    results = [validate(value, compile_schema(s), path) for s in subs if isinstance(s, Mapping)]
    if combinator == "allOf":
        for r in results:
            out.extend(r)
    elif combinator == "anyOf" and results and all(results) and not schema.int_or_string:
        out.append(invalid(path, "", f'"{path}" must validate at least one schema (anyOf)'))
        out.extend(results[0])
    elif combinator == "oneOf" and results and sum(1 for r in results if not r) != 1:
        out.append(invalid(path, "", f'"{path}" must validate one and only one schema (oneOf)'))


def _canonical(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


# --- formats (kube-openapi strfmt, those apiextensions keeps) --------------------------------

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d|w))+$")
_BYTE = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "date-time":
            dt.datetime.fromisoformat(value)
        elif fmt == "date":
            dt.date.fromisoformat(value)
        elif fmt in ("ipv4", "ipv6"):
            addr = ipaddress.ip_address(value)
            return addr.version == (4 if fmt == "ipv4" else 6)
        elif fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
        elif fmt == "uuid":
            uuid.UUID(value)
        elif fmt == "hostname":
            return len(value) <= 253 and bool(_DNS1123.match(value.lower()))
        elif fmt == "email":
            return bool(_EMAIL.match(value))
        elif fmt == "duration":
            return bool(_DURATION.match(value))
        elif fmt == "byte":
            return len(value) % 4 == 0 and bool(_BYTE.match(value))
        elif fmt == "mac":
            return bool(_MAC.match(value))
        return True  # formats apiextensions does not check (int32, password, ...)
    except ValueError:
        return False
