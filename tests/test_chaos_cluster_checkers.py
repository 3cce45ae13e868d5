"""The cluster chaos checkers on known-good and known-bad histories: each broken guarantee is
caught by the checker that exists for it, and the legitimate cases next to it (a restart, a
replacement after the old process ended, an eviction's replacement, a late unacknowledged
write of an old leader) pass."""

from __future__ import annotations

from typing import Any

import pytest

from chaos.checkers.cluster import (
    indexed_job_at_most_one,
    one_active_leader,
    pod_on_one_node,
    replica_surge,
    statefulset_at_most_one,
)
from chaos.checkers.cluster_liveness import convergence, node_partitions
from chaos.history import ComponentWrite, Convergence, FaultRecord, Observation, ProcessRun

STS = {"statefulset.kubernetes.io/pod-name": "db-0", "app": "db"}


def run(uid: str, start: float, end: float | None, *, node: str = "node-1", pod: str = "db-0",
        container: str = "c", labels: dict[str, str] | None = None, code: int = 0,
        pid: int = 1) -> ProcessRun:
    return ProcessRun(node, "ns", pod, uid, container, pid, start, end,
                      None if end is None else code, dict(STS if labels is None else labels))


# --- process runs ----------------------------------------------------------------------------


@pytest.mark.parametrize("runs, ok", [
    pytest.param([run("a", 0, 10), run("b", 10.5, 20, node="node-2")], True,
                 id="replaced-after-it-stopped"),
    pytest.param([run("a", 0, 5), run("a", 5.5, 9), run("b", 9.5, None)], True,
                 id="restarted-then-replaced"),
    pytest.param([run("a", 0, None), run("b", 1, None, pod="db-1",
                                       labels={"statefulset.kubernetes.io/pod-name": "db-1"})],
                 True, id="two-ordinals-at-once"),
    pytest.param([run("a", 0, 10), run("b", 9, 20, node="node-2")], False,
                 id="replacement-started-before-the-old-stopped"),
    pytest.param([run("a", 0, None), run("b", 30, 40)], False, id="old-never-stopped"),
])
def test_statefulset_at_most_one(runs: list[ProcessRun], ok: bool) -> None:
    result = statefulset_at_most_one(runs)
    assert (result.verdict == "ok") is ok, result.lines()
    if not ok:
        assert "ns/db-0" in result.violations[0] and "ran at once" in result.violations[0]


@pytest.mark.parametrize("runs, ok", [
    pytest.param([run("a", 0, 5), run("a", 6, 9)], True, id="restart-on-one-node"),
    pytest.param([run("a", 0, 5), run("a", 0, 5, container="side")], True,
                 id="two-containers"),
    pytest.param([run("a", 0, 5), run("a", 6, 9, node="node-2")], False, id="two-nodes"),
    pytest.param([run("a", 0, 5, pid=1), run("a", 4, 9, pid=2)], False,
                 id="duplicate-after-readoption"),
])
def test_pod_on_one_node(runs: list[ProcessRun], ok: bool) -> None:
    result = pod_on_one_node(runs)
    assert (result.verdict == "ok") is ok, result.lines()


JOB = {"job": "batch-2", "batch.kubernetes.io/job-completion-index": "0"}


@pytest.mark.parametrize("runs, ok", [
    pytest.param([run("a", 0, 5, labels=JOB, code=137), run("b", 5.2, 7, labels=JOB)], True,
                 id="replaced-after-failure"),
    pytest.param([run("a", 0, 5, labels=JOB), run("b", 1, 3, labels={
        **JOB, "batch.kubernetes.io/job-completion-index": "1"})], True, id="two-indexes"),
    pytest.param([run("a", 0, 5, labels=JOB), run("b", 4, 7, labels=JOB, node="node-3")],
                 False, id="index-twice-at-once"),
])
def test_indexed_job_at_most_one(runs: list[ProcessRun], ok: bool) -> None:
    result = indexed_job_at_most_one(runs)
    assert (result.verdict == "ok") is ok, result.lines()


# --- surge -----------------------------------------------------------------------------------


class Watch:
    """Observations in rv order, 0.1 s apart."""

    def __init__(self) -> None:
        self.obs: list[Observation] = []
        self.rv = 0

    def add(self, resource: str, name: str, data: dict[str, Any], *,
            type: str = "MODIFIED", at: float | None = None, rv: int | None = None) -> None:
        """``rv``: an object's own older version, as a relist tells it (default: the next)."""
        if rv is None:
            self.rv += 1
        self.obs.append(Observation((rv or self.rv) * 0.1 if at is None else at, resource,
                                    type, rv or self.rv, "ns", name, data))

    def deployment(self, replicas: int, surge: int = 1) -> None:
        self.add("deployments", "web", {"uid": "d", "replicas": replicas, "surge": surge})

    def rs(self, uid: str, replicas: int, *, at: float | None = None, rv: int | None = None,
           **seen: Any) -> None:
        self.add("replicasets", f"web-{uid}", {"uid": uid, "replicas": replicas, **seen,
                                               "owner": {"kind": "Deployment", "uid": "d"}},
                 at=at, rv=rv)

    def pod(self, uid: str, rs: str, *, deleting: bool = False, type: str = "ADDED",
            phase: str = "Pending", at: float | None = None, rv: int | None = None,
            **seen: Any) -> None:
        """``seen``: what the observer adds: ``relist=True``, ``created`` (its clock)."""
        self.add("pods", f"p-{uid}", {"uid": uid, "deleting": deleting, "phase": phase,
                                      "owner": {"kind": "ReplicaSet", "uid": rs}, **seen},
                 type=type, at=at, rv=rv)


def test_a_rolling_update_within_max_surge_passes() -> None:
    w = Watch()
    w.deployment(3)
    w.rs("old", 3)
    for i in range(3):
        w.pod(f"o{i}", "old")
    w.rs("new", 1)
    w.pod("n0", "new")  # 4 = 3 + maxSurge 1
    w.rs("old", 2)
    w.pod("o0", "old", deleting=True, type="MODIFIED")
    w.rs("new", 2)
    w.pod("n1", "new")
    result = replica_surge(w.obs)
    assert result.verdict == "ok", result.lines()
    assert result.counts["pods_created"] == 5


def test_replacements_of_evicted_pods_do_not_count_the_evicted() -> None:
    w = Watch()
    w.deployment(2)
    w.rs("a", 2)
    w.pod("p1", "a")
    w.pod("p2", "a")
    w.pod("p1", "a", deleting=True, type="MODIFIED")  # evicted from an unreachable node
    w.pod("p3", "a")
    assert replica_surge(w.obs).verdict == "ok"


def test_a_scale_down_just_before_a_creation_is_not_blamed() -> None:
    w = Watch()
    w.deployment(3, surge=0)
    w.rs("a", 3)
    w.pod("p1", "a")
    w.pod("p2", "a")
    w.deployment(1, surge=0)
    w.rs("a", 1)
    w.pod("p3", "a")  # created from the controller's view of a moment ago
    assert replica_surge(w.obs, window=10.0).verdict == "ok"


def test_an_over_creating_replicaset_is_caught() -> None:
    w = Watch()
    w.deployment(2, surge=0)
    w.rs("a", 2)
    for i in range(3):  # a ReplicaSet that did not wait for its own creations
        w.pod(f"p{i}", "a", at=100.0 + i)
    result = replica_surge(w.obs, window=10.0)
    assert result.verdict == "violation"
    assert any("ReplicaSet" in v and "3 active pods, replicas at most 2" in v
               for v in result.violations)
    assert any("Deployment 3 active pods" in v for v in result.violations)


def test_a_surge_beyond_max_surge_is_caught() -> None:
    w = Watch()
    w.deployment(2, surge=1)
    w.rs("old", 2)
    w.pod("o1", "old")
    w.pod("o2", "old")
    w.rs("new", 2)
    w.pod("n1", "new")
    w.pod("n2", "new")  # 4 active > 2 + 1
    result = replica_surge(w.obs)
    assert result.verdict == "violation"
    assert "replicas + maxSurge at most 3" in result.violations[-1]


def test_a_pod_first_seen_late_is_dated_by_its_creation() -> None:
    """The observer was blind while the pod was created and started; when it relisted, the
    rollout had already scaled the ReplicaSet to 0 (and the controller-manager that would
    delete the pod was down).  The pod was created while replicas was 1."""
    w = Watch()
    w.rs("a", 1, at=1.0)
    w.rs("a", 0, at=20.0)
    w.pod("p1", "a", phase="Running", at=40.0, relist=True, created=2.0)
    assert replica_surge(w.obs, window=10.0).verdict == "ok"
    dated_by_sight = Watch()
    dated_by_sight.rs("a", 1, at=1.0)
    dated_by_sight.rs("a", 0, at=20.0)
    dated_by_sight.pod("p1", "a", phase="Running", at=40.0, relist=True)
    assert replica_surge(dated_by_sight.obs, window=10.0).verdict == "violation"


def test_an_eviction_the_observer_missed_is_not_a_surge() -> None:
    """The old pod was evicted and replaced while the observer was blind; the relist tells
    the replacement (at its own older version) and the eviction (at a later one)."""
    w = Watch()
    w.rs("a", 1)
    w.pod("old", "a", phase="Running")
    w.rv += 1  # the eviction: unseen
    w.rv += 1
    w.pod("new", "a", at=30.0, relist=True, created=25.0)  # created after the eviction
    w.pod("old", "a", deleting=True, type="MODIFIED", at=30.0, relist=True)
    result = replica_surge(w.obs, window=10.0)
    assert result.verdict == "ok", result.lines()


def test_a_surge_across_a_relist_is_still_caught() -> None:
    """The old pod did not change while the observer was blind, so it was active all along:
    a second pod of a 1-replica ReplicaSet is a surge whether seen by watch or by relist."""
    w = Watch()
    w.rs("a", 1)
    w.pod("old", "a", phase="Running")
    w.rv += 2
    w.pod("new", "a", at=30.0, relist=True, created=25.0)
    result = replica_surge(w.obs, window=10.0)
    assert result.verdict == "violation"
    assert "2 active pods, replicas at most 1" in result.violations[0]


def test_a_replicaset_changed_while_unseen_bounds_nothing_in_between() -> None:
    """A rollback scaled an old ReplicaSet up and a later rollout down again, both unseen:
    its pods of the meantime are not judged against the 0 seen before and after."""
    w = Watch()
    w.rs("a", 0)
    base = w.rv
    w.rv += 10
    w.pod("p1", "a", phase="Running", at=30.0, rv=base + 3, relist=True, created=25.0)
    w.pod("p2", "a", phase="Running", at=30.0, rv=base + 4, relist=True, created=25.0)
    w.rs("a", 0, at=30.0, relist=True)
    result = replica_surge(w.obs, window=10.0)
    assert result.verdict == "ok", result.lines()


# --- leaders ---------------------------------------------------------------------------------


def write(who: str, term: int | None, invoke: float, complete: float, *, code: int = 201,
          what: str = "pods") -> ComponentWrite:
    return ComponentWrite(f"controller-manager-{who}", f"id-{who}", term, "POST", what, code,
                          invoke, complete)


@pytest.mark.parametrize("writes, ok", [
    pytest.param([write("1", 1, 0, 0.1), write("1", 1, 4, 4.1), write("2", 2, 10, 10.1)],
                 True, id="hand-over"),
    pytest.param([write("1", 1, 0, 0.1), write("2", 2, 10, 10.1),
                  write("1", 1, 11, 11.2, what="leases.coordination.k8s.io")], True,
                 id="old-leader-campaigns"),
    pytest.param([write("1", 1, 0, 0.1), write("2", 2, 10, 10.1),
                  write("1", 1, 11, 11.2, code=0)], True, id="unacknowledged-late-write"),
    pytest.param([write("1", 1, 0, 0.1), write("2", 2, 10, 10.1), write("1", 1, 12, 12.1)],
                 False, id="zombie-leader-writes"),
    pytest.param([write("1", 3, 0, 0.1), write("2", 3, 10, 10.1)], False, id="shared-term"),
    pytest.param([write("1", None, 0, 0.1)], False, id="never-led"),
])
def test_one_active_leader(writes: list[ComponentWrite], ok: bool) -> None:
    result = one_active_leader(writes, "controller-manager")
    assert (result.verdict == "ok") is ok, result.lines()
    assert result.name == "one_active_controller_manager"


# --- liveness --------------------------------------------------------------------------------


def test_convergence_within_the_bound() -> None:
    faults = [FaultRecord("kill-node", "node-1", 0.0, 2.0),
              FaultRecord("kill-pod", "x", 5.0, 6.0), FaultRecord("kill-pod", "y", 8.0, 9.0)]
    good = [Convergence(0, 2.0, 10.0), Convergence(1, 6.0, 7.0)]
    assert convergence(good, faults, bound=30).verdict == "ok"
    bad = good + [Convergence(2, 9.0, None, ["deployment web: 1 pods, wants 2"])]
    result = convergence(bad, faults, bound=30)
    assert result.verdict == "violation"
    assert "#3 kill-pod" in result.violations[0] and "wants 2" in result.violations[0]
    slow = [Convergence(0, 2.0, 40.0, [], [[0.0, ["node node-1 is not Ready"]],
                                           [9.5, ["statefulset db: 2 Ready, wants 3"]],
                                           [38.0, []]])]
    result = convergence(slow, faults, bound=30)
    assert result.verdict == "violation"
    assert ("took 38.0 s (bound 30 s): waited on from 9.5 s: statefulset db: 2 Ready, "
            "wants 3 | from 0.0 s: node node-1 is not Ready") in result.violations[0]


def node_obs(at: float, ready: str) -> Observation:
    return Observation(at, "nodes", "MODIFIED", int(at * 10), "", "node-2", {"ready": ready})


@pytest.mark.parametrize("observations, runs, ok", [
    pytest.param([node_obs(5, "True"), node_obs(17, "Unknown"), node_obs(27, "True")],
                 [run("a", 0, None, node="node-2"), run("j", 1, 12, node="node-2",
                                                         labels={"job": "batch-1"})],
                 True, id="unknown-and-pods-kept-running"),
    pytest.param([node_obs(5, "True")], [], False, id="never-unknown"),
    pytest.param([node_obs(17, "Unknown")], [run("a", 0, 15, node="node-2")], False,
                 id="a-pod-stopped"),
])
def test_node_partitions(observations: list[Observation], runs: list[ProcessRun],
                         ok: bool) -> None:
    faults = [FaultRecord("partition-node", "node-2", 1.0, 25.0)]
    result = node_partitions(faults, observations, runs, grace=15.0)
    assert (result.verdict == "ok") is ok, result.lines()
