"""An informer's local cache: the objects of one resource by ``namespace/name``, with indexes.

The objects are the ones the watch delivered and are shared with every reader: **never
mutate one** (copy first — ``copy.deepcopy`` or build a new dict).  Indexes map an index value
to the keys of the objects that have it; :data:`DEFAULT_INDEXERS` gives every cache the
namespace, owner-uid, node-name and label indexes the controllers, scheduler and node agents
look objects up by, so no caller ever scans the whole cache for them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from control.api.selectors import LabelSelector, Operator

from .resources import object_key

__all__ = ["DEFAULT_INDEXERS", "IndexFunc", "ObjectCache", "by_label", "by_namespace",
           "by_node_name", "by_owner_uid"]

Obj = dict[str, Any]
_EXACT = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
IndexFunc = Callable[[Obj], Iterable[str]]


def by_namespace(obj: Obj) -> Iterable[str]:
    return ((obj.get("metadata") or {}).get("namespace") or "",)


def by_owner_uid(obj: Obj) -> Iterable[str]:
    """Every owner's uid (controller or not)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return [str(r.get("uid")) for r in refs if isinstance(r, dict) and r.get("uid")]


def by_node_name(obj: Obj) -> Iterable[str]:
    """``spec.nodeName`` (pods); ``""`` for unscheduled pods, so they can be found too."""
    spec = obj.get("spec")
    return (str(spec.get("nodeName") or ""),) if isinstance(spec, dict) else ()


def by_label(obj: Obj) -> Iterable[str]:
    """``key=value`` for every label."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return [f"{k}={v}" for k, v in labels.items()] if isinstance(labels, dict) else ()


DEFAULT_INDEXERS: Mapping[str, IndexFunc] = {
    "namespace": by_namespace, "owner": by_owner_uid, "node": by_node_name, "label": by_label,
}


class ObjectCache:
    """Objects by key, with the indexes in ``indexers`` kept up to date on every change."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._objects: dict[str, Obj] = {}
        self._indexers = dict(DEFAULT_INDEXERS if indexers is None else indexers)
        self._indexes: dict[str, dict[str, set[str]]] = {n: {} for n in self._indexers}
        self._values: dict[str, dict[str, tuple[str, ...]]] = {n: {} for n in self._indexers}

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def keys(self) -> list[str]:
        return list(self._objects)

    def get(self, key: str) -> Obj | None:
        return self._objects.get(key)

    def get_by(self, namespace: str, name: str) -> Obj | None:
        return self._objects.get(f"{namespace}/{name}" if namespace else name)

    def items(self) -> list[Obj]:
        return list(self._objects.values())

    def by_index(self, index: str, value: str) -> list[Obj]:
        """The objects whose ``index`` function yields ``value`` (KeyError: no such index)."""
        keys = self._indexes[index].get(value, ())
        return [self._objects[k] for k in keys]

    def list(self, namespace: str = "", selector: LabelSelector | None = None) -> list[Obj]:
        """Objects in ``namespace`` (all for ``""``) matching ``selector`` (all for None).
        An equality requirement in the selector narrows the search through the label index."""
        candidates: Iterable[Obj]
        narrowed = self._narrow(selector)
        if narrowed is not None:
            candidates = narrowed
            if namespace:
                candidates = [o for o in candidates
                              if (o.get("metadata") or {}).get("namespace") == namespace]
        elif namespace:
            candidates = self.by_index("namespace", namespace)
        else:
            candidates = self._objects.values()
        if selector is None:
            return list(candidates)
        return [o for o in candidates
                if selector.matches((o.get("metadata") or {}).get("labels") or {})]

    def _narrow(self, selector: LabelSelector | None) -> builtins.list[Obj] | None:
        if selector is None or "label" not in self._indexes:
            return None
        if selector.match_nothing:
            return []
        best: set[str] | None = None
        for req in selector.requirements:
            if req.operator in _EXACT and len(req.values) == 1:
                keys = self._indexes["label"].get(f"{req.key}={req.values[0]}", set())
                if best is None or len(keys) < len(best):
                    best = keys
        return None if best is None else [self._objects[k] for k in best]

    # --- changes (the informer's only) ---------------------------------------------------

    def put(self, obj: Obj) -> Obj | None:
        """Store ``obj`` under its key; the object it replaced, if any."""
        key = object_key(obj)
        old = self._objects.get(key)
        self._objects[key] = obj
        self._reindex(key, obj)
        return old

    def pop(self, key: str) -> Obj | None:
        old = self._objects.pop(key, None)
        if old is not None:
            self._reindex(key, None)
        return old

    def _reindex(self, key: str, obj: Obj | None) -> None:
        for name, fn in self._indexers.items():
            values = self._values[name]
            index = self._indexes[name]
            for v in values.pop(key, ()):
                bucket = index.get(v)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del index[v]
            if obj is None:
                continue
            new = tuple(dict.fromkeys(fn(obj)))
            if new:
                values[key] = new
                for v in new:
                    index.setdefault(v, set()).add(key)

    def __iter__(self) -> Iterator[Obj]:
        return iter(list(self._objects.values()))
