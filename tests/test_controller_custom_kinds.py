"""The controllers that act on every kind, with custom resources served by the in-process
apiserver: the garbage collector (custom owners and custom dependents, background, foreground
and orphan deletion, kinds learned through discovery after it started, a CRD deleted and
created again), the resource quota controller (count/widgets.example.com recounted) and the
namespace controller (custom objects in a deleted namespace)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from control.api.errors import NotFound
from control.client import ApiClient, Resource
from control.client import resources as R
from control.controllers import resourcediscovery
from control.controllers.base import Settings
from control.controllers.garbagecollector import GarbageCollector
from control.controllers.owners import owner_ref
from control.controllers.resourcediscovery import ResourceDiscovery
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
HOLD = "example.com/hold"
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                "CustomResourceDefinition", False)
WIDGETS = Resource("example.com", "v1", "widgets", "Widget", True)
FAST = Settings(resource_discovery_period=0.1)


def widget_crd(*versions: str) -> Obj:
    schema = {"openAPIV3Schema": {"type": "object",
                                  "x-kubernetes-preserve-unknown-fields": True}}
    versions = versions or ("v1",)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": v, "served": True, "storage": v == versions[-1],
                                   "schema": schema} for v in versions]}}


async def install(env: Env, *versions: str) -> None:
    """Create the Widget CRD and wait until it is Established and served."""
    await env.admin.create(CRDS, widget_crd(*versions))

    async def served() -> bool:
        crd = await env.admin.get(CRDS, "widgets.example.com")
        conds = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", ())}
        if conds.get("Established") != "True":
            return False
        return (await env.admin.raw("GET", "/apis/example.com/v1")).status == 200

    await env.until(served)


def widget(name: str, *owners: Obj, ns: str = "default",
           finalizers: tuple[str, ...] = ()) -> Obj:
    meta: Obj = {"name": name, "namespace": ns,
                 "ownerReferences": [owner_ref(o, block_owner_deletion=True) for o in owners]}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta,
            "spec": {"size": 1}}


def cm(name: str, *owners: Obj, block: bool = False, finalizers: tuple[str, ...] = ()) -> Obj:
    meta: Obj = {"name": name, "namespace": "default",
                 "ownerReferences": [owner_ref(o, block_owner_deletion=block) for o in owners]}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


async def gone(client: ApiClient, res: Resource, name: str, ns: str = "default") -> bool:
    try:
        await client.get(res, name, ns)
    except NotFound:
        return True
    return False


async def deleting(client: ApiClient, res: Resource, name: str) -> Obj | None:
    obj = await client.get(res, name, "default")
    return obj if obj["metadata"].get("deletionTimestamp") else None


@contextlib.asynccontextmanager
async def gc_with_widgets(api: InProcessAPI) -> AsyncIterator[Env]:
    """The collector running from before the CRD exists (it learns Widgets by discovery)."""
    async with controller_env(api, "garbagecollector", settings=FAST) as env, env.running():
        await install(env)
        gc: Any = env["garbagecollector"]
        await env.until(lambda: WIDGETS in gc.monitors)
        yield env


async def test_background_deletion_of_a_custom_owner(api: InProcessAPI) -> None:
    async with gc_with_widgets(api) as env:
        owner = await env.admin.create(WIDGETS, widget("w"), "default")
        await env.admin.create(R.CONFIGMAPS, cm("owned", owner), "default")
        await env.admin.create(R.CONFIGMAPS, cm("unrelated"), "default")
        await env.admin.delete(WIDGETS, "w", "default")
        await env.until(lambda: gone(env.admin, R.CONFIGMAPS, "owned"))
        assert not await gone(env.admin, R.CONFIGMAPS, "unrelated")


async def test_foreground_deletion_of_a_custom_owner(api: InProcessAPI) -> None:
    async with gc_with_widgets(api) as env:
        owner = await env.admin.create(WIDGETS, widget("w"), "default")
        await env.admin.create(R.CONFIGMAPS, cm("held", owner, block=True, finalizers=(HOLD,)),
                               "default")
        await env.admin.delete(WIDGETS, "w", "default", propagation_policy="Foreground")
        await env.until(lambda: deleting(env.admin, R.CONFIGMAPS, "held"))
        waiting = await deleting(env.admin, WIDGETS, "w")  # waits for its blocking dependent
        assert waiting is not None and waiting["metadata"]["finalizers"] == [
            "foregroundDeletion"]
        await env.admin.patch(R.CONFIGMAPS, "held", {"metadata": {"finalizers": None}},
                              "default")
        await env.until(lambda: gone(env.admin, WIDGETS, "w"))
        assert await gone(env.admin, R.CONFIGMAPS, "held")


async def test_orphan_deletion_of_a_custom_owner(api: InProcessAPI) -> None:
    async with gc_with_widgets(api) as env:
        owner = await env.admin.create(WIDGETS, widget("w"), "default")
        await env.admin.create(R.CONFIGMAPS, cm("kept", owner, block=True), "default")
        await env.admin.delete(WIDGETS, "w", "default", propagation_policy="Orphan")
        await env.until(lambda: gone(env.admin, WIDGETS, "w"))
        kept = await env.admin.get(R.CONFIGMAPS, "kept", "default")
        assert not kept["metadata"].get("ownerReferences")


async def test_a_custom_object_owned_by_a_configmap(api: InProcessAPI) -> None:
    async with gc_with_widgets(api) as env:
        owner = await env.admin.create(R.CONFIGMAPS, cm("owner"), "default")
        await env.admin.create(WIDGETS, widget("dep", owner), "default")
        child = await env.admin.get(WIDGETS, "dep", "default")
        await env.admin.create(WIDGETS, widget("grandchild", child), "default")
        await env.admin.delete(R.CONFIGMAPS, "owner", "default",
                               propagation_policy="Foreground")
        await env.until(lambda: gone(env.admin, R.CONFIGMAPS, "owner"))
        assert await gone(env.admin, WIDGETS, "dep")
        assert await gone(env.admin, WIDGETS, "grandchild")


async def test_an_unknown_owner_kind_is_learned_without_waiting_a_period(
        api: InProcessAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dependent naming a kind discovery did not know is retried, never taken for
    orphaned; the miss asks for an early discovery, and once the kind is known the
    dependent is looked at again and follows its owner."""
    monkeypatch.setattr(resourcediscovery, "EARLY_SYNC_INTERVAL", 0.05)
    slow = Settings(resource_discovery_period=3600)
    async with controller_env(api, "garbagecollector", settings=slow) as env, env.running():
        gc: Any = env["garbagecollector"]
        await install(env)
        owner = await env.admin.create(WIDGETS, widget("w"), "default")
        await env.admin.create(R.CONFIGMAPS, cm("owned", owner), "default")
        await env.until(lambda: WIDGETS in gc.monitors)  # learned from the miss
        await env.until(lambda: gc.graph.get(owner["metadata"]["uid"]))
        assert not await gone(env.admin, R.CONFIGMAPS, "owned")  # its owner exists
        await env.admin.delete(WIDGETS, "w", "default")
        await env.until(lambda: gone(env.admin, R.CONFIGMAPS, "owned"))


async def test_a_deleted_crd_stops_its_informer_and_a_new_one_is_watched(
        api: InProcessAPI) -> None:
    async with gc_with_widgets(api) as env:
        gc: GarbageCollector = env["garbagecollector"]  # type: ignore[assignment]
        await env.admin.create(WIDGETS, widget("w"), "default")
        await env.until(lambda: any(n.res == WIDGETS for n in gc.graph))
        await env.admin.delete(CRDS, "widgets.example.com")
        await env.until(lambda: WIDGETS not in gc.monitors)
        assert all(inf.resource != WIDGETS for inf in env.ctx.informers.informers)
        assert not any(n.res == WIDGETS for n in gc.graph)
        await env.until(lambda: gone(env.admin, CRDS, "widgets.example.com", ""))
        # served again: watched again, and owners of the new kind are followed
        await install(env)
        await env.until(lambda: WIDGETS in gc.monitors)
        owner = await env.admin.create(WIDGETS, widget("again"), "default")
        await env.admin.create(R.CONFIGMAPS, cm("owned", owner), "default")
        await env.admin.delete(WIDGETS, "again", "default")
        await env.until(lambda: gone(env.admin, R.CONFIGMAPS, "owned"))


async def test_discovery_monitors_the_preferred_version_and_resolves_every_version(
        api: InProcessAPI) -> None:
    async with controller_env(api) as env:
        await install(env, "v1", "v2")
        found = ResourceDiscovery(env.admin, env.ctx.clock, period=30,
                                  wanted=lambda d: d.supports("list", "watch", "delete"))
        change = await found.sync()
        v2 = Resource("example.com", "v2", "widgets", "Widget", True)
        assert change.added == [v2] and change.kinds_changed
        assert list(found.resources) == [v2]
        assert found.resolve("example.com/v1", "Widget") == WIDGETS
        assert found.resolve("example.com/v2", "Widget") == v2
        assert found.resolve("apps/v1", "Deployment") == R.DEPLOYMENTS  # built in
        assert found.resolve("example.com/v3", "Widget") is None  # not known: not absent
        assert not await found.sync()  # nothing new
        await env.admin.delete(CRDS, "widgets.example.com")

        async def removed() -> bool:
            change = await found.sync()
            return change.removed == [v2] and not found.resources

        await env.until(removed)
        assert found.resolve("example.com/v1", "Widget") is None


async def test_quota_counts_custom_objects_again_after_deletes(api: InProcessAPI) -> None:
    async with controller_env(api, "resourcequota", settings=FAST) as env, env.running():
        await install(env)
        await env.admin.create(R.RESOURCEQUOTAS, {
            "metadata": {"name": "q"}, "spec": {"hard": {"count/widgets.example.com": "3"}}},
            "default")
        for name in ("a", "b", "c"):
            await env.admin.create(WIDGETS, widget(name), "default")

        async def used(n: str) -> bool:
            q = await env.admin.get(R.RESOURCEQUOTAS, "q", "default")
            return (q.get("status") or {}).get("used", {}).get(
                "count/widgets.example.com") == n

        await env.until(lambda: used("3"))
        await env.admin.delete(WIDGETS, "a", "default")
        await env.admin.delete(WIDGETS, "b", "default")
        await env.until(lambda: used("1"))
        await env.admin.create(WIDGETS, widget("d"), "default")  # the freed room is usable
        await env.until(lambda: used("2"))


async def test_a_deleted_namespace_is_emptied_of_custom_objects(api: InProcessAPI) -> None:
    async with controller_env(api, "namespace") as env:
        env["namespace"].deletion_grace = 0  # type: ignore[attr-defined]
        await install(env)
        await env.admin.create(R.NAMESPACES, {"metadata": {"name": "doomed"}})
        await env.admin.create(R.NAMESPACES, {"metadata": {"name": "kept"}})
        for name in ("a", "b"):
            await env.admin.create(WIDGETS, widget(name, ns="doomed"), "doomed")
        await env.admin.create(WIDGETS, widget("held", ns="doomed", finalizers=(HOLD,)),
                               "doomed")
        await env.admin.create(WIDGETS, widget("a", ns="kept"), "kept")
        await env.admin.delete(R.NAMESPACES, "doomed")
        async with env.running():
            async def only_held() -> bool:
                items, _ = await env.admin.list_all(WIDGETS, "doomed")
                return [w["metadata"]["name"] for w in items] == ["held"]

            async def remaining() -> str:
                ns = await env.admin.get(R.NAMESPACES, "doomed")
                conds = {c["type"]: c for c in ns["status"].get("conditions") or ()}
                return str(conds.get("NamespaceContentRemaining", {}).get("message"))

            await env.until(only_held)
            await env.until(lambda: _eq(remaining(), "Some resources are remaining: "
                                        "widgets.example.com has 1 resource instances"))
            await env.admin.patch(WIDGETS, "held", {"metadata": {"finalizers": None}},
                                  "doomed")
            await env.until(lambda: gone(env.admin, R.NAMESPACES, "doomed", ""))
        assert not await gone(env.admin, WIDGETS, "a", "kept")


async def _eq(value: Any, want: Any) -> bool:
    return await value == want
