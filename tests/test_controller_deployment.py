"""The Deployment controller: its arithmetic against Kubernetes' own test tables, and
reconcile(key) over a real apiserver in process with the ReplicaSet controller beside it
(pods are made ready by writing their status as admin: there are no node agents here)."""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any

import pytest

from control.api.clock import FakeClock, format_time
from control.api.errors import APIError
from control.client import ObjectCache
from control.client import resources as R
from control.controllers.deployment import DeploymentController
from control.controllers.deployment_rollout import (
    new_rs_target,
    plan_old_scale_down,
    plan_scale,
)
from control.controllers.deployment_status import rollout_status
from control.controllers.deployment_util import (
    HASH_LABEL,
    REVISION,
    max_surge,
    max_unavailable,
    set_new_rs_annotations,
)
from control.controllers.podutil import is_pod_active, is_pod_ready, template_hash
from control.controllers.written import WrittenVersions
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI, serve_api

Obj = dict[str, Any]
NS = "default"
KEY = "default/web"


# --- pure arithmetic -------------------------------------------------------------------------


def dep(replicas: int, surge: Any = "25%", unavailable: Any = "25%", **spec: Any) -> Obj:
    return {"metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 600,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": surge,
                                                    "maxUnavailable": unavailable}},
                     **spec}}


def rs(name: str, replicas: int, age: int, *, available: int | None = None,
       ann: dict[str, str] | None = None) -> Obj:
    avail = replicas if available is None else available
    return {"metadata": {"name": name, "uid": name, "annotations": dict(ann or {}),
                         "creationTimestamp": f"2026-01-01T00:00:{age:02d}Z"},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": avail}}


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "want"), [
    pytest.param(10, "25%", "25%", (3, 2), id="defaults-10: surge rounds up, unavailable down"),
    pytest.param(4, "25%", "25%", (1, 1), id="defaults-4"),
    pytest.param(3, "25%", "25%", (1, 0), id="defaults-3"),
    pytest.param(1, "25%", "25%", (1, 0), id="defaults-1"),
    pytest.param(2, "0%", "1%", (0, 1), id="both-round-to-0: unavailable becomes 1"),
    pytest.param(2, 0, "49%", (0, 1), id="both-0-after-rounding"),
    pytest.param(5, 2, 1, (2, 1), id="absolute"),
    pytest.param(2, 0, 5, (0, 2), id="unavailable-capped-at-replicas"),
    pytest.param(3, "100%", "100%", (3, 3), id="hundred-percent"),
    pytest.param(0, "25%", "25%", (0, 0), id="zero-replicas"),
])
def test_fenceposts(replicas: int, surge: Any, unavailable: Any, want: tuple[int, int]) -> None:
    d = dep(replicas, surge, unavailable)
    assert (max_surge(d), max_unavailable(d)) == want


def test_recreate_has_no_fenceposts() -> None:
    d = dep(4)
    d["spec"]["strategy"] = {"type": "Recreate"}
    assert (max_surge(d), max_unavailable(d)) == (0, 0)


def _sizes(plan: list[Any]) -> dict[str, int]:
    return {s.rs["metadata"]["name"]: s.replicas for s in plan}


@pytest.mark.parametrize(("d", "new", "olds", "want"), [
    # kubernetes rolling_test.go TestDeploymentController_reconcileNewReplicaSet
    pytest.param(dep(10, 2, 0), rs("new", 0, 2), [rs("old", 10, 1)], 2, id="surge-2"),
    pytest.param(dep(10, 2, 0), rs("new", 2, 2), [rs("old", 10, 1)], 2, id="at-ceiling"),
    pytest.param(dep(10, 2, 0), rs("new", 5, 2), [rs("old", 5, 1)], 7, id="up-to-ceiling"),
    pytest.param(dep(10, 2, 0), rs("new", 10, 2), [rs("old", 2, 1)], 10, id="saturated"),
    pytest.param(dep(10, 2, 0), rs("new", 12, 2), [rs("old", 0, 1)], 10, id="scale-down"),
    pytest.param(dep(10, "25%", 0), rs("new", 0, 2), [rs("old", 10, 1)], 3,
                 id="percent-surge-rounds-up"),
])
def test_new_replica_set_target(d: Obj, new: Obj, olds: list[Obj], want: int) -> None:
    assert new_rs_target(d, [*olds, new], new) == want


@pytest.mark.parametrize(("d", "new", "olds", "want"), [
    # 10 replicas, 2 unavailable, 3 surge; the new set crashloops (rolling.go's example)
    pytest.param(dep(10, 3, 2), rs("new", 5, 2, available=0), [rs("old", 8, 1)], {},
                 id="broken-new-set-blocks"),
    pytest.param(dep(10, 3, 2), rs("new", 3, 2, available=0), [rs("old", 10, 1)],
                 {"old": 8}, id="first-step-down-to-min-available"),
    pytest.param(dep(10, 3, 2), rs("new", 3, 2, available=3), [rs("old", 8, 1)],
                 {"old": 5}, id="new-pods-available"),
    pytest.param(dep(10, 0, 2), rs("new", 0, 3), [rs("old", 10, 2, available=7)],
                 {"old": 8}, id="unhealthy-first-within-room"),
    pytest.param(dep(4, 1, 1), rs("new", 2, 3, available=1),
                 [rs("older", 1, 1), rs("old", 2, 2)], {"older": 0},
                 id="oldest-first"),
    # a status written before the old set was scaled down must not count its doomed pods
    pytest.param(dep(4, 1, 1), rs("new", 2, 2, available=1),
                 [rs("old", 3, 1, available=4)], {"old": 2}, id="stale-status-capped"),
])
def test_old_replica_sets_scale_down(d: Obj, new: Obj, olds: list[Obj],
                                     want: dict[str, int]) -> None:
    assert _sizes(plan_old_scale_down(d, [*olds, new], olds, new)) == want


def _annotated(r: Obj, replicas: int, surge: int) -> Obj:
    r["metadata"]["annotations"].update({"deployment.kubernetes.io/desired-replicas":
                                         str(replicas),
                                         "deployment.kubernetes.io/max-replicas":
                                         str(replicas + surge)})
    return r


@pytest.mark.parametrize(("replicas", "old_replicas", "surge", "new", "olds", "want"), [
    # kubernetes sync_test.go TestScale (maxSurge/maxUnavailable 0 unless given)
    pytest.param(10, 5, 0, ("v2", 2), [("v1", 3)], {"v2": 4, "v1": 6}, id="5-to-10"),
    pytest.param(3, 5, 0, ("v2", 2), [("v1", 3)], {"v2": 1, "v1": 2}, id="5-to-3"),
    pytest.param(4, 9, 0, ("v2", 8), [("v1", 1)], {"v2": 4, "v1": 0}, id="9-to-4"),
    pytest.param(10, 7, 0, ("v3", 2), [("v2", 3), ("v1", 2)], {"v3": 3, "v2": 4, "v1": 3},
                 id="7-to-10"),
    pytest.param(8, 13, 0, ("v3", 2), [("v2", 8), ("v1", 3)], {"v3": 1, "v2": 5, "v1": 2},
                 id="13-to-8"),
    pytest.param(4, 3, 0, ("v3", 1), [("v2", 1), ("v1", 1)], {"v3": 2, "v2": 1, "v1": 1},
                 id="leftover-up-to-newest"),
    pytest.param(2, 3, 0, ("v3", 1), [("v2", 1), ("v1", 1)], {"v3": 1, "v2": 1, "v1": 0},
                 id="leftover-down-from-oldest"),
    pytest.param(0, 6, 0, ("v3", 3), [("v2", 2), ("v1", 1)], {"v3": 0, "v2": 0, "v1": 0},
                 id="6-to-0"),
    pytest.param(20, 10, 2, ("v2", 6), [("v1", 6)], {"v2": 11, "v1": 11}, id="with-surge"),
])
def test_proportional_scaling(replicas: int, old_replicas: int, surge: int,
                              new: tuple[str, int], olds: list[tuple[str, int]],
                              want: dict[str, int]) -> None:
    d = dep(replicas, surge, 0 if surge else 1)
    ages = {name: i for i, (name, _) in enumerate(reversed([new, *olds]))}
    new_rs = _annotated(rs(new[0], new[1], ages[new[0]], available=0), old_replicas, surge)
    old_rss = [_annotated(rs(n, k, ages[n]), old_replicas, surge) for n, k in olds]
    got = {n: k for n, k in ((s.rs["metadata"]["name"], s.replicas)
                             for s in plan_scale(d, new_rs, old_rss))}
    assert {**{n: k for n, k in [new, *olds]}, **got} == want


def test_proportional_scaling_changes_surge_and_size() -> None:
    d = dep(50, 6, 0)
    new_rs = _annotated(rs("v2", 5, 2, available=0), 10, 3)
    old = _annotated(rs("v1", 8, 1), 10, 3)
    assert _sizes(plan_scale(d, new_rs, [old])) == {"v1": 34, "v2": 22}


def test_saturated_but_broken_new_set_keeps_old_pods() -> None:
    d = dep(2, 1, 1)
    new_rs = _annotated(rs("v2", 2, 2, available=0), 2, 1)
    old = _annotated(rs("v1", 1, 1), 2, 1)
    assert all(s.replicas == s.rs["spec"]["replicas"] for s in plan_scale(d, new_rs, [old]))


def test_rollback_keeps_the_old_revision_in_history() -> None:
    d = {"metadata": {"annotations": {"kubernetes.io/change-cause": "undo",
                                      REVISION: "2", "kubectl.kubernetes.io/"
                                      "last-applied-configuration": "{}"}},
         "spec": {"replicas": 3}}
    r = rs("v1", 0, 1, ann={REVISION: "1"})
    assert set_new_rs_annotations(d, r, 3, exists=True)
    ann = r["metadata"]["annotations"]
    assert ann == {REVISION: "3", "deployment.kubernetes.io/revision-history": "1",
                   "kubernetes.io/change-cause": "undo"}
    ann[REVISION] = "5"
    assert not set_new_rs_annotations(d, r, 4, exists=True)  # never lowered


def test_progressing_condition_moves_only_on_progress() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    d = dep(2, 1, 0)
    d["status"] = {"conditions": [{"type": "Progressing", "status": "True",
                                   "reason": "NewReplicaSetCreated", "message": "m",
                                   "lastUpdateTime": format_time(t0),
                                   "lastTransitionTime": format_time(t0)}]}
    new = rs("new", 2, 1, available=0)
    new["status"]["replicas"] = 0
    same = rollout_status(d, [new], new, t0 + dt.timedelta(seconds=100))
    assert same["conditions"][0]["reason"] == "NewReplicaSetCreated"
    late = rollout_status(d, [new], new, t0 + dt.timedelta(seconds=601))
    cond = next(c for c in late["conditions"] if c["type"] == "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"] == 'ReplicaSet "new" has timed out progressing.'


def test_written_versions_wait_for_the_cache() -> None:
    clock = FakeClock()
    cache, other = ObjectCache(), ObjectCache()
    seen = WrittenVersions(clock, timeout=30)
    rs = {"metadata": {"namespace": NS, "name": "a", "resourceVersion": "10"}}
    seen.wrote("d", cache, rs)
    assert not seen.caught_up("d")  # not in the cache at all yet
    cache.put({"metadata": {"namespace": NS, "name": "a", "resourceVersion": "9"}})
    other.put(rs)  # another cache (another resource) holding the same key does not count
    assert not seen.caught_up("d")
    cache.put({"metadata": {"namespace": NS, "name": "a", "resourceVersion": "11"}})
    assert seen.caught_up("d") and seen.caught_up("never-wrote")
    seen.wrote("d", cache, {"metadata": {"namespace": NS, "name": "b", "resourceVersion": "12"}})
    seen.gone("d", f"{NS}/b")  # deleted before it was seen
    assert seen.caught_up("d")
    seen.wrote("d", cache, {"metadata": {"namespace": NS, "name": "c", "resourceVersion": "13"}})
    clock.advance(31)  # a lost event cannot wedge the owner
    assert seen.caught_up("d")


# --- through the apiserver ---------------------------------------------------------------------


@pytest.fixture
async def api(certs_dir_session: Any) -> Any:
    """The in-process apiserver, with frequent progress notifications: informers learn of
    writes to resources they do not watch (events) at once, so settling is quick."""
    async with serve_api(certs_dir_session, progress_interval=0.01) as served:
        yield served


def deployment(replicas: int = 3, image: str = "nginx", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}},
                     **spec}}


async def get_d(env: Env) -> Obj:
    return await env.admin.get(R.DEPLOYMENTS, "web", NS)


async def sets(env: Env) -> list[Obj]:
    """The ReplicaSets the Deployment controls, by revision (what `rollout history` reads)."""
    d = await get_d(env)
    items, _ = await env.admin.list_all(R.REPLICASETS, NS, label_selector="app=web")
    mine = [r for r in items if any(o.get("controller") and o["uid"] == d["metadata"]["uid"]
                                    for o in r["metadata"].get("ownerReferences") or ())]
    return sorted(mine, key=lambda r: int(r["metadata"]["annotations"][REVISION]))


def size(r: Obj) -> int:
    return int(r["spec"]["replicas"])


async def live_pods(env: Env) -> list[Obj]:
    items, _ = await env.admin.list_all(R.PODS, NS, label_selector="app=web")
    return [p for p in items if is_pod_active(p)]


async def make_ready(env: Env, pod: Obj) -> None:
    p = copy.deepcopy(pod)
    p["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": format_time(
            dt.datetime.now(dt.UTC))}]}
    await env.admin.update_status(R.PODS, p)


async def step(env: Env, *, ready: bool = True) -> None:
    """One round: the Deployment, every ReplicaSet, pods ready, every ReplicaSet again."""
    await env.reconcile("deployment", KEY)
    for r in await sets(env):
        await env.reconcile("replicaset", f"{NS}/{r['metadata']['name']}")
    if ready:
        for p in await live_pods(env):
            if not is_pod_ready(p):
                await make_ready(env, p)
        for r in await sets(env):
            await env.reconcile("replicaset", f"{NS}/{r['metadata']['name']}")


async def roll_out(env: Env, rounds: int = 12) -> Obj:
    """Rounds until the Deployment reports NewReplicaSetAvailable and old sets are at 0."""
    for _ in range(rounds):
        await step(env)
        d = await get_d(env)
        st, want = d["status"], d["spec"]["replicas"]
        cond = {c["type"]: c for c in st.get("conditions") or ()}
        if (cond.get("Progressing", {}).get("reason") == "NewReplicaSetAvailable"
                and st.get("observedGeneration") == d["metadata"]["generation"]
                and st.get("replicas", 0) == st.get("updatedReplicas", 0)
                == st.get("availableReplicas", 0) == want):
            await env.reconcile("deployment", KEY)  # a complete rollout prunes history
            return d
    raise AssertionError(f"rollout did not finish: {d['status']}")


async def events(env: Env, reason: str) -> list[str]:
    items, _ = await env.admin.list_all(R.EVENTS, NS)
    return [e["message"] for e in sorted(items, key=lambda e: e["metadata"]["creationTimestamp"])
            if e["reason"] == reason]


async def set_image(env: Env, image: str) -> None:
    await env.admin.patch(R.DEPLOYMENTS, "web", {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": image}]}}}}, NS, patch_type="strategic")


async def test_first_rollout_owns_a_hashed_replica_set_and_pods(api: InProcessAPI) -> None:
    async with controller_env(api, "deployment", "replicaset") as env:
        made = await env.admin.create(R.DEPLOYMENTS, deployment(3), NS)
        await env.reconcile("deployment", KEY)
        [r] = await sets(env)
        digest = template_hash(made["spec"]["template"])
        assert r["metadata"]["name"] == f"web-{digest}"
        assert r["metadata"]["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
            "uid": made["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
        assert r["spec"]["selector"] == {"matchLabels": {"app": "web", HASH_LABEL: digest}}
        assert r["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH_LABEL: digest}
        assert r["metadata"]["labels"] == {"app": "web", HASH_LABEL: digest}
        assert r["metadata"]["annotations"] == {
            REVISION: "1", "deployment.kubernetes.io/desired-replicas": "3",
            "deployment.kubernetes.io/max-replicas": "4"}
        assert size(r) == 3
        d = await get_d(env)
        assert d["metadata"]["annotations"][REVISION] == "1"
        assert d["metadata"]["generation"] == 1  # the revision came by a status write
        [progressing] = [c for c in d["status"]["conditions"] if c["type"] == "Progressing"]
        assert (progressing["reason"], progressing["message"]) == (
            "NewReplicaSetCreated", f'Created new replica set "web-{digest}"')
        assert await events(env, "ScalingReplicaSet") == [
            f"Scaled up replica set web-{digest} from 0 to 3"]

        await env.reconcile("replicaset", f"{NS}/web-{digest}")
        pods = await live_pods(env)
        assert len(pods) == 3
        for p in pods:
            assert p["metadata"]["labels"] == {"app": "web", HASH_LABEL: digest}
            assert p["metadata"]["ownerReferences"][0]["uid"] == r["metadata"]["uid"]

        d = await roll_out(env)
        st = d["status"]
        assert {k: st.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas",
                                       "availableReplicas", "observedGeneration")} == {
            "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "observedGeneration": 1}
        cond = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
        assert cond == {"Available": ("True", "MinimumReplicasAvailable"),
                        "Progressing": ("True", "NewReplicaSetAvailable")}


async def test_a_new_template_is_revision_2_within_surge_and_unavailable(
        api: InProcessAPI) -> None:
    async with controller_env(api, "deployment", "replicaset") as env:
        await env.admin.create(R.DEPLOYMENTS, deployment(4), NS)  # 25%/25%: surge 1, unav 1
        await roll_out(env)
        await set_image(env, "nginx:2")
        await env.reconcile("deployment", KEY)
        old, new = await sets(env)
        assert new["metadata"]["annotations"][REVISION] == "2"
        assert (size(old), size(new)) == (3, 1)  # surge one new, down one old
        assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
        await env.reconcile("deployment", KEY)  # room again under the ceiling of 5
        assert [size(r) for r in await sets(env)] == [3, 2]
        await env.reconcile("deployment", KEY)  # no new pod available: no further step
        await step(env, ready=False)
        assert [size(r) for r in await sets(env)] == [3, 2]
        d = await roll_out(env)
        old, new = await sets(env)
        assert (size(old), size(new)) == (0, 4)
        assert d["metadata"]["annotations"][REVISION] == "2"
        assert d["status"]["updatedReplicas"] == 4 and "unavailableReplicas" not in d["status"]
        assert len(await live_pods(env)) == 4
        msgs = await events(env, "ScalingReplicaSet")
        name_new = new["metadata"]["name"]
        assert f"Scaled up replica set {name_new} from 0 to 1" in msgs
        assert f"Scaled down replica set {old['metadata']['name']} from 4 to 3" in msgs


async def test_recreate_scales_old_to_zero_before_creating_the_new(api: InProcessAPI) -> None:
    async with controller_env(api, "deployment", "replicaset") as env:
        await env.admin.create(R.DEPLOYMENTS, deployment(2, strategy={"type": "Recreate"}), NS)
        await roll_out(env)
        await set_image(env, "nginx:2")
        await env.reconcile("deployment", KEY)
        [old] = await sets(env)
        assert size(old) == 0  # and no new set while old pods still run
        await env.reconcile("deployment", KEY)
        assert len(await sets(env)) == 1
        await env.reconcile("replicaset", f"{NS}/{old['metadata']['name']}")
        await env.reconcile("deployment", KEY)
        old, new = await sets(env)
        assert (size(old), size(new)) == (0, 2)
        assert new["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "2"
        await roll_out(env)


async def test_replicas_changed_mid_rollout_scale_proportionally(api: InProcessAPI) -> None:
    async with controller_env(api, "deployment", "replicaset") as env:
        await env.admin.create(R.DEPLOYMENTS, deployment(10), NS)  # surge 3, unavailable 2
        await roll_out(env)
        await set_image(env, "nginx:2")
        await env.reconcile("deployment", KEY)
        old, new = await sets(env)
        assert (size(old), size(new)) == (8, 3)
        await env.admin.patch(R.DEPLOYMENTS, "web", {"spec": {"replicas": 20}}, NS)
        await env.reconcile("deployment", KEY)
        old, new = await sets(env)
        # 25 allowed (20 + 5 surge) for 11: 8 -> 15 and 3 -> 6 by their share of 13, the
        # leftover 4 to the largest
        assert (size(old), size(new)) == (19, 6)
        for r in (old, new):
            ann = r["metadata"]["annotations"]
            assert ann["deployment.kubernetes.io/desired-replicas"] == "20"
            assert ann["deployment.kubernetes.io/max-replicas"] == "25"
        d = await roll_out(env, rounds=20)
        assert d["status"]["availableReplicas"] == 20
        assert [size(r) for r in await sets(env)] == [0, 20]


async def test_paused_deployment_scales_but_does_not_roll_out(api: InProcessAPI) -> None:
    async with controller_env(api, "deployment", "replicaset") as env:
        await env.admin.create(R.DEPLOYMENTS, deployment(2), NS)
        await roll_out(env)
        await env.admin.patch(R.DEPLOYMENTS, "web", {"spec": {"paused": True}}, NS)
        await set_image(env, "nginx:2")
        await env.reconcile("deployment", KEY)
        d = await get_d(env)
        cond = {c["type"]: c for c in d["status"]["conditions"]}
        assert (cond["Progressing"]["status"], cond["Progressing"]["reason"],
                cond["Progressing"]["message"]) == ("Unknown", "DeploymentPaused",
                                                    "Deployment is paused")
        assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
        assert len(await sets(env)) == 1
        await env.admin.patch(R.DEPLOYMENTS, "web", {"spec": {"replicas": 5}}, NS)
        await env.reconcile("deployment", KEY)
        [only] = await sets(env)
        assert size(only) == 5
        await env.admin.patch(R.DEPLOYMENTS, "web", {"spec": {"paused": None}}, NS)
        await env.reconcile("deployment", KEY)
        assert len(await sets(env)) == 2
        d = await roll_out(env)
        assert d["metadata"]["annotations"][REVISION] == "2"


async def test_progress_deadline_exceeded_on_the_injected_clock(api: InProcessAPI) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with controller_env(api, "deployment", "replicaset", clock=clock) as env:
        await env.admin.create(R.DEPLOYMENTS, deployment(2, progressDeadlineSeconds=60), NS)
        await env.reconcile("deployment", KEY)
        await step(env, ready=False)
        again = await env.reconcile("deployment", KEY)
        assert again is not None and 55 < again <= 61
        clock.advance(30)
        again = await env.reconcile("deployment", KEY)
        assert again is not None and 25 < again <= 31
        d = await get_d(env)
        assert {c["type"]: c["reason"] for c in d["status"]["conditions"]}["Progressing"] \
            == "ReplicaSetUpdated"
        clock.advance(31)
        assert await env.reconcile("deployment", KEY) is None
        d = await get_d(env)
        [name] = [r["metadata"]["name"] for r in await sets(env)]
        cond = {c["type"]: c for c in d["status"]["conditions"]}["Progressing"]
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "False", "ProgressDeadlineExceeded", f'ReplicaSet "{name}" has timed out progressing.')
        d = await roll_out(env)  # pods ready after all: the rollout completes
        assert {c["type"]: c["reason"] for c in d["status"]["conditions"]}["Progressing"] \
            == "NewReplicaSetAvailable"


async def test_revision_history_limit_prunes_old_sets(api: InProcessAPI) -> None:
    async with controller_env(api, "deployment", "replicaset") as env:
        await env.admin.create(R.DEPLOYMENTS, deployment(1, revisionHistoryLimit=1), NS)
        await roll_out(env)
        for image in ("nginx:2", "nginx:3"):
            await set_image(env, image)
            await roll_out(env)
        history = {r["metadata"]["annotations"][REVISION]: size(r) for r in await sets(env)}
        assert history == {"2": 0, "3": 1}  # revision 1 is gone: `rollout undo
        # --to-revision=1` then fails in kubectl with "unable to find specified revision"


async def test_rollback_reuses_the_old_set_with_the_next_revision(api: InProcessAPI) -> None:
    async with controller_env(api, "deployment", "replicaset") as env:
        await env.admin.create(R.DEPLOYMENTS, deployment(2), NS)
        await roll_out(env)
        await set_image(env, "nginx:2")
        await roll_out(env)
        first, _ = await sets(env)
        template = copy.deepcopy(first["spec"]["template"])
        del template["metadata"]["labels"][HASH_LABEL]
        # what `kubectl rollout undo` sends
        await env.admin.patch(R.DEPLOYMENTS, "web", [
            {"op": "replace", "path": "/spec/template", "value": template}], NS,
            patch_type="json")
        d = await roll_out(env)
        history = {r["metadata"]["name"]: r["metadata"]["annotations"] for r in await sets(env)}
        assert len(history) == 2
        back = history[first["metadata"]["name"]]
        assert back[REVISION] == "3" and back["deployment.kubernetes.io/revision-history"] == "1"
        assert d["metadata"]["annotations"][REVISION] == "3"
        assert [size(r) for r in await sets(env)] == [0, 2]  # revision 2, then 3


async def test_a_hash_collision_bumps_collision_count(api: InProcessAPI) -> None:
    async with controller_env(api, "deployment", "replicaset") as env:
        made = await env.admin.create(R.DEPLOYMENTS, deployment(1, paused=True), NS)
        squatter = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": f"web-{template_hash(made['spec']['template'])}",
                                 "labels": {"app": "other"}},
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}},
                             "template": {"metadata": {"labels": {"app": "other"}},
                                          "spec": {"containers": [{"name": "c",
                                                                   "image": "busybox"}]}}}}
        await env.admin.create(R.REPLICASETS, squatter, NS)
        await env.admin.patch(R.DEPLOYMENTS, "web", {"spec": {"paused": None}}, NS)
        with pytest.raises(APIError):
            await env.reconcile("deployment", KEY)
        assert (await get_d(env))["status"]["collisionCount"] == 1
        await env.reconcile("deployment", KEY)
        [r] = await sets(env)
        assert r["metadata"]["name"] == f"web-{template_hash(made['spec']['template'], 1)}"


async def test_a_selector_that_misses_its_template_is_an_event(api: InProcessAPI) -> None:
    async with controller_env(api, "deployment") as env:
        made = await env.admin.create(R.DEPLOYMENTS, deployment(1), NS)
        await env.settle()
        bad = copy.deepcopy(made)  # the apiserver refuses this: seed the cache directly
        bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        ctrl = env["deployment"]
        assert isinstance(ctrl, DeploymentController)
        ctrl.deployments.cache.put(bad)
        assert await ctrl.reconcile(KEY) is None
        await env.ctx.recorder.flush()
        assert await events(env, "InvalidSelector") == [
            "selector does not match template labels"]
        assert await sets(env) == []
        assert (await get_d(env))["status"]["observedGeneration"] == 1


async def test_no_decision_from_a_cache_behind_its_own_writes(api: InProcessAPI) -> None:
    async with controller_env(api, "deployment") as env:
        await env.admin.create(R.DEPLOYMENTS, deployment(2), NS)
        await env.reconcile("deployment", KEY)
        ctrl = env["deployment"]
        assert isinstance(ctrl, DeploymentController)
        [r] = await sets(env)
        key = f"{NS}/{r['metadata']['name']}"
        fresh = ctrl.sets.cache.get(key)
        assert fresh is not None
        lagging = copy.deepcopy(fresh)  # as if the watch had not yet delivered our create
        lagging["metadata"]["resourceVersion"] = str(int(r["metadata"]["resourceVersion"]) - 1)
        ctrl.sets.cache.put(lagging)
        before = (await get_d(env))["metadata"]["resourceVersion"]
        assert await ctrl.reconcile(KEY) == 1.0  # look again soon, write nothing
        assert (await get_d(env))["metadata"]["resourceVersion"] == before
        ctrl.sets.cache.put(fresh)
        assert await ctrl.reconcile(KEY) != 1.0
        ctrl.start_term()  # a new term forgets what an earlier one wrote
        ctrl.sets.cache.put(lagging)
        assert await ctrl.reconcile(KEY) != 1.0
        ctrl.sets.cache.put(fresh)


# --- safety under any order of events and leaders ----------------------------------------------


async def _check_bounds(env: Env, replicas: int, surge: int, unavailable: int,
                        floor_reached: bool) -> bool:
    rss = await sets(env)
    total = sum(size(r) for r in rss)
    assert total <= replicas + surge, [(r["metadata"]["name"], size(r)) for r in rss]
    ready = sum(1 for p in await live_pods(env) if is_pod_ready(p))
    if floor_reached:
        assert ready >= replicas - unavailable, (ready, [size(r) for r in rss])
    return floor_reached or ready >= replicas - unavailable


@pytest.mark.parametrize(("seed", "surge", "unavailable"), [
    (1, "25%", "25%"), (2, 2, 0), (3, 0, 2), (4, "50%", "20%"), (5, 1, 1), (6, "25%", "25%"),
])
async def test_rollout_bounds_hold_in_any_order(api: InProcessAPI, seed: int, surge: Any,
                                                unavailable: Any) -> None:
    """Pods become ready in random order, the controllers run in random order, sometimes on a
    cache that has not seen the last writes, and the leader changes (a fresh controller:
    nothing expected, nothing remembered); at every step no more than replicas + maxSurge
    pods are asked for and, once reached, replicas - maxUnavailable stay ready."""
    rng = random.Random(seed)
    replicas = 5
    spec = deployment(replicas, strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": surge, "maxUnavailable": unavailable}})
    async with controller_env(api, "deployment", "replicaset") as env:
        made = await env.admin.create(R.DEPLOYMENTS, spec, NS)
        top, floor = max_surge(made), max_unavailable(made)
        await roll_out(env)
        reached = await _check_bounds(env, replicas, top, floor, False)
        assert reached
        await set_image(env, "nginx:2")
        rolled_over = False
        for _ in range(120):
            action = rng.choice(["ready", "ready", "deploy", "deploy", "stale", "rs",
                                 "restart", "rollover"])
            if action == "ready":
                waiting = [p for p in await live_pods(env) if not is_pod_ready(p)]
                if waiting:
                    await make_ready(env, rng.choice(waiting))
            elif action in ("deploy", "stale"):
                ctrl = env["deployment"]
                try:
                    if action == "deploy":
                        await env.reconcile("deployment", KEY)
                    else:
                        await ctrl.reconcile(KEY)
                except APIError:
                    pass  # a conflict: the worker would retry
            elif action == "rs":
                for r in rng.sample(await sets(env), k=len(await sets(env))):
                    await env.reconcile("replicaset", f"{NS}/{r['metadata']['name']}")
            elif action == "restart":
                env.controllers["deployment"] = DeploymentController(env.ctx)
                env.controllers["deployment"].start_term()
            elif action == "rollover" and not rolled_over:
                rolled_over = True
                await set_image(env, "nginx:3")
            reached = await _check_bounds(env, replicas, top, floor, reached)
        d = await roll_out(env, rounds=30)
        assert d["status"]["updatedReplicas"] == replicas
        assert sum(size(r) for r in await sets(env)) == replicas
