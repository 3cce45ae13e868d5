"""Per-equivalence-class caches: filter verdicts and resource scores per node (Borg §3.4).

Pods of one class ask the same of every node, so a class remembers, per node,

* the verdict of the filters that read only the Node object (cordon, taints, node
  affinity) plus the raw taint and preferred-affinity scores — valid while the node's
  ``obj_gen`` is unchanged;
* for classes whose feasibility depends only on their own node (no spread constraints, no
  pod affinity — the common case), the full verdict and the sorted positions of the feasible
  nodes, brought up to date by re-checking only the nodes the cache logged as changed since
  the class last looked (one node per bind);
* the allocation scores (LeastAllocated + BalancedAllocation), valid while the node's ``gen``
  is unchanged.

So a decision for the next pod of a class costs O(nodes changed + nodes sampled), not
O(all nodes × filters).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from .cache import SchedulerCache
from .framework import Status
from .nodeinfo import NodeInfo
from .plugins.basic import node_ports, node_unschedulable
from .plugins.nodeaffinity import filter_node_affinity, preferred_weight
from .plugins.noderesources import balanced_allocation, fit, least_allocated
from .plugins.taints import filter_taints, prefer_no_schedule_count
from .podinfo import PodTemplate

__all__ = ["ClassCache", "ClassCaches", "Static"]


@dataclass(frozen=True)
class Static:
    obj_gen: int
    status: Status | None
    taint_count: int
    affinity_weight: int


def static_verdict(t: PodTemplate, n: NodeInfo) -> Static:
    status = node_unschedulable(t, n) or filter_taints(t, n) or filter_node_affinity(t, n)
    return Static(n.obj_gen, status, prefer_no_schedule_count(t, n), preferred_weight(t, n))


@dataclass(eq=False)
class ClassCache:
    template: PodTemplate
    static: dict[str, Static] = field(default_factory=dict)
    scores: dict[str, tuple[int, int]] = field(default_factory=dict)
    # fast path: full verdicts and feasible positions, in sync with the cache at ``synced``
    verdicts: dict[str, Status | None] = field(default_factory=dict)
    feasible: SortedList = field(default_factory=SortedList)
    synced: int = -1
    order_version: int = -1

    def static_of(self, n: NodeInfo) -> Static:
        s = self.static.get(n.name)
        if s is None or s.obj_gen != n.obj_gen:
            s = self.static[n.name] = static_verdict(self.template, n)
        return s

    def local_verdict(self, n: NodeInfo) -> Status | None:
        """Every filter that reads only this node (static, ports, resources)."""
        t = self.template
        return self.static_of(n).status or node_ports(t, n) or fit(t, n)

    def allocation_score(self, n: NodeInfo) -> int:
        s = self.scores.get(n.name)
        if s is None or s[0] != n.gen:
            value = least_allocated(self.template, n) + balanced_allocation(self.template, n)
            self.scores[n.name] = s = (n.gen, value)
        return s[1]

    def sync(self, cache: SchedulerCache, nodes: list[NodeInfo],
             position: Callable[[str], int | None]) -> None:
        """Bring ``verdicts``/``feasible`` up to date with the cache (fast path only)."""
        changed = None
        if self.order_version == cache.order_version:
            changed = cache.changed_since(self.synced)
        if changed is None:
            self.verdicts.clear()
            self.feasible = SortedList()
            feasible = []
            for pos, n in enumerate(nodes):
                v = self.verdicts[n.name] = self.local_verdict(n)
                if v is None:
                    feasible.append(pos)
            self.feasible.update(feasible)
        else:
            for name in set(changed):
                where = position(name)
                if where is None:  # a node without a Node object: not schedulable
                    self.verdicts.pop(name, None)
                    continue
                pos, n = where, nodes[where]
                v = self.local_verdict(n)
                was = self.verdicts.get(name, "absent")
                self.verdicts[name] = v
                if was is None and v is not None:
                    self.feasible.discard(pos)
                elif was is not None and v is None:
                    self.feasible.add(pos)
        self.synced = cache.seq
        self.order_version = cache.order_version


class ClassCaches:
    """The live class caches, least recently used dropped beyond ``limit``."""

    def __init__(self, limit: int = 2048) -> None:
        self._limit = limit
        self._by_key: OrderedDict[str, ClassCache] = OrderedDict()

    def get(self, template: PodTemplate) -> ClassCache:
        c = self._by_key.get(template.key)
        if c is None or c.template is not template:
            c = self._by_key[template.key] = ClassCache(template)
            while len(self._by_key) > self._limit:
                self._by_key.popitem(last=False)
        else:
            self._by_key.move_to_end(template.key)
        return c

    def __len__(self) -> int:
        return len(self._by_key)
