"""Reads: get, list and the start of a watch, served from the watch cache where it is correct.

resourceVersion rules (apiserver ``storage/cacher``):

* list without resourceVersion: a consistent read — the cache first catches up with the
  store's current revision (else the store answers directly);
* ``resourceVersion=0``: whatever the cache holds;
* ``resourceVersion=N`` (NotOlderThan): the cache once it has reached N, else 504
  ``ResourceVersionTooLarge``;
* ``resourceVersionMatch=Exact``, and every ``continue`` page: the store, at that revision
  (all pages of one list come from one snapshot).

A first page under ``limit`` is cut from the cache and its continue token names the cache's
revision, so the following pages read the same snapshot from the store.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from control.api.catalog import ResourceDef
from control.api.errors import BadRequest, Cause, Invalid, NotFound, Timeout
from control.api.fieldselectors import (
    FieldSelector,
    field_selector_for_kind,
    object_fields,
    parse_field_selector,
)
from control.api.selectors import LabelSelector, SelectorError, parse_label_selector
from control.apiserver.requestinfo import QueryOptions
from control.apiserver.storage import (
    GroupResource,
    Storage,
    collection_prefix,
    encode_continue,
    object_key,
    parse_resource_version,
)

from .watchcache import FieldIndex, WatchCache

__all__ = ["Filter", "Reader", "make_filter", "selection", "validate_list_options"]

_WAIT = 3.0  # how long a read waits for the cache to reach a resourceVersion


_NAME: tuple[str, ...] = ("metadata", "name")
#: Fields the watch cache indexes watchers by (kind "" = every kind), by selector label.
_INDEXABLE: dict[tuple[str, str], tuple[str, ...]] = {
    ("Pod", "spec.nodeName"): ("spec", "nodeName"), ("", "metadata.name"): _NAME}


@dataclass(frozen=True)
class Filter:
    """Label and field selectors of a list or watch."""

    kind: str
    labels: LabelSelector
    fields: FieldSelector

    @functools.cached_property
    def _field_labels(self) -> frozenset[str]:
        return frozenset(r.field for r in self.fields.requirements)

    def matches(self, obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if not self.labels.empty and not self.labels.matches(meta.get("labels") or {}):
            return False
        return self.fields.empty or self.fields.matches(
            object_fields(self.kind, obj, self._field_labels))

    def index(self) -> FieldIndex | None:
        """The exact field match the watch cache can index by (a node agent's
        ``spec.nodeName=NAME``, or ``metadata.name=NAME``), if the selector pins one."""
        for (kind, label), path in _INDEXABLE.items():
            if kind in ("", self.kind) and (value := self.fields.requires_exact_match(label)) \
                    is not None:
                return FieldIndex(path, value)
        return None

    def namespace(self) -> str | None:
        """The namespace ``metadata.namespace=NS`` pins, if any."""
        return self.fields.requires_exact_match("metadata.namespace")


def selection(rd: ResourceDef, namespace: str, flt: Filter
              ) -> tuple[bytes, bool, FieldIndex | None]:
    """Where a list or watch needs to look: the key prefix (narrowed to one namespace when
    the field selector pins it), whether that prefix is a whole collection (its keys are
    prefix + name), and the field index that narrows it further."""
    gr = GroupResource(rd.group, rd.resource)
    pinned = flt.namespace()
    if rd.namespaced and not namespace and pinned and "/" not in pinned and "%" not in pinned \
            and pinned not in (".", ".."):
        namespace = pinned
    return collection_prefix(gr, namespace), bool(namespace) or not rd.namespaced, flt.index()


def make_filter(rd: ResourceDef, opts: QueryOptions) -> Filter:
    """The selectors of a list or watch; 400 with the parser's own message (``unable to
    parse requirement: ...``, ``field label not supported: ...``) when one is bad."""
    try:
        labels = parse_label_selector(opts.label_selector)
        fields = field_selector_for_kind(parse_field_selector(opts.field_selector), rd.kind)
    except SelectorError as e:
        raise BadRequest(str(e)) from None
    return Filter(rd.kind, labels, fields)


def validate_list_options(opts: QueryOptions) -> None:
    """apimachinery ``ValidateListOptions`` for a list: 422 Invalid ``ListOptions.meta.k8s.io``
    with one cause per problem, as kube-apiserver's list handler answers."""
    causes: list[Cause] = []
    match = opts.resource_version_match
    if match:
        if not opts.resource_version:
            causes.append(Cause("FieldValueForbidden", "Forbidden: resourceVersionMatch is "
                                "forbidden unless resourceVersion is provided",
                                "resourceVersionMatch"))
        if opts.continue_token:
            causes.append(Cause("FieldValueForbidden", "Forbidden: resourceVersionMatch is "
                                "forbidden when continue is provided", "resourceVersionMatch"))
        if match not in ("Exact", "NotOlderThan"):
            causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{match}": '
                                'supported values: "Exact", "NotOlderThan", ""',
                                "resourceVersionMatch"))
        if match == "Exact" and opts.resource_version == "0":
            causes.append(Cause("FieldValueForbidden", 'Forbidden: resourceVersionMatch "exact" '
                                'is forbidden for resourceVersion "0"', "resourceVersionMatch"))
    if opts.send_initial_events is not None:
        causes.append(Cause("FieldValueForbidden", "Forbidden: sendInitialEvents is forbidden "
                            "for list", "sendInitialEvents"))
    if causes:
        raise Invalid("ListOptions", "", causes, group="meta.k8s.io")


class Reader:
    def __init__(self, storage: Storage, cache: WatchCache) -> None:
        self.storage = storage
        self.cache = cache

    async def at_least(self, rv: int) -> None:
        if not await self.cache.wait_for(rv, _WAIT):
            raise Timeout(f"Too large resource version: {rv}, current: {self.cache.revision}",
                          retry_after_seconds=1,
                          causes=[Cause("ResourceVersionTooLarge", "Too large resource version")])

    async def get(self, rd: ResourceDef, namespace: str, name: str,
                  resource_version: str = "") -> dict[str, Any]:
        """GET of one object: consistent from the store without a resourceVersion, from the
        cache (once at least that new) with one; a cached object is shared and read-only."""
        gr = GroupResource(rd.group, rd.resource)
        if not resource_version:
            return await self.storage.get(gr, namespace, name)
        rv = parse_resource_version(resource_version)
        if rv:
            await self.at_least(rv)
        obj = self.cache.get(object_key(gr, namespace, name))
        if obj is None:
            raise NotFound(rd.resource, name, group=rd.group)
        return obj

    async def list(self, rd: ResourceDef, namespace: str, opts: QueryOptions,
                   flt: Filter) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``(items, list metadata)`` of one page.  Items from the cache are the cache's own
        objects, shared and read-only (copying each before encoding was 40% of a list)."""
        gr = GroupResource(rd.group, rd.resource)
        validate_list_options(opts)
        if opts.limit < 0:  # kube pages only for limit > 0; a negative one lists everything
            opts = dataclasses.replace(opts, limit=0)
        match, rv_text = opts.resource_version_match, opts.resource_version
        exact = match == "Exact" or (not match and opts.limit and rv_text not in ("", "0"))
        if opts.continue_token or exact:
            return await self._from_store(gr, namespace, opts, flt)
        if rv_text == "":
            if not await self.cache.sync():
                return await self._from_store(gr, namespace, opts, flt)
        elif rv_text != "0":
            await self.at_least(parse_resource_version(rv_text))
        objects, rev = self.select(rd, namespace, flt)
        base = collection_prefix(gr, namespace)  # continue tokens are relative to the request's
        items: list[dict[str, Any]] = []
        meta: dict[str, Any] = {"resourceVersion": str(rev)}
        for i, (key, obj) in enumerate(objects):
            if not flt.matches(obj):
                continue
            if opts.limit and len(items) == opts.limit:
                last = objects[i - 1][0][len(base):].decode()
                meta["continue"] = encode_continue(rev, last + "\0")
                break
            items.append(obj)
        return items, meta

    def select(self, rd: ResourceDef, namespace: str, flt: Filter
               ) -> tuple[builtins.list[tuple[bytes, dict[str, Any]]], int]:
        """From the cache, at one revision: ``(key, object)`` in key order — every object
        of the collection, or only those an index says may match (pods of one node; one
        object by name) — and that revision.  The caller still applies ``flt``."""
        prefix, whole, index = selection(rd, namespace, flt)
        if index is not None and index.path == _NAME and whole:
            name = index.value
            if not name or "/" in name:
                return [], self.cache.revision
            key = prefix + name.encode()
            obj = self.cache.get(key)
            return ([(key, obj)] if obj is not None else []), self.cache.revision
        return self.cache.snapshot(prefix, index)

    async def _from_store(self, gr: GroupResource, namespace: str, opts: QueryOptions,
                          flt: Filter) -> tuple[builtins.list[dict[str, Any]], dict[str, Any]]:
        page = await self.storage.list(
            gr, namespace, limit=opts.limit, continue_token=opts.continue_token or None,
            resource_version=opts.resource_version or None,
            resource_version_match=opts.resource_version_match or None)
        meta: dict[str, Any] = {"resourceVersion": page.resource_version}
        if page.continue_token:
            meta["continue"] = page.continue_token
            if page.remaining_item_count is not None and flt.labels.empty and flt.fields.empty:
                meta["remainingItemCount"] = page.remaining_item_count
        return [o for o in page.items if flt.matches(o)], meta
