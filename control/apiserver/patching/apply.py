"""Server-side apply (`PATCH` with `application/apply-patch+yaml`): a manager's declared
configuration merged into the live object, with field ownership deciding what may change.

The apiserver decodes the body and hands `server_side_apply` a dict; this module merges it in
structured-merge-diff fashion (maps merged key by key, associative lists item by merge key,
set-like lists as sets, everything else replaced), prunes what the manager applied before and
applies no more (unless someone else owns it), checks the changed fields against the other
managers' (409 `ApplyConflict` unless `force`), and records the manager's ownership in
`metadata.managedFields` (see `managed.py`).  Pure: no I/O, the time comes in as `now`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final

from control.apiserver.patching._values import JSON, JSONObject, identity, json_equal
from control.apiserver.patching.errors import NOT_AN_OBJECT, MalformedPatchError, PatchError
from control.apiserver.patching.managed import (
    APPLY,
    UPDATE,
    FieldPath,
    ManagedEntry,
    ManagedFieldsError,
    PathElement,
    compare,
    decode_managed_fields,
    field_set,
    path_sort_key,
    path_string,
    store_managed_fields,
)
from control.apiserver.patching.schema import PatchSchema

__all__ = [
    "BEFORE_FIRST_APPLY",
    "CONFLICT",
    "INVALID_CONFIGURATION",
    "ApplyConflict",
    "FieldConflict",
    "server_side_apply",
]

CONFLICT: Final = "FieldManagerConflict"
"""`PatchError.reason` of an `ApplyConflict`, and the `details.causes[].type` of each conflict."""

INVALID_CONFIGURATION: Final = "InvalidApplyConfiguration"
"""`PatchError.reason` for an applied configuration that is not an object Kubernetes accepts."""

BEFORE_FIRST_APPLY: Final = "before-first-apply"
"""The Update manager that owns every field of an object that has no managedFields when it is
first applied to (created before ownership was tracked, or after a reset)."""


@dataclass(frozen=True)
class FieldConflict:
    """A field the applier would change that `manager` (operation, apiVersion, subresource)
    owns."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    path: FieldPath

    @property
    def field(self) -> str:
        return path_string(self.path)

    @property
    def manager_text(self) -> str:
        """The manager as Kubernetes names it in a conflict message."""
        text = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


class ApplyConflict(PatchError):
    """An apply would change fields other managers own.  HTTP 409 Conflict.

    `conflicts` lists (manager, field path) pairs; `causes` is the `Status.details.causes` list
    Kubernetes answers with (`type` FieldManagerConflict, `message`, `field`).
    """

    code: ClassVar[int] = 409
    status_reason: ClassVar[str] = "Conflict"

    def __init__(self, conflicts: Sequence[FieldConflict]) -> None:
        self.field_conflicts = tuple(conflicts)
        self.conflicts: list[tuple[str, str]] = [(c.manager, c.field) for c in conflicts]
        super().__init__(CONFLICT, _conflict_message(self.field_conflicts))

    @property
    def causes(self) -> list[dict[str, str]]:
        return [
            {"type": CONFLICT, "message": f"conflict with {c.manager_text}", "field": c.field}
            for c in self.field_conflicts
        ]


def _conflict_message(conflicts: Sequence[FieldConflict]) -> str:
    if len(conflicts) == 1:
        (only,) = conflicts
        return f"Apply failed with 1 conflict: conflict with {only.manager_text}: {only.field}"
    by_manager: dict[tuple[str, str, str, str], list[FieldConflict]] = {}
    for c in conflicts:
        by_manager.setdefault((c.manager, c.operation, c.api_version, c.subresource), []).append(c)
    lines = []
    for group in (by_manager[k] for k in sorted(by_manager)):
        lines.append(f"conflicts with {group[0].manager_text}:")
        lines.extend(f"- {c.field}" for c in group)
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def server_side_apply(
    live: JSONObject | None,
    applied: JSONObject,
    *,
    manager: str,
    force: bool,
    now: str,
    schema: PatchSchema,
    api_version: str,
    ignore_status: bool = False,
) -> JSONObject:
    """The object after `manager` applies the configuration `applied` to `live` (None: the
    object does not exist yet).  Neither argument is changed.

    The result holds every field of `applied` (nulls delete), the live fields it does not
    mention, minus the fields `manager` applied last time and no longer does that no other
    manager owns.  Its managedFields give `manager`'s Apply entry exactly the applied field set
    (time `now`, kept as it was when nothing changed); other managers lose the fields that
    changed or went away.  `ignore_status` (resources with a status subresource) drops the
    configuration's `status`.

    Raises `ApplyConflict` (409) when, without `force`, a field the apply changes is owned by
    another manager; `MalformedPatchError` (400) when `applied` is not an applicable
    object (no kind, another apiVersion or kind, managedFields set, list items without their
    merge key or sharing one).
    """
    _check_configuration(live, applied, api_version)
    config = {k: v for k, v in applied.items() if not (ignore_status and k == "status")}
    applied_set = frozenset(field_set(config, schema, ignore_status=ignore_status, strict=True))
    base = copy.deepcopy(live) if live is not None else {}
    entries = _entries_before_apply(base, schema, api_version, ignore_status)
    me = ManagedEntry(manager, APPLY, api_version, applied_set, now)
    mine = next((e for e in entries if e.identity == me.identity), None)
    others = [e for e in entries if e.identity != me.identity]
    owned_by_others = frozenset().union(*(e.fields for e in others))

    current = _without_managed_fields(base)
    new = _merge(current, copy.deepcopy(config), (), schema)
    if mine is not None:
        _prune(new, mine.fields - applied_set - owned_by_others, owned_by_others, config)

    diff = compare(current, new, schema, ignore_status=ignore_status)
    conflicts = [
        FieldConflict(e.manager, e.operation, e.api_version, e.subresource, path)
        for e in others
        for path in sorted(e.fields & diff.changed, key=path_sort_key)
    ]
    if conflicts and not force:
        raise ApplyConflict(conflicts)

    unchanged = json_equal(current, _without_managed_fields(new))
    time = mine.time if mine is not None and unchanged else now
    result = [replace(e, fields=e.fields - diff.changed - diff.removed) for e in others]
    result.append(replace(me, time=time))
    store_managed_fields(new, result)
    return new


def _check_configuration(live: JSONObject | None, applied: JSON, api_version: str) -> None:
    if not isinstance(applied, dict):
        raise MalformedPatchError(NOT_AN_OBJECT, "the apply configuration must be an object")
    kind = applied.get("kind")
    if not isinstance(kind, str) or not kind:
        raise MalformedPatchError(INVALID_CONFIGURATION, "invalid object: Object 'Kind' is missing")
    version = applied.get("apiVersion")
    if version != api_version:
        raise MalformedPatchError(
            INVALID_CONFIGURATION,
            f"the API version in the data ({version}) does not match the expected API "
            f"version ({api_version})",
        )
    live_kind = (live or {}).get("kind")
    if live_kind is not None and live_kind != kind:
        raise MalformedPatchError(
            INVALID_CONFIGURATION,
            f"the kind in the data ({kind}) does not match the expected kind ({live_kind})",
        )
    meta = applied.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise MalformedPatchError(INVALID_CONFIGURATION, "metadata must be an object")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise MalformedPatchError(INVALID_CONFIGURATION, "metadata.managedFields must be nil")


def _entries_before_apply(
    live: JSONObject, schema: PatchSchema, api_version: str, ignore_status: bool
) -> list[ManagedEntry]:
    """The live ownership; an existing object without any (or with undecodable) managedFields
    is taken to be wholly owned by `before-first-apply`, so applying over it can conflict."""
    meta = live.get("metadata")
    try:
        entries = decode_managed_fields(
            meta.get("managedFields") if isinstance(meta, dict) else None
        )
    except ManagedFieldsError:
        entries = []
    if entries or not live:
        return entries
    fields = frozenset(field_set(live, schema, ignore_status=ignore_status))
    if not fields:
        return []
    version = live.get("apiVersion")
    return [
        ManagedEntry(
            BEFORE_FIRST_APPLY, UPDATE, version if isinstance(version, str) else api_version, fields
        )
    ]


def _without_managed_fields(obj: JSONObject) -> JSONObject:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


# --- merging --------------------------------------------------------------------------------
# `_merge` owns its `config` argument (a deep copy) and may reuse its parts; it never changes
# `live`, whose untouched parts it shares with the result.


class _Missing:
    """The absence of a live value."""


_MISSING: Final = _Missing()


def _merge(live: Any, config: JSON, spath: tuple[str, ...], schema: PatchSchema) -> JSON:
    """`config` merged over `live`: maps key by key (a null deletes the key), associative
    and set-like lists item by item, anything else replaced by `config`."""
    if isinstance(config, dict):
        result = dict(live) if isinstance(live, dict) else {}
        for name, value in config.items():
            if value is None:
                result.pop(name, None)
            else:
                result[name] = _merge(result.get(name, _MISSING), value, spath + (name,), schema)
        return result
    if not isinstance(config, list):
        return config
    strategy = schema.strategy_for(spath)
    current = live if isinstance(live, list) else []
    if strategy.merge and strategy.merge_key is not None:
        return _merge_items(current, config, strategy.merge_key, spath, schema)
    if strategy.merge and all(_is_scalar(v) for v in current + config):
        return _merge_set(current, config)
    return config


def _is_scalar(value: JSON) -> bool:
    return not isinstance(value, dict | list)


def _merge_items(
    live: list[JSON], config: list[JSON], key: str, spath: tuple[str, ...], schema: PatchSchema
) -> list[JSON]:
    """An associative list: applied items merged into the live items with their key (the
    configuration has been checked to key every item uniquely)."""
    applied_keys = {identity(item[key]) for item in config}
    live_items: list[tuple[Hashable, JSON]] = []
    by_key: dict[Hashable, JSON] = {}
    for index, item in enumerate(live):
        ident = identity(item[key]) if isinstance(item, dict) and key in item else None
        if ident is not None and ident not in by_key:
            by_key[ident] = item
            live_items.append((ident, item))
        elif ident not in applied_keys:
            # Untracked (no key) or a stale duplicate nobody applies: left where it is.
            live_items.append((("#live", index), item))
    applied = [
        (
            identity(item[key]),
            _merge(by_key.get(identity(item[key]), _MISSING), item, spath, schema),
        )
        for item in config
    ]
    return _ordered(live_items, applied)


def _merge_set(live: list[JSON], config: list[JSON]) -> list[JSON]:
    seen: set[Hashable] = set()
    applied = []
    for value in config:
        if identity(value) not in seen:
            seen.add(identity(value))
            applied.append((identity(value), value))
    return _ordered([(identity(v), v) for v in _unique(live)], applied)


def _unique(values: Iterable[JSON]) -> list[JSON]:
    seen: set[Hashable] = set()
    out = []
    for value in values:
        if identity(value) not in seen:
            seen.add(identity(value))
            out.append(value)
    return out


def _ordered(
    live: Sequence[tuple[Hashable, JSON]], applied: Sequence[tuple[Hashable, JSON]]
) -> list[JSON]:
    """Applied items in the configuration's order; each live-only item placed right after the
    live item it followed (first if none), so items new to the list come after the live ones."""
    applied_keys = {k for k, _ in applied}
    out = list(applied)
    previous: Hashable | None = None
    for ident, item in live:
        if ident not in applied_keys:
            at = 0 if previous is None else [k for k, _ in out].index(previous) + 1
            out.insert(at, (ident, item))
        previous = ident
    return [item for _, item in out]


# --- pruning --------------------------------------------------------------------------------


def _prune(
    obj: JSONObject, paths: Iterable[FieldPath], owned: frozenset[FieldPath], config: JSONObject
) -> None:
    """Remove `paths` from `obj` in place, shallowest first (a removed item takes its fields
    along).  A map or list field left empty goes too, unless another manager owns it or the
    configuration has it."""
    for path in sorted(paths, key=lambda p: (len(p), path_sort_key(p))):
        _remove(obj, path, lambda p: p in owned or _present(config, p))


def _remove(obj: JSONObject, path: FieldPath, keep: Callable[[FieldPath], bool]) -> None:
    trail: list[tuple[Any, Any]] = []
    node: Any = obj
    for element in path:
        where = _locate(node, element)
        if where is None:
            return
        trail.append((node, where))
        node = node[where]
    container, where = trail.pop()
    del container[where]
    while trail:
        container, where = trail.pop()
        depth = len(trail) + 1
        if container[where] or path[depth - 1][0] != "f" or keep(path[:depth]):
            return
        del container[where]


def _present(obj: JSON, path: FieldPath) -> bool:
    for element in path:
        where = _locate(obj, element)
        if where is None:
            return False
        obj = obj[where]
    return True


def _locate(node: Any, element: PathElement) -> Any:
    """The key or index of `element` in `node`, or None when it is not there."""
    kind, value = element
    if kind == "f":
        return value if isinstance(node, dict) and value in node else None
    if not isinstance(node, list):
        return None
    if kind == "i":
        return value if 0 <= value < len(node) else None
    for index, item in enumerate(node):
        if kind == "v" and identity(item) == identity(value):
            return index
        if (
            kind == "k"
            and isinstance(item, dict)
            and all(k in item and identity(item[k]) == identity(v) for k, v in value)
        ):
            return index
    return None
