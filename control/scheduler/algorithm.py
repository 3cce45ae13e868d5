"""One scheduling decision: filter nodes, score the feasible ones, pick the best.

Pure and synchronous over the :class:`~control.scheduler.cache.SchedulerCache` (the process
assumes the result into the cache and binds it).  kube-scheduler's ``schedulePod``:

1. a malformed pod fails before any node ("0/N nodes are available: <what is wrong>.");
2. a pod with a ``nominatedNodeName`` that still fits goes there;
3. nodes are filtered, in zone-interleaved order from where the previous decision stopped,
   until ``num_feasible_nodes_to_find`` feasible ones are found;
4. one feasible node is taken as is; several are scored — LeastAllocated 1,
   BalancedAllocation 1, TaintToleration 3, NodeAffinity 2, PodTopologySpread 2,
   InterPodAffinity 2 — and the best wins, ties broken at random;
5. no feasible node raises :class:`~control.scheduler.messages.FitError`.

Step 3 has two paths with the same result.  Pods whose feasibility depends only on each
node itself (no spread constraints, no pod affinity, no placed pods with required
anti-affinity, no nominated pods) use their class's incremental feasible set; the rest are
filtered node by node with per-decision spread and affinity states.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from control.api.selectors import LabelSelector

from .cache import SchedulerCache
from .equivalence import ClassCache, ClassCaches
from .framework import MAX_NODE_SCORE, Status
from .messages import FitError
from .nodeinfo import NodeInfo
from .plugins.basic import node_name, node_ports
from .plugins.interpod import AffinityFilterState, affinity_scores
from .plugins.noderesources import fit
from .plugins.spread import SpreadFilterState, default_constraints, spread_scores
from .podinfo import PodInfo
from .sampling import num_feasible_nodes_to_find

__all__ = ["Algorithm", "Decision", "FilterStates"]

DefaultSelector = Callable[[PodInfo], LabelSelector | None]


@dataclass
class Decision:
    node: str
    feasible: int
    evaluated: int


@dataclass
class FilterStates:
    """Per-decision pre-filter results (spread counts, affinity counts)."""

    spread: SpreadFilterState | None = None
    affinity: AffinityFilterState | None = None
    extras: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    node_name: str = ""


class Algorithm:
    """``schedule(pod)`` → :class:`Decision` or raises :class:`FitError`.  Owns the class
    caches and the round-robin start; one instance per scheduler."""

    def __init__(self, cache: SchedulerCache, *, percentage: int = 0,
                 default_selector: DefaultSelector | None = None, seed: int | None = None) -> None:
        self.cache = cache
        self.percentage = percentage
        self.classes = ClassCaches()
        self._default_selector = default_selector
        self._defaults: dict[str, LabelSelector | None] = {}
        self._rng = random.Random(seed)
        self.next_start = 0

    def invalidate_default_selectors(self) -> None:
        """Services, ReplicaSets or StatefulSets changed: recompute default spreading."""
        self._defaults.clear()

    # --- filtering ----------------------------------------------------------------------

    def states(self, pod: PodInfo, nodes: list[NodeInfo]) -> FilterStates:
        s = FilterStates(node_name=pod.node_name)
        if pod.template.hard_spread:
            s.spread = SpreadFilterState.build(pod, self.cache, nodes)
        s.affinity = AffinityFilterState.build(pod, self.cache)
        if self.cache.nominated:
            for other in self.cache.nominated.values():
                if other.uid != pod.uid and other.priority >= pod.priority \
                        and other.nominated_node:
                    r = other.template.requests
                    n, c, m = s.extras.get(other.nominated_node, (0, 0, 0))
                    s.extras[other.nominated_node] = (n + 1, c + r.cpu, m + r.memory)
        return s

    def run_filters(self, cls: ClassCache, n: NodeInfo, s: FilterStates) -> Status | None:
        """Every filter, in kube-scheduler's order, on one node."""
        t = cls.template
        status = (cls.static_of(n).status or (node_name(s.node_name, n) if s.node_name else None)
                  or node_ports(t, n))
        if status is None:
            extra = s.extras.get(n.name)
            status = fit(t, n, *extra) if extra else fit(t, n)
        if status is None and s.spread is not None:
            status = s.spread.filter(n)
        if status is None and s.affinity is not None:
            status = s.affinity.filter(n)
        return status

    def schedule(self, pod: PodInfo) -> Decision:
        t = pod.template
        nodes = self.cache.ordered_nodes()
        total = len(nodes)
        if t.errors:
            raise FitError(total, prefilter="; ".join(t.errors))
        if total == 0:
            raise FitError(0)
        cls = self.classes.get(t)
        states = self.states(pod, nodes)
        if pod.nominated_node:
            pos = self.cache.position(pod.nominated_node)
            if pos is not None and self.run_filters(cls, nodes[pos], states) is None:
                return Decision(pod.nominated_node, 1, 1)
        want = num_feasible_nodes_to_find(total, self.percentage)
        start = self.next_start % total
        if states.spread is None and states.affinity is None and not states.extras \
                and not states.node_name:
            if self._plain(pod):
                return self._fast_plain(cls, nodes, start, want)
            feasible, processed = self._fast(cls, nodes, start, want)
            statuses = None
        else:
            feasible, processed, statuses = self._slow(cls, nodes, start, want, states)
        self.next_start = (start + processed) % total
        if not feasible:
            if statuses is None:
                statuses = {k: v for k, v in cls.verdicts.items() if v is not None}
            raise FitError(total, statuses)
        if len(feasible) == 1:
            return Decision(feasible[0].name, 1, processed)
        best = self._select(pod, cls, feasible)
        return Decision(best.name, len(feasible), processed)

    def _fast(self, cls: ClassCache, nodes: list[NodeInfo], start: int, want: int
              ) -> tuple[list[NodeInfo], int]:
        cls.sync(self.cache, nodes, self.cache.position)
        fs = cls.feasible
        total = len(nodes)
        if not fs:
            return [], total
        i = fs.bisect_left(start)
        picked = list(fs.islice(i, i + want))
        if len(picked) < want:
            picked += list(fs.islice(0, min(i, want - len(picked))))
        processed = total if len(picked) < want else (picked[-1] - start) % total + 1
        return [nodes[p] for p in picked], processed

    def _plain(self, pod: PodInfo) -> bool:
        """Whether only the allocation scores can tell nodes apart for ``pod`` (every other
        score plugin would give all nodes the same value)."""
        t = pod.template
        return not (self.cache.soft_tainted or t.preferred.terms or t.spread
                    or t.preferred_affinity or t.preferred_anti_affinity
                    or self.cache.affinity_pods or self._default_selector_of(pod) is not None)

    def _fast_plain(self, cls: ClassCache, nodes: list[NodeInfo], start: int, want: int
                    ) -> Decision:
        """The fast path with the allocation scores fused into the walk over the sample:
        no lists, one pass (the common case: pods without preferences or spreading)."""
        cls.sync(self.cache, nodes, self.cache.position)
        fs = cls.feasible
        total = len(nodes)
        if not fs:
            self.next_start = start
            raise FitError(total, {k: v for k, v in cls.verdicts.items() if v is not None})
        i = fs.bisect_left(start)
        window = list(fs.islice(i, i + want))
        if len(window) < want:
            window += list(fs.islice(0, min(i, want - len(window))))
        processed = total if len(window) < want else (window[-1] - start) % total + 1
        self.next_start = (start + processed) % total
        scores, score_of = cls.scores, cls.allocation_score
        best, ties = -1, []
        for pos in window:
            n = nodes[pos]
            cached = scores.get(n.name)
            value = cached[1] if cached is not None and cached[0] == n.gen else score_of(n)
            if value > best:
                best, ties = value, [n]
            elif value == best:
                ties.append(n)
        chosen = ties[0] if len(ties) == 1 else self._rng.choice(ties)
        return Decision(chosen.name, len(window), processed)

    def _slow(self, cls: ClassCache, nodes: list[NodeInfo], start: int, want: int,
              states: FilterStates) -> tuple[list[NodeInfo], int, dict[str, Status]]:
        total = len(nodes)
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        for i in range(total):
            n = nodes[(start + i) % total]
            status = self.run_filters(cls, n, states)
            if status is not None:
                statuses[n.name] = status
                continue
            feasible.append(n)
            if len(feasible) >= want:
                return feasible, i + 1, statuses
        return feasible, total, statuses

    # --- scoring ------------------------------------------------------------------------

    def _default_selector_of(self, pod: PodInfo) -> LabelSelector | None:
        if self._default_selector is None:
            return None
        key = pod.template.key
        if key not in self._defaults:
            self._defaults[key] = self._default_selector(pod)
        return self._defaults[key]

    def scores(self, pod: PodInfo, cls: ClassCache, feasible: list[NodeInfo]) -> list[int]:
        """Weighted total per feasible node (constant terms left out)."""
        t = pod.template
        scores, score_of = cls.scores, cls.allocation_score
        totals = [hit[1] if (hit := scores.get(n.name)) is not None and hit[0] == n.gen
                  else score_of(n) for n in feasible]
        if self.cache.soft_tainted or t.preferred.terms:
            statics = [cls.static_of(n) for n in feasible]
            taints = [s.taint_count for s in statics]
            if any(taints):  # reverse-normalized, weight 3
                hi = max(taints)
                totals = [v + 3 * (MAX_NODE_SCORE - MAX_NODE_SCORE * c // hi)
                          for v, c in zip(totals, taints, strict=True)]
            weights = [s.affinity_weight for s in statics]
            hi = max(weights)
            if hi > 0:  # normalized by the maximum, weight 2
                totals = [v + 2 * (MAX_NODE_SCORE * w // hi)
                          for v, w in zip(totals, weights, strict=True)]
        if t.spread:
            spread = spread_scores(pod, self.cache, feasible, t.spread, True)
        else:
            selector = self._default_selector_of(pod)
            spread = None if selector is None or selector.empty else spread_scores(
                pod, self.cache, feasible, default_constraints(selector), False)
        if spread is not None:
            totals = [v + 2 * w for v, w in zip(totals, spread, strict=True)]
        inter = affinity_scores(pod, self.cache, feasible)
        if inter is not None:
            for i, v in enumerate(inter):
                totals[i] += 2 * v
        return totals

    def _select(self, pod: PodInfo, cls: ClassCache, feasible: list[NodeInfo]) -> NodeInfo:
        totals = self.scores(pod, cls, feasible)
        best = max(totals)
        ties = [i for i, v in enumerate(totals) if v == best]
        return feasible[ties[0] if len(ties) == 1 else self._rng.choice(ties)]
