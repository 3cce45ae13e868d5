"""Safety checkers of a ``--cluster`` chaos run, judged from what really ran (the nodes' run
records) and what the components really sent (their write logs) — not from API objects alone.

- ``statefulset_at_most_one``: two processes of one StatefulSet ordinal (pods of one name,
  different uids) never run at once, on any nodes — what Kubernetes keeps by never replacing a
  StatefulSet pod before its agent confirmed it stopped.
- ``pod_on_one_node``: a pod's containers never run on two nodes, and one container of a pod
  never runs twice at once (a re-adopting agent must not start a duplicate).
- ``indexed_job_at_most_one``: an Indexed Job never runs one index in two pods at once.
- ``replica_surge``: whenever a pod of a ReplicaSet appears (in the watch history, replayed in
  resourceVersion order), its ReplicaSet has no more active pods (not being deleted, not
  finished) than its replicas, and its Deployment no more than replicas + maxSurge — against
  the largest value either held from ``window`` before the pod was created, since a controller
  acts on what it read a moment ago.  Pods evicted from an unreachable node are being deleted
  and do not count, so their replacements are allowed.  What the observer missed is not
  guessed: a pod is dated by its creationTimestamp, not by when the observer first saw it, and
  where an object's next sighting came from a relist (its state now; the changes between were
  never seen), its state in between is unknown — a pod then does not count and a ReplicaSet's
  or Deployment's bound is open.
- ``one_active_leader``: for the controller-managers and for the schedulers, the writes of
  each (identity, lease term) never interleave with another's: no write of an older term is
  sent after a write of a newer one was acknowledged, and no two identities share a term.
  Lease writes (the election itself) do not count; only acknowledged writes prove acting.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from chaos.history import ComponentWrite, Observation, ProcessRun

from .result import CheckResult, verdict_of

__all__ = ["JOB_INDEX", "indexed_job_at_most_one", "job_of", "one_active_leader",
           "pod_on_one_node", "replica_surge", "statefulset_at_most_one"]

STS_POD = "statefulset.kubernetes.io/pod-name"
JOB_INDEX = "batch.kubernetes.io/job-completion-index"
_LEASES = "leases.coordination.k8s.io"


def job_of(labels: dict[str, str]) -> str | None:
    return labels.get("batch.kubernetes.io/job-name") or labels.get("job-name") or \
        labels.get("job")


def _t(x: float | None, t0: float) -> str:
    return "…" if x is None else f"{x - t0:.3f}"


def _describe(r: ProcessRun, t0: float) -> str:
    return (f"{r.namespace}/{r.pod} (uid {r.uid[:8]}) pid {r.pid} on {r.node} "
            f"[{_t(r.start, t0)}, {_t(r.end, t0)}]")


def _overlaps(runs: Sequence[ProcessRun], t0: float, what: str,
              different_uid: bool = True) -> list[str]:
    out = []
    ordered = sorted(runs, key=lambda r: r.start)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if a.end is not None and b.start >= a.end:
                continue
            if (a.uid != b.uid) == different_uid and a.overlaps(b):
                out.append(f"{what}: {_describe(a, t0)} and {_describe(b, t0)} ran at once")
    return out


def statefulset_at_most_one(runs: Iterable[ProcessRun], *, t0: float = 0.0) -> CheckResult:
    groups: dict[tuple[str, str], list[ProcessRun]] = defaultdict(list)
    for r in runs:
        if STS_POD in r.labels:
            groups[r.namespace, r.labels[STS_POD]].append(r)
    violations = [v for (ns, name), g in sorted(groups.items())
                  for v in _overlaps(g, t0, f"StatefulSet pod {ns}/{name}")]
    return CheckResult("statefulset_at_most_one", verdict_of(violations, len(groups)),
                       violations, {"ordinals": len(groups),
                                    "processes": sum(map(len, groups.values()))})


def pod_on_one_node(runs: Iterable[ProcessRun], *, t0: float = 0.0) -> CheckResult:
    by_uid: dict[str, list[ProcessRun]] = defaultdict(list)
    for r in runs:
        by_uid[r.uid].append(r)
    violations = []
    for uid, g in sorted(by_uid.items()):
        nodes = sorted({r.node for r in g})
        if len(nodes) > 1:
            violations.append(f"pod {g[0].namespace}/{g[0].pod} (uid {uid}) ran on "
                              f"{', '.join(nodes)}")
        by_container: dict[str, list[ProcessRun]] = defaultdict(list)
        for r in g:
            by_container[r.container].append(r)
        for name, same in sorted(by_container.items()):
            violations += _overlaps(same, t0, f"container {name}", different_uid=False)
    return CheckResult("pod_on_one_node", verdict_of(violations, len(by_uid)), violations,
                       {"pods": len(by_uid), "processes": sum(map(len, by_uid.values()))})


def indexed_job_at_most_one(runs: Iterable[ProcessRun], *, t0: float = 0.0) -> CheckResult:
    groups: dict[tuple[str, str, str], list[ProcessRun]] = defaultdict(list)
    for r in runs:
        job = job_of(r.labels)
        if job and JOB_INDEX in r.labels:
            groups[r.namespace, job, r.labels[JOB_INDEX]].append(r)
    violations = [v for (ns, job, index), g in sorted(groups.items())
                  for v in _overlaps(g, t0, f"Job {ns}/{job} index {index}")]
    return CheckResult("indexed_job_at_most_one", verdict_of(violations, len(groups)),
                       violations, {"indexes": len(groups),
                                    "processes": sum(map(len, groups.values()))})


# --- surge ---------------------------------------------------------------------------------


class _Versions:
    """An object's values by resourceVersion: the one current at an rv, and the largest
    held over an rv window.  ``math.inf`` stands for a value the observer never saw."""

    def __init__(self) -> None:
        self.rvs: list[int] = []
        self.values: list[float] = []

    def add(self, rv: int, value: float) -> None:
        self.rvs.append(rv)
        self.values.append(value)

    def largest(self, lo: int, hi: int) -> float | None:
        """The largest value current at any rv in [lo, hi]."""
        first = max(0, bisect.bisect_right(self.rvs, lo) - 1)
        last = bisect.bisect_right(self.rvs, hi)
        window = self.values[first:last]
        return max(window) if window else None


def _unseen_next(ordered: Sequence[Observation]) -> list[bool]:
    """Per observation (in rv order): was its object's next sighting a relist's, at a later
    rv, so that its state after this one and before that one was never seen?"""
    out = [False] * len(ordered)
    next_relisted: dict[str, int] = {}  # uid -> rv of its next sighting, if a relist's
    for i in range(len(ordered) - 1, -1, -1):
        o = ordered[i]
        uid = str(o.data.get("uid"))
        out[i] = next_relisted.get(uid, o.rv) > o.rv + 1
        if o.data.get("relist"):
            next_relisted[uid] = o.rv
        else:
            next_relisted.pop(uid, None)
    return out


def replica_surge(observations: Iterable[Observation], *, window: float = 10.0,
                  t0: float = 0.0) -> CheckResult:
    obs = [o for o in observations if o.resource in ("pods", "replicasets", "deployments")]
    timeline = sorted((o.at, o.rv) for o in obs)
    highest = list(itertools.accumulate((rv for _, rv in timeline), max))
    times = [at for at, _ in timeline]

    def rv_before(at: float) -> int:
        i = bisect.bisect_right(times, at) - 1
        return highest[i] if i >= 0 else 0

    rs_replicas: dict[str, _Versions] = defaultdict(_Versions)
    dep_limit: dict[str, _Versions] = defaultdict(_Versions)
    rs_owner: dict[str, str] = {}
    active: dict[str, str] = {}  # pod uid -> its ReplicaSet's uid, while active
    seen: set[str] = set()
    violations: list[str] = []
    checked = 0
    ordered = sorted(obs, key=lambda o: (o.rv, o.at))
    for o, unseen_next in zip(ordered, _unseen_next(ordered), strict=True):
        d, uid = o.data, str(o.data.get("uid"))
        if o.resource in ("replicasets", "deployments"):
            versions = (rs_replicas if o.resource == "replicasets" else dep_limit)[uid]
            if d.get("relist") and not versions.rvs:
                versions.add(0, math.inf)  # it existed before it was first seen
            value = int(d.get("replicas") or 0) + int(d.get("surge") or 0)
            versions.add(o.rv, value)
            if unseen_next:
                versions.add(o.rv + 1, math.inf)
            if o.resource == "replicasets" and (d.get("owner") or {}).get(
                    "kind") == "Deployment":
                rs_owner[uid] = str(d["owner"]["uid"])
            continue
        owner = d.get("owner") or {}
        live = o.type != "DELETED" and not d.get("deleting") and d.get("phase") not in (
            "Succeeded", "Failed")
        if owner.get("kind") != "ReplicaSet" or not live:
            active.pop(uid, None)
            continue
        rs = str(owner.get("uid"))
        active[uid] = rs
        if uid not in seen:
            seen.add(uid)
            checked += 1
            created = min(o.at, float(d.get("created", o.at)))
            lo = rv_before(created - window)
            violations += _surge_at(o, rs, active, rs_replicas, dep_limit, rs_owner, lo, t0)
        if unseen_next:
            active.pop(uid, None)  # until the relist says what it became
    return CheckResult("replica_surge", verdict_of(violations, checked), violations,
                       {"pods_created": checked, "replicasets": len(rs_replicas)})


def _surge_at(o: Observation, rs: str, active: dict[str, str],
              rs_replicas: dict[str, _Versions], dep_limit: dict[str, _Versions],
              rs_owner: dict[str, str], lo: int, t0: float) -> list[str]:
    out = []
    mine = sum(1 for r in active.values() if r == rs)
    allowed = rs_replicas[rs].largest(lo, o.rv) if rs in rs_replicas else None
    if allowed is not None and mine > allowed:
        out.append(f"at {o.at - t0:.3f} (rv {o.rv}) pod {o.name} made ReplicaSet "
                   f"{rs[:8]} {mine} active pods, replicas at most {allowed}")
    dep = rs_owner.get(rs)
    if dep is not None and dep in dep_limit:
        sets = {r for r, owner in rs_owner.items() if owner == dep}
        total = sum(1 for r in active.values() if r in sets)
        limit = dep_limit[dep].largest(lo, o.rv)
        if limit is not None and total > limit:
            out.append(f"at {o.at - t0:.3f} (rv {o.rv}) pod {o.name} made its Deployment "
                       f"{total} active pods, replicas + maxSurge at most {limit}")
    return out


# --- leaders ---------------------------------------------------------------------------------


def one_active_leader(writes: Iterable[ComponentWrite], kind: str, *,
                      t0: float = 0.0) -> CheckResult:
    """``kind``: "controller-manager" or "scheduler" (the component names' prefix)."""
    groups: dict[tuple[str, int], list[ComponentWrite]] = defaultdict(list)
    violations = []
    for w in writes:
        if not w.component.startswith(kind) or w.what == _LEASES or not 200 <= w.code < 300:
            continue
        if w.term is None:
            violations.append(f"{w.component} ({w.identity}) wrote {w.method} {w.what} at "
                              f"{w.invoke - t0:.3f} without ever leading")
            continue
        groups[w.identity, w.term].append(w)
    spans: dict[tuple[str, int], tuple[float, float, str]] = {
        key: (min(w.complete for w in g), max(w.invoke for w in g), g[0].component)
        for key, g in groups.items()}
    terms: dict[int, set[str]] = defaultdict(set)
    for identity, term in groups:
        terms[term].add(identity)
    violations += [f"term {term} acted on by {len(who)} identities: {', '.join(sorted(who))}"
                   for term, who in sorted(terms.items()) if len(who) > 1]
    for (a_id, a_term), (a_first, a_last, a_name) in spans.items():
        for (b_id, b_term), (b_first, _, b_name) in spans.items():
            if a_id != b_id and a_term < b_term and a_last > b_first:
                late = [w for w in groups[a_id, a_term] if w.invoke > b_first]
                violations.append(
                    f"{a_name} (term {a_term}) sent {len(late)} writes after {b_name} "
                    f"(term {b_term}) had acted at {b_first - t0:.3f}; first "
                    f"{late[0].method} {late[0].what} at {late[0].invoke - t0:.3f}")
    return CheckResult(f"one_active_{kind.replace('-', '_')}",
                       verdict_of(violations, len(groups)), violations,
                       {"terms": len(groups), "writes": sum(map(len, groups.values()))})
