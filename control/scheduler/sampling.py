"""How many feasible nodes to find before scoring (``percentageOfNodesToScore``).

kube-scheduler stops filtering once it has found enough feasible nodes: with the default
percentage 0 that is adaptive, ``50 - nodes/125`` percent (at least 5 %) and never fewer than
100 nodes; clusters under 100 nodes are searched whole.  The search starts where the previous
decision stopped (round-robin), so every node gets its turn.
"""

from __future__ import annotations

__all__ = ["MIN_FEASIBLE_NODES", "MIN_FEASIBLE_PERCENTAGE", "num_feasible_nodes_to_find"]

MIN_FEASIBLE_NODES = 100
MIN_FEASIBLE_PERCENTAGE = 5


def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """``percentage`` 0 means adaptive; 100 means every node."""
    if num_nodes < MIN_FEASIBLE_NODES:
        return num_nodes
    if percentage <= 0:
        percentage = max(50 - num_nodes // 125, MIN_FEASIBLE_PERCENTAGE)
    found = num_nodes * min(percentage, 100) // 100
    return max(found, MIN_FEASIBLE_NODES)
