"""The watch cache's indexes (in process): a watch whose field selector pins ``spec.nodeName``
(each node agent's) or ``metadata.name`` is only handed the events of objects that have, or
had, that value; lists with those selectors read an index instead of every object; a
``metadata.namespace`` selector narrows a cluster-wide list or watch to one namespace, with
continue tokens that still name the request's own collection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from control.apiserver.watchcache import CacheEvent, FieldIndex, Watcher
from control.client import ApiClient, WatchEvent
from control.client import resources as R
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
PODS = b"/registry/core/pods/"
NODE = ("spec", "nodeName")


def _pod(name: str, node: str = "") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _drain(w: Watcher) -> list[tuple[str, str]]:
    out = []
    while not w.queue.empty():
        ev: CacheEvent | None = w.queue.get_nowait()
        if ev is not None and ev.type != "BOOKMARK":
            out.append((ev.type, ev.obj["metadata"]["name"]))
    return out


async def _bind(admin: ApiClient, name: str, node: str) -> None:
    await admin.create(R.PODS, {"apiVersion": "v1", "kind": "Binding",
                                "metadata": {"name": name},
                                "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
                       "default", subresource="binding", name=name)


async def _settled(api: InProcessAPI, admin: ApiClient) -> None:
    """The cache has applied everything written so far."""
    assert await api.state.cache.sync()


@pytest.fixture
async def admin(api: InProcessAPI) -> AsyncIterator[ApiClient]:
    async with api.client() as c:
        yield c


async def test_an_event_reaches_only_the_watchers_indexed_by_its_node(
        api: InProcessAPI, admin: ApiClient) -> None:
    cache = api.state.cache
    by_node = {n: cache.watch(PODS, cache.revision, FieldIndex(NODE, n))
               for n in ("n1", "n2", "n3")}
    unbound = cache.watch(PODS, cache.revision, FieldIndex(NODE, ""))
    everything = cache.watch(PODS, cache.revision)
    try:
        await admin.create(R.PODS, _pod("a", "n1"), "default")
        await admin.create(R.PODS, _pod("b"), "default")
        await _bind(admin, "b", "n2")
        await admin.delete(R.PODS, "a", "default", grace_period_seconds=0)
        await _settled(api, admin)
        assert _drain(by_node["n1"]) == [("ADDED", "a"), ("DELETED", "a")]
        # the bind moves b from the "" watcher to n2's: both hear of it, once
        assert _drain(by_node["n2"]) == [("MODIFIED", "b")]
        assert _drain(by_node["n3"]) == []
        assert _drain(unbound) == [("ADDED", "b"), ("MODIFIED", "b")]
        assert [n for _, n in _drain(everything)] == ["a", "b", "b", "a"]
    finally:
        for w in (*by_node.values(), unbound, everything):
            cache.stop(w)
    assert not cache._by_field and cache.watcher_count == 0


async def _collect(client: ApiClient, selector: str, rv: str, out: list[WatchEvent],
                   namespace: str = "") -> None:
    async for ev in client.watch(R.PODS, namespace, resource_version=rv,
                                 field_selector=selector, allow_bookmarks=False):
        out.append(ev)


async def test_node_watches_over_http_see_their_pods_enter_and_leave(
        api: InProcessAPI, admin: ApiClient) -> None:
    rv = (await admin.list(R.PODS, "default"))["metadata"]["resourceVersion"]
    seen: dict[str, list[WatchEvent]] = {n: [] for n in ("n1", "n2", "")}
    tasks = [asyncio.create_task(_collect(admin, f"spec.nodeName={n}", rv, seen[n]))
             for n in seen]
    try:
        await admin.create(R.PODS, _pod("p1"), "default")
        await _bind(admin, "p1", "n1")
        await admin.create(R.PODS, _pod("p2", "n2"), "default")
        await admin.delete(R.PODS, "p1", "default", grace_period_seconds=0)

        async def done() -> bool:
            return len(seen["n1"]) >= 2 and len(seen["n2"]) >= 1 and len(seen[""]) >= 2

        for _ in range(500):
            if await done():
                break
            await asyncio.sleep(0.01)
        assert [(e.type, e.object["metadata"]["name"]) for e in seen["n1"]] == [
            ("ADDED", "p1"), ("DELETED", "p1")]
        assert [(e.type, e.object["metadata"]["name"]) for e in seen["n2"]] == [("ADDED", "p2")]
        # leaving the selection is a DELETED, as for any selector
        assert [(e.type, e.object["metadata"]["name"]) for e in seen[""]] == [
            ("ADDED", "p1"), ("DELETED", "p1")]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # resuming from an old resourceVersion replays only this node's events
    late: list[WatchEvent] = []
    task = asyncio.create_task(_collect(admin, "spec.nodeName=n2", rv, late))
    try:
        for _ in range(500):
            if late:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert [(e.type, e.object["metadata"]["name"]) for e in late] == [("ADDED", "p2")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _names(page: Obj) -> list[str]:
    return [i["metadata"]["name"] for i in page["items"]]


async def test_lists_by_node_name_and_namespace_read_the_indexes(
        api: InProcessAPI, admin: ApiClient) -> None:
    await admin.create(R.NAMESPACES, {"metadata": {"name": "other"}})
    await admin.create(R.SERVICEACCOUNTS, {"metadata": {"name": "default"}}, "other")
    for i in range(6):
        await admin.create(R.PODS, _pod(f"p{i}", "n1" if i % 2 else "n2"), "default")
    await admin.create(R.PODS, _pod("q", "n1"), "other")
    await admin.create(R.PODS, _pod("u"), "default")
    await _settled(api, admin)

    got = await admin.list(R.PODS, field_selector="spec.nodeName=n1")
    assert _names(got) == ["p1", "p3", "p5", "q"]
    assert _names(await admin.list(R.PODS, "other", field_selector="spec.nodeName=n1")) == ["q"]
    assert _names(await admin.list(R.PODS, field_selector="spec.nodeName=")) == ["u"]
    assert _names(await admin.list(
        R.PODS, field_selector="spec.nodeName=n1,metadata.name!=p3")) == ["p1", "p5", "q"]

    # pages: the first from the index, the rest from the store, one snapshot
    first = await admin.list(R.PODS, field_selector="spec.nodeName=n1", limit=2)
    assert _names(first) == ["p1", "p3"] and first["metadata"]["continue"]
    rest = await admin.list(R.PODS, field_selector="spec.nodeName=n1", limit=10,
                            continue_=first["metadata"]["continue"])
    assert _names(rest) == ["p5", "q"]

    # metadata.namespace narrows a cluster-wide list; its continue token is the cluster's
    first = await admin.list(R.PODS, field_selector="metadata.namespace=default", limit=4)
    assert _names(first) == ["p0", "p1", "p2", "p3"]
    rest = await admin.list(R.PODS, field_selector="metadata.namespace=default", limit=10,
                            continue_=first["metadata"]["continue"])
    assert _names(rest) == ["p4", "p5", "u"]

    # metadata.name: one key, in a namespace or cluster-wide
    assert _names(await admin.list(R.PODS, "default", field_selector="metadata.name=p2")) \
        == ["p2"]
    assert _names(await admin.list(R.PODS, field_selector="metadata.name=q")) == ["q"]
    assert _names(await admin.list(R.PODS, "default", field_selector="metadata.name=nope")) \
        == []
    nodes = await admin.list(R.NODES, field_selector="metadata.name=absent")
    assert nodes["items"] == []

    # the index follows binds and deletes
    await admin.delete(R.PODS, "p1", "default", grace_period_seconds=0)
    await _bind(admin, "u", "n1")
    await _settled(api, admin)
    assert _names(await admin.list(R.PODS, field_selector="spec.nodeName=n1")) == [
        "p3", "p5", "u", "q"]  # key order: default/ before other/
    assert _names(await admin.list(R.PODS, field_selector="spec.nodeName=")) == []


async def test_a_watch_with_initial_events_starts_from_the_index(
        api: InProcessAPI, admin: ApiClient) -> None:
    await admin.create(R.PODS, _pod("x", "n7"), "default")
    await admin.create(R.PODS, _pod("y", "n8"), "default")
    seen: list[WatchEvent] = []
    task = asyncio.create_task(_collect(admin, "spec.nodeName=n7", "", seen))
    try:
        for _ in range(500):
            if seen:
                break
            await asyncio.sleep(0.01)
        await admin.create(R.PODS, _pod("z", "n7"), "default")
        for _ in range(500):
            if len(seen) >= 2:
                break
            await asyncio.sleep(0.01)
        assert [(e.type, e.object["metadata"]["name"]) for e in seen] == [
            ("ADDED", "x"), ("ADDED", "z")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
