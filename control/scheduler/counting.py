"""Per-node counts of the placed pods that a selector picks, kept up to date incrementally.

Topology spreading and inter-pod affinity ask "how many pods matching S are in domain D" for
every decision; kube-scheduler answers by scanning every pod on every node each time.  Here a
counter is built once per distinct question (a full pass over the placed pods the first time
it is asked), then every pod add/remove updates the live counters, so a decision reads
``counts[node]`` instead of scanning.  Counters not asked for a while are dropped (LRU).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable

from .podinfo import PodInfo

__all__ = ["Counters", "Match"]

Match = Callable[[PodInfo], bool]


class _Counter:
    __slots__ = ("by_node", "match")

    def __init__(self, match: Match) -> None:
        self.match = match
        self.by_node: dict[str, int] = {}


class Counters:
    """``counts(key, match)`` → ``{node: n}`` of placed pods with ``match(pod)`` true (nodes with
    none are absent).  ``key`` identifies the question; the same key must mean the same
    ``match``.  The dict returned is live and owned here: read it, never change it."""

    def __init__(self, placed: Callable[[], Iterable[tuple[PodInfo, str]]], *,
                 limit: int = 128) -> None:
        self._placed = placed
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

    def added(self, pod: PodInfo, node: str) -> None:
        for counter in self._live.values():
            if counter.match(pod):
                counter.by_node[node] = counter.by_node.get(node, 0) + 1

    def removed(self, pod: PodInfo, node: str) -> None:
        for counter in self._live.values():
            if counter.match(pod):
                left = counter.by_node.get(node, 0) - 1
                if left > 0:
                    counter.by_node[node] = left
                else:
                    counter.by_node.pop(node, None)

    def clear(self) -> None:
        """Forget every counter (namespace labels changed: selectors may mean other pods)."""
        self._live.clear()

    def __len__(self) -> int:
        return len(self._live)
