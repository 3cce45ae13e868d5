"""Tables for core/v1 cluster and configuration objects: Namespace, Node, ConfigMap, Secret,
ServiceAccount, ResourceQuota and LimitRange, plus coordination/v1 Lease."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from control.apiserver.tables._columns import AGE, CREATED, NAME, Column, Printer
from control.apiserver.tables._fields import (
    NONE,
    UNKNOWN,
    age,
    condition_status,
    field,
    items,
    mapping,
    text,
)

__all__ = ["PRINTERS"]

_ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"
_LEGACY_ROLE_LABEL = "kubernetes.io/role"


def _name(obj: Mapping[str, Any]) -> str:
    return text(obj, "metadata", "name")


def _namespace_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [_name(obj), text(obj, "status", "phase", default="Active"), age(obj, now)]


# --- Node -----------------------------------------------------------------------------------


def _node_status(node: Mapping[str, Any]) -> str:
    """The node's Ready condition as "Ready", "NotReady" (False or Unknown) or "Unknown" (no
    such condition), with ",SchedulingDisabled" appended for a cordoned node."""
    ready = condition_status(items(node, "status", "conditions"), "Ready")
    parts = ["Unknown" if ready is None else "Ready" if ready == "True" else "NotReady"]
    if field(node, "spec", "unschedulable") is True:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_roles(node: Mapping[str, Any]) -> str:
    roles: set[str] = set()
    for key, value in mapping(node, "metadata", "labels").items():
        if key.startswith(_ROLE_LABEL_PREFIX) and key != _ROLE_LABEL_PREFIX:
            roles.add(key[len(_ROLE_LABEL_PREFIX) :])
        elif key == _LEGACY_ROLE_LABEL and isinstance(value, str) and value:
            roles.add(value)
    return ",".join(sorted(roles)) or NONE


def _node_address(node: Mapping[str, Any], kind: str) -> str:
    for address in items(node, "status", "addresses"):
        if address.get("type") == kind:
            return text(address, "address")
    return NONE


def _node_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    info = mapping(obj, "status", "nodeInfo")
    return [
        _name(obj),
        _node_status(obj),
        _node_roles(obj),
        age(obj, now),
        text(info, "kubeletVersion"),
        _node_address(obj, "InternalIP"),
        _node_address(obj, "ExternalIP"),
        text(info, "osImage", default=UNKNOWN),
        text(info, "kernelVersion", default=UNKNOWN),
        text(info, "containerRuntimeVersion", default=UNKNOWN),
    ]


# --- configuration --------------------------------------------------------------------------


def _configmap_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    count = len(mapping(obj, "data")) + len(mapping(obj, "binaryData"))
    return [_name(obj), count, age(obj, now)]


def _secret_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    # stringData is write-only and normally merged into data on write; count it in case not.
    keys = set(mapping(obj, "data")) | set(mapping(obj, "stringData"))
    return [_name(obj), text(obj, "type", default="Opaque"), len(keys), age(obj, now)]


def _serviceaccount_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    secrets = field(obj, "secrets")
    return [_name(obj), len(secrets) if isinstance(secrets, list) else 0, age(obj, now)]


def _lease_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [_name(obj), text(obj, "spec", "holderIdentity"), age(obj, now)]


# --- quotas and limits ----------------------------------------------------------------------


def _quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return "0"
    return str(value)


def _quota_columns(obj: Mapping[str, Any]) -> tuple[str, str]:
    """The Request and Limit cells: "name: used/hard" per resource in ``status.hard``, sorted;
    resources named ``limits.*`` go to Limit, all others to Request."""
    hard, used = mapping(obj, "status", "hard"), mapping(obj, "status", "used")
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        target = limits if resource.startswith("limits.") else requests
        target.append(f"{resource}: {_quantity(used.get(resource))}/{_quantity(hard[resource])}")
    return ", ".join(requests), ", ".join(limits)


def _quota_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    request, limit = _quota_columns(obj)
    return [_name(obj), age(obj, now), request, limit]


def _count(name: str, description: str) -> Column:
    return Column(name, description, type="integer")


def _wide(name: str, description: str) -> Column:
    return Column(name, description, priority=1)


PRINTERS: dict[str, Printer] = {
    "Namespace": Printer(
        (NAME, Column("Status", "The status of the namespace."), AGE), _namespace_cells
    ),
    "Node": Printer(
        (
            NAME,
            Column("Status", "The status of the node."),
            Column("Roles", "The roles of the node."),
            AGE,
            Column("Version", "Kubelet version reported by the node."),
            _wide("Internal-IP", "The node's first InternalIP address."),
            _wide("External-IP", "The node's first ExternalIP address."),
            _wide("OS-Image", "OS image reported by the node."),
            _wide("Kernel-Version", "Kernel version reported by the node."),
            _wide("Container-Runtime", "Container runtime version reported by the node."),
        ),
        _node_cells,
    ),
    "ConfigMap": Printer(
        (NAME, _count("Data", "Number of keys in data and binaryData."), AGE), _configmap_cells
    ),
    "Secret": Printer(
        (
            NAME,
            Column("Type", "Used to facilitate programmatic handling of secret data."),
            _count("Data", "Number of keys in the secret's data."),
            AGE,
        ),
        _secret_cells,
    ),
    "ServiceAccount": Printer(
        (NAME, _count("Secrets", "Number of secrets the service account refers to."), AGE),
        _serviceaccount_cells,
    ),
    "Lease": Printer(
        (NAME, Column("Holder", "The identity of the current holder of the lease."), AGE),
        _lease_cells,
    ),
    "ResourceQuota": Printer(
        (
            NAME,
            AGE,
            Column("Request", "Used/hard quota of each resource other than limits.*."),
            Column("Limit", "Used/hard quota of each limits.* resource."),
        ),
        _quota_cells,
    ),
    "LimitRange": CREATED,
}
