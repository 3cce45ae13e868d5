"""Node lifecycle and taint eviction on a FakeClock over a real apiserver: a node whose Lease
stops changing goes Unknown after the grace period and is tainted; one that comes back is
Ready and untainted; pods are evicted when their tolerations run out (not before); tainting is
rate-limited per zone and stops when most nodes look dead (a partitioned control plane)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from control.api.clock import FakeClock, format_time
from control.client import resources as R
from control.controllers import Settings
from control.controllers.evictionqueue import TimedQueue
from control.controllers.nodehealth import FULL, NORMAL, PARTIAL, compute_zone_state
from control.controllers.nodelifecycle import MONITOR, TAINT, NodeLifecycleController
from control.controllers.tainteviction import (
    TaintEvictionController,
    matching_tolerations,
    min_toleration,
)
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
NS = "default"
LEASES = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


def _clock() -> FakeClock:
    return FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


def _ready(clock: FakeClock, status: str = "True") -> list[Obj]:
    now = format_time(clock.now())
    conds = [{"type": "Ready", "status": status, "reason": "KubeletReady",
              "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
              "lastTransitionTime": now}]
    for kind in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        conds.append({"type": kind, "status": "False", "reason": f"KubeletHasNo{kind}",
                      "lastHeartbeatTime": now, "lastTransitionTime": now})
    return conds


async def add_node(env: Env, clock: FakeClock, name: str, zone: str = "z1") -> Obj:
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"conditions": _ready(clock)}}
    made = await env.admin.create(R.NODES, node)
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": name, "namespace": LEASES},
             "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                      "renewTime": format_time(clock.now(), micro=True)}}
    await env.admin.create(R.LEASES, lease, LEASES)
    return made


async def renew(env: Env, clock: FakeClock, *names: str) -> None:
    for name in names:
        lease = await env.admin.get(R.LEASES, name, LEASES)
        lease["spec"]["renewTime"] = format_time(clock.now(), micro=True)
        await env.admin.update(R.LEASES, lease)


async def report_ready(env: Env, clock: FakeClock, name: str) -> None:
    """The node's agent is back: it posts its conditions again."""
    node = await env.admin.get(R.NODES, name)
    node["status"]["conditions"] = _ready(clock)
    await env.admin.update_status(R.NODES, node)


async def add_pod(env: Env, name: str, node: str, tolerations: list[Obj] | None = None) -> Obj:
    pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}}
    if tolerations is not None:
        pod["spec"]["tolerations"] = tolerations
    made = await env.admin.create(R.PODS, pod, NS)
    made["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    return await env.admin.update_status(R.PODS, made)


async def monitor(env: Env, *, per_node: bool = True) -> None:
    """One health pass, then the tainting pass and (``per_node``) each node's NoSchedule
    pass (settling the caches once per step: a settle costs the in-process store's idle
    progress interval)."""
    ctrl = env["nodelifecycle"]
    assert isinstance(ctrl, NodeLifecycleController)
    await env.settle()
    await ctrl.reconcile(MONITOR)
    await ctrl.reconcile(TAINT)
    if per_node:
        await env.settle()
        for node in list(ctrl.nodes.cache):
            await ctrl.reconcile(node["metadata"]["name"])
    await env.ctx.recorder.flush()


async def get_node(env: Env, name: str) -> Obj:
    got: Obj = await env.admin.get(R.NODES, name)
    return got


def taints(node: Obj) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or ()}


def condition(obj: Obj, kind: str) -> Obj:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def test_a_silent_node_goes_unknown_and_is_tainted_then_recovers(
        api: InProcessAPI) -> None:
    clock = _clock()
    async with controller_env(api, "nodelifecycle", clock=clock) as env:
        await add_node(env, clock, "a")
        await add_node(env, clock, "b")
        await add_pod(env, "on-a", "a")
        env["nodelifecycle"].start_term()
        await monitor(env)
        await _silence(env, clock, ["b"], 30, step=15, per_node=True)
        assert condition(await get_node(env, "a"), "Ready")["status"] == "True"  # 30 s < 50 s
        await _silence(env, clock, ["b"], 25, step=25, per_node=True)
        a = await get_node(env, "a")  # 55 s since a's last sign of life
        for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            c = condition(a, kind)
            assert (c["status"], c["reason"], c["message"]) == (
                "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        assert taints(a) == {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")}
        [noexec] = [t for t in a["spec"]["taints"] if t["effect"] == "NoExecute"]
        assert noexec["timeAdded"] == format_time(clock.now())
        assert condition(await get_node(env, "b"), "Ready")["status"] == "True"
        assert taints(await get_node(env, "b")) == set()
        pod = await env.admin.get(R.PODS, "on-a", NS)
        assert condition(pod, "Ready")["status"] == "False"
        events, _ = await env.admin.list_all(R.EVENTS, NS)
        reasons = {(e["reason"], e["involvedObject"]["name"]) for e in events}
        assert {("NodeNotReady", "a"), ("NodeNotReady", "on-a"), ("RegisteredNode", "a")} \
            <= reasons
        # a stays silent: its taint is not re-stamped
        clock.advance(5)
        await renew(env, clock, "b")
        await monitor(env)
        again = [t for t in (await get_node(env, "a"))["spec"]["taints"]
                 if t["effect"] == "NoExecute"]
        assert again == [noexec]
        # a comes back
        clock.advance(5)
        await renew(env, clock, "a", "b")
        await report_ready(env, clock, "a")
        await monitor(env)
        a = await get_node(env, "a")
        assert condition(a, "Ready")["status"] == "True"
        assert taints(a) == set()


async def test_a_node_that_never_reported_gets_the_startup_grace(api: InProcessAPI) -> None:
    clock = _clock()
    async with controller_env(api, "nodelifecycle", clock=clock) as env:
        await add_node(env, clock, "ok")
        await env.admin.create(R.NODES, {"apiVersion": "v1", "kind": "Node",
                                         "metadata": {"name": "new"}})
        env["nodelifecycle"].start_term()
        await monitor(env)
        clock.advance(55)
        await renew(env, clock, "ok")
        await monitor(env)
        assert not (await get_node(env, "new")).get("status", {}).get("conditions")
        clock.advance(10)  # 65 s > 60 s
        await renew(env, clock, "ok")
        await monitor(env)
        node = await get_node(env, "new")
        c = condition(node, "Ready")
        assert (c["status"], c["reason"], c["message"]) == (
            "Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.")


async def _silence(env: Env, clock: FakeClock, alive: list[str], seconds: int,
                   step: int = 5, per_node: bool = False) -> None:
    """``seconds`` of heartbeats from ``alive`` only, a health pass every ``step``."""
    for _ in range(seconds // step):
        clock.advance(step)
        await renew(env, clock, *alive)
        await monitor(env, per_node=per_node)


async def _noexec_tainted(env: Env, names: list[str]) -> list[str]:
    out = []
    for n in names:
        if any(t[1] == "NoExecute" for t in taints(await get_node(env, n))):
            out.append(n)
    return out


async def test_tainting_is_rate_limited_per_zone(api: InProcessAPI) -> None:
    clock = _clock()
    async with controller_env(api, "nodelifecycle", clock=clock) as env:
        names = [f"n{i}" for i in range(10)]
        for n in names:
            await add_node(env, clock, n)
        env["nodelifecycle"].start_term()
        await monitor(env)
        dead, alive = names[:3], names[3:]  # 30 %: the zone stays Normal
        await _silence(env, clock, alive, 55, step=55)
        assert len(await _noexec_tainted(env, dead)) == 1  # 0.1 node/s, one saved up
        assert await env.reconcile("nodelifecycle", TAINT) == pytest.approx(10.0, abs=0.01)
        await _silence(env, clock, alive, 5)
        assert len(await _noexec_tainted(env, dead)) == 1
        await _silence(env, clock, alive, 5)
        assert len(await _noexec_tainted(env, dead)) == 2
        await _silence(env, clock, alive, 10)
        assert sorted(await _noexec_tainted(env, names)) == dead


@pytest.mark.parametrize(("nodes", "dead"), [
    pytest.param(4, 4, id="all-nodes-silent"),
    pytest.param(10, 6, id="most-of-a-small-zone-silent"),
])
async def test_no_taints_when_most_nodes_look_dead(api: InProcessAPI, nodes: int,
                                                  dead: int) -> None:
    clock = _clock()
    async with controller_env(api, "nodelifecycle", clock=clock) as env:
        names = [f"n{i}" for i in range(nodes)]
        for n in names:
            await add_node(env, clock, n)
        env["nodelifecycle"].start_term()
        await monitor(env)
        await _silence(env, clock, names[dead:], 120, step=20)
        for n in names[:dead]:
            assert condition(await get_node(env, n), "Ready")["status"] == "Unknown"
        assert await _noexec_tainted(env, names) == []
        ctrl = env["nodelifecycle"]
        assert isinstance(ctrl, NodeLifecycleController)
        assert set(ctrl.zone_states.values()) == {FULL if dead == nodes else PARTIAL}


async def test_full_disruption_lifts_taints_already_placed(api: InProcessAPI) -> None:
    clock = _clock()
    async with controller_env(api, "nodelifecycle", clock=clock) as env:
        await add_node(env, clock, "a")
        await add_node(env, clock, "b")
        env["nodelifecycle"].start_term()
        await monitor(env)
        await _silence(env, clock, ["b"], 55, step=55)
        assert await _noexec_tainted(env, ["a"]) == ["a"]
        await _silence(env, clock, [], 60, step=20)  # b too: the control plane is cut off
        assert await _noexec_tainted(env, ["a", "b"]) == []


# --- taint eviction -------------------------------------------------------------------------------

async def taint(env: Env, node: str, key: str, clock: FakeClock) -> None:
    n = await get_node(env, node)
    n.setdefault("spec", {})["taints"] = [{"key": key, "effect": "NoExecute",
                            "timeAdded": format_time(clock.now())}]
    await env.admin.update(R.NODES, n)


async def alive(env: Env, name: str) -> bool:
    pod = await env.admin.get(R.PODS, name, NS)
    return not pod["metadata"].get("deletionTimestamp")


async def test_pods_are_evicted_when_their_tolerations_run_out(api: InProcessAPI) -> None:
    clock = _clock()
    async with controller_env(api, "taint-eviction", clock=clock) as env:
        await add_node(env, clock, "a")
        await add_pod(env, "defaults", "a")  # DefaultTolerationSeconds: 300 s
        await add_pod(env, "forever", "a", [{"key": UNREACHABLE, "operator": "Exists",
                                             "effect": "NoExecute"}])
        await add_pod(env, "short", "a", [{"key": UNREACHABLE, "operator": "Exists",
                                           "effect": "NoExecute", "tolerationSeconds": 60}])
        await taint(env, "a", UNREACHABLE, clock)
        assert await env.reconcile("taint-eviction", "a") == pytest.approx(60)
        clock.advance(59)
        assert await env.reconcile("taint-eviction", "a") == pytest.approx(1)
        assert await alive(env, "short")
        clock.advance(1)
        assert await env.reconcile("taint-eviction", "a") == pytest.approx(240)
        assert not await alive(env, "short")
        clock.advance(239)
        await env.reconcile("taint-eviction", "a")
        assert await alive(env, "defaults")
        clock.advance(1)
        assert await env.reconcile("taint-eviction", "a") is None
        assert not await alive(env, "defaults") and await alive(env, "forever")
        gone = await env.admin.get(R.PODS, "defaults", NS)
        c = condition(gone, "DisruptionTarget")
        assert (c["status"], c["reason"], c["message"]) == (
            "True", "DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint")
        events, _ = await env.admin.list_all(R.EVENTS, NS)
        marked = {e["involvedObject"]["name"] for e in events
                  if e["reason"] == "TaintManagerEviction"
                  and e["message"].startswith("Marking for deletion Pod default/")}
        assert marked == {"short", "defaults"}


async def test_an_untolerated_taint_evicts_at_once_and_a_lifted_one_cancels(
        api: InProcessAPI) -> None:
    clock = _clock()
    async with controller_env(api, "taint-eviction", clock=clock) as env:
        await add_node(env, clock, "a")
        await add_node(env, clock, "b")
        await add_pod(env, "plain", "a")
        await add_pod(env, "waiting", "b")
        await taint(env, "a", "example.com/maintenance", clock)
        await env.reconcile("taint-eviction", "a")
        assert not await alive(env, "plain")  # no toleration for that taint
        await taint(env, "b", NOT_READY, clock)
        assert await env.reconcile("taint-eviction", "b") == pytest.approx(300)
        node = await get_node(env, "b")
        node["spec"]["taints"] = []
        await env.admin.update(R.NODES, node)
        clock.advance(400)
        assert await env.reconcile("taint-eviction", "b") is None
        assert await alive(env, "waiting")
        events, _ = await env.admin.list_all(R.EVENTS, NS)
        assert any(e["message"] == "Cancelling deletion of Pod default/waiting" for e in events)


async def test_a_new_leader_counts_from_the_taints_time_added(api: InProcessAPI) -> None:
    clock = _clock()
    async with controller_env(api, "taint-eviction", clock=clock) as env:
        await add_node(env, clock, "a")
        await add_pod(env, "p", "a")
        await taint(env, "a", UNREACHABLE, clock)
        clock.advance(200)
        ctrl = env["taint-eviction"]
        assert isinstance(ctrl, TaintEvictionController)
        ctrl.start_term()  # first sight now, but the taint is 200 s old
        assert await env.reconcile("taint-eviction", "a") == pytest.approx(100)


async def test_end_to_end_a_dead_nodes_pods_are_evicted(api: InProcessAPI) -> None:
    """Both controllers' workers on the fake clock: silence → Unknown → taint → eviction."""
    clock = _clock()
    async with controller_env(api, "nodelifecycle", "taint-eviction", clock=clock) as env:
        await add_node(env, clock, "a")
        await add_node(env, clock, "b")
        await add_pod(env, "p", "a", [{"key": UNREACHABLE, "operator": "Exists",
                                       "effect": "NoExecute", "tolerationSeconds": 10}])
        async with env.running():
            for _ in range(20):  # 100 s, b alive
                await renew(env, clock, "b")
                clock.advance(5)
                await env.settle()
                if not await alive(env, "p"):
                    break
            await env.until(lambda: _gone(env, "p"), timeout=5)
        node = await get_node(env, "a")
        assert (UNREACHABLE, "NoExecute") in taints(node)


async def _gone(env: Env, name: str) -> bool:
    return not await alive(env, name)


# --- pure parts ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ready", "want"), [
    pytest.param(["True"] * 10, (0, NORMAL), id="healthy"),
    pytest.param(["True"] * 8 + ["Unknown"] * 2, (2, NORMAL), id="two-down-never-partial"),
    pytest.param(["True"] * 4 + ["Unknown"] * 6, (6, PARTIAL), id="60-percent"),
    pytest.param(["True"] * 5 + ["Unknown"] * 5, (5, NORMAL), id="50-percent"),
    pytest.param(["Unknown", "False", None], (3, FULL), id="none-ready"),
    pytest.param([], (0, NORMAL), id="empty"),
])
def test_zone_state(ready: list[str | None], want: tuple[int, str]) -> None:
    conds = [None if r is None else {"status": r} for r in ready]
    assert compute_zone_state(conds, 0.55) == want


def test_timed_queue_limits_and_swaps() -> None:
    clock = FakeClock()
    q = TimedQueue(0.1, clock)
    for n in ("a", "b"):
        q.add(n, n)
    assert not q.add("a", "a")
    assert q.take() == ("a", "a")
    q.done("a")
    assert q.take() is None and q.next_due() == pytest.approx(10)
    clock.advance(10)
    q.swap_limiter(0)
    assert q.take() is None and q.next_due() is None
    q.swap_limiter(0.1)  # leaving a stop: the new bucket starts empty (SwapLimiter)
    assert q.take() is None and q.next_due() == pytest.approx(10)
    clock.advance(10)
    assert q.take() == ("b", "b")


def test_matching_tolerations_and_minimum() -> None:
    t1 = {"key": UNREACHABLE, "effect": "NoExecute"}
    t2 = {"key": NOT_READY, "effect": "NoExecute"}
    forever = {"operator": "Exists"}
    short = {"key": NOT_READY, "operator": "Exists", "tolerationSeconds": 30}
    ok, used = matching_tolerations([t1, t2], [short, forever])
    assert ok and [u for _, u in used] == [forever, short]
    assert min_toleration([u for _, u in used]) == 30
    assert min_toleration([forever]) == -1
    assert min_toleration([{"tolerationSeconds": -5}]) == 0
    assert matching_tolerations([t1], [short]) == (False, [])


def test_settings_keep_kubernetes_grace_period() -> None:
    s = Settings()
    assert (s.node_monitor_grace, s.node_monitor_period, s.node_startup_grace,
            s.node_eviction_rate, s.unhealthy_zone_threshold) == (50.0, 5.0, 60.0, 0.1, 0.55)
