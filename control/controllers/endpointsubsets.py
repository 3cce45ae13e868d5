"""core/v1 Endpoints subsets, as the Endpoints controller writes them (kubernetes
``pkg/controller/endpoint/endpoints_controller.go`` and ``pkg/api/v1/endpoints/util.go``).

:func:`build_subsets` turns a Service and its pods into subsets; :func:`repack` puts them in
the canonical layout (addresses grouped by the set of ports they serve, a not-ready address
never listed as ready for a port, everything sorted) so two computations of the same state
compare equal; :func:`truncate` caps an Endpoints object at :data:`MAX_CAPACITY` addresses,
ready ones first, each subset keeping its share.  Pure.
"""

from __future__ import annotations

import ipaddress
import json
import math
from typing import Any

from .endpointutil import (
    find_port,
    pod_ips,
    should_pod_be_in_endpoints,
    should_set_hostname,
    target_ref,
)
from .podutil import is_pod_ready

__all__ = ["MAX_CAPACITY", "OVER_CAPACITY", "build_subsets", "repack", "subsets_equal",
           "truncate"]

Obj = dict[str, Any]
MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"


def _address(svc: Obj, pod: Obj) -> Obj | None:
    """The pod's address of the Service's (first) IP family, or None."""
    spec = svc.get("spec") or {}
    families = spec.get("ipFamilies") or []
    want = 6 if families and families[0] == "IPv6" else 4
    if not families:
        ip = spec.get("clusterIP") or ""
        probe = ip if ip and ip != "None" else (pod.get("status") or {}).get("podIP") or ""
        try:
            want = ipaddress.ip_address(probe).version
        except ValueError:
            want = 4
    for ip in pod_ips(pod):
        if ipaddress.ip_address(ip).version == want:
            addr: Obj = {"ip": ip, "nodeName": (pod.get("spec") or {}).get("nodeName") or "",
                         "targetRef": target_ref(pod)}
            if not addr["nodeName"]:
                del addr["nodeName"]
            if should_set_hostname(pod, svc):
                addr["hostname"] = pod["spec"]["hostname"]
            return addr
    return None


def build_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """The repacked subsets for ``svc`` over ``pods`` (the pods its selector matches)."""
    spec = svc.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    raw: list[Obj] = []
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, publish):
            continue
        addr = _address(svc, pod)
        if addr is None:
            continue
        group = "addresses" if publish or is_pod_ready(pod) else "notReadyAddresses"
        ports = spec.get("ports") or []
        if not ports:
            if spec.get("clusterIP") == "None":
                raw.append({group: [addr], "ports": []})
            continue
        for sp in ports:
            number = find_port(pod, sp)
            if number is None:
                continue
            port: Obj = {"name": sp.get("name") or "", "port": number,
                         "protocol": sp.get("protocol") or "TCP"}
            if sp.get("appProtocol"):
                port["appProtocol"] = sp["appProtocol"]
            raw.append({group: [addr], "ports": [port]})
    return repack(raw)


def _canon(o: Any) -> str:
    return json.dumps(o, sort_keys=True, separators=(",", ":"))


def _addr_key(a: Obj) -> tuple[str, str]:
    return (str(a.get("ip", "")), str((a.get("targetRef") or {}).get("uid", "")))


def repack(subsets: list[Obj]) -> list[Obj]:
    """``RepackSubsets``: the canonical form of ``subsets`` (a subset without ports, as a
    headless Service without ports has, keeps its addresses)."""
    addrs: dict[tuple[str, str], Obj] = {}
    by_port: dict[str, dict[tuple[str, str], bool]] = {}
    port_of: dict[str, Obj | None] = {}
    for ss in subsets:
        ports: list[Obj | None] = list(ss.get("ports") or []) or [None]  # None: no port
        for ready, group in ((True, "addresses"), (False, "notReadyAddresses")):
            for a in ss.get(group) or ():
                k = _addr_key(a)
                addrs.setdefault(k, a)
                for p in ports:
                    pk = _canon(p)
                    port_of[pk] = p
                    seen = by_port.setdefault(pk, {})
                    seen[k] = seen.get(k, True) and ready  # not-ready wins
    groups: dict[str, tuple[dict[tuple[str, str], bool], list[Obj]]] = {}
    for pk, members in by_port.items():
        gk = _canon(sorted((k, r) for k, r in members.items()))
        entry = groups.setdefault(gk, (members, []))
        port = port_of[pk]
        if port is not None:
            entry[1].append(port)
    return sort_subsets([_subset(addrs, members, ports) for members, ports in groups.values()])


def _subset(addrs: dict[tuple[str, str], Obj], members: dict[tuple[str, str], bool],
            ports: list[Obj]) -> Obj:
    ss: Obj = {}
    ready = [addrs[k] for k, r in members.items() if r]
    not_ready = [addrs[k] for k, r in members.items() if not r]
    if ready:
        ss["addresses"] = ready
    if not_ready:
        ss["notReadyAddresses"] = not_ready
    if ports:
        ss["ports"] = ports
    return ss


def sort_subsets(subsets: list[Obj]) -> list[Obj]:
    for ss in subsets:
        for group in ("addresses", "notReadyAddresses"):
            if ss.get(group):
                ss[group] = sorted(ss[group], key=_addr_key)
        if ss.get("ports"):
            ss["ports"] = sorted(ss["ports"], key=_canon)
    return sorted(subsets, key=_canon)


def _strip_rv(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _strip_rv(v) for k, v in o.items()
                if not (k == "resourceVersion" and "uid" in o)}
    if isinstance(o, list):
        return [_strip_rv(v) for v in o]
    return o


def subsets_equal(a: list[Obj] | None, b: list[Obj] | None) -> bool:
    """Equal, ignoring the pods' resourceVersions in the target references."""
    return _canon(_strip_rv(a or [])) == _canon(_strip_rv(b or []))


def count(subsets: list[Obj]) -> int:
    return sum(len(ss.get("addresses") or ()) + len(ss.get("notReadyAddresses") or ())
               for ss in subsets)


def truncate(subsets: list[Obj]) -> bool:
    """Cut ``subsets`` (in place) to :data:`MAX_CAPACITY` addresses; True if anything was
    cut.  Ready addresses are kept before not-ready ones; each subset keeps its proportion."""
    ready = sum(len(ss.get("addresses") or ()) for ss in subsets)
    not_ready = sum(len(ss.get("notReadyAddresses") or ()) for ss in subsets)
    if ready + not_ready <= MAX_CAPACITY:
        return False
    cut_ready = ready > MAX_CAPACITY
    limit = MAX_CAPACITY if cut_ready else MAX_CAPACITY - ready
    total = ready if cut_ready else not_ready
    room = limit
    for ss in subsets:
        group = "addresses" if cut_ready else "notReadyAddresses"
        have = ss.get(group) or []
        share = min(room, math.ceil(len(have) / total * limit)) if total else 0
        ss[group] = have[:share]
        if cut_ready:
            ss["notReadyAddresses"] = []
        room -= len(ss[group])
    return True
