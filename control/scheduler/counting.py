"""Per-node counts of the placed pods that a selector picks, kept up to date incrementally.

Topology spreading and inter-pod affinity ask "how many pods matching S are in domain D" for
every decision; kube-scheduler answers by scanning every pod on every node each time.  Here a
counter is built once per distinct question (a full pass over the placed pods the first time
it is asked), then every pod add/remove updates the live counters, so a decision reads
``counts[node]`` instead of scanning.  Counters not asked for a while are dropped (LRU).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping

from .podinfo import PodInfo

__all__ = ["Counters", "Match"]

Match = Callable[[PodInfo], bool]


class _Counter:
    __slots__ = ("by_domain", "by_node", "match")

    def __init__(self, match: Match) -> None:
        self.match = match
        self.by_node: dict[str, int] = {}
        # topology key -> domain value -> count, over nodes that have a Node object
        self.by_domain: dict[str, dict[str, int]] = {}


class Counters:
    """``counts(key, match)`` → ``{node: n}`` of placed pods with ``match(pod)`` true (nodes with
    none are absent).  ``key`` identifies the question; the same key must mean the same
    ``match``.  The dict returned is live and owned here: read it, never change it."""

    def __init__(self, placed: Callable[[], Iterable[tuple[PodInfo, str]]], *,
                 labels: Callable[[str], Mapping[str, str] | None] = lambda _: None,
                 limit: int = 128) -> None:
        self._placed = placed
        self._labels = labels
        self._limit = limit
        self._live: OrderedDict[Hashable, _Counter] = OrderedDict()

    def counts(self, key: Hashable, match: Match) -> dict[str, int]:
        counter = self._live.get(key)
        if counter is not None:
            self._live.move_to_end(key)
            return counter.by_node
        counter = _Counter(match)
        by_node = counter.by_node
        for pod, node in self._placed():
            if match(pod):
                by_node[node] = by_node.get(node, 0) + 1
        self._live[key] = counter
        while len(self._live) > self._limit:
            self._live.popitem(last=False)
        return by_node

    def domain_counts(self, key: Hashable, match: Match, topology_key: str) -> dict[str, int]:
        """Like :meth:`counts`, summed per value of the nodes' ``topology_key`` label (a node
        without it counts as ""), over nodes that have a Node object.  Live, read-only."""
        self.counts(key, match)
        counter = self._live[key]
        by = counter.by_domain.get(topology_key)
        if by is None:
            by = counter.by_domain[topology_key] = {}
            for node, n in counter.by_node.items():
                labels = self._labels(node)
                if labels is not None:
                    value = labels.get(topology_key, "")
                    by[value] = by.get(value, 0) + n
        return by

    def added(self, pod: PodInfo, node: str) -> None:
        self._bump(pod, node, 1)

    def removed(self, pod: PodInfo, node: str) -> None:
        self._bump(pod, node, -1)

    def _bump(self, pod: PodInfo, node: str, delta: int) -> None:
        labels: Mapping[str, str] | None = None
        for counter in self._live.values():
            if not counter.match(pod):
                continue
            left = counter.by_node.get(node, 0) + delta
            if left > 0:
                counter.by_node[node] = left
            else:
                counter.by_node.pop(node, None)
            if counter.by_domain:
                if labels is None:
                    labels = self._labels(node)
                    if labels is None:
                        continue
                for topology_key, by in counter.by_domain.items():
                    value = labels.get(topology_key, "")
                    by[value] = by.get(value, 0) + delta

    def nodes_changed(self) -> None:
        """A node's labels changed, or a node came or went: re-derive the per-domain sums."""
        for counter in self._live.values():
            counter.by_domain.clear()

    def clear(self) -> None:
        """Forget every counter (namespace labels changed: selectors may mean other pods)."""
        self._live.clear()

    def __len__(self) -> int:
        return len(self._live)
