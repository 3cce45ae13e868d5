"""The garbage collector over a real apiserver in process: background, foreground and orphan
deletion end to end, dangling and cross-namespace owner references, blockOwnerDeletion, and
never a deletion decided on a stale cache."""

from __future__ import annotations

from typing import Any

import pytest

from control.api.errors import NotFound
from control.client import Resource
from control.client import resources as R
from control.controllers.garbagecollector import UnknownOwnerKind
from control.controllers.gcgraph import Graph, OwnerRef
from control.controllers.owners import owner_ref
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
HOLD = "example.com/hold"
CLUSTERROLES = R.resource("clusterroles.rbac.authorization.k8s.io")


def cm(name: str, *owners: Obj, ns: str = "default", block: bool = False,
       finalizers: tuple[str, ...] = ()) -> Obj:
    meta: Obj = {"name": name, "namespace": ns,
                 "ownerReferences": [owner_ref(o, block_owner_deletion=block) for o in owners]}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def deployment(name: str = "web") -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def replicaset(name: str, owner: Obj | None = None) -> Obj:
    rs = deployment(name)
    rs["kind"] = "ReplicaSet"
    if owner is not None:
        rs["metadata"]["ownerReferences"] = [owner_ref(owner, controller=True,
                                                       block_owner_deletion=True)]
    return rs


def pod(name: str, owner: Obj, *, finalizers: tuple[str, ...] = ()) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "labels": {"app": "web"},
                 "ownerReferences": [owner_ref(owner, controller=True,
                                               block_owner_deletion=True)]}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


async def gone(env: Env, res: Resource, name: str, ns: str = "default") -> bool:
    try:
        await env.admin.get(res, name, ns)
    except NotFound:
        return True
    return False


async def present(env: Env, res: Resource, name: str, ns: str = "default") -> Obj:
    return await env.admin.get(res, name, ns)


async def release(env: Env, res: Resource, name: str, ns: str = "default") -> None:
    await env.admin.patch(res, name, {"metadata": {"finalizers": None}}, ns)


async def test_background_deletion_removes_a_chain_of_dependents(api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector") as env, env.running():
        dep = await env.admin.create(R.DEPLOYMENTS, deployment(), "default")
        rs = await env.admin.create(R.REPLICASETS, replicaset("web-1", dep), "default")
        for i in range(3):
            await env.admin.create(R.PODS, pod(f"web-1-{i}", rs), "default")
        await env.admin.delete(R.DEPLOYMENTS, "web", "default")  # background: the default
        await env.until(lambda: gone(env, R.REPLICASETS, "web-1"))
        await env.until(lambda: _no_pods(env))


async def _no_pods(env: Env) -> bool:
    items, _ = await env.admin.list_all(R.PODS, "default")
    return not items


async def test_foreground_waits_for_blocking_dependents(api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector") as env, env.running():
        dep = await env.admin.create(R.DEPLOYMENTS, deployment(), "default")
        rs = await env.admin.create(R.REPLICASETS, replicaset("web-1", dep), "default")
        await env.admin.create(R.PODS, pod("held", rs, finalizers=(HOLD,)), "default")
        await env.admin.create(R.PODS, pod("free", rs), "default")
        await env.admin.delete(R.DEPLOYMENTS, "web", "default", propagation_policy="Foreground")
        await env.until(lambda: gone(env, R.PODS, "free"))

        async def held_deleting() -> bool:
            p = await present(env, R.PODS, "held")
            return bool(p["metadata"].get("deletionTimestamp"))

        await env.until(held_deleting)
        # the ReplicaSet is deleted in the foreground too (it has dependents), and both
        # owners wait for the pod their blocking references point at
        got_rs = await env.until(lambda: _deleting(env, R.REPLICASETS, "web-1"))
        assert "foregroundDeletion" in got_rs["metadata"]["finalizers"]
        got_dep = await present(env, R.DEPLOYMENTS, "web")
        assert got_dep["metadata"]["finalizers"] == ["foregroundDeletion"]
        assert got_dep["metadata"].get("deletionTimestamp")
        await release(env, R.PODS, "held")
        await env.until(lambda: gone(env, R.PODS, "held"))
        await env.until(lambda: gone(env, R.REPLICASETS, "web-1"))
        await env.until(lambda: gone(env, R.DEPLOYMENTS, "web"))


async def _deleting(env: Env, res: Resource, name: str) -> Obj | None:
    obj = await present(env, res, name)
    return obj if obj["metadata"].get("deletionTimestamp") else None


async def test_foreground_owner_goes_once_only_non_blocking_dependents_remain(
        api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector") as env, env.running():
        owner = await env.admin.create(R.CONFIGMAPS, cm("owner"), "default")
        await env.admin.create(R.CONFIGMAPS, cm("loose", owner, finalizers=(HOLD,)), "default")
        await env.admin.create(R.CONFIGMAPS, cm("tight", owner, block=True,
                                                finalizers=(HOLD,)), "default")
        await env.admin.delete(R.CONFIGMAPS, "owner", "default", propagation_policy="Foreground")
        await env.until(lambda: _deleting(env, R.CONFIGMAPS, "tight"))
        await env.until(lambda: _deleting(env, R.CONFIGMAPS, "loose"))
        assert (await present(env, R.CONFIGMAPS, "owner"))["metadata"]["finalizers"] == [
            "foregroundDeletion"]
        await release(env, R.CONFIGMAPS, "tight")
        await env.until(lambda: gone(env, R.CONFIGMAPS, "owner"))
        assert await _deleting(env, R.CONFIGMAPS, "loose")  # non-blocking: never waited for
        await release(env, R.CONFIGMAPS, "loose")
        await env.until(lambda: gone(env, R.CONFIGMAPS, "loose"))


async def test_orphan_deletion_releases_dependents(api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector") as env, env.running():
        rs = await env.admin.create(R.REPLICASETS, replicaset("web-1"), "default")
        other = await env.admin.create(R.CONFIGMAPS, cm("other"), "default")
        await env.admin.create(R.PODS, pod("p0", rs), "default")
        both = cm("both", rs, other)
        await env.admin.create(R.CONFIGMAPS, both, "default")
        await env.admin.delete(R.REPLICASETS, "web-1", "default", propagation_policy="Orphan")
        await env.until(lambda: gone(env, R.REPLICASETS, "web-1"))
        p0 = await present(env, R.PODS, "p0")
        assert not p0["metadata"].get("ownerReferences")
        left = (await present(env, R.CONFIGMAPS, "both"))["metadata"]["ownerReferences"]
        assert [r["uid"] for r in left] == [other["metadata"]["uid"]]


async def test_dangling_references_are_removed_or_their_object_deleted(
        api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector") as env, env.running():
        owner = await env.admin.create(R.CONFIGMAPS, cm("owner"), "default")
        impostor = {**owner, "metadata": {**owner["metadata"], "uid": "not-the-owners-uid"}}
        await env.admin.create(R.CONFIGMAPS, cm("orphaned", impostor), "default")
        await env.admin.create(R.CONFIGMAPS, cm("kept", owner, impostor), "default")
        await env.until(lambda: gone(env, R.CONFIGMAPS, "orphaned"))

        async def one_ref() -> bool:
            refs = (await present(env, R.CONFIGMAPS, "kept"))["metadata"]["ownerReferences"]
            return [r["uid"] for r in refs] == [owner["metadata"]["uid"]]

        await env.until(one_ref)
        assert not await gone(env, R.CONFIGMAPS, "owner")


async def test_cluster_scoped_owner_of_namespaced_dependents(api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector") as env, env.running():
        role = await env.admin.create(CLUSTERROLES, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "gc-owner"}, "rules": []})
        await env.admin.create(R.CONFIGMAPS, cm("owned", role), "default")
        await env.settle()
        assert not await gone(env, R.CONFIGMAPS, "owned")
        await env.admin.delete(CLUSTERROLES, "gc-owner")
        await env.until(lambda: gone(env, R.CONFIGMAPS, "owned"))


async def test_an_owner_in_another_namespace_is_absent_with_a_warning(
        api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector") as env, env.running():
        await env.admin.create(R.NAMESPACES, {"metadata": {"name": "elsewhere"}})
        owner = await env.admin.create(R.CONFIGMAPS, cm("owner", ns="elsewhere"), "elsewhere")
        await env.settle()
        await env.admin.create(R.CONFIGMAPS, cm("crossed", owner), "default")
        await env.until(lambda: gone(env, R.CONFIGMAPS, "crossed"))
        await env.ctx.recorder.flush()
        events, _ = await env.admin.list_all(R.EVENTS, "default")
        [ev] = [e for e in events if e["reason"] == "OwnerRefInvalidNamespace"]
        uid = owner["metadata"]["uid"]
        assert ev["type"] == "Warning" and ev["involvedObject"]["name"] == "crossed"
        assert ev["message"] == (f"ownerRef [v1/ConfigMap, namespace: default, name: owner, "
                                 f'uid: {uid}] does not exist in namespace "default"')
        assert not await gone(env, R.CONFIGMAPS, "owner", "elsewhere")


async def test_never_deletes_because_of_a_stale_cache(api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector") as env:
        gc: Any = env["garbagecollector"]
        owner = await env.admin.create(R.CONFIGMAPS, cm("owner"), "default")
        dep = await env.admin.create(R.CONFIGMAPS, cm("dep", owner), "default")
        await env.settle()
        gc.graph.remove(owner)  # the cache "lost" the owner: it looks absent
        await env.reconcile("garbagecollector", f"delete:{dep['metadata']['uid']}")
        assert not await gone(env, R.CONFIGMAPS, "dep")  # a live read found it
        # and once really gone (and seen so), the dependent goes
        await env.admin.delete(R.CONFIGMAPS, "owner", "default")
        await env.settle()
        await env.reconcile("garbagecollector", f"delete:{dep['metadata']['uid']}")
        assert await gone(env, R.CONFIGMAPS, "dep")


async def test_an_owner_of_an_unknown_kind_is_never_taken_for_absent(
        api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector") as env:
        widget = {"apiVersion": "example.com/v1", "kind": "Widget",
                  "metadata": {"name": "w", "uid": "widget-uid"}}
        dep = await env.admin.create(R.CONFIGMAPS, cm("dep", widget), "default")
        with pytest.raises(UnknownOwnerKind):  # retried with back-off, as kube does
            await env.reconcile("garbagecollector", f"delete:{dep['metadata']['uid']}")
        assert not await gone(env, R.CONFIGMAPS, "dep")


async def test_replicaset_controller_and_gc_together(api: InProcessAPI) -> None:
    async with controller_env(api, "garbagecollector", "replicaset") as env, env.running():
        rs = replicaset("web-1")
        rs["spec"]["replicas"] = 2
        await env.admin.create(R.REPLICASETS, rs, "default")

        async def pods() -> list[Obj]:
            items, _ = await env.admin.list_all(R.PODS, "default", label_selector="app=web-1")
            return items

        await env.until(lambda: _count(pods, 2))
        await env.admin.delete(R.REPLICASETS, "web-1", "default",
                               propagation_policy="Foreground")
        await env.until(lambda: gone(env, R.REPLICASETS, "web-1"))
        assert await pods() == []


async def _count(probe: Any, n: int) -> bool:
    return len(await probe()) == n


# --- the graph, pure ---------------------------------------------------------------------


def _obj(uid: str, *owners: Obj, finalizers: tuple[str, ...] = (),
         deleting: bool = False) -> Obj:
    meta: Obj = {"name": uid, "namespace": "ns", "uid": uid, "resourceVersion": "1",
                 "ownerReferences": list(owners), "finalizers": list(finalizers)}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def _ref(uid: str, block: bool = False) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": uid, "uid": uid,
            "blockOwnerDeletion": block}


@pytest.mark.parametrize(("before", "after", "added", "removed", "unblocked"), [
    pytest.param([], [_ref("a")], ["a"], [], [], id="added"),
    pytest.param([_ref("a", True)], [], [], ["a"], [], id="removed"),
    pytest.param([_ref("a", True)], [_ref("a")], [], [], ["a"], id="unblocked"),
    pytest.param([_ref("a")], [_ref("a", True)], [], [], [], id="blocked"),
])
def test_graph_diffs_owner_references(before: list[Obj], after: list[Obj], added: list[str],
                                      removed: list[str], unblocked: list[str]) -> None:
    g = Graph()
    g.put(R.CONFIGMAPS, _obj("d", *before))
    change = g.put(R.CONFIGMAPS, _obj("d", *after))
    assert change is not None
    assert [r.uid for r in change.added] == added
    assert [r.uid for r in change.removed] == removed
    assert [r.uid for r in change.unblocked] == unblocked
    assert [n.uid for n in g.dependents("a")] == (["d"] if after else [])


def test_graph_tracks_dependents_of_unobserved_owners_and_deletion_states() -> None:
    g = Graph()
    g.put(R.CONFIGMAPS, _obj("d1", _ref("o", True)))
    g.put(R.CONFIGMAPS, _obj("d2", _ref("o")))
    assert g.get("o") is None and {n.uid for n in g.dependents("o")} == {"d1", "d2"}
    assert [n.uid for n in g.blocking_dependents("o")] == ["d1"]
    change = g.put(R.CONFIGMAPS, _obj("o", finalizers=("foregroundDeletion",), deleting=True))
    assert change is not None and change.starts_deleting_dependents
    again = g.put(R.CONFIGMAPS, _obj("o", finalizers=("foregroundDeletion",), deleting=True))
    assert again is not None and not again.starts_deleting_dependents
    g.remove(_obj("d1"))
    assert [n.uid for n in g.dependents("o")] == ["d2"]
    assert OwnerRef.of(_ref("x", True)).block_owner_deletion
