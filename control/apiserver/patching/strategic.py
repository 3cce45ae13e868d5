"""Kubernetes strategic merge patch (`application/strategic-merge-patch+json`): what
`kubectl patch`, `set image`, `cordon`, client-side `apply` and every Python-client patch send.

It is a JSON merge patch in which lists are merged by the kind's schema (see `schema.py`) and
these directives are honoured:

* `"$patch": "replace" | "delete" | "merge"` in a map (replace it by the patch / delete it /
  merge as usual) and in an item of a merged list (`replace`: the list becomes the patch's
  other items; `delete`: drop the live item with that merge key; `merge`: an ordinary item);
* `"$retainKeys": [...]` in a map: the live map keeps only those keys before merging, and the
  patch may set no other key;
* `"$setElementOrder/<list>": [...]`: the final order of the patched items of `<list>`;
* `"$deleteFromPrimitiveList/<list>": [...]`: scalars to remove from `<list>`;
* `null` deletes a map key.

Ordering follows apimachinery's `strategicpatch`: the patch's items keep the patch's (or
`$setElementOrder`'s) order, the live-only items keep theirs, and the two are interleaved by
their live positions, so an item new to the list lands before the live-only items that follow
it (a container added by a patch comes first).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable
from typing import Any, Final, NamedTuple

from control.apiserver.patching._values import JSON, JSONObject, identity
from control.apiserver.patching.errors import (
    ELEMENT_ORDER_MISMATCH,
    INVALID_DIRECTIVE,
    LIST_OF_LISTS,
    MISSING_MERGE_KEY,
    NOT_AN_OBJECT,
    RETAIN_KEYS_MISMATCH,
    TYPE_MISMATCH,
    MalformedPatchError,
    PatchApplyError,
)
from control.apiserver.patching.schema import PatchSchema

__all__ = ["apply_strategic_merge_patch"]

_PATCH: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_ORDER: Final = "$setElementOrder"
_DELETE: Final = "$deleteFromPrimitiveList"
_DIRECTIVES: Final = frozenset({"replace", "delete", "merge"})

Path = tuple[str, ...]
Ident = Callable[[JSON], Hashable]


class _Missing:
    """The absence of a key, distinct from a JSON null."""


_MISSING: Final = _Missing()


class _Deleted:
    """What a map carrying `"$patch": "delete"` merges into: its key goes away."""


_DELETED: Final = _Deleted()


def apply_strategic_merge_patch(obj: JSONObject, patch: JSON, schema: PatchSchema) -> JSONObject:
    """Apply the strategic merge patch `patch` to `obj`, merging lists as `schema` says.

    Returns a new object sharing nothing with the arguments, which are left unchanged; no
    directive survives into it.  Raises `MalformedPatchError` (400) when the patch itself is
    wrong (not a map, an unknown `$patch` value, a merged-list item without its merge key, a
    directive of the wrong type, a key outside `$retainKeys`, a list out of its
    `$setElementOrder`) and `PatchApplyError` (422) when it does not fit `obj` (a live
    merged-list item without its merge key, a directive aimed at a non-list, lists of lists).
    """
    if not isinstance(patch, dict):
        raise MalformedPatchError(NOT_AN_OBJECT, "strategic merge patch must be a JSON object")
    if not isinstance(obj, dict):
        raise PatchApplyError(NOT_AN_OBJECT, "the patched document is not a JSON object")
    if _directive(patch, ()) == "delete":
        return {}
    return _merge_map(copy.deepcopy(obj), copy.deepcopy(patch), (), schema)


# The private merge functions own both of their arguments (deep copies made above) and may
# reuse their parts in the result.


class _Parts(NamedTuple):
    fields: dict[str, JSON]
    retain_keys: JSON
    orders: dict[str, JSON]
    deletions: dict[str, JSON]


def _merge_map(
    original: JSONObject, patch: JSONObject, path: Path, schema: PatchSchema
) -> JSONObject:
    """Merge a map patch (whose `$patch`, if any, is `replace` or `merge`) into `original`."""
    if _directive(patch, path) == "replace":
        original = {}
    parts = _split(patch, path)
    if not isinstance(parts.retain_keys, _Missing):
        original = _retain(original, parts, path)
    result = dict(original)
    for name, order in parts.orders.items():
        patch_list = parts.fields.get(name, _MISSING)
        if isinstance(patch_list, _Missing | list):
            parts.fields.pop(name, None)
            _apply_order(result, name, order, patch_list, path + (name,), schema)
    for key, value in parts.fields.items():
        _merge_field(result, key, value, path + (key,), schema)
    for name, values in parts.deletions.items():
        _delete_from_list(result, name, values, path + (name,))
    return result


def _split(patch: JSONObject, path: Path) -> _Parts:
    """Sort a map patch's keys into fields and directives (`$patch` is dropped)."""
    parts = _Parts({}, patch.get(_RETAIN_KEYS, _MISSING), {}, {})
    for key, value in patch.items():
        if key in (_PATCH, _RETAIN_KEYS):
            continue
        if key.startswith(_ORDER):
            parts.orders[_directive_target(key, _ORDER, path)] = value
        elif key.startswith(_DELETE):
            parts.deletions[_directive_target(key, _DELETE, path)] = value
        else:
            parts.fields[key] = value
    return parts


def _directive_target(key: str, prefix: str, path: Path) -> str:
    target = key[len(prefix) + 1 :]
    if key[len(prefix) : len(prefix) + 1] != "/" or not target:
        raise MalformedPatchError(INVALID_DIRECTIVE, f"{_where(path)}: bad directive {key!r}")
    return target


def _directive(patch: JSONObject, path: Path) -> str | None:
    """The `$patch` directive of a map or list item, checked; None when it has none."""
    if _PATCH not in patch:
        return None
    directive = patch[_PATCH]
    if not isinstance(directive, str) or directive not in _DIRECTIVES:
        raise MalformedPatchError(
            INVALID_DIRECTIVE, f"{_where(path)}: unknown patch directive {directive!r}"
        )
    return directive


def _retain(original: JSONObject, parts: _Parts, path: Path) -> JSONObject:
    """Keep only the `$retainKeys` keys of `original`; the patch may set no other key."""
    retain = parts.retain_keys
    if not isinstance(retain, list):
        raise MalformedPatchError(INVALID_DIRECTIVE, f"{_where(path)}: $retainKeys must be a list")
    keep = {key for key in retain if isinstance(key, str)}
    stray = sorted(k for k, v in parts.fields.items() if v is not None and k not in keep)
    if stray:
        raise MalformedPatchError(
            RETAIN_KEYS_MISMATCH, f"{_where(path)}: {stray} set by the patch but not in $retainKeys"
        )
    return {key: value for key, value in original.items() if key in keep}


def _merge_field(
    result: JSONObject, key: str, value: JSON, path: Path, schema: PatchSchema
) -> None:
    if value is None:
        result.pop(key, None)
        return
    merged = _merge_value(result.get(key, _MISSING), value, path, schema)
    if isinstance(merged, _Deleted):
        result.pop(key, None)
    else:
        result[key] = merged


def _merge_value(current: Any, patch: JSON, path: Path, schema: PatchSchema) -> JSON:
    """Merge a patch value into the live one; a value of another type (or none) merges as if
    it were empty, which strips directives from what the patch adds."""
    if isinstance(patch, dict):
        if _directive(patch, path) == "delete":
            return _DELETED
        return _merge_map(current if isinstance(current, dict) else {}, patch, path, schema)
    if isinstance(patch, list):
        return _merge_list(current if isinstance(current, list) else [], patch, path, schema)
    return patch


def _merge_list(
    original: list[JSON], patch: list[JSON], path: Path, schema: PatchSchema
) -> list[JSON]:
    strategy = schema.strategy_for(path)
    if not strategy.merge:
        return patch
    if strategy.merge_key is None:
        return _merge_scalars(original, patch, path)
    return _merge_keyed(original, patch, strategy.merge_key, path, schema)


def _merge_scalars(original: list[JSON], patch: list[JSON], path: Path) -> list[JSON]:
    """A set union of scalars: live order for live values, patch order for patched ones."""
    _require_scalars(patch, path, in_patch=True)
    _require_scalars(original, path, in_patch=False)
    merged: list[JSON] = []
    seen: set[Hashable] = set()
    for value in original + patch:
        if identity(value) not in seen:
            seen.add(identity(value))
            merged.append(value)
    return _normalize_order(merged, patch, original, identity)


def _merge_keyed(
    original: list[JSON], patch: list[JSON], key: str, path: Path, schema: PatchSchema
) -> list[JSON]:
    """Merge a list of maps item by item on `key`, honouring item directives."""
    _require_keyed(original, key, path, in_patch=False)
    items, regular, replace = list(original), [], False
    for item in patch:
        if not isinstance(item, dict):
            raise MalformedPatchError(
                TYPE_MISMATCH, f"{_where(path)}: list item {item!r} is not a map"
            )
        directive = _directive(item, path)
        if directive == "replace":
            replace = True
        elif directive == "delete":
            _require_keyed([item], key, path, in_patch=True)
            items = [i for i in items if identity(i[key]) != identity(item[key])]
        else:
            regular.append(item)
    _require_keyed(regular, key, path, in_patch=True)
    items = [] if replace else items
    server_order = list(items)
    for item in regular:
        index = _find(items, key, item[key])
        if index is None:
            items.append(_merge_map({}, item, path, schema))
        else:
            items[index] = _merge_map(items[index], item, path, schema)
    return _normalize_order(items, regular, server_order, _by_key(key))


def _apply_order(
    result: JSONObject,
    name: str,
    order: JSON,
    patch_list: list[JSON] | _Missing,
    path: Path,
    schema: PatchSchema,
) -> None:
    """Merge `patch_list` (if any) into `result[name]` and give it the `$setElementOrder`."""
    live = result.get(name, _MISSING)
    if not isinstance(order, list):
        raise MalformedPatchError(
            INVALID_DIRECTIVE, f"{_where(path)}: $setElementOrder must be a list"
        )
    if not isinstance(live, _Missing | list):
        raise PatchApplyError(TYPE_MISMATCH, f"{_where(path)}: $setElementOrder on a non-list")
    strategy = schema.strategy_for(path)
    if not strategy.merge:
        if isinstance(patch_list, list):
            result[name] = patch_list
        return
    key = strategy.merge_key
    ident: Ident = identity if key is None else _by_key(key)
    if key is None:
        _require_scalars(order, path, in_patch=True)
    else:
        _require_keyed(order, key, path, in_patch=True)
    if isinstance(patch_list, list):
        _check_order(patch_list, order, key, ident, path)
    if isinstance(live, _Missing) and isinstance(patch_list, _Missing):
        return
    base = [] if isinstance(live, _Missing) else live
    merged = (
        base if isinstance(patch_list, _Missing) else _merge_list(base, patch_list, path, schema)
    )
    result[name] = _normalize_order(merged, order, base, ident)


def _check_order(
    patch_list: list[JSON], order: list[JSON], key: str | None, ident: Ident, path: Path
) -> None:
    """The patch's ordinary items must appear in `order`, in the same relative order."""
    if key is None:
        ordinary = patch_list
        _require_scalars(ordinary, path, in_patch=True)
    else:
        ordinary = [i for i in patch_list if not (isinstance(i, dict) and _PATCH in i)]
        _require_keyed(ordinary, key, path, in_patch=True)
    remaining = iter([ident(item) for item in order])
    if not all(any(w == o for o in remaining) for w in map(ident, ordinary)):
        raise MalformedPatchError(
            ELEMENT_ORDER_MISMATCH,
            f"{_where(path)}: the patch list is not in $setElementOrder's order",
        )


def _delete_from_list(result: JSONObject, name: str, values: JSON, path: Path) -> None:
    if not isinstance(values, list):
        raise MalformedPatchError(
            INVALID_DIRECTIVE, f"{_where(path)}: $deleteFromPrimitiveList must be a list"
        )
    live = result.get(name, _MISSING)
    if isinstance(live, _Missing):
        return
    if not isinstance(live, list):
        raise PatchApplyError(
            TYPE_MISMATCH, f"{_where(path)}: $deleteFromPrimitiveList on a non-list"
        )
    drop = {identity(value) for value in values}
    result[name] = [value for value in live if identity(value) not in drop]


def _normalize_order(
    merged: list[JSON], order: list[JSON], server_order: list[JSON], ident: Ident
) -> list[JSON]:
    """Order `merged`: items named in `order` follow it, the others keep `server_order`, and
    the two runs are interleaved by their positions in `server_order`."""
    order_index = _positions(order, ident)
    server_index = _positions(server_order, ident)
    patched = sorted(
        (m for m in merged if ident(m) in order_index), key=lambda m: order_index[ident(m)]
    )
    server_only = sorted(
        (m for m in merged if ident(m) not in order_index),
        key=lambda m: server_index.get(ident(m), len(server_index)),
    )
    return _interleave(server_only, patched, server_index, ident)


def _interleave(
    left: list[JSON], right: list[JSON], server_index: dict[Hashable, int], ident: Ident
) -> list[JSON]:
    """Merge two runs; a `left` item goes first only when both are live and it was earlier."""
    out: list[JSON] = []
    i = j = 0
    while i < len(left) and j < len(right):
        li, rj = server_index.get(ident(left[i])), server_index.get(ident(right[j]))
        if li is not None and rj is not None and li < rj:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    return out + left[i:] + right[j:]


def _positions(items: list[JSON], ident: Ident) -> dict[Hashable, int]:
    positions: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        positions.setdefault(ident(item), index)
    return positions


def _by_key(key: str) -> Ident:
    return lambda item: identity(item[key])


def _find(items: list[JSON], key: str, value: JSON) -> int | None:
    wanted = identity(value)
    return next((i for i, item in enumerate(items) if identity(item[key]) == wanted), None)


def _require_keyed(items: list[JSON], key: str, path: Path, *, in_patch: bool) -> None:
    """Every item is a map holding the merge key: the patch's fault (400) or the object's (422)."""
    error = MalformedPatchError if in_patch else PatchApplyError
    for item in items:
        if not isinstance(item, dict):
            raise error(TYPE_MISMATCH, f"{_where(path)}: list item {item!r} is not a map")
        if key not in item:
            raise error(
                MISSING_MERGE_KEY,
                f"{_where(path)}: {item!r} does not contain declared merge key {key!r}",
            )


def _require_scalars(items: list[JSON], path: Path, *, in_patch: bool) -> None:
    for item in items:
        if isinstance(item, list):
            raise PatchApplyError(
                LIST_OF_LISTS, f"{_where(path)}: lists of lists are not supported"
            )
        if isinstance(item, dict):
            error = MalformedPatchError if in_patch else PatchApplyError
            raise error(TYPE_MISMATCH, f"{_where(path)}: a merged list of scalars holds a map")


def _where(path: Path) -> str:
    return ".".join(path) or "<root>"
