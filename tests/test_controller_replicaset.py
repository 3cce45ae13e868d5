"""The ReplicaSet controller over a real apiserver in process: reconcile(key) and its writes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from control.client import resources as R
from control.controllers.podutil import template_hash
from control.controllers.replicaset import pods_to_delete, slow_start
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]


def rs(name: str = "web", replicas: int = 3, labels: dict[str, str] | None = None,
       **spec: Any) -> Obj:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                     **spec}}


async def pods(env: Env, **labels: str) -> list[Obj]:
    sel = ",".join(f"{k}={v}" for k, v in labels.items())
    items, _ = await env.admin.list_all(R.PODS, "default", label_selector=sel)
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def test_creates_the_missing_pods_owned_by_the_set(api: InProcessAPI) -> None:
    async with controller_env(api, "replicaset") as env:
        made = await env.admin.create(R.REPLICASETS, rs(replicas=3), "default")
        await env.reconcile("replicaset", "default/web")
        got = await pods(env, app="web")
        assert len(got) == 3
        for p in got:
            [ref] = p["metadata"]["ownerReferences"]
            assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                           "uid": made["metadata"]["uid"], "controller": True,
                           "blockOwnerDeletion": True}
            assert p["metadata"]["name"].startswith("web-")
        # expectations: the cache has not necessarily seen them, so nothing more is created
        await env["replicaset"].reconcile("default/web")
        assert len(await pods(env, app="web")) == 3
        st = (await env.admin.get(R.REPLICASETS, "web", "default"))["status"]
        assert st["replicas"] == 3 and st["readyReplicas"] == 0
        assert st["observedGeneration"] == 1 and st["fullyLabeledReplicas"] == 3


async def test_scales_down_deleting_unscheduled_pods_first(api: InProcessAPI) -> None:
    async with controller_env(api, "replicaset") as env:
        await env.admin.create(R.REPLICASETS, rs(replicas=3), "default")
        await env.reconcile("replicaset", "default/web")
        got = await pods(env, app="web")
        bound = got[0]["metadata"]["name"]
        await env.admin.create(R.PODS, {"apiVersion": "v1", "kind": "Binding",
                                        "metadata": {"name": bound},
                                        "target": {"kind": "Node", "name": "n1"}},
                               "default", subresource="binding", name=bound)
        await env.admin.patch(R.REPLICASETS, "web", {"spec": {"replicas": 1}}, "default")
        await env.reconcile("replicaset", "default/web")
        left = await pods(env, app="web")
        assert [p["metadata"]["name"] for p in left] == [bound]
        events, _ = await env.admin.list_all(R.EVENTS, "default")
        reasons = {e["reason"] for e in events}
        assert {"SuccessfulCreate", "SuccessfulDelete"} <= reasons


async def test_adopts_orphans_and_releases_pods_that_stop_matching(api: InProcessAPI) -> None:
    async with controller_env(api, "replicaset") as env:
        orphan = {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "stray", "labels": {"app": "web"}},
                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        await env.admin.create(R.PODS, orphan, "default")
        made = await env.admin.create(R.REPLICASETS, rs(replicas=2), "default")
        await env.reconcile("replicaset", "default/web")
        got = await pods(env, app="web")
        assert len(got) == 2
        stray = await env.admin.get(R.PODS, "stray", "default")
        assert stray["metadata"]["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
        await env.admin.patch(R.PODS, "stray", {"metadata": {"labels": {"app": "other"}}},
                              "default")
        await env.reconcile("replicaset", "default/web")
        stray = await env.admin.get(R.PODS, "stray", "default")
        assert not stray["metadata"].get("ownerReferences")
        await env.reconcile("replicaset", "default/web")
        assert len(await pods(env, app="web")) == 2  # a replacement was made


async def test_a_selector_that_misses_its_template_is_an_event_not_pods(
        api: InProcessAPI) -> None:
    async with controller_env(api, "replicaset") as env:
        bad = rs()
        bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        # the apiserver refuses this for apps/v1; simulate an object that slipped through by
        # testing the controller's own guard through reconcile on a cached copy
        ctrl = env["replicaset"]
        from control.api.objects import spec_selector
        from control.controllers.replicaset import _selector_problem
        assert _selector_problem(bad, spec_selector(bad)) == "selector does not match template labels"
        assert await ctrl.reconcile("default/missing") is None


async def test_deleted_pods_are_replaced_when_running(api: InProcessAPI) -> None:
    async with controller_env(api, "replicaset") as env, env.running():
        await env.admin.create(R.REPLICASETS, rs(replicas=2), "default")
        first = await env.until(lambda: _n(env, 2))
        victim = first[0]["metadata"]["name"]
        await env.admin.delete(R.PODS, victim, "default")
        after = await env.until(lambda: _without(env, victim, 2))
        assert victim not in {p["metadata"]["name"] for p in after}


async def _n(env: Env, n: int) -> list[Obj] | None:
    got = await pods(env, app="web")
    return got if len(got) == n else None


async def _without(env: Env, name: str, n: int) -> list[Obj] | None:
    got = await pods(env, app="web")
    names = {p["metadata"]["name"] for p in got}
    return got if len(got) == n and name not in names else None


def test_deletion_order_prefers_unscheduled_not_ready_and_newest() -> None:
    def pod(name: str, node: str = "", ready: bool = False, created: int = 0,
            phase: str = "Running") -> Obj:
        t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=created)
        cond = [{"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": t.strftime("%Y-%m-%dT%H:%M:%SZ")}]
        return {"metadata": {"name": name, "creationTimestamp": t.strftime(
            "%Y-%m-%dT%H:%M:%SZ")}, "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": cond}}

    ps = [pod("ready-old", "n", True, 0), pod("unscheduled", "", False, 5),
          pod("notready", "n", False, 1), pod("ready-new", "n", True, 9),
          pod("pending", "n", False, 3, "Pending")]
    order = [p["metadata"]["name"] for p in pods_to_delete(ps, 5)]
    assert order == ["unscheduled", "pending", "notready", "ready-new", "ready-old"]


async def test_slow_start_stops_after_a_failing_batch() -> None:
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("quota")

    ok, errors = await slow_start(20, create)
    assert calls == 7 and ok == 6 and len(errors) == 1  # batches 1, 2, 4: the third failed


def test_template_hash_is_stable_and_safe() -> None:
    t = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}
    h = template_hash(t)
    assert h == template_hash({"spec": {"containers": [{"name": "c"}]},
                               "metadata": {"labels": {"a": "b"}}})
    assert h != template_hash(t, 1) and not set(h) & set("aeiou013")
