"""NodeUnschedulable, NodeName and NodePorts: the filters that read one field each.

* NodeUnschedulable — a cordoned node (``spec.unschedulable``) takes only pods tolerating the
  ``node.kubernetes.io/unschedulable:NoSchedule`` taint (UnschedulableAndUnresolvable).
* NodeName — a pod naming a node fits only that node.
* NodePorts — a host port (ip, protocol, port) may be used once per node; ``0.0.0.0`` clashes
  with every address.
"""

from __future__ import annotations

from control.api.taints import TAINT_UNSCHEDULABLE, tolerations_tolerate

from ..framework import Reasons, Status, unresolvable, unschedulable
from ..nodeinfo import NodeInfo, ports_conflict
from ..podinfo import PodTemplate

__all__ = ["node_name", "node_ports", "node_unschedulable"]


def node_unschedulable(t: PodTemplate, n: NodeInfo) -> Status | None:
    if n.unschedulable and not tolerations_tolerate(t.tolerations, TAINT_UNSCHEDULABLE):
        return unresolvable("NodeUnschedulable", Reasons.UNSCHEDULABLE_NODE)
    return None


def node_name(wanted: str, n: NodeInfo) -> Status | None:
    """``wanted``: the pod's ``spec.nodeName`` (a pod's own, not its template's)."""
    if wanted and wanted != n.name:
        return unresolvable("NodeName", Reasons.NODE_NAME)
    return None


def node_ports(t: PodTemplate, n: NodeInfo) -> Status | None:
    if t.host_ports and ports_conflict(n.ports, t.host_ports):
        return unschedulable("NodePorts", Reasons.NODE_PORTS)
    return None
