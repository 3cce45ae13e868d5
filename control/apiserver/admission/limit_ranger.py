"""LimitRanger: the namespace's LimitRanges fill in container defaults on pod create, then
bound each container, each pod and each PersistentVolumeClaim.

Mutating: every ``type: Container`` item supplies default limits (``default``, else ``max``)
and default requests (``defaultRequest``, else the default limit, else ``min``), which is how
Kubernetes defaults a LimitRange item.  What was filled in is recorded in the pod annotation
``kubernetes.io/limit-ranger``.  Validating: ``min``, ``max`` and ``maxLimitRequestRatio`` per
Container, per Pod (the pod's totals) and per PersistentVolumeClaim; every violation is listed
in one 403.  Pod updates are not checked: a pod's containers and resources cannot change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from control.api.podresources import (
    ResourceList,
    container_limits,
    container_requests,
    pod_limits,
    pod_requests,
    resource_list,
)
from control.api.quantity import Quantity
from control.apiserver.admission.request import (
    CREATE,
    UPDATE,
    AdmissionRequest,
    ClusterView,
    forbidden,
)

__all__ = ["ANNOTATION", "LimitRanger"]

ANNOTATION = "kubernetes.io/limit-ranger"


class LimitRanger:
    name = "LimitRanger"

    async def admit(self, req: AdmissionRequest, view: ClusterView) -> None:
        if not _is_pod_create(req) or req.obj is None:
            return
        ranges = _limit_ranges(req, view)
        if not ranges:
            return
        pod = req.obj
        spec = pod.setdefault("spec", {})
        groups = (("container", spec.get("containers") or []),
                  ("init container", spec.get("initContainers") or []))
        for _, containers in groups:
            for container in containers:
                _request_limits(container)
        for limit_range in ranges:
            default_limits, default_requests = _container_defaults(limit_range)
            if not default_limits and not default_requests:
                continue
            notes: list[str] = []
            for prefix, containers in groups:
                for container in containers:
                    notes += _fill(container, default_limits, default_requests,
                                   f"{prefix} {container.get('name', '')}")
            if notes:
                meta = pod.setdefault("metadata", {})
                annotations = meta.get("annotations") or {}
                annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
                meta["annotations"] = annotations

    async def validate(self, req: AdmissionRequest, view: ClusterView) -> None:
        if req.obj is None or req.subresource:
            return
        check: Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]
        if _is_pod_create(req):
            check = _pod_violations
        elif req.group == "" and req.resource == "persistentvolumeclaims" and (
                req.operation in (CREATE, UPDATE)):
            check = _pvc_violations
        else:
            return
        errors: list[str] = []
        for limit_range in _limit_ranges(req, view):
            for item in _items(limit_range):
                for message in check(item, req.obj):
                    if message not in errors:
                        errors.append(message)
        if errors:
            raise forbidden(req, errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")


def _is_pod_create(req: AdmissionRequest) -> bool:
    return (req.group == "" and req.resource == "pods" and not req.subresource
            and req.operation == CREATE)


def _limit_ranges(req: AdmissionRequest, view: ClusterView) -> list[dict[str, Any]]:
    if not req.namespace:
        return []
    items = view.list("", "limitranges", req.namespace)
    return sorted(items, key=lambda lr: str((lr.get("metadata") or {}).get("name", "")))


def _request_limits(container: dict[str, Any]) -> None:
    """Kubernetes' pod defaulting (done at decode, before admission): a resource that is
    limited but not requested is requested at its limit."""
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    missing = {k: v for k, v in limits.items() if k not in (resources.get("requests") or {})}
    if missing:
        resources["requests"] = {**(resources.get("requests") or {}), **missing}
        container["resources"] = resources


def _items(limit_range: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The limit items that are objects (validation refuses others; one stored before it
    did limits nothing)."""
    spec = limit_range.get("spec")
    limits = spec.get("limits") if isinstance(spec, Mapping) else None
    return [i for i in limits if isinstance(i, Mapping)] if isinstance(limits, list) else []


def _container_defaults(limit_range: Mapping[str, Any]) -> tuple[ResourceList, ResourceList]:
    limits: ResourceList = {}
    requests: ResourceList = {}
    for item in _items(limit_range):
        if item.get("type") != "Container":
            continue
        default = {**resource_list(item.get("max")), **resource_list(item.get("default"))}
        default_request = {**resource_list(item.get("min")), **default,
                           **resource_list(item.get("defaultRequest"))}
        limits.update(default)
        requests.update(default_request)
    return limits, requests


def _fill(container: dict[str, Any], limits: ResourceList, requests: ResourceList,
          who: str) -> list[str]:
    resources = container.get("resources") or {}
    notes: list[str] = []
    for field, defaults in (("requests", requests), ("limits", limits)):
        current = dict(resources.get(field) or {})
        added = sorted(k for k in defaults if k not in current)
        if not added:
            continue
        current.update({k: str(defaults[k]) for k in added})
        resources[field] = current
        notes.append(f"{', '.join(added)} {field[:-1]} for {who}")
    if notes:
        container["resources"] = resources
    return notes


def _pod_violations(item: Mapping[str, Any], pod: Mapping[str, Any]) -> list[str]:
    kind = item.get("type")
    if kind == "Container":
        spec = pod.get("spec") or {}
        containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        out: list[str] = []
        for container in containers:
            out += _violations(item, "Container", container_requests(container),
                               container_limits(container))
        return out
    if kind == "Pod":
        return _violations(item, "Pod", pod_requests(pod), pod_limits(pod))
    return []


def _pvc_violations(item: Mapping[str, Any], pvc: Mapping[str, Any]) -> list[str]:
    if item.get("type") != "PersistentVolumeClaim":
        return []
    requests = resource_list(((pvc.get("spec") or {}).get("resources") or {}).get("requests"))
    out: list[str] = []
    for key, bound in resource_list(item.get("min")).items():
        out += _below_min("PersistentVolumeClaim", key, bound, requests, {})
    for key, bound in resource_list(item.get("max")).items():
        req = requests.get(key)
        if req is None:
            out.append(f"maximum {key} usage per PersistentVolumeClaim is {bound}.  "
                       "No request is specified")
        elif req.milli() > bound.milli():
            out.append(f"maximum {key} usage per PersistentVolumeClaim is {bound}, "
                       f"but request is {req}")
    return out


def _violations(item: Mapping[str, Any], kind: str, requests: ResourceList,
                limits: ResourceList) -> list[str]:
    out: list[str] = []
    for key, bound in resource_list(item.get("min")).items():
        out += _below_min(kind, key, bound, requests, limits)
    for key, bound in resource_list(item.get("max")).items():
        out += _above_max(kind, key, bound, requests, limits)
    for key, bound in resource_list(item.get("maxLimitRequestRatio")).items():
        out += _ratio(kind, key, bound, requests, limits)
    return out


# Comparisons are in thousandths rounded up, as the LimitRanger compares MilliValue()s.

def _below_min(kind: str, key: str, bound: Quantity, requests: ResourceList,
               limits: ResourceList) -> list[str]:
    head = f"minimum {key} usage per {kind} is {bound}"
    req, lim = requests.get(key), limits.get(key)
    if req is None:
        return [f"{head}.  No request is specified"]
    if req.milli() < bound.milli():
        return [f"{head}, but request is {req}"]
    if lim is not None and lim.milli() < bound.milli():
        return [f"{head}, but limit is {lim}"]
    return []


def _above_max(kind: str, key: str, bound: Quantity, requests: ResourceList,
               limits: ResourceList) -> list[str]:
    head = f"maximum {key} usage per {kind} is {bound}"
    req, lim = requests.get(key), limits.get(key)
    if lim is None:
        return [f"{head}.  No limit is specified"]
    if lim.milli() > bound.milli():
        return [f"{head}, but limit is {lim}"]
    if req is not None and req.milli() > bound.milli():
        return [f"{head}, but request is {req}"]
    return []


def _ratio(kind: str, key: str, bound: Quantity, requests: ResourceList,
           limits: ResourceList) -> list[str]:
    head = f"{key} max limit to request ratio per {kind} is {bound}"
    req, lim = requests.get(key), limits.get(key)
    if req is None or req.milli() == 0:
        return [f"{head}, but no request is specified or request is 0"]
    if lim is None or lim.milli() == 0:
        return [f"{head}, but no limit is specified or limit is 0"]
    ratio = lim.milli() / req.milli()
    if ratio * 1000 > bound.milli():
        return [f"{head}, but provided ratio is {ratio:f}"]
    return []
