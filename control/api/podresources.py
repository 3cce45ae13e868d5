"""Compute-resource arithmetic over pod specs, shared by LimitRanger and ResourceQuota.

A container's requests are read as Kubernetes' defaulting leaves them: a resource with a
limit but no request is requested at its limit.  Pod totals follow the kubelet's rule: the
app containers (and restartable "sidecar" init containers) run together and are summed,
ordinary init containers run one at a time, and the pod needs the larger of the two.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from control.api.quantity import Quantity

__all__ = [
    "ResourceList",
    "add_into",
    "all_containers",
    "container_limits",
    "container_requests",
    "pod_limits",
    "pod_requests",
    "resource_list",
]

ResourceList = dict[str, Quantity]


def resource_list(raw: Mapping[str, Any] | None) -> ResourceList:
    """Parse ``{"cpu": "500m", ...}``; raises ``QuantityError`` for a malformed value."""
    return {str(k): Quantity.parse(v) for k, v in (raw or {}).items()}


def all_containers(pod: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The init containers, then the app containers (not ephemeral ones)."""
    spec = pod.get("spec") or {}
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def container_limits(container: Mapping[str, Any]) -> ResourceList:
    return resource_list((container.get("resources") or {}).get("limits"))


def container_requests(container: Mapping[str, Any]) -> ResourceList:
    """Explicit requests, plus the limit for any resource limited but not requested."""
    resources = container.get("resources") or {}
    out = resource_list(resources.get("limits"))
    out.update(resource_list(resources.get("requests")))
    return out


def add_into(total: ResourceList, more: Mapping[str, Quantity]) -> None:
    for key, q in more.items():
        total[key] = total[key] + q if key in total else q


def _max_into(total: ResourceList, other: Mapping[str, Quantity]) -> None:
    for key, q in other.items():
        if key not in total or q > total[key]:
            total[key] = q


def _pod_total(pod: Mapping[str, Any], read: Any, overhead: bool, limits: bool) -> ResourceList:
    spec = pod.get("spec") or {}
    running: ResourceList = {}
    for container in spec.get("containers") or []:
        add_into(running, read(container))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for container in spec.get("initContainers") or []:
        own = read(container)
        if container.get("restartPolicy") == "Always":
            add_into(running, own)
            add_into(sidecars, own)
            _max_into(init_peak, sidecars)
        else:
            step = dict(sidecars)
            add_into(step, own)
            _max_into(init_peak, step)
    _max_into(running, init_peak)
    if overhead:
        extra = resource_list(spec.get("overhead"))
        if limits:  # overhead raises a limit that exists; it does not invent one
            extra = {k: q for k, q in extra.items() if k in running and running[k].value}
        add_into(running, extra)
    return running


def pod_requests(pod: Mapping[str, Any], *, overhead: bool = False,
                 defaults: Mapping[str, Quantity] | None = None) -> ResourceList:
    """What the pod asks for at its peak (``overhead`` adds ``spec.overhead``, as quota does).

    ``defaults`` stands in for a resource a container does not request at all (the
    scheduler's non-zero requests for scoring: 100m cpu, 200Mi memory, as kube-scheduler's
    ``NonMissingContainerRequests``); an explicit zero stays zero."""
    if not defaults:
        return _pod_total(pod, container_requests, overhead, False)
    filled = dict(defaults)

    def read(container: Mapping[str, Any]) -> ResourceList:
        return {**filled, **container_requests(container)}

    return _pod_total(pod, read, overhead, False)


def pod_limits(pod: Mapping[str, Any], *, overhead: bool = False) -> ResourceList:
    return _pod_total(pod, container_limits, overhead, True)
