"""InterPodAffinity: required pod affinity and anti-affinity filter, preferred ones score.

Filter, in kube-scheduler's order: the pod's required affinity (every term's topology
domain on the node must already hold a matching pod — pods matching *all* terms count — or,
when no such pod exists anywhere and the pod matches its own terms, any node with the keys:
the first pod of a group; UnschedulableAndUnresolvable), its required anti-affinity (no
matching pod in the node's domain), and the required anti-affinity of pods already placed
(none may match this pod within its domain).

Score: the pod's preferred terms (+weight per matching pod in the domain, anti: -weight),
placed pods' preferred terms matching this pod (likewise) and their required affinity terms
(weight 1); normalized ``100 * (s - min) / (max - min)`` with min and max starting at 0.

Matching pods are counted through the cache's incremental counters (one pass over placed
pods the first time a term is seen); placed pods' own terms come from the cache's index of
pods with affinity, so nothing scans every pod per decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..cache import SchedulerCache
from ..framework import MAX_NODE_SCORE, Reasons, Status, unresolvable, unschedulable
from ..nodeinfo import NodeInfo
from ..podinfo import PodInfo
from ..terms import AffinityTerm

__all__ = ["AffinityFilterState", "affinity_scores"]

Pair = tuple[str, str]


def _term_counts(cache: SchedulerCache, term: AffinityTerm) -> dict[str, int]:
    ns_labels = cache.namespace_labels

    def match(p: PodInfo) -> bool:
        return term.matches(p.namespace, p.labels, ns_labels)

    key = ("term", term.topology_key, term.selector, term.namespaces, term.namespace_selector)
    return cache.counters.counts(key, match)


def _all_terms_counts(cache: SchedulerCache, terms: tuple[AffinityTerm, ...]) -> dict[str, int]:
    ns_labels = cache.namespace_labels

    def match(p: PodInfo) -> bool:
        return all(t.matches(p.namespace, p.labels, ns_labels) for t in terms)

    key = ("all", tuple((t.topology_key, t.selector, t.namespaces, t.namespace_selector)
                        for t in terms))
    return cache.counters.counts(key, match)


@dataclass
class AffinityFilterState:
    pod: PodInfo
    affinity: dict[Pair, int] = field(default_factory=dict)
    anti: dict[Pair, int] = field(default_factory=dict)
    existing_anti: dict[Pair, int] = field(default_factory=dict)
    self_match: bool = False

    @classmethod
    def build(cls, pod: PodInfo, cache: SchedulerCache) -> AffinityFilterState | None:
        t = pod.template
        if not t.affinity and not t.anti_affinity and not cache.anti_pods:
            return None
        s = cls(pod)
        ns_labels = cache.namespace_labels
        for other, node in cache.anti_pods.values():
            n = cache.nodes.get(node)
            if n is None:
                continue
            for term in other.template.anti_affinity:
                value = n.labels.get(term.topology_key)
                if value is not None and term.matches(pod.namespace, pod.labels, ns_labels):
                    pair = (term.topology_key, value)
                    s.existing_anti[pair] = s.existing_anti.get(pair, 0) + 1
        if t.affinity:
            for name, cnt in _all_terms_counts(cache, t.affinity).items():
                n = cache.nodes.get(name)
                for term in t.affinity if n is not None else ():
                    value = n.labels.get(term.topology_key) if n is not None else None
                    if value is not None:
                        pair = (term.topology_key, value)
                        s.affinity[pair] = s.affinity.get(pair, 0) + cnt
            s.self_match = all(x.matches(pod.namespace, pod.labels, ns_labels)
                               for x in t.affinity)
        for term in t.anti_affinity:
            for name, cnt in _term_counts(cache, term).items():
                n = cache.nodes.get(name)
                value = n.labels.get(term.topology_key) if n is not None else None
                if value is not None:
                    pair = (term.topology_key, value)
                    s.anti[pair] = s.anti.get(pair, 0) + cnt
        return s

    def adjust(self, other: PodInfo, n: NodeInfo, delta: int,
               cache: SchedulerCache) -> None:
        """Count ``other`` in or out of ``n`` (preemption's simulation)."""
        ns_labels = cache.namespace_labels
        t = self.pod.template
        for term in other.template.anti_affinity:
            value = n.labels.get(term.topology_key)
            if value is not None and term.matches(self.pod.namespace, self.pod.labels, ns_labels):
                pair = (term.topology_key, value)
                self.existing_anti[pair] = self.existing_anti.get(pair, 0) + delta
        if t.affinity and all(x.matches(other.namespace, other.labels, ns_labels)
                              for x in t.affinity):
            for term in t.affinity:
                value = n.labels.get(term.topology_key)
                if value is not None:
                    pair = (term.topology_key, value)
                    self.affinity[pair] = self.affinity.get(pair, 0) + delta
        for term in t.anti_affinity:
            value = n.labels.get(term.topology_key)
            if value is not None and term.matches(other.namespace, other.labels, ns_labels):
                pair = (term.topology_key, value)
                self.anti[pair] = self.anti.get(pair, 0) + delta

    def filter(self, n: NodeInfo) -> Status | None:
        t = self.pod.template
        labels = n.labels
        if t.affinity:
            exist = True
            for term in t.affinity:
                value = labels.get(term.topology_key)
                if value is None:
                    return unresolvable("InterPodAffinity", Reasons.AFFINITY)
                if self.affinity.get((term.topology_key, value), 0) <= 0:
                    exist = False
            if not exist and not (self.self_match
                                  and not any(v > 0 for v in self.affinity.values())):
                return unresolvable("InterPodAffinity", Reasons.AFFINITY)
        for term in t.anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and self.anti.get((term.topology_key, value), 0) > 0:
                return unschedulable("InterPodAffinity", Reasons.ANTI_AFFINITY)
        if self.existing_anti:
            for key, value in labels.items():
                if self.existing_anti.get((key, value), 0) > 0:
                    return unschedulable("InterPodAffinity", Reasons.EXISTING_ANTI_AFFINITY)
        return None


def affinity_scores(pod: PodInfo, cache: SchedulerCache, filtered: Sequence[NodeInfo]
                    ) -> list[int] | None:
    """Normalized InterPodAffinity scores for ``filtered`` (None when nothing to score)."""
    t = pod.template
    if not t.preferred_affinity and not t.preferred_anti_affinity and not cache.affinity_pods:
        return None
    topo: dict[Pair, int] = {}

    def credit(n: NodeInfo | None, key: str, amount: int) -> None:
        value = n.labels.get(key) if n is not None else None
        if value is not None:
            topo[(key, value)] = topo.get((key, value), 0) + amount

    for sign, terms in ((1, t.preferred_affinity), (-1, t.preferred_anti_affinity)):
        for term in terms:
            for name, cnt in _term_counts(cache, term).items():
                credit(cache.nodes.get(name), term.topology_key, sign * term.weight * cnt)
    ns_labels = cache.namespace_labels
    for other, node in cache.affinity_pods.values():
        n = cache.nodes.get(node)
        ot = other.template
        for term in ot.affinity:
            if term.matches(pod.namespace, pod.labels, ns_labels):
                credit(n, term.topology_key, 1)
        for term in ot.preferred_affinity:
            if term.matches(pod.namespace, pod.labels, ns_labels):
                credit(n, term.topology_key, term.weight)
        for term in ot.preferred_anti_affinity:
            if term.matches(pod.namespace, pod.labels, ns_labels):
                credit(n, term.topology_key, -term.weight)
    if not topo:
        return None
    keys = {k for k, _ in topo}
    raw = [sum(topo.get((k, n.labels[k]), 0) for k in keys if k in n.labels) for n in filtered]
    hi, lo = max([0, *raw]), min([0, *raw])
    diff = hi - lo
    return [int(MAX_NODE_SCORE * (s - lo) / diff) if diff > 0 else 0 for s in raw]
