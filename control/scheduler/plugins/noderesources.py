"""NodeResourcesFit (filter) and the allocation scores LeastAllocated and BalancedAllocation.

Fit: the pod count against ``allocatable.pods`` always; then, for each of cpu, memory,
ephemeral-storage and every extended resource the pod requests (> 0), the request must not
exceed allocatable minus what is already requested — all shortfalls are reported
("Insufficient cpu", "Insufficient memory", ...).  Scores use integer arithmetic as
kube-scheduler does: LeastAllocated over cpu and memory (weight 1 each) with the non-zero
requests, BalancedAllocation ``(1 - |cpu fraction - memory fraction| / 2) * 100`` with the
actual requests.
"""

from __future__ import annotations

from ..framework import MAX_NODE_SCORE, Reasons, Status, unschedulable
from ..nodeinfo import NodeInfo
from ..podinfo import PodTemplate

__all__ = ["balanced_allocation", "fit", "least_allocated"]


def fit(t: PodTemplate, n: NodeInfo, extra_pods: int = 0, extra_cpu: int = 0,
        extra_memory: int = 0) -> Status | None:
    """``extra_*``: resources of nominated pods counted on the node for this decision."""
    reasons: list[str] = []
    a = n.alloc
    if len(n.pods) + extra_pods + 1 > a.pods:
        reasons.append(Reasons.TOO_MANY_PODS)
    r = t.requests
    if not r.zero:
        if r.cpu > 0 and r.cpu > a.cpu - n.cpu - extra_cpu:
            reasons.append(Reasons.insufficient("cpu"))
        if r.memory > 0 and r.memory > a.memory - n.memory - extra_memory:
            reasons.append(Reasons.insufficient("memory"))
        if r.ephemeral > 0 and r.ephemeral > a.ephemeral - n.ephemeral:
            reasons.append(Reasons.insufficient("ephemeral-storage"))
        for name, value in r.scalars:
            if value > a.scalar(name) - n.scalars.get(name, 0):
                reasons.append(Reasons.insufficient(name))
    return unschedulable("NodeResourcesFit", *reasons) if reasons else None


def _least(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def least_allocated(t: PodTemplate, n: NodeInfo) -> int:
    a, r = n.alloc, t.requests
    score = weights = 0
    if a.cpu:
        score += _least(n.nz_cpu + r.nz_cpu, a.cpu)
        weights += 1
    if a.memory:
        score += _least(n.nz_memory + r.nz_memory, a.memory)
        weights += 1
    return score // weights if weights else 0


def balanced_allocation(t: PodTemplate, n: NodeInfo) -> int:
    a, r = n.alloc, t.requests
    fractions = []
    if a.cpu:
        fractions.append(min(1.0, (n.cpu + r.cpu) / a.cpu))
    if a.memory:
        fractions.append(min(1.0, (n.memory + r.memory) / a.memory))
    std = abs(fractions[0] - fractions[1]) / 2 if len(fractions) == 2 else 0.0
    return int((1 - std) * MAX_NODE_SCORE)
