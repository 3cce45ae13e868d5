"""Why a pod could not be placed, in kube-scheduler's words (``FitError.Error()``).

``0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node
affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for
scheduling.`` — a histogram of every node's reasons, sorted as strings, then what preemption
found.  A failure before any node is looked at (a malformed pod) is told once instead of the
histogram.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from .framework import Reasons, Status

__all__ = ["FitError", "histogram"]


def histogram(num_all_nodes: int, statuses: Mapping[str, Status]) -> str:
    """``0/N nodes are available: <count reason>, ...`` (no trailing period)."""
    counts: Counter[str] = Counter()
    for status in statuses.values():
        for reason in status.reasons:
            counts[reason] += 1
    reasons = sorted(f"{n} {reason}" for reason, n in counts.items())
    text = f"0/{num_all_nodes} nodes are available"
    return f"{text}: {', '.join(reasons)}" if reasons else f"{text}:"


@dataclass
class FitError(Exception):
    """No node fits.  ``statuses``: every rejected node's Status; ``prefilter``: a reason
    that rejected the pod before any node (all nodes then count as rejected by it);
    ``postfilter``: what preemption said."""

    num_all_nodes: int
    statuses: dict[str, Status] = field(default_factory=dict)
    prefilter: str = ""
    postfilter: str = ""

    def __str__(self) -> str:
        return self.message()

    @property
    def plugins(self) -> frozenset[str]:
        """The plugins that rejected some node (which events may help the pod)."""
        return frozenset(s.plugin for s in self.statuses.values())

    def message(self) -> str:
        if self.num_all_nodes == 0:
            text = Reasons.NO_NODES
        elif self.prefilter:
            text = f"0/{self.num_all_nodes} nodes are available: {self.prefilter}."
        else:
            text = histogram(self.num_all_nodes, self.statuses) + "."
        if self.postfilter:
            text += f" {self.postfilter}"
        return text
