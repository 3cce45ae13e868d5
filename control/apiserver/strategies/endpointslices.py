"""EndpointSlices (discovery.k8s.io/v1): a Service's backends, labelled
``kubernetes.io/service-name``.  Defaults of ``SetDefaults_EndpointPort`` (name "", protocol
TCP), validation of ``ValidateEndpointSlice`` (addresses of the slice's type, ports, hints),
``addressType`` fixed after create, and a generation bumped by any change outside metadata.

Kubernetes also refuses loopback and link-local addresses (``ValidateNonSpecialIP``); ketch's
pods live on 127.0.0.0/8 (DESIGN.md, "Pod network without root"), so, as for Endpoints, any
well-formed address of the right family is accepted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause

from .base import BaseStrategy
from .causes import (
    as_mapping,
    child,
    duplicate,
    immutable,
    index,
    invalid,
    mappings,
    not_supported,
    one_of,
    required,
)
from .meta import validate_labels
from .names import dns1123_label, dns1123_subdomain, label_value, qualified_name

__all__ = ["ADDRESS_TYPES", "SERVICE_NAME_LABEL", "EndpointSliceStrategy", "too_many"]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_MAX_ADDRESSES, _MAX_ENDPOINTS, _MAX_PORTS = 100, 1000, 20000
_MAX_TOPOLOGY, _MAX_HINTS = 16, 8


def too_many(field: str, n: int, limit: int) -> Cause:
    """``field.TooMany``: a list longer than its limit."""
    return Cause("FieldValueTooMany", f"Too many: {n}: must have at most {limit} items", field)


def _fqdn(value: str, path: str) -> list[Cause]:
    """``IsFullyQualifiedDomainName``: a subdomain of at least two labels (a final dot is
    allowed)."""
    if not value:
        return [required(path)]
    name = value.removesuffix(".")
    problems = dns1123_subdomain(name)
    if problems:
        return [invalid(path, name, ",".join(problems))]
    if len(name.split(".")) < 2:
        return [invalid(path, name, "should be a domain with at least two segments separated "
                                    "by dots")]
    for label in name.split("."):
        problems = dns1123_label(label)
        if problems:
            return [invalid(path, label, ",".join(problems))]
    return []


def _address(value: Any, kind: Any, path: str) -> list[Cause]:
    text = value if isinstance(value, str) else ""
    if kind == "FQDN":
        return _fqdn(text, path)
    family = {"IPv4": ipaddress.IPv4Address, "IPv6": ipaddress.IPv6Address}.get(str(kind))
    if family is None:
        return []  # an unknown address type is reported once, on addressType
    try:
        family(text)
    except ValueError:
        return [invalid(path, value, f"must be a valid {kind} address")]
    return []


def _hints(hints: Mapping[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for group, check in (("forZones", label_value), ("forNodes", dns1123_subdomain)):
        entries = mappings(hints.get(group))
        gp = child(path, group)
        if len(entries) > _MAX_HINTS:
            errs.append(too_many(gp, len(entries), _MAX_HINTS))
            continue
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            p = child(index(gp, i), "name")
            name = str(entry.get("name") or "")
            if name in seen:
                errs.append(duplicate(p, name))
            seen.add(name)
            errs += [invalid(p, name, msg) for msg in check(name)]
    return errs


def _endpoints(endpoints: Any, kind: Any) -> list[Cause]:
    items = mappings(endpoints)
    if len(items) > _MAX_ENDPOINTS:
        return [too_many("endpoints", len(items), _MAX_ENDPOINTS)]
    errs: list[Cause] = []
    for i, ep in enumerate(items):
        p = index("endpoints", i)
        raw = ep.get("addresses")
        addresses: list[Any] = raw if isinstance(raw, list) else []
        ap = child(p, "addresses")
        if not addresses:
            errs.append(required(ap, "must contain at least 1 address"))
        elif len(addresses) > _MAX_ADDRESSES:
            errs.append(too_many(ap, len(addresses), _MAX_ADDRESSES))
        for j, address in enumerate(addresses):
            errs += _address(address, kind, index(ap, j))
        if ep.get("nodeName") is not None:
            node = str(ep["nodeName"])
            errs += [invalid(child(p, "nodeName"), node, m) for m in dns1123_subdomain(node)]
        topology = as_mapping(ep.get("deprecatedTopology"))
        if len(topology) > _MAX_TOPOLOGY:
            errs.append(too_many(child(p, "deprecatedTopology"), len(topology), _MAX_TOPOLOGY))
        errs += validate_labels(ep.get("deprecatedTopology"), child(p, "deprecatedTopology"))
        if ep.get("hostname") is not None:
            host = str(ep["hostname"])
            errs += [invalid(child(p, "hostname"), host, m) for m in dns1123_label(host)]
        if ep.get("hints") is not None:
            errs += _hints(as_mapping(ep["hints"]), child(p, "hints"))
    return errs


def _ports(ports: Any) -> list[Cause]:
    items = mappings(ports)
    if len(items) > _MAX_PORTS:
        return [too_many("ports", len(items), _MAX_PORTS)]
    errs: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(items):
        p = index("ports", i)
        name = str(port.get("name") or "")
        if name:
            errs += [invalid(child(p, "name"), name, m) for m in dns1123_label(name)]
        if name in names:
            errs.append(duplicate(child(p, "name"), name))
        names.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            errs.append(required(child(p, "protocol")))
        elif protocol not in _PROTOCOLS:
            errs.append(not_supported(child(p, "protocol"), protocol, _PROTOCOLS))
        if port.get("appProtocol") is not None:
            app = str(port["appProtocol"])
            errs += [invalid(child(p, "appProtocol"), app, m) for m in qualified_name(app)]
    return errs


class EndpointSliceStrategy(BaseStrategy):
    """See the module docstring.  ``deprecatedTopology`` cannot be written through v1 (kube
    drops it silently), so it is dropped here too."""

    tracks_generation = True
    generation_paths = (("addressType",), ("endpoints",), ("ports",))

    def default(self, obj: dict[str, Any]) -> None:
        for port in obj.get("ports") or []:
            if isinstance(port, dict):
                if port.get("name") is None:
                    port["name"] = ""
                if port.get("protocol") is None:
                    port["protocol"] = "TCP"
        for ep in obj.get("endpoints") or []:
            if isinstance(ep, dict):
                ep.pop("deprecatedTopology", None)

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        kind = obj.get("addressType")
        errs = one_of(kind, "addressType", ADDRESS_TYPES)
        return errs + _endpoints(obj.get("endpoints"), kind) + _ports(obj.get("ports"))

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        if new.get("addressType") != old.get("addressType"):
            return [immutable("addressType", new.get("addressType"))]
        return []
