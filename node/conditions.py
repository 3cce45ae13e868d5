"""The Node object as the agent reports it, computed purely: labels, addresses, capacity and
allocatable, ``nodeInfo``, the daemon endpoint, and the four conditions (MemoryPressure,
DiskPressure, PIDPressure, Ready) with the kubelet's reasons and messages
(``pkg/kubelet/nodestatus/setters.go``).

Allocatable is capacity less the kubelet's default hard-eviction thresholds (memory.available
100Mi, nodefs.available 10%); kube-reserved and system-reserved are empty by default, as in
Kubernetes.  A condition's ``lastTransitionTime`` moves only when its status changes;
``lastHeartbeatTime`` is the time of this computation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from control.api.clock import format_time
from control.api.quantity import parse_quantity

from .config import KUBELET_VERSION, RUNTIME_VERSION, AgentConfig
from .machine import MachineFacts, Readings

__all__ = ["CONDITION_TYPES", "Transition", "allocatable", "capacity", "changed",
           "conditions", "node_object", "node_status", "transitions"]

CONDITION_TYPES = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
MEMORY_EVICTION_BYTES = 100 * 1024 * 1024
DISK_EVICTION_FRACTION = 0.10
PID_EVICTION_FRACTION = 0.05

# (type) -> (status False reason, message), (status True reason, message), event names
_PRESSURE = {
    "MemoryPressure": (("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                       ("KubeletHasInsufficientMemory",
                        "kubelet has insufficient memory available"),
                       ("NodeHasSufficientMemory", "NodeHasInsufficientMemory")),
    "DiskPressure": (("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                     ("KubeletHasDiskPressure", "kubelet has disk pressure"),
                     ("NodeHasNoDiskPressure", "NodeHasDiskPressure")),
    "PIDPressure": (("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
                    ("NodeHasSufficientPID", "NodeHasInsufficientPID")),
}


def _bytes(text: str) -> int:
    return int(parse_quantity(text))


def capacity(facts: MachineFacts, config: AgentConfig) -> dict[str, str]:
    """The machine's totals (memory and storage in Ki, as the kubelet writes them), with the
    configured overrides."""
    over = config.capacity
    cpu = over.get("cpu") or str(facts.cpus)
    memory = _bytes(over["memory"]) if "memory" in over else facts.memory_bytes
    disk = _bytes(over["ephemeral-storage"]) if "ephemeral-storage" in over \
        else facts.disk_bytes
    return {"cpu": cpu, "ephemeral-storage": f"{disk // 1024}Ki", "hugepages-1Gi": "0",
            "hugepages-2Mi": "0", "memory": f"{memory // 1024}Ki",
            "pods": str(over.get("pods") or config.max_pods)}


def allocatable(cap: Mapping[str, str]) -> dict[str, str]:
    """Capacity less the hard-eviction thresholds."""
    out = dict(cap)
    memory = max(0, _bytes(cap["memory"]) - MEMORY_EVICTION_BYTES)
    out["memory"] = f"{memory // 1024}Ki"
    disk = _bytes(cap["ephemeral-storage"])
    out["ephemeral-storage"] = str(int(disk * (1 - DISK_EVICTION_FRACTION)))
    return out


def _pressure(kind: str, r: Readings) -> bool | None:
    if kind == "MemoryPressure" and r.memory_available_bytes is not None:
        return r.memory_available_bytes < MEMORY_EVICTION_BYTES
    if kind == "DiskPressure" and r.disk_available_bytes is not None and r.disk_total_bytes:
        return r.disk_available_bytes < r.disk_total_bytes * DISK_EVICTION_FRACTION
    if kind == "PIDPressure" and r.pids_in_use is not None and r.pid_max:
        return r.pid_max - r.pids_in_use < r.pid_max * PID_EVICTION_FRACTION
    return None


def conditions(readings: Readings, not_ready: Sequence[str],
               previous: Sequence[Mapping[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    """The four conditions from the readings and the reasons the node is not ready (empty:
    Ready).  A pressure that cannot be read keeps its previous status (False at first)."""
    before = {c.get("type"): c for c in previous}
    stamp = format_time(now)
    out = []
    for kind in CONDITION_TYPES:
        if kind == "Ready":
            if not_ready:
                status, reason, message = "False", "KubeletNotReady", ", ".join(not_ready)
            else:
                status, reason, message = "True", "KubeletReady", "kubelet is posting ready status"
        else:
            p = _pressure(kind, readings)
            if p is None:
                p = (before.get(kind) or {}).get("status") == "True"
            status = "True" if p else "False"
            reason, message = _PRESSURE[kind][1 if p else 0]
        old = before.get(kind)
        same = old is not None and old.get("status") == status
        out.append({"type": kind, "status": status, "lastHeartbeatTime": stamp,
                    "lastTransitionTime": (old or {}).get("lastTransitionTime") if same
                    else stamp, "reason": reason, "message": message})
    return out


@dataclass(frozen=True)
class Transition:
    """A condition that changed (or appeared): the Normal event the kubelet records for it
    (``NodeReady``, ``NodeHasSufficientMemory`` …)."""

    type: str
    event: str


def transitions(old: Sequence[Mapping[str, Any]],
                new: Sequence[Mapping[str, Any]]) -> list[Transition]:
    before = {c.get("type"): c.get("status") for c in old}
    out = []
    for c in new:
        kind, status = c.get("type", ""), c.get("status")
        if before.get(kind) == status:
            continue
        if kind == "Ready":
            if kind in before:  # the kubelet tells no event for a Ready condition it adds
                out.append(Transition(kind, "NodeReady" if status == "True"
                                      else "NodeNotReady"))
        elif kind in _PRESSURE:
            out.append(Transition(kind, _PRESSURE[kind][2][1 if status == "True" else 0]))
    return out


def node_status(config: AgentConfig, facts: MachineFacts, *, port: int,
                conds: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole status the agent owns."""
    cap = capacity(facts, config)
    return {
        "addresses": [{"type": "InternalIP", "address": config.address},
                      {"type": "Hostname", "address": config.name}],
        "capacity": cap, "allocatable": allocatable(cap), "conditions": conds,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {"machineID": facts.machine_id, "systemUUID": facts.system_uuid,
                     "bootID": facts.boot_id, "kernelVersion": facts.kernel_version,
                     "osImage": facts.os_image, "containerRuntimeVersion": RUNTIME_VERSION,
                     "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                     "operatingSystem": facts.operating_system,
                     "architecture": facts.architecture},
    }


def node_object(config: AgentConfig, facts: MachineFacts,
                status: dict[str, Any]) -> dict[str, Any]:
    """The Node the agent registers: the kubelet's well-known labels, then the configured
    ones."""
    labels = {"beta.kubernetes.io/arch": facts.architecture,
              "beta.kubernetes.io/os": facts.operating_system,
              "kubernetes.io/arch": facts.architecture,
              "kubernetes.io/hostname": config.name,
              "kubernetes.io/os": facts.operating_system, **config.labels}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": config.name, "labels": labels,
                         "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach":
                                         "true"}},
            "spec": {}, "status": status}


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether ``new`` says something ``old`` does not, heartbeat times aside (the kubelet's
    ``nodeStatusHasChanged``)."""
    def strip(status: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in status.items() if k in new}
        out["conditions"] = sorted(
            ({k: v for k, v in c.items() if k != "lastHeartbeatTime"}
             for c in status.get("conditions") or [] if c.get("type") in CONDITION_TYPES),
            key=lambda c: str(c.get("type")))
        return out

    return strip(old) != strip(new)
