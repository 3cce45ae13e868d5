"""What the service proxy should serve, computed from Services and EndpointSlices (kube-proxy's
``ServicePortMap`` and ``EndpointsMap``): pure, so it is tested without sockets.

A *frontend* is one address a client connects to — ``ClusterIP:port`` for every port of every
Service with a cluster IP, and ``nodeIP:nodePort`` for NodePort and LoadBalancer Services —
with its protocol.  Its *backends* are the ready endpoints of the Service's EndpointSlices for
that port (by port name), or, when none is ready, the serving-and-terminating ones (kube-proxy's
fallback so connections drain during a rollout).  Headless Services (clusterIP None) and
ExternalName Services have no frontends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Backend", "Frontend", "build_table"]

Obj = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class Frontend:
    ip: str
    port: int
    protocol: str  # TCP or UDP
    service: str  # namespace/name
    port_name: str
    affinity_seconds: int = 0  # sessionAffinity ClientIP timeout; 0 = none


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int


def _affinity(spec: Obj) -> int:
    if spec.get("sessionAffinity") != "ClientIP":
        return 0
    cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    return int(cfg.get("timeoutSeconds") or 10800)


def frontends(service: Obj, node_ip: str) -> list[Frontend]:
    spec = service.get("spec") or {}
    meta = service.get("metadata") or {}
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    stype = spec.get("type") or "ClusterIP"
    if stype == "ExternalName":
        return []
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")])
           if ip and ip != "None"]
    affinity = _affinity(spec)
    out: list[Frontend] = []
    for p in spec.get("ports") or ():
        proto = p.get("protocol") or "TCP"
        if proto not in ("TCP", "UDP"):
            continue  # SCTP: not served by this proxy
        name = p.get("name") or ""
        for ip in ips:
            out.append(Frontend(ip, int(p["port"]), proto, key, name, affinity))
        if stype in ("NodePort", "LoadBalancer") and p.get("nodePort") and node_ip:
            out.append(Frontend(node_ip, int(p["nodePort"]), proto, key, name, affinity))
    return out


def backends(slices: Iterable[Obj], port_name: str, protocol: str) -> list[Backend]:
    ready: list[Backend] = []
    draining: list[Backend] = []
    for s in slices:
        if s.get("addressType", "IPv4") != "IPv4":
            continue
        port = next((int(p["port"]) for p in s.get("ports") or ()
                     if (p.get("name") or "") == port_name
                     and (p.get("protocol") or "TCP") == protocol and p.get("port")), None)
        if port is None:
            continue
        for ep in s.get("endpoints") or ():
            cond = ep.get("conditions") or {}
            is_ready = cond.get("ready") is not False  # nil means ready
            serving = cond.get("serving", is_ready) is not False
            terminating = bool(cond.get("terminating"))
            for addr in (ep.get("addresses") or ())[:1]:
                if is_ready and not terminating:
                    ready.append(Backend(addr, port))
                elif serving and terminating:
                    draining.append(Backend(addr, port))
    return sorted(set(ready or draining), key=lambda b: (b.ip, b.port))


def build_table(services: Iterable[Obj], slices: Iterable[Obj],
                node_ip: str) -> dict[Frontend, list[Backend]]:
    """Every frontend this node serves, with its current backends (possibly none: a client
    then gets its connection refused, as with kube-proxy's REJECT rule)."""
    by_service: dict[str, list[Obj]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            by_service.setdefault(f"{meta.get('namespace', '')}/{name}", []).append(s)
    table: dict[Frontend, list[Backend]] = {}
    for svc in services:
        for fe in frontends(svc, node_ip):
            table[fe] = backends(by_service.get(fe.service, ()), fe.port_name, fe.protocol)
    return table
