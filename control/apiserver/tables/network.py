"""Tables for core/v1 Service and Endpoints and discovery/v1 EndpointSlice: addresses and
ports as kubectl shows them."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from control.apiserver.tables._columns import AGE, NAME, Column, Printer
from control.apiserver.tables._fields import (
    NONE,
    UNKNOWN,
    age,
    format_labels,
    items,
    mapping,
    number,
    strings,
    text,
)

__all__ = ["PRINTERS"]

_MAX_ENDPOINTS = 3


def _name(obj: Mapping[str, Any]) -> str:
    return text(obj, "metadata", "name")


# --- Service --------------------------------------------------------------------------------


def _cluster_ip(svc: Mapping[str, Any]) -> str:
    ips = strings(svc, "spec", "clusterIPs")
    return (ips[0] if ips else "") or text(svc, "spec", "clusterIP", default=NONE)


def _load_balancer_addresses(svc: Mapping[str, Any]) -> list[str]:
    found = [
        text(ingress, "ip") or text(ingress, "hostname")
        for ingress in items(svc, "status", "loadBalancer", "ingress")
    ]
    return list(dict.fromkeys(a for a in found if a))


def _external_ip(svc: Mapping[str, Any]) -> str:
    """spec.externalIPs, plus the load balancer's ingress addresses for a LoadBalancer (then
    "<pending>" until it has one), or the DNS name of an ExternalName service."""
    kind = text(svc, "spec", "type", default="ClusterIP")
    external = strings(svc, "spec", "externalIPs")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or NONE
    if kind == "LoadBalancer":
        return ",".join(_load_balancer_addresses(svc) + external) or "<pending>"
    if kind == "ExternalName":
        return text(svc, "spec", "externalName")
    return UNKNOWN


def _ports(svc: Mapping[str, Any]) -> str:
    """Each port as "port/protocol", or "port:nodePort/protocol" once a node port is set."""
    pieces = []
    for port in items(svc, "spec", "ports"):
        protocol = text(port, "protocol", default="TCP")
        node_port = number(port, "nodePort")
        exposed = f"{number(port, 'port')}:{node_port}" if node_port > 0 else number(port, "port")
        pieces.append(f"{exposed}/{protocol}")
    return ",".join(pieces) or NONE


def _service_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [
        _name(obj),
        text(obj, "spec", "type", default="ClusterIP"),
        _cluster_ip(obj),
        _external_ip(obj),
        _ports(obj),
        age(obj, now),
        format_labels(mapping(obj, "spec", "selector")),
    ]


# --- Endpoints ------------------------------------------------------------------------------


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _endpoint_list(obj: Mapping[str, Any]) -> str:
    """Ready "ip:port" pairs across subsets, the first three then " + N more..."; a subset
    without ports (a headless service) lists bare IPs; "<none>" when there are none."""
    shown: list[str] = []
    total = 0
    for subset in items(obj, "subsets"):
        addresses = [text(a, "ip") for a in items(subset, "addresses")]
        ports = items(subset, "ports")
        if ports:
            targets = [_host_port(ip, number(p, "port")) for p in ports for ip in addresses]
        else:
            targets = addresses
        total += len(targets)
        shown.extend(targets[: max(0, _MAX_ENDPOINTS - len(shown))])
    listed = ",".join(shown) or NONE
    if total > _MAX_ENDPOINTS:
        return f"{listed} + {total - _MAX_ENDPOINTS} more..."
    return listed


def _endpoints_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [_name(obj), _endpoint_list(obj), age(obj, now)]


# --- EndpointSlice --------------------------------------------------------------------------


def _first_three(values: list[str]) -> str:
    """kubectl's ``listWithMoreString``: three values, then " + N more..."; "<unset>" when
    there are none."""
    listed = ",".join(values[:_MAX_ENDPOINTS])
    if len(values) > _MAX_ENDPOINTS:
        return f"{listed} + {len(values) - _MAX_ENDPOINTS} more..."
    return listed or "<unset>"


def _slice_ports(obj: Mapping[str, Any]) -> str:
    """Each port's number, else its name, else "*" (all ports)."""
    shown = []
    for port in items(obj, "ports"):
        number_ = port.get("port")
        if isinstance(number_, int) and not isinstance(number_, bool):
            shown.append(str(number_))
        elif isinstance(port.get("name"), str):
            shown.append(port["name"])
        else:
            shown.append("*")
    return _first_three(shown)


def _slice_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    addresses = [a for ep in items(obj, "endpoints") for a in strings(ep, "addresses")]
    return [_name(obj), text(obj, "addressType"), _slice_ports(obj), _first_three(addresses),
            age(obj, now)]


PRINTERS: dict[str, Printer] = {
    "Service": Printer(
        (
            NAME,
            Column("Type", "How the service is exposed (ClusterIP, NodePort, ...)."),
            Column("Cluster-IP", "The IP address of the service inside the cluster."),
            Column("External-IP", "Addresses the service is reachable at from outside."),
            Column("Port(s)", "The ports exposed by the service."),
            AGE,
            Column("Selector", "Labels of the pods traffic is routed to.", priority=1),
        ),
        _service_cells,
    ),
    "Endpoints": Printer(
        (NAME, Column("Endpoints", "Addresses of the ready endpoints."), AGE),
        _endpoints_cells,
    ),
    "EndpointSlice": Printer(
        (
            NAME,
            Column("AddressType", "The type of address carried by this EndpointSlice."),
            Column("Ports", "The network ports exposed by each endpoint in this slice."),
            Column("Endpoints", "The addresses of the endpoints in this slice."),
            AGE,
        ),
        _slice_cells,
    ),
}
