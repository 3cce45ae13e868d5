"""PodTopologySpread: hard constraints filter, soft ones (or the system defaults) score.

Filter (``DoNotSchedule``): for each constraint, ``matching pods in the node's domain + 1 if
the pod matches itself - the global minimum over eligible domains <= maxSkew``; the minimum
is 0 while fewer than ``minDomains`` domains exist.  Eligible nodes pass the pod's node
affinity (``nodeAffinityPolicy: Honor``) and, with ``nodeTaintsPolicy: Honor``, its
tolerations, and carry every constraint's topology key.  A node without a key is
UnschedulableAndUnresolvable ("missing required label").  Terminating pods are not counted.

Score (``ScheduleAnyway``, or the system defaults ``hostname maxSkew 3`` / ``zone maxSkew 5``
over the pod's Services/ReplicaSets/StatefulSets selector when the pod has no constraints):
each domain's matching count times ``log(domains + 2)`` plus ``maxSkew - 1``, fewer is
better, normalized ``100 * (max + min - s) / max``.

Counts come from the cache's incremental per-node counters, never a scan of all pods.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from control.api.selectors import LabelSelector
from control.api.taints import find_untolerated_taint

from ..cache import SchedulerCache
from ..framework import MAX_NODE_SCORE, Reasons, Status, unresolvable, unschedulable
from ..nodeinfo import NodeInfo
from ..podinfo import PodInfo
from ..terms import HOSTNAME, ZONE, SpreadConstraint

__all__ = ["SpreadFilterState", "default_constraints", "spread_scores"]


def default_constraints(selector: LabelSelector) -> tuple[SpreadConstraint, ...]:
    return (SpreadConstraint(3, HOSTNAME, selector, False),
            SpreadConstraint(5, ZONE, selector, False))


def _counts(cache: SchedulerCache, namespace: str, selector: LabelSelector) -> dict[str, int]:
    if selector.empty:
        return {}

    def match(p: PodInfo) -> bool:
        return p.namespace == namespace and not p.terminating and selector.matches(p.labels)

    return cache.counters.counts(("spread", namespace, selector), match)


def _domain_counts(cache: SchedulerCache, namespace: str, selector: LabelSelector,
                   topology_key: str) -> dict[str, int]:
    if selector.empty:
        return {}

    def match(p: PodInfo) -> bool:
        return p.namespace == namespace and not p.terminating and selector.matches(p.labels)

    return cache.counters.domain_counts(("spread", namespace, selector), match, topology_key)


def _eligible(c: SpreadConstraint, pod: PodInfo, n: NodeInfo) -> bool:
    t = pod.template
    if c.honor_affinity and not t.required.empty and (n.node is None
                                                      or not t.required.matches(n.node)):
        return False
    return not (c.honor_taints and n.taints
                and find_untolerated_taint(n.taints, t.tolerations) is not None)


@dataclass
class SpreadFilterState:
    """PreFilter result: per hard constraint, matching-pod counts per eligible domain."""

    pod: PodInfo
    constraints: tuple[SpreadConstraint, ...]
    domains: list[dict[str, int]] = field(default_factory=list)

    @classmethod
    def build(cls, pod: PodInfo, cache: SchedulerCache, nodes: Iterable[NodeInfo]
              ) -> SpreadFilterState | None:
        constraints = pod.template.hard_spread
        if not constraints:
            return None
        state = cls(pod, constraints, [{} for _ in constraints])
        keys = [c.topology_key for c in constraints]
        counts = [_counts(cache, pod.namespace, c.selector) for c in constraints]
        for n in nodes:
            labels = n.labels
            if any(k not in labels for k in keys):
                continue
            for i, c in enumerate(constraints):
                if _eligible(c, pod, n):
                    d = state.domains[i]
                    value = labels[c.topology_key]
                    d[value] = d.get(value, 0) + counts[i].get(n.name, 0)
        return state

    def adjust(self, other: PodInfo, n: NodeInfo, delta: int) -> None:
        """Count ``other`` in (+1) or out (-1) of ``n``'s domains (preemption's simulation)."""
        if other.namespace != self.pod.namespace or other.terminating:
            return
        for i, c in enumerate(self.constraints):
            value = n.labels.get(c.topology_key)
            if value is not None and value in self.domains[i] and c.selector.matches(other.labels):
                self.domains[i][value] += delta

    def filter(self, n: NodeInfo) -> Status | None:
        labels = self.pod.labels
        for i, c in enumerate(self.constraints):
            value = n.labels.get(c.topology_key)
            if value is None:
                return unresolvable("PodTopologySpread", Reasons.SPREAD_LABEL)
            domains = self.domains[i]
            minimum = min(domains.values()) if domains else 0
            if len(domains) < c.min_domains:
                minimum = 0
            own = 1 if c.selector.matches(labels) else 0
            if domains.get(value, 0) + own - minimum > c.max_skew:
                return unschedulable("PodTopologySpread", Reasons.SPREAD)
        return None


def spread_scores(pod: PodInfo, cache: SchedulerCache, filtered: Sequence[NodeInfo],
                  constraints: tuple[SpreadConstraint, ...], require_all: bool
                  ) -> list[int] | None:
    """Normalized scores for ``filtered`` (None when there is nothing to score).

    Written as whole-list passes: per-node work is a dict lookup or two, and the matching
    pods are visited only where they are (the counters are sparse), so a decision over a
    500-node sample stays well under a millisecond."""
    soft = [c for c in constraints if not c.hard]
    if not soft:
        return None
    keys = [c.topology_key for c in soft]
    labels = [n.labels for n in filtered]
    if require_all:
        kept_mask = [all(k in lab for k in keys) for lab in labels]
    else:
        kept_mask = [True] * len(filtered)
    kept = sum(kept_mask)
    raw = [0.0] * len(filtered)
    for c in soft:
        key, base = c.topology_key, float(c.max_skew - 1)
        counts = _counts(cache, pod.namespace, c.selector)
        if key == HOSTNAME:
            weight = math.log(kept + 2)
            per_node = [base + weight * counts.get(n.name, 0) if key in lab else 0.0
                        for n, lab in zip(filtered, labels, strict=True)] if counts else \
                [base if key in lab else 0.0 for lab in labels]
        else:
            domains = dict.fromkeys((lab.get(key, "") for lab, k in zip(
                labels, kept_mask, strict=True) if k), 0)
            weight = math.log(len(domains) + 2)
            if require_all or c.honor_taints or (c.honor_affinity
                                                 and not pod.template.required.empty):
                for name, cnt in counts.items():
                    other = cache.nodes.get(name)
                    if other is None or other.node is None or not _eligible(c, pod, other):
                        continue
                    if require_all and any(k not in other.labels for k in keys):
                        continue
                    domain = other.labels.get(key, "")
                    if domain in domains:
                        domains[domain] += cnt
            else:  # every node is eligible: the cache keeps the per-domain sums
                for domain, cnt in _domain_counts(cache, pod.namespace, c.selector,
                                                  key).items():
                    if domain in domains:
                        domains[domain] += cnt
            per_node = [base + weight * domains[lab[key]] if key in lab else 0.0
                        for lab in labels]
        raw = [r + v for r, v in zip(raw, per_node, strict=True)]
    ints = [math.floor(r + 0.5) if k else -1  # Go math.Round, not banker's rounding
            for r, k in zip(raw, kept_mask, strict=True)]
    valid = [v for v in ints if v >= 0]
    lo, hi = (min(valid), max(valid)) if valid else (0, 0)
    if hi == 0:
        return [MAX_NODE_SCORE if v >= 0 else 0 for v in ints]
    return [MAX_NODE_SCORE * (hi + lo - v) // hi if v >= 0 else 0 for v in ints]
