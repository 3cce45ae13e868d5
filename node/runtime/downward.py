"""The downward API: a pod's own fields and resources as values, for ``env[].valueFrom`` and
for downwardAPI volume files (the kubelet's ``podFieldSelectorRuntimeValue`` and
``ExtractResourceValueByContainerName``).  Pure."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from control.api.quantity import QuantityError, parse_quantity

__all__ = ["DownwardError", "PodFacts", "field_ref_value", "resource_field_value"]


class DownwardError(ValueError):
    """A field path or resource the downward API does not offer."""


@dataclass(frozen=True)
class PodFacts:
    """What the node knows about a pod beyond its object: its addresses, and the node's
    allocatable resources (the value of a limit the container does not set)."""

    pod_ip: str = ""
    host_ip: str = ""
    node_allocatable: Mapping[str, str] = field(default_factory=dict)


def field_ref_value(pod: Mapping[str, Any], path: str, facts: PodFacts) -> str:
    """The value of ``fieldRef.fieldPath``: ``metadata.name|namespace|uid``,
    ``metadata.labels['k']``, ``metadata.annotations['k']``, ``metadata.labels`` and
    ``metadata.annotations`` (``k="v"`` lines, sorted), ``spec.nodeName``,
    ``spec.serviceAccountName``, ``status.podIP(s)``, ``status.hostIP(s)``."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    for prefix, key in (("metadata.labels['", "labels"), ("metadata.annotations['",
                                                             "annotations")):
        if path.startswith(prefix) and path.endswith("']"):
            return str((meta.get(key) or {}).get(path[len(prefix):-2], ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(items.items()))
    raise DownwardError(f"unsupported fieldPath: {path}")


def resource_field_value(pod: Mapping[str, Any], container_name: str, resource: str,
                         divisor: str | None, facts: PodFacts) -> str:
    """The value of ``resourceFieldRef``: ``limits.cpu|memory|ephemeral-storage`` or
    ``requests.*`` of the named container, divided by ``divisor`` and rounded up (CPU to at
    least 1).  An unset limit is the node's allocatable amount."""
    spec = pod.get("spec") or {}
    candidates = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    container = next((c for c in candidates if c.get("name") == container_name), None)
    if container is None:
        raise DownwardError(f"container {container_name!r} not found")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise DownwardError(f"unsupported resource: {resource}")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(name)
    if raw is None and kind == "limits":
        raw = facts.node_allocatable.get(name) or _host_allocatable(name)
    if raw is None:
        return "0"
    try:
        value = parse_quantity(raw)
        div = parse_quantity(divisor or "1") or 1
    except QuantityError as e:
        raise DownwardError(f"bad quantity in {resource}: {e}") from e
    result = math.ceil(value / div)
    if name == "cpu" and result < 1:
        result = 1
    return str(result)


def _host_allocatable(name: str) -> str | None:
    if name == "cpu":
        return str(os.cpu_count() or 1)
    if name == "memory":
        try:
            return str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError):
            return None
    return None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
