"""The selector default topology spreading uses for a pod with no spread constraints of its
own (kube-scheduler's ``helper.DefaultSelector``): the selectors of the Services that select
the pod, merged, and the selector of its controlling ReplicaSet or StatefulSet.  Read from
informer caches; an empty result means "no default spreading"."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from control.api.selectors import (
    LabelSelector,
    SelectorError,
    from_label_selector,
    selector_from_set,
)

from .podinfo import PodInfo

__all__ = ["default_selector"]

Obj = Mapping[str, Any]
Lookup = Callable[[str, str], Obj | None]  # (namespace, name) -> object or None


def default_selector(pod: PodInfo, services: Iterable[Obj], replicasets: Lookup,
                     statefulsets: Lookup) -> LabelSelector | None:
    """``services``: the Services of the pod's namespace."""
    merged: dict[str, str] = {}
    labels = pod.labels
    for svc in services:
        sel = (svc.get("spec") or {}).get("selector")
        if isinstance(sel, Mapping) and sel and all(labels.get(k) == v for k, v in sel.items()):
            merged.update({str(k): str(v) for k, v in sel.items()})
    try:
        selector = selector_from_set(merged)
    except SelectorError:
        selector = LabelSelector()
    kind, _ = pod.template.owner_kind, pod.template.owner_uid
    lookup = {"ReplicaSet": replicasets, "StatefulSet": statefulsets}.get(kind)
    if lookup is not None:
        owner = _owner_name(pod.obj, kind)
        obj = lookup(pod.namespace, owner) if owner else None
        if obj is not None:
            try:
                extra = from_label_selector((obj.get("spec") or {}).get("selector"))
            except SelectorError:
                extra = LabelSelector()
            if not extra.match_nothing:
                selector = LabelSelector(tuple(sorted(
                    (*selector.requirements, *extra.requirements), key=lambda r: r.key)))
    return None if selector.empty else selector


def _owner_name(pod: Obj, kind: str) -> str:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller") and ref.get("kind") == kind:
            return str(ref.get("name") or "")
    return ""
