"""Integration: the scheduler as real processes (two, one leading) behind a real ``ketch up``,
driven by the real kubectl — with Node objects and no node agents (as kube's scheduler_perf).

Covers issue 9's "Done when": an unmatched nodeSelector leaves a pod Pending with reason
Unschedulable and a FailedScheduling event (``kubectl describe`` shows it) until a node is
labelled; an oversized request says ``Insufficient cpu``; cordoned and tainted nodes are
avoided; six replicas spread across three nodes; a higher-priority pod preempts; scheduling
goes on after the apiserver restarts; kill -9 of the active scheduler and the standby binds
the next pods.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from ketch.cluster import Cluster
from tests.kube import Kubectl, poll

pytestmark = pytest.mark.integration

NODES = ("sched-a", "sched-b", "sched-c")


def _quiet(_: str) -> None:
    pass


def _node(name: str, cpu: str = "4", labels: dict[str, str] | None = None) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": "16Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "status": {"capacity": alloc, "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def _no_agents() -> dict[str, int]:
    """``nodes=0``: only this test's Node objects, so placements are predictable."""
    import inspect
    return {"nodes": 0} if "nodes" in inspect.signature(Cluster).parameters else {}


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ketch-sched") / "cluster", port=0, controller_managers=1,
                schedulers=2, **_no_agents())
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


@pytest.fixture(scope="module")
def kubectl(ketch: Cluster) -> Kubectl:
    k = Kubectl(ketch.kubeconfig)
    for name in NODES:
        k.run("create", "-f", "-", input=json.dumps(_node(name)))
    poll(lambda: k.json("get", "serviceaccount", "default"), timeout=30)
    return k


def _pod(name: str, *, cpu: str = "100m", **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "labels": {"test": name}}, "spec": {
        "containers": [{"name": "c", "image": "pause",
                        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}],
        "terminationGracePeriodSeconds": 0, **spec}})


def _node_of(kubectl: Kubectl, pod: str) -> str:
    return str(kubectl.json("get", "pod", pod)["spec"].get("nodeName") or "")


def _scheduled_condition(kubectl: Kubectl, pod: str) -> dict[str, Any] | None:
    for c in kubectl.json("get", "pod", pod).get("status", {}).get("conditions") or ():
        if c["type"] == "PodScheduled":
            return dict(c)
    return None


def test_unmatched_selector_pending_then_placed_when_a_node_is_labelled(
        kubectl: Kubectl) -> None:
    kubectl.run("create", "-f", "-", input=_pod("wants-ssd", nodeSelector={"disk": "ssd"}))
    cond = poll(lambda: (c := _scheduled_condition(kubectl, "wants-ssd")) and
                c.get("reason") == "Unschedulable" and c, timeout=30)
    assert cond["status"] == "False"
    assert "node(s) didn't match Pod's node affinity/selector" in cond["message"]
    assert kubectl.json("get", "pod", "wants-ssd")["status"]["phase"] == "Pending"
    events = poll(lambda: [e for e in kubectl.json(
        "get", "events", "--field-selector", "involvedObject.name=wants-ssd")["items"]
        if e["reason"] == "FailedScheduling"])
    assert events[0]["type"] == "Warning"
    described = kubectl.run("describe", "pod", "wants-ssd").stdout
    assert "FailedScheduling" in described and "nodes are available" in described
    kubectl.run("label", "node", "sched-b", "disk=ssd")
    assert poll(lambda: _node_of(kubectl, "wants-ssd"), timeout=15) == "sched-b"


def test_oversized_request_says_insufficient_cpu(kubectl: Kubectl) -> None:
    kubectl.run("create", "-f", "-", input=_pod("huge", cpu="64"))
    cond = poll(lambda: (c := _scheduled_condition(kubectl, "huge")) and
                c.get("reason") == "Unschedulable" and c, timeout=30)
    assert "Insufficient cpu" in cond["message"], cond
    assert "Insufficient cpu" in kubectl.run("describe", "pod", "huge").stdout
    kubectl.run("delete", "pod", "huge", "--wait=false")


def test_cordoned_and_tainted_nodes_are_avoided(kubectl: Kubectl) -> None:
    kubectl.run("cordon", "sched-a")
    kubectl.run("taint", "nodes", "sched-c", "dedicated=db:NoSchedule")
    try:
        for i in range(4):
            kubectl.run("create", "-f", "-", input=_pod(f"avoid-{i}"))
        where = {poll(lambda i=i: _node_of(kubectl, f"avoid-{i}"), timeout=20)
                 for i in range(4)}
        assert where == {"sched-b"}
    finally:
        kubectl.run("uncordon", "sched-a")
        kubectl.run("taint", "nodes", "sched-c", "dedicated=db:NoSchedule-")
        for i in range(4):
            kubectl.run("delete", "pod", f"avoid-{i}", "--wait=false")


def test_six_replicas_spread_across_nodes(kubectl: Kubectl) -> None:
    from control.controllers.registry import CONTROLLERS

    kind = "Deployment" if "deployment" in CONTROLLERS else "ReplicaSet"
    kubectl.run("create", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "spread"},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "spread"}},
                 "template": {"metadata": {"labels": {"app": "spread"}}, "spec": {
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": "pause", "resources": {
                         "requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}))

    def placed() -> list[str] | None:
        pods = kubectl.json("get", "pods", "-l", "app=spread")["items"]
        nodes = [p["spec"].get("nodeName") for p in pods]
        return nodes if len(nodes) == 6 and all(nodes) else None

    nodes = poll(placed, timeout=60)
    counts = {n: nodes.count(n) for n in set(nodes)}
    assert set(counts) == set(NODES) and max(counts.values()) - min(counts.values()) <= 1, \
        counts


def test_higher_priority_pod_preempts(kubectl: Kubectl) -> None:
    kubectl.run("create", "-f", "-", input=json.dumps(_node("sched-small", cpu="1",
                                                            labels={"pool": "small"})))
    for name, value in (("low", 10), ("high", 1000)):
        kubectl.run("create", "-f", "-", input=json.dumps({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value}))
    for i in range(2):
        kubectl.run("create", "-f", "-", input=_pod(
            f"low-{i}", cpu="500m", priorityClassName="low", nodeSelector={"pool": "small"}))
    for i in range(2):
        assert poll(lambda i=i: _node_of(kubectl, f"low-{i}"), timeout=20) == "sched-small"
    kubectl.run("create", "-f", "-", input=_pod(
        "vip", cpu="500m", priorityClassName="high", nodeSelector={"pool": "small"}))
    assert poll(lambda: _node_of(kubectl, "vip"), timeout=30) == "sched-small"
    left = [p["metadata"]["name"] for p in kubectl.json("get", "pods")["items"]
            if p["metadata"]["name"].startswith("low-")
            and not p["metadata"].get("deletionTimestamp")]
    assert len(left) == 1
    vip = kubectl.json("get", "pod", "vip")
    assert vip["status"].get("nominatedNodeName") in (None, "sched-small")


def test_scheduling_goes_on_after_an_apiserver_restart(ketch: Cluster, kubectl: Kubectl) -> None:
    ketch.stop("apiserver-1")
    ketch.start("apiserver-1", progress=_quiet)
    ketch.wait_ready("apiserver-1", progress=_quiet)
    kubectl.run("create", "-f", "-", input=_pod("after-restart"))
    assert poll(lambda: _node_of(kubectl, "after-restart"), timeout=40)


def test_standby_takes_over_after_kill_9_of_the_leader(ketch: Cluster,
                                                       kubectl: Kubectl) -> None:
    names = [c.name for c in ketch.components("scheduler")]
    leader = poll(lambda: next((n for n in names if ketch.leading(n)), None), timeout=30)
    standby = next(n for n in names if n != leader)
    pid = ketch.pid(leader)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    for i in range(3):
        kubectl.run("create", "-f", "-", input=_pod(f"after-failover-{i}"))
    for i in range(3):
        assert poll(lambda i=i: _node_of(kubectl, f"after-failover-{i}"), timeout=40)
    assert ketch.leading(standby)
