"""What the node lifecycle controller knows about each node's health, and the pure rules it
applies (kubernetes ``pkg/controller/nodelifecycle/node_lifecycle_controller.go``).

A node is alive while its agent renews its Lease (``kube-node-lease/NAME``) or changes its
Ready condition's heartbeat.  Staleness is judged on *this* controller's monotonic clock, from
when it last saw one of those change — never by comparing a timestamp the node wrote with the
local wall clock.  A node first seen now gets a full grace period from now (the startup grace
while it has never reported a Ready condition).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONDITION_TAINTS", "FULL", "INITIAL", "NORMAL", "NOT_READY", "NOT_READY_EXECUTE",
    "PARTIAL", "UNREACHABLE", "UNREACHABLE_EXECUTE", "UNSCHEDULABLE", "NodeHealth",
    "compute_zone_state", "mark_unknown", "observe", "ready_condition", "zone_key",
]

Obj = dict[str, Any]

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NOT_READY_EXECUTE = {"key": NOT_READY, "effect": "NoExecute"}
UNREACHABLE_EXECUTE = {"key": UNREACHABLE, "effect": "NoExecute"}
#: condition type -> {status: taint key} (``nodeConditionToTaintKeyStatusMap``)
CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": NOT_READY, "Unknown": UNREACHABLE},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
#: The conditions a silent node's are all set to Unknown (NetworkUnavailable is the network
#: provider's, not the agent's).
AGENT_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"

INITIAL, NORMAL, PARTIAL, FULL = "Initial", "Normal", "PartialDisruption", "FullDisruption"


@dataclass(frozen=True)
class NodeHealth:
    """The last signs of life seen, and when (``probe``: this controller's monotonic clock)."""

    probe: float
    ready_transition: float
    ready: Obj | None  # the Ready condition as last seen (or written)
    lease_renew: str | None = None


def ready_condition(node: Obj) -> Obj | None:
    for c in (node.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c
    return None


def zone_key(node: Obj) -> str:
    """``topology.GetZoneKey``: region and zone, "" when the node has neither."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    region = labels.get("topology.kubernetes.io/region") or labels.get(
        "failure-domain.beta.kubernetes.io/region", "")
    zone = labels.get("topology.kubernetes.io/zone") or labels.get(
        "failure-domain.beta.kubernetes.io/zone", "")
    return f"{region}:\x00:{zone}" if region or zone else ""


def excluded_from_disruption(node: Obj) -> bool:
    return EXCLUDE_DISRUPTION in ((node.get("metadata") or {}).get("labels") or {})


def observe(saved: NodeHealth | None, node: Obj, lease: Obj | None, now: float
            ) -> NodeHealth:
    """``tryUpdateNodeHealth``'s bookkeeping: the health record after looking at ``node``
    and its ``lease`` at monotonic time ``now``."""
    current = ready_condition(node)
    health = saved
    if health is None:
        health = NodeHealth(now, now, copy.deepcopy(current))
    elif health.ready is None and current is not None:
        health = NodeHealth(now, now, copy.deepcopy(current), health.lease_renew)
    elif health.ready is not None and current is None:
        health = NodeHealth(now, now, None, health.lease_renew)
    elif health.ready is not None and current is not None and \
            health.ready.get("lastHeartbeatTime") != current.get("lastHeartbeatTime"):
        moved = health.ready.get("lastTransitionTime") != current.get("lastTransitionTime")
        health = NodeHealth(now, now if moved else health.ready_transition,
                            copy.deepcopy(current), health.lease_renew)
    renew = ((lease or {}).get("spec") or {}).get("renewTime")
    if lease is not None and renew and (saved is None or saved.lease_renew != renew):
        health = NodeHealth(now, health.ready_transition, health.ready, renew)
    return health


def mark_unknown(node: Obj, now: str) -> Obj:
    """A copy of ``node`` whose agent conditions all say Unknown (``NodeStatusUnknown``, or
    ``NodeStatusNeverUpdated`` for a condition never posted)."""
    out = copy.deepcopy(node)
    status = out.setdefault("status", {})
    conditions: list[Obj] = status.setdefault("conditions", [])
    created = (node.get("metadata") or {}).get("creationTimestamp")
    for kind in AGENT_CONDITIONS:
        c = next((c for c in conditions if c.get("type") == kind), None)
        if c is None:
            conditions.append({"type": kind, "status": "Unknown",
                               "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status.",
                               "lastHeartbeatTime": created, "lastTransitionTime": now})
        elif c.get("status") != "Unknown":
            c.update(status="Unknown", reason="NodeStatusUnknown",
                     message="Kubelet stopped posting node status.", lastTransitionTime=now)
    return out


def compute_zone_state(ready: list[Obj | None], threshold: float) -> tuple[int, str]:
    """(unhealthy nodes, state) of one zone from its nodes' Ready conditions: FullDisruption
    when none is Ready, PartialDisruption when more than 2 and at least ``threshold`` of them
    are not, Normal otherwise."""
    up = sum(1 for c in ready if c is not None and c.get("status") == "True")
    down = len(ready) - up
    if up == 0 and down > 0:
        return down, FULL
    if down > 2 and down / (down + up) >= threshold:
        return down, PARTIAL
    return down, NORMAL


def has_taint(node: Obj, taint: Obj) -> bool:
    return any(t.get("key") == taint["key"] and t.get("effect") == taint["effect"]
               for t in (node.get("spec") or {}).get("taints") or () if isinstance(t, dict))


def no_schedule_taints(node: Obj) -> list[Obj]:
    """The NoSchedule taints the node's conditions and ``spec.unschedulable`` call for
    (TaintNodesByCondition)."""
    out = []
    for c in (node.get("status") or {}).get("conditions") or ():
        key = CONDITION_TAINTS.get(c.get("type"), {}).get(c.get("status"))
        if key:
            out.append({"key": key, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable"):
        out.append({"key": UNSCHEDULABLE, "effect": "NoSchedule"})
    return out


def is_condition_taint(t: Obj) -> bool:
    """A NoSchedule taint this controller manages (a condition's, or unschedulable)."""
    if t.get("effect") != "NoSchedule":
        return False
    key = t.get("key")
    return key == UNSCHEDULABLE or any(key in m.values() for m in CONDITION_TAINTS.values())


#: Labels kept equal to their stable twins (``labelReconcileInfo``): stable -> beta.
LABEL_TWINS = {"kubernetes.io/os": "beta.kubernetes.io/os",
               "kubernetes.io/arch": "beta.kubernetes.io/arch"}


def labels_to_reconcile(node: Obj) -> dict[str, str]:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return {beta: labels[stable] for stable, beta in LABEL_TWINS.items()
            if stable in labels and labels.get(beta) != labels[stable]}
