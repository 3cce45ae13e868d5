"""FieldsV1: the wire form of a field set in ``metadata.managedFields`` (``{"f:spec":
{"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}}``), and the
printable path form used in apply conflicts.  Field paths are tuples of elements as
:mod:`control.apiserver.patching.managed` describes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from control.apiserver.patching._values import JSON

__all__ = [
    "FieldPath",
    "ManagedFieldsError",
    "PathElement",
    "decode_fields_v1",
    "encode_fields_v1",
    "path_sort_key",
    "path_string",
]

PathElement = tuple[str, Any]
FieldPath = tuple[PathElement, ...]
_SCALAR: Final = (str, int, float, bool, type(None))


class ManagedFieldsError(ValueError):
    """managedFields (or a FieldsV1 trie) that do not decode."""



def _element_key(element: PathElement) -> str:
    kind, value = element
    if kind == "f":
        return f"f:{value}"
    if kind == "k":
        return "k:" + _compact(dict(value))
    if kind == "v":
        return "v:" + _compact(value)
    if kind == "i":
        return f"i:{value}"
    raise ManagedFieldsError(f"unknown path element kind {kind!r}")


def _compact(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


_KIND_RANK: Final = {"f": 0, "k": 1, "v": 2, "i": 3}


def _sort_key(element: PathElement) -> tuple[int, str, int]:
    kind, value = element
    if kind == "i":
        return (_KIND_RANK[kind], "", int(value))
    return (_KIND_RANK[kind], _element_key(element), 0)


def path_sort_key(path: FieldPath) -> tuple[tuple[int, str, int], ...]:
    """A total order on paths: fields before items, each by name or encoded key."""
    return tuple(_sort_key(e) for e in path)


def encode_fields_v1(paths: Iterable[FieldPath]) -> dict[str, Any]:
    """FieldsV1 JSON for a field set: a trie keyed `f:`/`k:`/`v:`/`i:`, where `{}` is an owned
    leaf and `"."` marks an owned node that also has owned children.  Keys are sorted."""
    trie: dict[PathElement, Any] = {}
    members: set[FieldPath] = set()
    for path in paths:
        if not path:
            continue
        members.add(path)
        node = trie
        for element in path:
            node = node.setdefault(element, {})
    return _encode_trie(trie, (), members)


def _encode_trie(
    trie: dict[PathElement, Any], prefix: FieldPath, members: set[FieldPath]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if prefix in members and trie:
        out["."] = {}
    for element in sorted(trie, key=_sort_key):
        out[_element_key(element)] = _encode_trie(trie[element], prefix + (element,), members)
    return out


def decode_fields_v1(fields: dict[str, Any]) -> set[FieldPath]:
    """The field set a FieldsV1 trie encodes.  Raises `ManagedFieldsError` if it is not one."""
    if not isinstance(fields, dict):
        raise ManagedFieldsError("fieldsV1 must be a map")
    out: set[FieldPath] = set()
    _decode_trie(fields, (), out)
    return out


def _decode_trie(node: dict[str, Any], prefix: FieldPath, out: set[FieldPath]) -> None:
    if not node and prefix:
        out.add(prefix)
    for raw, child in node.items():
        if raw == ".":
            if prefix:
                out.add(prefix)
            continue
        if not isinstance(child, dict):
            raise ManagedFieldsError(f"fieldsV1 node {raw!r} is not a map")
        _decode_trie(child, prefix + (_decode_element(raw),), out)


def _decode_element(raw: str) -> PathElement:
    kind, sep, text = raw.partition(":")
    if not sep:
        raise ManagedFieldsError(f"bad fieldsV1 key {raw!r}")
    if kind == "f":
        return ("f", text)
    try:
        value = int(text) if kind == "i" else json.loads(text)
    except ValueError as exc:
        raise ManagedFieldsError(f"bad fieldsV1 key {raw!r}") from exc
    if kind == "i":
        return ("i", value)
    if kind == "v" and isinstance(value, _SCALAR):
        return ("v", value)
    if (
        kind == "k"
        and isinstance(value, dict)
        and value
        and all(isinstance(v, _SCALAR) for v in value.values())
    ):
        return ("k", tuple(sorted(value.items())))
    raise ManagedFieldsError(f"bad fieldsV1 key {raw!r}")


def path_string(path: FieldPath) -> str:
    """A path as Kubernetes prints it in conflicts: `.spec.containers[name="web"].image`."""
    parts = []
    for kind, value in path:
        if kind == "f":
            parts.append(f".{value}")
        elif kind == "k":
            parts.append("[" + ",".join(f"{k}={_scalar_text(v)}" for k, v in value) + "]")
        elif kind == "v":
            parts.append(f"[={_scalar_text(value)}]")
        else:
            parts.append(f"[{value}]")
    return "".join(parts)


def _scalar_text(value: JSON) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)
