"""The DaemonSet controller: node eligibility and rollout planning as tables, and reconcile
over a real apiserver in process (Node objects made with the admin client; no agents, no
scheduler: daemon pods stay unbound with their node-name affinity)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

import pytest

from control.api.clock import FakeClock, format_time
from control.client import resources as R
from control.controllers.daemonset_nodes import (
    daemon_pod_template,
    node_should_run,
    replace_node_affinity,
    scaled_value,
    target_node_name,
)
from control.controllers.daemonset_rollout import (
    FailedPodBackoff,
    Plan,
    node_plan,
    rolling_update_plan,
)
from control.controllers.history import REVISION_LABEL, canonical
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TS = "2025-12-31T00:00:00Z"


def ds(name: str = "agent", **spec: Any) -> Obj:
    labels = {"app": name}
    template_spec = spec.pop("pod_spec", {})
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}],
                                           **template_spec}},
                     **spec}}


def node(name: str, labels: dict[str, str] | None = None,
         taints: list[Obj] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": {"taints": taints or []}}


# --- pure: which nodes ---------------------------------------------------------------------------

NO_SCHED = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
NO_EXEC = {"key": "dedicated", "value": "db", "effect": "NoExecute"}


@pytest.mark.parametrize(("pod_spec", "labels", "taints", "want"), [
    pytest.param({}, {}, [], (True, True), id="plain"),
    pytest.param({"nodeSelector": {"disk": "ssd"}}, {"disk": "ssd"}, [], (True, True),
                 id="selector-match"),
    pytest.param({"nodeSelector": {"disk": "ssd"}}, {"disk": "hdd"}, [], (False, False),
                 id="selector-miss"),
    pytest.param({}, {}, [NO_SCHED], (False, True), id="noschedule-keeps-running"),
    pytest.param({}, {}, [NO_EXEC], (False, False), id="noexecute-evicts"),
    pytest.param({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}, {},
                 [NO_SCHED, NO_EXEC], (True, True), id="tolerated"),
    pytest.param({"tolerations": [{"key": "dedicated", "value": "web",
                                   "effect": "NoSchedule"}]}, {}, [NO_SCHED],
                 (False, True), id="wrong-value"),
    pytest.param({}, {}, [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}],
                 (True, True), id="cordoned-tolerated-by-default"),
    pytest.param({}, {}, [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}],
                 (True, True), id="not-ready-tolerated-by-default"),
    pytest.param({}, {}, [{"key": "node.kubernetes.io/network-unavailable",
                           "effect": "NoSchedule"}], (False, True),
                 id="network-unavailable"),
    pytest.param({"hostNetwork": True}, {}, [{"key": "node.kubernetes.io/network-unavailable",
                                              "effect": "NoSchedule"}], (True, True),
                 id="network-unavailable-hostnetwork"),
    pytest.param({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                     "values": ["a"]}]}]}}}},
        {"zone": "b"}, [], (False, False), id="affinity-miss"),
    pytest.param({"nodeName": "other"}, {}, [], (False, False), id="template-node-name"),
])
def test_node_should_run(pod_spec: Obj, labels: dict[str, str], taints: list[Obj],
                         want: tuple[bool, bool]) -> None:
    assert node_should_run(node("n1", labels, taints), ds(pod_spec=pod_spec)) == want


def test_daemon_pod_template_tolerations_labels_and_affinity() -> None:
    d = ds(pod_spec={"tolerations": [{"key": "node.kubernetes.io/not-ready",
                                      "operator": "Exists", "effect": "NoExecute",
                                      "tolerationSeconds": 30}]})
    t = daemon_pod_template(d, "abc")
    tol = t["spec"]["tolerations"]
    assert {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
            "effect": "NoExecute"} in tol  # forever replaces the user's 30 s
    assert len(tol) == 6 and all("tolerationSeconds" not in x for x in tol)
    assert t["metadata"]["labels"] == {"app": "agent", REVISION_LABEL: "abc"}
    assert "tolerations" not in d["spec"]["template"]["spec"] or len(
        d["spec"]["template"]["spec"]["tolerations"]) == 1  # the DaemonSet is not changed
    aff = replace_node_affinity({"podAffinity": {"x": 1}, "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]}}, "n7")
    assert aff["podAffinity"] == {"x": 1}
    assert aff["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert target_node_name({"spec": {"affinity": aff}}) == "n7"
    assert target_node_name({"spec": {"nodeName": "n2", "affinity": aff}}) == "n2"


@pytest.mark.parametrize(("value", "total", "up", "want"), [
    (1, 10, True, 1), ("25%", 10, True, 3), ("25%", 10, False, 2), ("100%", 3, True, 3),
    ("0%", 5, True, 0)])
def test_scaled_value(value: Any, total: int, up: bool, want: int) -> None:
    assert scaled_value(value, total, round_up=up) == want


def _pod(name: str, node_name: str, hash_: str, *, ready: bool = True, created: int = 0,
         phase: str = "Running") -> Obj:
    t = (NOW - dt.timedelta(hours=1) + dt.timedelta(seconds=created)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": t,
                         "labels": {"app": "agent", REVISION_LABEL: hash_}},
            "spec": {"nodeName": node_name},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": TS}]}}


def test_rolling_update_without_surge_stays_within_max_unavailable() -> None:
    nodes = [node(f"n{i}") for i in range(4)]
    pods = {f"n{i}": [_pod(f"p{i}", f"n{i}", "old")] for i in range(4)}
    d = ds(updateStrategy={"type": "RollingUpdate",
                           "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0}})
    assert rolling_update_plan(d, nodes, pods, "new", NOW).delete == ["p0", "p1"]
    pods["n0"] = [_pod("q0", "n0", "new", ready=False)]  # one new pod not yet ready
    assert rolling_update_plan(d, nodes, pods, "new", NOW).delete == ["p1"]
    pods["n3"] = [_pod("p3", "n3", "old", ready=False)]  # an unready old pod goes anyway
    plan = rolling_update_plan(d, nodes, pods, "new", NOW)
    assert plan.delete == ["p3"] and not plan.create


def test_rolling_update_with_surge_creates_then_deletes_old() -> None:
    nodes = [node(f"n{i}") for i in range(3)]
    pods = {f"n{i}": [_pod(f"p{i}", f"n{i}", "old")] for i in range(3)}
    d = ds(updateStrategy={"type": "RollingUpdate",
                           "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    plan = rolling_update_plan(d, nodes, pods, "new", NOW)
    assert plan.create == ["n0"] and not plan.delete
    pods["n0"].append(_pod("q0", "n0", "new", ready=False, created=10))
    plan = rolling_update_plan(d, nodes, pods, "new", NOW)
    assert not plan.create and not plan.delete  # waiting for the surge pod
    pods["n0"][1] = _pod("q0", "n0", "new", created=10)
    plan = rolling_update_plan(d, nodes, pods, "new", NOW)
    assert plan.delete == ["p0"] and plan.create == ["n1"]


def test_node_plan_deletes_failed_pods_under_backoff_and_extra_pods() -> None:
    d = ds()
    backoff = FailedPodBackoff()
    clock = [100.0]

    def delay(node_name: str) -> float:
        wait = backoff.in_backoff(node_name, clock[0])
        if wait <= 0:
            backoff.next(node_name, clock[0])
        return wait

    failed = [_pod("f", "n1", "h", phase="Failed")]
    plan = Plan()
    node_plan(plan, d, node("n1"), failed, "h", NOW, delay)
    assert plan.delete == ["f"] and plan.events[0][1] == "FailedDaemonPod"
    plan = Plan()
    node_plan(plan, d, node("n1"), failed, "h", NOW, delay)
    assert plan.delete == [] and plan.again == pytest.approx(1.0)
    clock[0] += 1.5
    plan = Plan()
    node_plan(plan, d, node("n1"), failed, "h", NOW, delay)
    assert plan.delete == ["f"]
    plan = Plan()
    node_plan(plan, d, node("n1"), [_pod("new", "n1", "h", created=5), _pod("old", "n1", "h")],
              "h", NOW, delay)
    assert plan.delete == ["new"]  # the oldest stays


# --- in process ------------------------------------------------------------------------------------

async def _pods(env: Env) -> list[Obj]:
    items, _ = await env.admin.list_all(R.PODS, "default", label_selector="app=agent")
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _targets(pods: list[Obj]) -> list[str]:
    return sorted(str(target_node_name(p)) for p in pods)


async def test_one_pod_per_eligible_node_with_affinity_and_revision(api: InProcessAPI) -> None:
    async with controller_env(api, "daemonset") as env:
        await env.admin.create(R.NODES, node("n1", {"role": "edge"}))
        await env.admin.create(R.NODES, node("n2", {"role": "edge"}))
        await env.admin.create(R.NODES, node("n3", {"role": "core"}))
        await env.admin.create(R.NODES, node("n4", {"role": "edge"}, [NO_SCHED]))
        made = await env.admin.create(R.DAEMONSETS, ds(pod_spec={
            "nodeSelector": {"role": "edge"}}), "default")
        await env.reconcile("daemonset", "default/agent")
        pods = await _pods(env)
        assert _targets(pods) == ["n1", "n2"]
        revs, _ = await env.admin.list_all(R.CONTROLLERREVISIONS, "default")
        [rev] = revs
        hash_ = rev["metadata"]["labels"][REVISION_LABEL]
        assert rev["metadata"]["name"] == f"agent-{hash_}" and rev["revision"] == 1
        assert rev["metadata"]["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
        fresh = await env.admin.get(R.DAEMONSETS, "agent", "default")
        want = {**fresh["spec"]["template"], "$patch": "replace"}
        assert rev["data"] == {"spec": {"template": want}}
        # served in Go's key order: the bytes kubectl compares with its own marshalling
        assert json.dumps(rev["data"], separators=(",", ":"), ensure_ascii=False).encode() \
            == canonical(rev["data"])
        assert canonical(rev["data"]).startswith(b'{"spec":{"template":{"$patch":"replace"')
        for p in pods:
            assert p["metadata"]["labels"][REVISION_LABEL] == hash_
            assert p["metadata"]["generateName"] == "agent-"
            assert p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
            assert not p["spec"].get("nodeName")
            keys = {t["key"] for t in p["spec"]["tolerations"]}
            assert "node.kubernetes.io/unreachable" in keys
        # a second pass changes nothing; the status is written
        await env.reconcile("daemonset", "default/agent")
        assert len(await _pods(env)) == 2
        st = (await env.admin.get(R.DAEMONSETS, "agent", "default"))["status"]
        assert st == {"desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                      "numberMisscheduled": 0, "numberReady": 0, "updatedNumberScheduled": 2,
                      "numberAvailable": 0, "numberUnavailable": 2, "observedGeneration": 1}
        events, _ = await env.admin.list_all(R.EVENTS, "default")
        assert {e["reason"] for e in events} == {"SuccessfulCreate"}
        assert all(e["message"].startswith("Created pod: agent-") for e in events)


async def test_new_node_gets_a_pod_and_a_removed_node_loses_it(api: InProcessAPI) -> None:
    async with controller_env(api, "daemonset") as env, env.running():
        await env.admin.create(R.NODES, node("n1"))
        await env.admin.create(R.DAEMONSETS, ds(), "default")
        await env.until(lambda: _has_targets(env, ["n1"]))
        await env.admin.create(R.NODES, node("n2"))
        await env.until(lambda: _has_targets(env, ["n1", "n2"]))
        await env.admin.delete(R.NODES, "n1")
        await env.until(lambda: _has_targets(env, ["n2"]))
        # a NoExecute taint the pods do not tolerate evicts them too
        await env.admin.patch(R.NODES, "n2", {"spec": {"taints": [NO_EXEC]}})
        await env.until(lambda: _has_targets(env, []))
        st = await env.until(lambda: _status(env, desiredNumberScheduled=0))
        assert st["currentNumberScheduled"] == 0


async def _has_targets(env: Env, want: list[str]) -> bool:
    return _targets(await _pods(env)) == want


async def _status(env: Env, **want: Any) -> Obj | None:
    st = (await env.admin.get(R.DAEMONSETS, "agent", "default")).get("status") or {}
    return st if all(st.get(k) == v for k, v in want.items()) else None


async def _make_ready(env: Env) -> None:
    for p in await _pods(env):
        if any(c.get("type") == "Ready" for c in p.get("status", {}).get("conditions") or ()):
            continue
        p["status"] = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": TS}]}
        await env.admin.update_status(R.PODS, p)


async def test_rolling_update_respects_max_unavailable_and_prunes_history(
        api: InProcessAPI) -> None:
    async with controller_env(api, "daemonset") as env, env.running():
        for i in range(3):
            await env.admin.create(R.NODES, node(f"n{i}"))
        await env.admin.create(R.DAEMONSETS, ds(revisionHistoryLimit=1), "default")
        await env.until(lambda: _has_targets(env, ["n0", "n1", "n2"]))
        await _make_ready(env)
        await env.until(lambda: _status(env, numberAvailable=3))
        for image in ("nginx:2", "nginx:3"):
            await env.admin.patch(R.DAEMONSETS, "agent", {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": image}]}}}}, "default")
            seen_unavailable = 0
            while True:
                pods = await _pods(env)
                new = [p for p in pods if p["spec"]["containers"][0]["image"] == image]
                old_ready = [p for p in pods if p not in new and p.get("status", {}).get(
                    "conditions")]
                # never more than maxUnavailable (1) nodes without a ready pod
                covered = {target_node_name(p) for p in old_ready} | {
                    target_node_name(p) for p in new if p.get("status", {}).get("conditions")}
                seen_unavailable = max(seen_unavailable, 3 - len(covered))
                assert seen_unavailable <= 1, pods
                if len(new) == 3 and len(pods) == 3:
                    break
                await _make_ready(env)
                await env.until(functools.partial(_changed, env, pods), timeout=5)
            await _make_ready(env)
            st = await env.until(lambda: _status(env, updatedNumberScheduled=3,
                                                 numberAvailable=3))
            assert st["observedGeneration"] >= 2
        revs, _ = await env.admin.list_all(R.CONTROLLERREVISIONS, "default")
        assert sorted(r["revision"] for r in revs) == [2, 3]  # limit 1 old + the current


async def _changed(env: Env, before: list[Obj]) -> bool:
    now = await _pods(env)
    key = [(p["metadata"]["name"], p["metadata"]["resourceVersion"]) for p in now]
    return key != [(p["metadata"]["name"], p["metadata"]["resourceVersion"]) for p in before]


async def test_on_delete_waits_and_rollback_renumbers(api: InProcessAPI) -> None:
    async with controller_env(api, "daemonset") as env:
        await env.admin.create(R.NODES, node("n1"))
        await env.admin.create(R.DAEMONSETS, ds(updateStrategy={"type": "OnDelete"}),
                               "default")
        await env.reconcile("daemonset", "default/agent")
        [first] = await _pods(env)
        await env.admin.patch(R.DAEMONSETS, "agent", {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "nginx:2"}]}}}}, "default")
        await env.reconcile("daemonset", "default/agent")
        [same] = await _pods(env)
        assert same["metadata"]["uid"] == first["metadata"]["uid"]  # OnDelete: untouched
        st = (await env.admin.get(R.DAEMONSETS, "agent", "default"))["status"]
        assert st["updatedNumberScheduled"] == 0
        revs, _ = await env.admin.list_all(R.CONTROLLERREVISIONS, "default")
        assert sorted(r["revision"] for r in revs) == [1, 2]
        # kubectl rollout undo: PATCH the DaemonSet with revision 1's data
        rev1 = next(r for r in revs if r["revision"] == 1)
        await env.admin.patch(R.DAEMONSETS, "agent", rev1["data"], "default",
                              patch_type="strategic")
        await env.reconcile("daemonset", "default/agent")
        revs, _ = await env.admin.list_all(R.CONTROLLERREVISIONS, "default")
        assert {r["metadata"]["name"]: r["revision"] for r in revs}[
            rev1["metadata"]["name"]] == 3
        st = (await env.admin.get(R.DAEMONSETS, "agent", "default"))["status"]
        assert st["updatedNumberScheduled"] == 1  # the old pod is current again


async def test_available_only_after_min_ready_seconds_on_the_injected_clock(
        api: InProcessAPI) -> None:
    clock = FakeClock(NOW)
    async with controller_env(api, "daemonset", clock=clock) as env:
        await env.admin.create(R.NODES, node("n1"))
        await env.admin.create(R.DAEMONSETS, ds(minReadySeconds=10), "default")
        await env.reconcile("daemonset", "default/agent")
        [pod] = await _pods(env)
        pod["status"] = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": format_time(NOW)}]}
        await env.admin.update_status(R.PODS, pod)
        assert await env.reconcile("daemonset", "default/agent") == 10
        st = (await env.admin.get(R.DAEMONSETS, "agent", "default"))["status"]
        assert (st["numberReady"], st["numberAvailable"], st["numberUnavailable"]) == (1, 0, 1)
        clock.advance(10)
        assert await env.reconcile("daemonset", "default/agent") is None
        st = (await env.admin.get(R.DAEMONSETS, "agent", "default"))["status"]
        assert (st["numberAvailable"], st["numberUnavailable"]) == (1, 0)
