"""DefaultPreemption: when no node fits a pod, find the node where evicting the fewest,
least important lower-priority pods makes it fit (kube-scheduler's ``PostFilter``).

Per candidate node (one whose rejection preemption could undo): remove every lower-priority
pod in a simulation; if the pod still does not fit, the node is out.  Otherwise add the
removed pods back, most important first — those whose eviction would break a
PodDisruptionBudget first — keeping each one that still leaves room; the rest are the
victims.  Among candidates the winner has the fewest PDB violations, then the lowest
highest victim priority, the lowest sum of priorities, the fewest victims, the latest start
of its most important victims.  The caller nominates the node (``status.nominatedNodeName``)
and deletes the victims; the pod is placed once they are gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from control.api.selectors import SelectorError, from_label_selector

from .algorithm import Algorithm, FilterStates
from .equivalence import ClassCache
from .framework import Reasons, Status, unresolvable
from .messages import FitError, histogram
from .nodeinfo import NodeInfo
from .podinfo import PodInfo

__all__ = ["Preemption", "preempt"]

MIN_CANDIDATES = 100
MIN_CANDIDATE_PERCENT = 10


@dataclass
class Preemption:
    node: str
    victims: list[PodInfo]
    pdb_violations: int


def _start(p: PodInfo) -> str:
    return str((p.obj.get("status") or {}).get("startTime") or p.created)


def _violating(pods: list[PodInfo], pdbs: Sequence[Mapping[str, Any]]) -> set[str]:
    """uids of the pods whose eviction would exceed some PDB's disruptionsAllowed."""
    allowed: list[int] = []
    parsed = []
    for pdb in pdbs:
        try:
            sel = from_label_selector((pdb.get("spec") or {}).get("selector"))
        except SelectorError:
            continue
        status = pdb.get("status") or {}
        parsed.append((str((pdb.get("metadata") or {}).get("namespace") or ""), sel,
                       status.get("disruptedPods") or {}))
        allowed.append(int(status.get("disruptionsAllowed") or 0))
    out: set[str] = set()
    for p in pods:
        for i, (ns, sel, disrupted) in enumerate(parsed):
            if ns != p.namespace or sel.empty or not sel.matches(p.labels) or p.name in disrupted:
                continue
            allowed[i] -= 1
            if allowed[i] < 0:
                out.add(p.uid)
    return out


def _adjust(alg: Algorithm, s: FilterStates, p: PodInfo, n: NodeInfo, delta: int) -> None:
    if s.spread is not None:
        s.spread.adjust(p, n, delta)
    if s.affinity is not None:
        s.affinity.adjust(p, n, delta, alg.cache)


def _victims(alg: Algorithm, cls: ClassCache, pod: PodInfo, n: NodeInfo, s: FilterStates,
             pdbs: Sequence[Mapping[str, Any]]) -> Preemption | Status:
    potential = [p for p in n.pods.values() if p.priority < pod.priority]
    if not potential:
        return unresolvable("DefaultPreemption", Reasons.NO_VICTIMS)
    sim = n.copy()
    for p in potential:
        sim.remove_pod(p.uid)
        _adjust(alg, s, p, n, -1)
    removed = list(potential)
    try:
        status = alg.run_filters(cls, sim, s)
        if status is not None:
            return status
        potential.sort(key=lambda p: (-p.priority, _start(p)))
        bad = _violating(potential, pdbs)
        victims: list[PodInfo] = []
        violations = 0
        for p in [p for p in potential if p.uid in bad] + [p for p in potential
                                                            if p.uid not in bad]:
            sim.add_pod(p)
            _adjust(alg, s, p, n, 1)
            removed.remove(p)
            if alg.run_filters(cls, sim, s) is None:
                continue
            sim.remove_pod(p.uid)
            _adjust(alg, s, p, n, -1)
            removed.append(p)
            victims.append(p)
            violations += p.uid in bad
        return Preemption(n.name, victims, violations)
    finally:
        for p in removed:
            _adjust(alg, s, p, n, 1)


def _rank(c: Preemption) -> tuple[int, int, int, int, str]:
    top = max(p.priority for p in c.victims)
    earliest = min(_start(p) for p in c.victims if p.priority == top)
    # later start of the most important victims is better: invert by sorting on negation
    return (c.pdb_violations, top, sum(p.priority + 2**31 for p in c.victims), len(c.victims),
            "".join(chr(0x10FFFF - ord(ch)) for ch in earliest))


def preempt(alg: Algorithm, pod: PodInfo, err: FitError,
            pdbs: Sequence[Mapping[str, Any]] = ()) -> Preemption | None:
    """Choose a node and victims for ``pod``; sets ``err.postfilter`` to what preemption
    found ("preemption: ..." as kube-scheduler words it) and returns None when nothing helps."""
    if pod.preempt_never:
        err.postfilter = f"preemption: {Reasons.PREEMPTION_NEVER}"
        return None
    if err.prefilter or not err.num_all_nodes:
        return None
    nodes = alg.cache.ordered_nodes()
    if pod.nominated_node:
        for p in alg.cache.pods_on(pod.nominated_node).values():
            if p.terminating and p.priority < pod.priority:
                err.postfilter = f"preemption: {Reasons.PREEMPTION_TERMINATING}"
                return None
    cls = alg.classes.get(pod.template)
    states = alg.states(pod, nodes)
    want = min(len(nodes), max(len(nodes) * MIN_CANDIDATE_PERCENT // 100, MIN_CANDIDATES))
    statuses: dict[str, Status] = {}
    candidates: list[Preemption] = []
    for n in nodes:
        st = err.statuses.get(n.name)
        if st is not None and not st.resolvable:
            statuses[n.name] = unresolvable("DefaultPreemption", Reasons.PREEMPTION_NOT_HELPFUL)
            continue
        if len(candidates) >= want:
            continue
        found = _victims(alg, cls, pod, n, states, pdbs)
        if isinstance(found, Preemption) and found.victims:
            candidates.append(found)
        else:
            statuses[n.name] = found if isinstance(found, Status) else unresolvable(
                "DefaultPreemption", Reasons.NO_VICTIMS)
    if not candidates:
        err.postfilter = f"preemption: {histogram(len(nodes), statuses)}."
        return None
    return min(candidates, key=_rank)
