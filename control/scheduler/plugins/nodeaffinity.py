"""NodeAffinity: ``nodeSelector`` and required node affinity must match (filter,
UnschedulableAndUnresolvable); the weights of matching preferred terms are the score
(normalized to 0-100 by the maximum, weight 2)."""

from __future__ import annotations

from ..framework import Reasons, Status, unresolvable
from ..nodeinfo import NodeInfo
from ..podinfo import PodTemplate

__all__ = ["filter_node_affinity", "preferred_weight"]


def filter_node_affinity(t: PodTemplate, n: NodeInfo) -> Status | None:
    if t.required.empty or n.node is None or t.required.matches(n.node):
        return None
    return unresolvable("NodeAffinity", Reasons.NODE_AFFINITY)


def preferred_weight(t: PodTemplate, n: NodeInfo) -> int:
    if not t.preferred.terms or n.node is None:
        return 0
    return t.preferred.score(n.node)
