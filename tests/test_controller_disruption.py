"""The disruption controller: PodDisruptionBudget status arithmetic as a table, and the
controller over a real apiserver (owner chain, status writes, disruptedPods expiry, the
SyncFailed fail-safe, and the eviction subresource spending the budget it wrote)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from control.api.clock import FakeClock, format_time
from control.api.errors import TooManyRequests
from control.client import resources as R
from control.controllers.disruption import go_selector
from control.controllers.pdbstatus import (
    DisruptionError,
    build_disrupted,
    count_healthy,
    expected_and_desired,
    with_status,
)
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
NS = "default"


def _pod(name: str, *, ready: bool = True, owner: str | None = "rs-uid",
         deleting: bool = False) -> Obj:
    meta: Obj = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": "rs", "uid": owner, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


SCALES = {"rs-uid": 5, "other-uid": 3}


def _scale(ref: Obj, _pod: Obj) -> tuple[str, int] | None:
    uid = str(ref.get("uid"))
    return (uid, SCALES[uid]) if uid in SCALES else None


def _status(spec: Obj, pods: list[Obj]) -> Obj:
    want = expected_and_desired(spec, pods, _scale)
    pdb = {"metadata": {"generation": 2}, "spec": spec, "status": {}}
    status = with_status(pdb, healthy=count_healthy(pods, {}), desired=want.desired,
                         expected=want.expected, disrupted={}, now="2026-01-01T00:00:00Z")
    assert status is not None
    return status


FOUR_READY = [_pod(f"p{i}") for i in range(4)] + [_pod("p4", ready=False)]


@pytest.mark.parametrize(("spec", "pods", "want"), [
    pytest.param({"minAvailable": 2}, FOUR_READY, (5, 2, 4, 2), id="min-int-counts-pods"),
    pytest.param({"minAvailable": 4}, FOUR_READY, (5, 4, 4, 0), id="min-int-exhausted"),
    pytest.param({"minAvailable": 7}, FOUR_READY, (5, 7, 4, 0), id="min-int-above-pods"),
    pytest.param({"minAvailable": "50%"}, FOUR_READY, (5, 3, 4, 1), id="min-pct-rounds-up"),
    pytest.param({"minAvailable": "100%"}, FOUR_READY, (5, 5, 4, 0), id="min-pct-all"),
    pytest.param({"maxUnavailable": 1}, FOUR_READY, (5, 4, 4, 0), id="max-int"),
    pytest.param({"maxUnavailable": 2}, FOUR_READY, (5, 3, 4, 1), id="max-int-2"),
    pytest.param({"maxUnavailable": "30%"}, FOUR_READY, (5, 3, 4, 1), id="max-pct-rounds-up"),
    pytest.param({"maxUnavailable": "100%"}, FOUR_READY, (5, 0, 4, 4), id="max-pct-all"),
    pytest.param({"maxUnavailable": 9}, FOUR_READY, (5, 0, 4, 4), id="max-above-scale"),
    pytest.param({"maxUnavailable": 1}, FOUR_READY + [_pod("x", owner="other-uid")],
                 (8, 7, 5, 0), id="two-controllers-summed"),
    pytest.param({"maxUnavailable": 1}, [_pod("a", owner=None), _pod("b")],
                 (5, 4, 2, 0), id="unmanaged-left-out-of-scale"),
    pytest.param({"minAvailable": 1}, [_pod("a", owner=None), _pod("b", owner=None)],
                 (2, 1, 2, 1), id="unmanaged-with-int-min"),
    pytest.param({"minAvailable": 0}, [], (0, 0, 0, 0), id="no-pods-allows-nothing"),
    pytest.param({"maxUnavailable": 1}, [_pod("a", deleting=True), _pod("b")],
                 (5, 4, 1, 0), id="deleting-pods-not-healthy"),
])
def test_status_arithmetic(spec: Obj, pods: list[Obj], want: tuple[int, int, int, int]) -> None:
    s = _status(spec, pods)
    assert (s["expectedPods"], s["desiredHealthy"], s["currentHealthy"],
            s["disruptionsAllowed"]) == want
    [cond] = s["conditions"]
    allowed = want[3] > 0
    assert cond["type"] == "DisruptionAllowed"
    assert cond["status"] == ("True" if allowed else "False")
    assert cond["reason"] == ("SufficientPods" if allowed else "InsufficientPods")
    assert s["observedGeneration"] == 2 and cond["observedGeneration"] == 2


def test_unmanaged_pods_are_named_and_missing_controllers_fail() -> None:
    got = expected_and_desired({"maxUnavailable": "50%"}, [_pod("a", owner=None)], _scale)
    assert got.unmanaged == ("a",) and got.expected == 0
    with pytest.raises(DisruptionError, match="found no controllers for pod 'b'"):
        expected_and_desired({"maxUnavailable": 1}, [_pod("b", owner="gone")], _scale)
    with pytest.raises(DisruptionError, match="not a percentage"):
        expected_and_desired({"minAvailable": "3"}, [_pod("c")], _scale)


def test_an_unchanged_status_is_not_written_again() -> None:
    pods = [_pod("a"), _pod("b")]
    pdb: Obj = {"metadata": {"generation": 1}, "spec": {"minAvailable": 1}, "status": {}}
    status = with_status(pdb, healthy=2, desired=1, expected=2, disrupted={}, now="t")
    assert status is not None
    pdb["status"] = status
    assert with_status(pdb, healthy=count_healthy(pods, {}), desired=1, expected=2,
                       disrupted={}, now="t2") is None


def test_disrupted_pods_expire_after_two_minutes_on_both_clocks() -> None:
    now = dt.datetime(2026, 1, 1, 0, 10, tzinfo=dt.UTC)
    pods = [_pod("a"), _pod("b"), _pod("gone-soon", deleting=True)]
    recorded = {"a": format_time(now - dt.timedelta(seconds=30)),
                "b": format_time(now - dt.timedelta(seconds=500)),
                "gone-soon": format_time(now), "vanished": format_time(now)}
    # first seen just now: even the 500 s old entry is kept (the apiserver's clock may be off)
    keep, recheck = build_disrupted(pods, recorded, now, lambda _p, _t: 0.0)
    assert set(keep) == {"a", "b"} and recheck == 120.0
    assert count_healthy(pods, keep) == 0
    # seen for 121 s: "b" has expired on both clocks; "a" not yet by the apiserver's
    keep, recheck = build_disrupted(pods, recorded, now, lambda _p, _t: 121.0)
    assert set(keep) == {"a"} and recheck == 90.0


def test_go_selector_text() -> None:
    assert go_selector({"matchLabels": {"app": "web"}}) == (
        "&LabelSelector{MatchLabels:map[string]string{app: web,},"
        "MatchExpressions:[]LabelSelectorRequirement{},}")


# --- the controller over the API ----------------------------------------------------------------

def deployment(replicas: int = 3) -> Obj:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def pdb(**spec: Any) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


async def owned_pods(env: Env, n: int, *, replicas: int = 5) -> list[Obj]:
    """A Deployment, its ReplicaSet and ``n`` Ready pods it controls (written by hand)."""
    d = await env.admin.create(R.DEPLOYMENTS, deployment(replicas), NS)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web-1", "namespace": NS, "labels": {"app": "web"},
                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": "web", "uid": d["metadata"]["uid"],
                                            "controller": True}]},
          "spec": {**deployment()["spec"], "replicas": n}}
    made_rs = await env.admin.create(R.REPLICASETS, rs, NS)
    out = []
    for i in range(n):
        p = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"web-{i}", "namespace": NS, "labels": {"app": "web"},
                          "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                               "name": "web-1",
                                               "uid": made_rs["metadata"]["uid"],
                                               "controller": True}]},
             "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}}
        made = await env.admin.create(R.PODS, p, NS)
        made["status"] = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        out.append(await env.admin.update_status(R.PODS, made))
    return out


async def status_of(env: Env) -> Obj:
    got = (await env.admin.get(R.PODDISRUPTIONBUDGETS, "web", NS))["status"]
    assert isinstance(got, dict)
    return got


async def test_status_from_the_deployment_scale_then_eviction_spends_it(
        api: InProcessAPI) -> None:
    async with controller_env(api, "disruption") as env:
        await owned_pods(env, 4, replicas=5)
        await env.admin.create(R.PODDISRUPTIONBUDGETS, pdb(maxUnavailable=2), NS)
        await env.reconcile("disruption", "default/web")
        st = await status_of(env)
        assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"],
                st["disruptionsAllowed"]) == (5, 3, 4, 1)
        assert st["observedGeneration"] == 1
        assert st["conditions"][0]["reason"] == "SufficientPods"
        evict = {"apiVersion": "policy/v1", "kind": "Eviction",
                 "metadata": {"name": "web-0", "namespace": NS}}
        await env.admin.create(R.PODS, evict, NS, subresource="eviction", name="web-0")
        st = await status_of(env)
        assert st["disruptionsAllowed"] == 0 and "web-0" in st.get("disruptedPods", {})
        evict["metadata"]["name"] = "web-1"
        async with api.client(retries=False) as once:  # a 429 is the answer, not a retry
            with pytest.raises(TooManyRequests):
                await once.create(R.PODS, evict, NS, subresource="eviction", name="web-1")
        # the evicted pod is terminating now: the controller drops it from disruptedPods
        await env.reconcile("disruption", "default/web")
        st = await status_of(env)
        assert not st.get("disruptedPods") and st["currentHealthy"] == 3
        assert st["disruptionsAllowed"] == 0
        assert st["conditions"][0]["reason"] == "InsufficientPods"


async def test_a_disrupted_pod_that_is_not_deleted_counts_again_after_two_minutes(
        api: InProcessAPI) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with controller_env(api, "disruption", clock=clock) as env:
        await owned_pods(env, 3, replicas=3)
        made = await env.admin.create(R.PODDISRUPTIONBUDGETS, pdb(minAvailable=1), NS)
        made["status"] = {"disruptedPods": {"web-0": format_time(clock.now())},
                          "disruptionsAllowed": 0}
        await env.admin.update_status(R.PODDISRUPTIONBUDGETS, made)
        again = await env.reconcile("disruption", "default/web")
        assert again is not None and 120 <= again <= 122
        st = await status_of(env)
        assert st["currentHealthy"] == 2 and st["disruptionsAllowed"] == 1
        clock.advance(121)
        await env.reconcile("disruption", "default/web")
        st = await status_of(env)
        assert not st.get("disruptedPods")
        assert st["currentHealthy"] == 3 and st["disruptionsAllowed"] == 2
        events, _ = await env.admin.list_all(R.EVENTS, NS)
        assert any(e["reason"] == "NotDeleted" and e["involvedObject"]["name"] == "web-0"
                   for e in events)


async def test_a_pod_whose_controller_is_missing_fails_safe(api: InProcessAPI) -> None:
    async with controller_env(api, "disruption") as env:
        p = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "orphan", "namespace": NS, "labels": {"app": "web"},
                          "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                               "name": "gone", "uid": "gone-uid",
                                               "controller": True}]},
             "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        await env.admin.create(R.PODS, p, NS)
        await env.admin.create(R.PODDISRUPTIONBUDGETS, pdb(maxUnavailable=1), NS)
        assert await env.reconcile("disruption", "default/web") is not None  # no hot loop
        st = await status_of(env)
        [cond] = st["conditions"]
        assert (cond["status"], cond["reason"]) == ("False", "SyncFailed")
        assert cond["message"] == "found no controllers for pod 'orphan'"
        assert st["disruptionsAllowed"] == 0


async def test_budgets_follow_their_pods_when_running(api: InProcessAPI) -> None:
    async with controller_env(api, "disruption") as env, env.running():
        await env.admin.create(R.PODDISRUPTIONBUDGETS, pdb(minAvailable=1), NS)

        async def allowed(n: int) -> bool:
            st = await status_of(env)
            return st.get("disruptionsAllowed") == n and st.get("observedGeneration") == 1

        await env.until(lambda: allowed(0))
        await owned_pods(env, 3)
        await env.until(lambda: allowed(2))


async def test_a_stale_disruption_target_condition_is_reset(api: InProcessAPI) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with controller_env(api, "disruption", clock=clock) as env:
        [p] = await owned_pods(env, 1)
        p["status"]["conditions"].append(
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
             "message": "Eviction API: evicting", "lastTransitionTime": format_time(clock.now())})
        await env.admin.update_status(R.PODS, p)
        wait = await env.reconcile("disruption", "pod:default/web-0")
        assert wait is not None and 119 <= wait <= 120
        clock.advance(121)
        assert await env.reconcile("disruption", "pod:default/web-0") is None
        got = await env.admin.get(R.PODS, "web-0", NS)
        [c] = [c for c in got["status"]["conditions"] if c["type"] == "DisruptionTarget"]
        assert c["status"] == "False" and "reason" not in c
