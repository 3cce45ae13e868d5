"""The scheduler's small vocabulary: a filter's verdict (:class:`Status`), plugin names, the
reason texts kube-scheduler prints, and the score range.

A filter returns None (the node passes) or a Status.  ``UNSCHEDULABLE`` means the node may
pass after something changes on it, preemption included; ``UNRESOLVABLE`` means preemption
cannot help (kube-scheduler's ``UnschedulableAndUnresolvable``).  Reasons are the exact texts
kube-scheduler reports, so ``kubectl describe pod`` reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MAX_NODE_SCORE",
    "Code",
    "Reasons",
    "Status",
    "unresolvable",
    "unschedulable",
]

MAX_NODE_SCORE = 100


class Code:
    UNSCHEDULABLE = 1
    UNRESOLVABLE = 2


class Reasons:
    """kube-scheduler's failure texts, one per plugin condition."""

    UNSCHEDULABLE_NODE = "node(s) were unschedulable"
    NODE_NAME = "node(s) didn't match the requested node name"
    NODE_PORTS = "node(s) didn't have free ports for the requested pod ports"
    NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
    TOO_MANY_PODS = "Too many pods"
    SPREAD = "node(s) didn't match pod topology spread constraints"
    SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
    EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
    AFFINITY = "node(s) didn't match pod affinity rules"
    ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
    NODE_NOT_READY = "node(s) had invalid or missing allocatable resources"
    NO_NODES = "no nodes available to schedule pods"
    PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
    NO_VICTIMS = "No preemption victims found for incoming pod"
    PREEMPTION_NEVER = "not eligible due to preemptionPolicy=Never."
    PREEMPTION_TERMINATING = "not eligible due to a terminating pod on the nominated node."

    @staticmethod
    def insufficient(resource: str) -> str:
        return f"Insufficient {resource}"

    @staticmethod
    def untolerated_taint(key: str, value: str) -> str:
        return f"node(s) had untolerated taint {{{key}: {value}}}"


@dataclass(frozen=True)
class Status:
    """Why a node was rejected: the plugin that said so, a code, and one or more reasons."""

    plugin: str
    code: int
    reasons: tuple[str, ...]

    @property
    def resolvable(self) -> bool:
        """Whether preemption (removing pods from the node) could make it pass."""
        return self.code == Code.UNSCHEDULABLE


def unschedulable(plugin: str, *reasons: str) -> Status:
    return Status(plugin, Code.UNSCHEDULABLE, reasons)


def unresolvable(plugin: str, *reasons: str) -> Status:
    return Status(plugin, Code.UNRESOLVABLE, reasons)
