"""Services: defaults, port and type validation, and the allocated values (cluster IP,
node ports) that survive an update which leaves them out. Allocation itself needs cluster
state, so the registry does it: :attr:`ServiceStrategy.needs_cluster_ip` tells it to, and
:meth:`wants_cluster_ip`, :meth:`apply_cluster_ip` and :meth:`node_ports_wanted` say where.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause

from .base import BaseStrategy
from .causes import (
    child,
    duplicate,
    forbidden,
    immutable,
    index,
    invalid,
    mappings,
    one_of,
    required,
)
from .containers import validate_port_number
from .meta import validate_labels
from .names import dns1123_label, dns1123_subdomain, port_name

__all__ = ["ServiceStrategy"]

_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _default_ports(spec: dict[str, Any]) -> None:
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, "") and "port" in port:
                port["targetPort"] = port["port"]


def _default_spec(spec: dict[str, Any]) -> None:
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
        config.setdefault("timeoutSeconds", 10800)
    _default_ports(spec)
    if kind == "ExternalName":
        return
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("ipFamilies", ["IPv4"])
    if kind in _NODE_PORT_TYPES:
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    elif spec.get("clusterIPs") and not spec.get("clusterIP"):
        spec["clusterIP"] = spec["clusterIPs"][0]


def _validate_target_port(value: Any, field: str) -> list[Cause]:
    if isinstance(value, str):
        return [invalid(field, value, msg) for msg in port_name(value)]
    return validate_port_number(value, field)


def _validate_ports(spec: Mapping[str, Any]) -> list[Cause]:
    ports = mappings(spec.get("ports"))
    errs: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = index("spec.ports", i)
        name = port.get("name")
        if not name and len(ports) > 1:
            errs.append(required(child(p, "name")))
        elif name:
            errs += [invalid(child(p, "name"), name, msg) for msg in dns1123_label(str(name))]
            if name in names:
                errs.append(duplicate(child(p, "name"), name))
            names.add(name)
        errs += validate_port_number(port.get("port"), child(p, "port"))
        errs += one_of(port.get("protocol"), child(p, "protocol"), _PROTOCOLS)
        if port.get("targetPort") is not None:
            errs += _validate_target_port(port["targetPort"], child(p, "targetPort"))
        if port.get("nodePort"):
            if spec.get("type") not in _NODE_PORT_TYPES:
                errs.append(forbidden(child(p, "nodePort"),
                                      f"may not be used when `type` is '{spec.get('type')}'"))
            errs += validate_port_number(port["nodePort"], child(p, "nodePort"))
    return errs


def _validate_addresses(spec: Mapping[str, Any]) -> list[Cause]:
    errs: list[Cause] = []
    if spec.get("type") == "ExternalName":
        name = spec.get("externalName")
        if not name:
            errs.append(required("spec.externalName"))
        else:
            errs += [invalid("spec.externalName", name, m) for m in dns1123_subdomain(name)]
        if spec.get("clusterIP"):
            errs.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        return errs
    for i, ip in enumerate(spec.get("clusterIPs") or []):
        if ip != "None":
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                errs.append(invalid(index("spec.clusterIPs", i), ip, _IP_MSG))
    return errs


def _drop_type_dependent(spec: dict[str, Any], old_spec: Mapping[str, Any]) -> None:
    kind, old_kind = spec.get("type"), old_spec.get("type")
    if kind == old_kind:
        return
    unchanged: list[str] = []
    if kind == "ExternalName":
        unchanged += ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy",
                      "internalTrafficPolicy"]
    if kind not in _NODE_PORT_TYPES and old_kind in _NODE_PORT_TYPES:
        unchanged.append("externalTrafficPolicy")
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        if [p.get("nodePort") for p in ports] == [
                p.get("nodePort") for p in mappings(old_spec.get("ports"))]:
            for port in ports:
                port.pop("nodePort", None)
    if kind != "LoadBalancer" and old_kind == "LoadBalancer":
        unchanged.append("allocateLoadBalancerNodePorts")
    for f in unchanged:
        if spec.get(f) == old_spec.get(f):
            spec.pop(f, None)


class ServiceStrategy(BaseStrategy):
    """Services: names are DNS-1035 labels; status starts ``{"loadBalancer": {}}``."""

    name_rule = "dns1035"
    needs_cluster_ip = True

    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            _default_spec(spec)

    def initial_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {"loadBalancer": {}}

    def carry_over(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        """Keep the allocated cluster IP and node ports an update left out (so that
        ``kubectl replace`` of a file without them works), and drop the ones a type change
        made meaningless if the client merely left them as they were."""
        spec, old_spec = new.get("spec"), _spec(old)
        if not isinstance(spec, dict):
            return
        _drop_type_dependent(spec, old_spec)
        if spec.get("type") == "ExternalName":
            return
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = copy.deepcopy(old_spec.get("clusterIPs")
                                               or [old_spec["clusterIP"]])
        if spec.get("type") in _NODE_PORT_TYPES and old_spec.get("type") in _NODE_PORT_TYPES:
            old_ports = {p.get("name", ""): p.get("nodePort") for p in
                         mappings(old_spec.get("ports"))}
            used = {p.get("nodePort") for p in mappings(spec.get("ports"))}
            for port in spec.get("ports") or []:
                if isinstance(port, dict) and not port.get("nodePort"):
                    previous = old_ports.get(port.get("name", ""))
                    if previous and previous not in used:
                        port["nodePort"] = previous

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        spec = _spec(obj)
        errs = one_of(spec.get("type"), "spec.type", _TYPES)
        headless = spec.get("clusterIP") == "None"
        if not spec.get("ports") and not headless and spec.get("type") != "ExternalName":
            errs.append(required("spec.ports"))
        errs += _validate_ports(spec)
        errs += one_of(spec.get("sessionAffinity"), "spec.sessionAffinity", ("ClientIP", "None"))
        errs += validate_labels(spec.get("selector"), "spec.selector")
        return errs + _validate_addresses(spec)

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        spec, old_ip = _spec(new), _spec(old).get("clusterIP")
        if spec.get("type") != "ExternalName" and old_ip and spec.get("clusterIP") != old_ip:
            return [immutable("spec.clusterIP", spec.get("clusterIP") or "")]
        return []

    # --- allocation hooks for the registry ----------------------------------------------

    @staticmethod
    def wants_cluster_ip(obj: Mapping[str, Any]) -> bool:
        """True when the service needs the registry to allocate a cluster IP."""
        spec = _spec(obj)
        return spec.get("type") != "ExternalName" and not spec.get("clusterIP")

    @staticmethod
    def apply_cluster_ip(obj: dict[str, Any], ip: str) -> None:
        """Record an allocated cluster IP (``clusterIP`` and ``clusterIPs``)."""
        spec = obj.setdefault("spec", {})
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    @staticmethod
    def node_ports_wanted(obj: Mapping[str, Any]) -> list[int]:
        """Indexes of ``spec.ports`` that need a node port allocated (NodePort and
        LoadBalancer services, ports without one); the registry sets ``nodePort``."""
        spec = _spec(obj)
        if spec.get("type") not in _NODE_PORT_TYPES:
            return []
        return [i for i, p in enumerate(mappings(spec.get("ports"))) if not p.get("nodePort")]
