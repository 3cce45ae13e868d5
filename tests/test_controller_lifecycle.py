"""ResourceQuota status and PodGC over a real apiserver in process: usage recounted after
deletions admission never sees, counted as admission charges; terminated pods beyond the
threshold, pods of deleted nodes, unscheduled and out-of-service terminating pods."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from control.api.clock import FakeClock
from control.api.errors import Forbidden, NotFound
from control.api.quota import usage_source
from control.client import resources as R
from control.controllers.base import Settings
from control.controllers.podgc import gc_order
from control.controllers.resourcequota import counts_pod
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
HOLD = "example.com/hold"


def pod(name: str, *, cpu: str = "", node: str = "", finalizers: tuple[str, ...] = ()) -> Obj:
    container: Obj = {"name": "c", "image": "nginx"}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu, "memory": "1Mi"},
                                  "limits": {"cpu": cpu, "memory": "1Mi"}}
    meta: Obj = {"name": name}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    spec: Obj = {"containers": [container]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def quota(name: str, hard: dict[str, str], **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name},
            "spec": {"hard": hard, **spec}}


async def used(env: Env, name: str) -> dict[str, str]:
    q = await env.admin.get(R.RESOURCEQUOTAS, name, "default")
    return dict((q.get("status") or {}).get("used") or {})


async def set_phase(env: Env, name: str, phase: str, **status: Any) -> None:
    await env.admin.patch(R.PODS, name, {"status": {"phase": phase, **status}}, "default",
                          subresource="status")


# --- ResourceQuota -----------------------------------------------------------------------


async def test_status_counts_what_the_namespace_holds(api: InProcessAPI) -> None:
    async with controller_env(api, "resourcequota") as env:
        await env.admin.create(R.PODS, pod("p1", cpu="500m"), "default")
        await env.admin.create(R.PODS, pod("p2", cpu="250m"), "default")
        await env.admin.create(R.CONFIGMAPS, {"metadata": {"name": "c"}}, "default")
        await env.admin.create(R.SERVICES, {"metadata": {"name": "np"}, "spec": {
            "type": "NodePort", "ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "b"}]}},
            "default")
        hard = {"pods": "10", "requests.cpu": "4", "limits.memory": "1Gi",
                "count/configmaps": "5", "services.nodeports": "4",
                "count/deployments.apps": "3", "example.com/unknown": "1"}
        await env.admin.create(R.RESOURCEQUOTAS, quota("q", hard), "default")
        # counted at once, then again once the caches have caught up with the quota
        assert await env.reconcile("resourcequota", "default/q") == 1.0
        assert await env.reconcile("resourcequota", "default/q") == 300.0
        q = await env.admin.get(R.RESOURCEQUOTAS, "q", "default")
        assert q["status"]["hard"] == hard
        # kube-root-ca.crt is not there (no publisher runs here): one configmap
        assert q["status"]["used"] == {"pods": "2", "requests.cpu": "750m",
                                       "limits.memory": "2Mi", "count/configmaps": "1",
                                       "services.nodeports": "2",
                                       "count/deployments.apps": "0"}


async def test_usage_is_given_back_after_deletions_admission_never_sees(
        api: InProcessAPI) -> None:
    async with controller_env(api, "resourcequota") as env, env.running():
        await env.admin.create(R.RESOURCEQUOTAS, quota("q", {"pods": "2"}), "default")
        await env.until(lambda: _used_is(env, {"pods": "0"}))
        await env.admin.create(R.PODS, pod("p1"), "default")
        await env.admin.create(R.PODS, pod("p2"), "default")
        with pytest.raises(Forbidden, match="exceeded quota: q"):
            await env.admin.create(R.PODS, pod("p3"), "default")
        await env.admin.delete(R.PODS, "p1", "default")
        await env.until(lambda: _used_is(env, {"pods": "1"}))
        await env.admin.create(R.PODS, pod("p3"), "default")
        # a pod that finished stops counting
        await set_phase(env, "p2", "Succeeded")
        await env.until(lambda: _used_is(env, {"pods": "1"}))
        await env.admin.create(R.PODS, pod("p4"), "default")


async def _used_is(env: Env, want: dict[str, str]) -> bool:
    return await used(env, "q") == want


async def test_scoped_quota_counts_only_the_pods_it_selects(api: InProcessAPI) -> None:
    async with controller_env(api, "resourcequota") as env:
        await env.admin.create(R.PODS, pod("besteffort"), "default")
        await env.admin.create(R.PODS, pod("burstable", cpu="100m"), "default")
        await env.admin.create(R.RESOURCEQUOTAS, quota("q", {"pods": "5"},
                                                       scopes=["BestEffort"]), "default")
        await env.reconcile("resourcequota", "default/q")
        assert await used(env, "q") == {"pods": "1"}


@pytest.mark.parametrize(("name", "source"), [
    ("pods", ("", "pods")), ("count/pods", ("", "pods")), ("cpu", ("", "pods")),
    ("requests.memory", ("", "pods")), ("limits.cpu", ("", "pods")),
    ("hugepages-2Mi", ("", "pods")), ("requests.example.com/gpu", ("", "pods")),
    ("services.loadbalancers", ("", "services")), ("secrets", ("", "secrets")),
    ("count/deployments.apps", ("apps", "deployments")),
    ("requests.storage", ("", "persistentvolumeclaims")),
    ("gold.storageclass.storage.k8s.io/requests.storage", ("", "persistentvolumeclaims")),
    ("example.com/unknown", None),
])
def test_usage_names_map_to_the_kind_they_count(name: str, source: Any) -> None:
    assert usage_source(name) == source


NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(("phase", "deleted", "grace", "counts"), [
    ("Running", None, None, True),
    ("Succeeded", None, None, False),
    ("Failed", None, None, False),
    ("Running", NOW - dt.timedelta(seconds=10), 30, True),
    ("Running", NOW - dt.timedelta(seconds=31), 30, False),
])
def test_pods_stop_counting_when_done_or_stuck_terminating(
        phase: str, deleted: dt.datetime | None, grace: int | None, counts: bool) -> None:
    meta: Obj = {}
    if deleted is not None:
        meta = {"deletionTimestamp": deleted.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "deletionGracePeriodSeconds": grace}
    assert counts_pod({"metadata": meta, "status": {"phase": phase}}, NOW) is counts


# --- PodGC -------------------------------------------------------------------------------


async def exists(env: Env, name: str) -> Obj | None:
    try:
        return await env.admin.get(R.PODS, name, "default")
    except NotFound:
        return None


async def test_terminated_pods_beyond_the_threshold_go_evicted_first(
        api: InProcessAPI) -> None:
    async with controller_env(api, "podgc",
                              settings=Settings(terminated_pod_gc_threshold=2)) as env:
        for name in ("a", "b", "c", "z-evicted", "running"):
            await env.admin.create(R.PODS, pod(name), "default")
        await set_phase(env, "a", "Succeeded")
        await set_phase(env, "b", "Failed")
        await set_phase(env, "c", "Succeeded")
        await set_phase(env, "z-evicted", "Failed", reason="Evicted")
        assert await env.reconcile("podgc", "gc") == 20.0
        left = {p["metadata"]["name"] for p in (await env.admin.list_all(R.PODS, "default"))[0]}
        assert left == {"b", "c", "running"}  # 4 terminated, 2 kept: evicted, then oldest


async def test_pods_of_a_deleted_node_go_after_a_quarantine(api: InProcessAPI) -> None:
    clock = FakeClock()
    async with controller_env(api, "podgc", clock=clock) as env:
        gc: Any = env["podgc"]
        await env.admin.create(R.NODES, {"metadata": {"name": "alive"}})
        await env.admin.create(R.PODS, pod("orphan", node="vanished", finalizers=(HOLD,)),
                               "default")
        await env.admin.create(R.PODS, pod("stale", node="alive"), "default")
        await env.admin.create(R.PODS, pod("fine", node="alive"), "default")
        await env.settle()
        gc.nodes.cache.pop("alive")  # a cache that has not seen this node yet
        await env.reconcile("podgc", "gc")
        assert await exists(env, "orphan") and await exists(env, "stale")  # quarantined
        clock.advance(41)
        await env.reconcile("podgc", "gc")
        orphan = await exists(env, "orphan")
        assert orphan is not None and orphan["metadata"]["deletionTimestamp"]  # held: ours
        assert orphan["status"]["phase"] == "Failed"
        [cond] = [c for c in orphan["status"]["conditions"] if c["type"] == "DisruptionTarget"]
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "True", "DeletionByPodGC", "PodGC: node no longer exists")
        assert await exists(env, "stale") and await exists(env, "fine")  # a live read saved them


async def test_unscheduled_terminating_pods_are_failed_and_deleted(api: InProcessAPI) -> None:
    async with controller_env(api, "podgc") as env:
        await env.admin.create(R.PODS, pod("stuck", finalizers=(HOLD,)), "default")
        await env.admin.delete(R.PODS, "stuck", "default")
        await env.reconcile("podgc", "gc")
        stuck = await exists(env, "stuck")
        assert stuck is not None and stuck["status"]["phase"] == "Failed"
        await env.admin.patch(R.PODS, "stuck", {"metadata": {"finalizers": None}}, "default")
        assert await exists(env, "stuck") is None


async def test_terminating_pods_on_out_of_service_nodes_are_forced(api: InProcessAPI) -> None:
    async with controller_env(api, "podgc") as env:
        for name, taints in (("down", [{"key": "node.kubernetes.io/out-of-service",
                                        "value": "nodeshutdown", "effect": "NoExecute"}]),
                             ("merely-down", [])):
            await env.admin.create(R.NODES, {"metadata": {"name": name},
                                             "spec": {"taints": taints}})
            node = await env.admin.get(R.NODES, name)
            node["status"] = {"conditions": [{"type": "Ready", "status": "False"}]}
            await env.admin.update_status(R.NODES, node)
            await env.admin.create(R.PODS, pod(f"on-{name}", node=name), "default")
            await env.admin.delete(R.PODS, f"on-{name}", "default")  # graceful: 30 s
        await env.reconcile("podgc", "gc")
        assert await exists(env, "on-down") is None
        kept = await exists(env, "on-merely-down")
        assert kept is not None and kept["metadata"]["deletionTimestamp"]


def test_gc_order() -> None:
    def p(name: str, created: str, evicted: bool = False) -> Obj:
        status = {"phase": "Failed", "reason": "Evicted"} if evicted else {"phase": "Succeeded"}
        return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}

    pods = [p("new", "2026-01-02T00:00:00Z"), p("old", "2026-01-01T00:00:00Z"),
            p("evicted", "2026-01-03T00:00:00Z", True), p("also-old", "2026-01-01T00:00:00Z")]
    assert [x["metadata"]["name"] for x in gc_order(pods)] == ["evicted", "also-old", "old",
                                                               "new"]
