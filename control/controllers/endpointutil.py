"""What the Endpoints and EndpointSlice controllers share: which pods back a Service, on which
port, and which Services a pod change concerns (kubernetes ``staging/src/k8s.io/endpointslice``
``utils.go`` and ``util/controller_utils.go``, ``util/trigger_time_tracker.go``).

Pure functions over the JSON dicts the apiserver serves; nothing here changes its inputs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from control.api.clock import format_time, parse_time
from control.api.objects import meta as _meta
from control.api.selectors import LabelSelector, SelectorError, selector_from_set
from control.client import object_key

from .podutil import condition, is_pod_ready, is_terminal

__all__ = [
    "HEADLESS_LABEL", "LAST_CHANGE_TRIGGER_TIME", "TriggerTimeTracker", "find_port",
    "format_nano", "is_service_ip_set", "pod_endpoints_changed", "pod_ips",
    "service_selector", "services_for_pod", "should_pod_be_in_endpoints",
    "should_set_hostname", "target_ref",
]

Obj = dict[str, Any]
LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS_LABEL = "service.kubernetes.io/headless"



def service_selector(svc: Obj) -> LabelSelector | None:
    """The pods a Service selects; None when it has no selector (the Service's endpoints are
    written by someone else) or a selector that cannot be parsed."""
    sel = (svc.get("spec") or {}).get("selector")
    if sel is None or not isinstance(sel, dict):
        return None
    try:
        return selector_from_set({str(k): str(v) for k, v in sel.items()})
    except SelectorError:
        return None


def services_for_pod(services: Iterable[Obj], labels: dict[str, str] | None) -> set[str]:
    """Keys of the Services (all of one namespace) whose selector matches ``labels``.  A
    Service without a selector matches nothing, an empty selector everything."""
    out = set()
    for svc in services:
        sel = service_selector(svc)
        if sel is not None and sel.matches(labels or {}):
            out.add(object_key(svc))
    return out


def is_service_ip_set(svc: Obj) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Not terminal, has an IP, and (unless ``include_terminating``) not being deleted."""
    if is_terminal(pod):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or not _meta(pod).get("deletionTimestamp")


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == _meta(svc).get("name") \
        and _meta(svc).get("namespace") == _meta(pod).get("namespace")


def pod_ips(pod: Obj) -> list[str]:
    """The pod's IPs, normalised (``status.podIPs``, else ``status.podIP``)."""
    status = pod.get("status") or {}
    raw = [p.get("ip") for p in status.get("podIPs") or () if isinstance(p, dict)]
    if not raw and status.get("podIP"):
        raw = [status["podIP"]]
    out = []
    for ip in raw:
        try:
            out.append(str(ipaddress.ip_address(str(ip))))
        except ValueError:
            continue
    return out


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The container port a Service port's ``targetPort`` means on this pod: a number as is;
    a name looked up among the containers' (and restartable init containers') named ports of
    the same protocol.  None when the pod has no such port."""
    target = svc_port.get("targetPort")
    if target is None or target == "":
        target = svc_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or ())
    containers += [c for c in spec.get("initContainers") or ()
                   if isinstance(c, dict) and c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in (c.get("ports") or ()) if isinstance(c, dict) else ():
            if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                port = p.get("containerPort")
                return int(port) if isinstance(port, int) else None
    return None


def target_ref(pod: Obj) -> Obj:
    meta = _meta(pod)
    return {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
            "uid": meta.get("uid", "")}


def _ip_list(pod: Obj) -> list[str]:
    return [p.get("ip", "") for p in (pod.get("status") or {}).get("podIPs") or ()
            if isinstance(p, dict)]


def pod_endpoints_changed(old: Obj, new: Obj) -> tuple[bool, bool]:
    """(the pod changed in a way its endpoints show, its labels or hostname changed — which
    may change the Services it belongs to)."""
    labels_changed = (_meta(old).get("labels") or {}) != (_meta(new).get("labels") or {}) \
        or any((old.get("spec") or {}).get(k) != (new.get("spec") or {}).get(k)
               for k in ("hostname", "subdomain"))
    pod_changed = (
        _meta(old).get("deletionTimestamp") != _meta(new).get("deletionTimestamp")
        or is_pod_ready(old) != is_pod_ready(new)
        or _ip_list(old) != _ip_list(new)
        or (old.get("status") or {}).get("podIP") != (new.get("status") or {}).get("podIP")
        or (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase")
        or (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName"))
    return pod_changed, labels_changed


def format_nano(t: dt.datetime) -> str:
    """Go's RFC3339Nano (trailing zeros of the fraction dropped), as Kubernetes writes the
    trigger-time annotation."""
    if not t.microsecond:
        return format_time(t)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac}Z"


@dataclass
class _ServiceState:
    service_time: dt.datetime | None = None
    pod_times: dict[str, dt.datetime] = field(default_factory=dict)


class TriggerTimeTracker:
    """The ``last-change-trigger-time`` annotation: the earliest time among the changes
    (a pod's Ready transition, the Service's creation) seen since the previous sync of a
    Service; the Service's creation time on its first sync; None when nothing changed."""

    def __init__(self) -> None:
        self._states: dict[str, _ServiceState] = {}

    def compute(self, svc: Obj, pods: Iterable[Obj]) -> dt.datetime | None:
        key = object_key(svc)
        state = self._states.get(key)
        known = state is not None
        state = state or _ServiceState()
        earliest: dt.datetime | None = None
        times: dict[str, dt.datetime] = {}
        for pod in pods:
            ready = condition(pod, "Ready")
            t = parse_time((ready or {}).get("lastTransitionTime"))
            if t is None:
                continue
            name = _meta(pod).get("name", "")
            times[name] = t
            before = state.pod_times.get(name)
            if before is None or t > before:
                earliest = t if earliest is None or t < earliest else earliest
        svc_time = parse_time(_meta(svc).get("creationTimestamp"))
        if svc_time is not None and (state.service_time is None or svc_time > state.service_time):
            earliest = svc_time if earliest is None or svc_time < earliest else earliest
        self._states[key] = _ServiceState(svc_time, times)
        return earliest if known else svc_time

    def forget(self, key: str) -> None:
        self._states.pop(key, None)
