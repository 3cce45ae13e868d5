"""Field ownership (`metadata.managedFields`): which manager set which field of an object.

Every write records ownership here before the object is stored: an ordinary write (create,
update, any non-apply patch) through `update_managed_fields`, a server-side apply through
`control.apiserver.patching.apply`.  Ownership is kept in structured-merge-diff terms: a field path is
a tuple of elements

* `("f", name)`: a field of a map;
* `("k", (("name", "web"),))`: the item of an associative list (one with a merge key in the
  kind's `PatchSchema`) whose merge-key fields have these values, sorted by field name;
* `("v", value)`: the item of a set-like list of scalars (`finalizers`);
* `("i", index)`: a list item by position (decoded, never produced here);

and an object's field set holds its leaves (scalars, nulls, empty maps, atomic lists, set
items) and its associative-list items themselves (the `"."` of FieldsV1).  Everything here is
pure: the clock's reading comes in as `now`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from control.apiserver.patching._values import JSON, JSONObject, identity
from control.apiserver.patching.errors import MISSING_MERGE_KEY, TYPE_MISMATCH, MalformedPatchError
from control.apiserver.patching.fieldsv1 import (
    FieldPath,
    ManagedFieldsError,
    PathElement,
    decode_fields_v1,
    encode_fields_v1,
    path_sort_key,
    path_string,
)
from control.apiserver.patching.schema import PatchSchema

__all__ = [
    "APPLY",
    "DUPLICATE_MERGE_KEY",
    "UPDATE",
    "Comparison",
    "FieldPath",
    "ManagedEntry",
    "ManagedFieldsError",
    "PathElement",
    "compare",
    "decode_fields_v1",
    "decode_managed_fields",
    "encode_fields_v1",
    "encode_managed_fields",
    "field_set",
    "path_sort_key",
    "path_string",
    "store_managed_fields",
    "update_managed_fields",
]

APPLY: Final = "Apply"
UPDATE: Final = "Update"


# Fields nobody owns: identity and bookkeeping the server sets (Kubernetes' "strip" set).
_ROOT_STRIPPED: Final = frozenset({"apiVersion", "kind"})
_META_STRIPPED: Final = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
    }
)
_SCALAR: Final = (str, int, float, bool, type(None))

DUPLICATE_MERGE_KEY: Final = "DuplicateMergeKey"
"""`PatchError.reason` for an applied list holding two items with one merge key."""


@dataclass(frozen=True)
class _Node:
    """One node of an object: `owned` nodes are members of its field set; `leaf` nodes are
    compared by value, the others (maps, lists, list items) only by existence."""

    value: JSON
    owned: bool
    leaf: bool


def _nodes(
    obj: JSONObject, schema: PatchSchema, *, ignore_status: bool, strict: bool = False
) -> dict[FieldPath, _Node]:
    """Every node of `obj` below the root, minus the stripped fields.

    `strict` is for an applied configuration: an associative-list item without its merge key,
    or two items with the same key, is then a `MalformedPatchError`; in a live object such
    items are left untracked rather than failing every write to it.
    """
    top = {k: v for k, v in obj.items() if k not in _ROOT_STRIPPED}
    if ignore_status:
        top.pop("status", None)
    meta = top.get("metadata")
    if isinstance(meta, dict):
        top["metadata"] = {k: v for k, v in meta.items() if k not in _META_STRIPPED}
    out: dict[FieldPath, _Node] = {}
    _walk_map(top, (), (), schema, out, strict)
    if out.get((("f", "metadata"),), _Node(None, False, False)).owned:
        del out[(("f", "metadata"),)]
    return out


def _walk(
    value: JSON,
    path: FieldPath,
    spath: tuple[str, ...],
    schema: PatchSchema,
    out: dict[FieldPath, _Node],
    strict: bool,
) -> None:
    if isinstance(value, dict) and value:
        out[path] = _Node(value, owned=False, leaf=False)
        _walk_map(value, path, spath, schema, out, strict)
        return
    strategy = schema.strategy_for(spath)
    if isinstance(value, list) and strategy.merge and strategy.merge_key is not None:
        out[path] = _Node(value, owned=False, leaf=False)
        for index, item in enumerate(value):
            key = _item_key(item, strategy.merge_key, path, index, strict)
            if key is None:
                continue
            item_path = path + (("k", key),)
            if item_path in out:
                if strict:
                    raise MalformedPatchError(
                        DUPLICATE_MERGE_KEY,
                        f"{path_string(path)}: duplicate entries for key "
                        f"{path_string((('k', key),))}",
                    )
                continue
            out[item_path] = _Node(item, owned=True, leaf=False)
            _walk_map(item, item_path, spath, schema, out, strict)
        return
    if isinstance(value, list) and strategy.merge and all(isinstance(v, _SCALAR) for v in value):
        out[path] = _Node(value, owned=False, leaf=False)
        for item in value:
            out[path + (("v", item),)] = _Node(item, owned=True, leaf=True)
        return
    # A scalar, null, empty map or atomic list: owned as a whole.
    out[path] = _Node(value, owned=True, leaf=True)


def _walk_map(
    value: JSONObject,
    path: FieldPath,
    spath: tuple[str, ...],
    schema: PatchSchema,
    out: dict[FieldPath, _Node],
    strict: bool,
) -> None:
    for name, child in value.items():
        _walk(child, path + (("f", name),), spath + (name,), schema, out, strict)


def _item_key(
    item: JSON, key: str, path: FieldPath, index: int, strict: bool
) -> tuple[tuple[str, Any], ...] | None:
    if isinstance(item, dict) and isinstance(item.get(key, _SCALAR), _SCALAR):
        return ((key, item[key]),)
    if not strict:
        return None
    if not isinstance(item, dict):
        raise MalformedPatchError(
            TYPE_MISMATCH, f"{path_string(path)}[{index}]: associative list item is not a map"
        )
    raise MalformedPatchError(
        MISSING_MERGE_KEY,
        f"{path_string(path)}[{index}]: associative list with keys has an element that "
        f"omits key field {json.dumps(key)} (and doesn't have default value)",
    )


def field_set(
    obj: JSONObject, schema: PatchSchema, *, ignore_status: bool = False, strict: bool = False
) -> set[FieldPath]:
    """The field paths `obj` sets: its leaves and associative-list items, without
    `apiVersion`, `kind` and the server-owned metadata (name, namespace, uid, ...), and without
    `status` when `ignore_status` (resources whose status is written through `/status`).

    With `strict` (an applied configuration) an associative-list item without its merge key,
    or two sharing one, is a `MalformedPatchError`; otherwise such items are not tracked.
    """
    nodes = _nodes(obj, schema, ignore_status=ignore_status, strict=strict)
    return {path for path, node in nodes.items() if node.owned}


@dataclass(frozen=True)
class Comparison:
    """What a write did, as field paths: `changed` holds the owned paths it added or gave a
    new value, `removed` every path (owned or not) that is gone."""

    changed: frozenset[FieldPath]
    removed: frozenset[FieldPath]


def compare(
    old: JSONObject, new: JSONObject, schema: PatchSchema, *, ignore_status: bool = False
) -> Comparison:
    """Compare two versions of an object (`old` may be `{}` for a create)."""
    return _compare_nodes(
        _nodes(old, schema, ignore_status=ignore_status),
        _nodes(new, schema, ignore_status=ignore_status),
    )


def _compare_nodes(old: Mapping[FieldPath, _Node], new: Mapping[FieldPath, _Node]) -> Comparison:
    changed = set()
    for path, node in new.items():
        if not node.owned:
            continue
        before = old.get(path)
        if _differs(before, node):
            changed.add(path)
    return Comparison(frozenset(changed), frozenset(old.keys() - new.keys()))


def _differs(before: _Node | None, after: _Node) -> bool:
    if before is None or before.leaf != after.leaf:
        return True
    return after.leaf and identity(before.value) != identity(after.value)


# --- managedFields entries ------------------------------------------------------------------


@dataclass(frozen=True)
class ManagedEntry:
    """One `metadata.managedFields` entry, decoded.  Managers are told apart by `identity`:
    name, operation and subresource, and for an Update also the apiVersion it wrote."""

    manager: str
    operation: str
    api_version: str
    fields: frozenset[FieldPath]
    time: str | None = None
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        version = self.api_version if self.operation == UPDATE else ""
        return (self.manager, self.operation, self.subresource, version)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = encode_fields_v1(self.fields)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def decode_managed_fields(raw: JSON) -> list[ManagedEntry]:
    """Decode a `metadata.managedFields` list.  Raises `ManagedFieldsError` on anything Kubernetes
    would not accept: a non-list, an unknown operation or fieldsType, two entries of one
    manager."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ManagedFieldsError("managedFields must be a list")
    entries: list[ManagedEntry] = []
    seen: set[tuple[str, str, str, str]] = set()
    for item in raw:
        if not isinstance(item, dict):
            raise ManagedFieldsError("a managedFields entry must be a map")
        if item.get("operation") not in (APPLY, UPDATE):
            raise ManagedFieldsError(f"unknown managedFields operation {item.get('operation')!r}")
        if item.get("fieldsType") != "FieldsV1":
            raise ManagedFieldsError(f"unknown managedFields fieldsType {item.get('fieldsType')!r}")
        entry = ManagedEntry(
            manager=_text(item, "manager"),
            operation=item["operation"],
            api_version=_text(item, "apiVersion"),
            fields=frozenset(decode_fields_v1(item.get("fieldsV1") or {})),
            time=item.get("time") if isinstance(item.get("time"), str) else None,
            subresource=_text(item, "subresource"),
        )
        if entry.identity in seen:
            raise ManagedFieldsError(f"duplicate managedFields entry for manager {entry.manager!r}")
        seen.add(entry.identity)
        entries.append(entry)
    return entries


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key) or ""
    if not isinstance(value, str):
        raise ManagedFieldsError(f"managedFields {key} must be a string")
    return value


def encode_managed_fields(entries: Iterable[ManagedEntry]) -> list[dict[str, Any]]:
    """Entries with a non-empty field set, in Kubernetes' order: appliers first, then by time,
    manager, apiVersion and subresource."""
    kept = [e for e in entries if e.fields]
    kept.sort(
        key=lambda e: (
            e.operation != APPLY,
            e.time or "",
            e.manager,
            e.api_version,
            e.subresource,
        )
    )
    return [e.to_json() for e in kept]


def store_managed_fields(obj: JSONObject, entries: Iterable[ManagedEntry]) -> None:
    """Write `entries` into `obj["metadata"]["managedFields"]`, dropping the key if none."""
    encoded = encode_managed_fields(entries)
    if encoded:
        obj.setdefault("metadata", {})["managedFields"] = encoded
    elif isinstance(obj.get("metadata"), dict):
        obj["metadata"].pop("managedFields", None)


def _managed_of(obj: JSONObject | None) -> JSON:
    meta = (obj or {}).get("metadata")
    return meta.get("managedFields") if isinstance(meta, dict) else None


def _entries_before_update(old: JSONObject | None, new: JSONObject) -> list[ManagedEntry]:
    """The ownership an ordinary write starts from.  A writer may set managedFields itself:
    `[]` or `[{}]` resets them, a valid non-empty list replaces them; otherwise (absent,
    invalid) the live object's stand, since clients unaware of them must not drop them."""
    requested = _managed_of(new)
    if requested == [] or requested == [{}]:
        return []
    try:
        entries = decode_managed_fields(requested)
    except ManagedFieldsError:
        entries = []
    if entries:
        return entries
    try:
        return decode_managed_fields(_managed_of(old))
    except ManagedFieldsError:
        return []


def update_managed_fields(
    old: JSONObject | None,
    new: JSONObject,
    *,
    manager: str,
    operation: str,
    now: str,
    schema: PatchSchema,
    subresource: str = "",
    ignore_status: bool = False,
) -> None:
    """Record an ordinary write of `new` over `old` (None for a create) by `manager`.

    Sets `new["metadata"]["managedFields"]` in place and changes nothing else.  The fields the
    write added or changed move to the (manager, operation, subresource) entry, whose time
    becomes `now`; every other manager, appliers included, loses them, and everybody loses the
    fields that are gone.  A write that changes no field leaves the writer's entry (and its
    time) as it was.  Entries left with no field are dropped.
    """
    entries = _entries_before_update(old, new)
    diff = compare(old or {}, new, schema, ignore_status=ignore_status)
    api_version = new.get("apiVersion") if isinstance(new.get("apiVersion"), str) else ""
    writer = ManagedEntry(manager, operation, str(api_version), frozenset(), now, subresource)
    result: list[ManagedEntry] = []
    previous: frozenset[FieldPath] = frozenset()
    for entry in entries:
        kept = entry.fields - diff.changed - diff.removed
        if entry.identity == writer.identity:
            if not diff.changed:
                result.append(replace(entry, fields=kept))
            previous = kept
        else:
            result.append(replace(entry, fields=kept))
    if diff.changed:
        result.append(replace(writer, fields=previous | diff.changed))
    store_managed_fields(new, result)
