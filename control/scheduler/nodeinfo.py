"""One node as the scheduler sees it: the Node object's parsed parts and, kept incrementally,
everything placed on it — requested resources, host ports, the pods, and which of them carry
pod (anti-)affinity (kube-scheduler's ``NodeInfo``).

Adding or removing a pod is O(1) in the node's pods; nothing here ever scans the cluster.
``gen`` changes on every change of the node (object or allocation), ``obj_gen`` only when the
Node object changes: filter results that read only the object (taints, labels, cordon) are
cached against ``obj_gen``, the rest against ``gen``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from control.api.taints import node_taints

from .podinfo import HostPort, PodInfo
from .resources import Allocatable

__all__ = ["NodeInfo", "ports_conflict"]

ZONE_LABEL = "topology.kubernetes.io/zone"
# A node whose Ready condition is False or Unknown is treated as carrying the NoSchedule taint
# the node lifecycle controller puts on it (TaintNodesByCondition), so pods go only to Ready
# nodes even before that controller has acted.
_NOT_READY = {"False": {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
              "Unknown": {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}}
REGION_LABEL = "topology.kubernetes.io/region"


def ports_conflict(used: Mapping[HostPort, int], wanted: tuple[HostPort, ...]) -> bool:
    """Whether any wanted (ip, protocol, port) clashes with one in use; 0.0.0.0 clashes with
    every address (kube's ``HostPortInfo.CheckConflict``)."""
    for ip, proto, port in wanted:
        if ip == "0.0.0.0":
            if any(p == port and pr == proto and n > 0 for (_, pr, p), n in used.items()):
                return True
        elif used.get((ip, proto, port), 0) > 0 or used.get(("0.0.0.0", proto, port), 0) > 0:
            return True
    return False


def _ready_status(node: Mapping[str, Any]) -> str:
    """The Ready condition's status ("True", "False", "Unknown"), "" when not reported."""
    for c in (node.get("status") or {}).get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == "Ready":
            return str(c.get("status") or "")
    return ""


class NodeInfo:
    """Mutable; owned by :class:`~control.scheduler.cache.SchedulerCache`, read by plugins."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: Mapping[str, Any] | None = None
        self.labels: Mapping[str, str] = {}
        self.taints: list[Mapping[str, Any]] = []
        self.unschedulable = False
        self.alloc = Allocatable()
        self.obj_gen = 0
        self.gen = 0
        self.cpu = self.memory = self.ephemeral = 0
        self.nz_cpu = self.nz_memory = 0
        self.scalars: Counter[str] = Counter()
        self.ports: Counter[HostPort] = Counter()
        self.pods: dict[str, PodInfo] = {}
        self.with_affinity: set[str] = set()
        self.with_required_anti: set[str] = set()

    @property
    def zone_key(self) -> str:
        """``region:zone`` as kube's node tree groups nodes ("" when neither label is set)."""
        region, zone = self.labels.get(REGION_LABEL, ""), self.labels.get(ZONE_LABEL, "")
        return f"{region}:{zone}" if (region or zone) else ""

    def set_node(self, node: Mapping[str, Any]) -> None:
        self.node = node
        labels = (node.get("metadata") or {}).get("labels") or {}
        self.labels = labels if isinstance(labels, Mapping) else {}
        self.taints = node_taints(node)
        ready = _ready_status(node)
        if ready in _NOT_READY and not any(
                t.get("key") == _NOT_READY[ready]["key"] for t in self.taints):
            self.taints = [*self.taints, _NOT_READY[ready]]
        self.unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        self.alloc = Allocatable.of_node(node)
        self.obj_gen += 1
        self.gen += 1

    def add_pod(self, pod: PodInfo) -> None:
        if pod.uid in self.pods:
            return
        self.pods[pod.uid] = pod
        self._account(pod, 1)

    def remove_pod(self, uid: str) -> PodInfo | None:
        pod = self.pods.pop(uid, None)
        if pod is not None:
            self._account(pod, -1)
        return pod

    def _account(self, pod: PodInfo, sign: int) -> None:
        t = pod.template
        r = t.requests
        self.cpu += sign * r.cpu
        self.memory += sign * r.memory
        self.ephemeral += sign * r.ephemeral
        self.nz_cpu += sign * r.nz_cpu
        self.nz_memory += sign * r.nz_memory
        for name, value in r.scalars:
            self.scalars[name] += sign * value
        for port in t.host_ports:
            self.ports[port] += sign
            if self.ports[port] <= 0:
                del self.ports[port]
        if t.has_pod_affinity:
            (self.with_affinity.add if sign > 0 else self.with_affinity.discard)(pod.uid)
        if t.anti_affinity:
            (self.with_required_anti.add if sign > 0 else
             self.with_required_anti.discard)(pod.uid)
        self.gen += 1

    def copy(self) -> NodeInfo:
        """A shallow simulation copy (preemption removes and re-adds pods on it)."""
        c = NodeInfo(self.name)
        c.node, c.labels, c.taints = self.node, self.labels, self.taints
        c.unschedulable, c.alloc, c.obj_gen, c.gen = (self.unschedulable, self.alloc,
                                                      self.obj_gen, self.gen)
        c.cpu, c.memory, c.ephemeral = self.cpu, self.memory, self.ephemeral
        c.nz_cpu, c.nz_memory = self.nz_cpu, self.nz_memory
        c.scalars, c.ports = Counter(self.scalars), Counter(self.ports)
        c.pods = dict(self.pods)
        c.with_affinity, c.with_required_anti = set(self.with_affinity), \
            set(self.with_required_anti)
        return c
