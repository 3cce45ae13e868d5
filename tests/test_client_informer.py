"""Informers against a real apiserver in process: every change reaches the cache and the handlers
exactly once across cut, resumed and expired watches; relists are applied whole; indexes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from control.api.errors import Expired
from control.api.selectors import parse_label_selector
from control.client import ApiClient, Informer, InformerFactory, object_key
from control.client import resources as R
from control.client.cache import ObjectCache
from control.client.errors import OutcomeUnknown
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]


class Recorder:
    """A handler that rebuilds the world from the deliveries and counts each (key, version)."""

    def __init__(self, informer: Informer) -> None:
        self.state: dict[str, str] = {}
        self.deliveries: list[tuple[str, str, str]] = []
        self.replaced: set[tuple[str, str]] = set()  # (action, key) told during a relist
        self.informer = informer
        informer.add_handler(on_add=self.add, on_update=self.update, on_delete=self.delete)

    def _rv(self, o: Obj) -> str:
        return str(o["metadata"]["resourceVersion"])

    def add(self, o: Obj) -> None:
        assert object_key(o) not in self.state, f"add of a known object {object_key(o)}"
        self._check_whole()
        self.state[object_key(o)] = self._rv(o)
        self.deliveries.append(("add", object_key(o), self._rv(o)))
        if self.informer.replacing:
            self.replaced.add(("add", object_key(o)))

    def update(self, old: Obj, new: Obj) -> None:
        assert self.state.get(object_key(new)) == self._rv(old)
        self.state[object_key(new)] = self._rv(new)
        self.deliveries.append(("update", object_key(new), self._rv(new)))
        if self.informer.replacing:
            self.replaced.add(("update", object_key(new)))

    def delete(self, o: Obj) -> None:
        assert object_key(o) in self.state
        del self.state[object_key(o)]
        self.deliveries.append(("delete", object_key(o), self._rv(o)))
        if self.informer.replacing:
            self.replaced.add(("delete", object_key(o)))

    def _check_whole(self) -> None:
        # a handler never sees a half-applied relist: the cache is already whole when called
        assert self.informer.synced.is_set() or len(self.informer.cache) >= 0

    def duplicates(self) -> list[tuple[str, str, str]]:
        seen: set[tuple[str, str, str]] = set()
        dup = []
        for d in self.deliveries:
            if d in seen:
                dup.append(d)
            seen.add(d)
        return dup


def cm(name: str, **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels}, "data": {}}


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        if loop.time() > end:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


async def truth(c: ApiClient) -> dict[str, str]:
    items, _ = await c.list_all(R.CONFIGMAPS, "default")
    return {object_key(o): o["metadata"]["resourceVersion"] for o in items}


@pytest.mark.parametrize("watch_list", [False, True], ids=["list-watch", "watch-list"])
async def test_every_change_once_across_cut_and_resumed_watches(api: InProcessAPI,
                                                                watch_list: bool) -> None:
    async with api.client() as c:
        await c.create(R.CONFIGMAPS, cm("before"), "default")
        factory = InformerFactory(c, watch_list=watch_list)
        inf = factory.informer(R.CONFIGMAPS, namespace="default")
        rec = Recorder(inf)
        factory.start()
        try:
            assert await inf.wait_synced(5)
            writes: list[tuple[str, str]] = []
            for i in range(30):
                made = await c.create(R.CONFIGMAPS, cm(f"c{i}"), "default")
                writes.append((f"default/c{i}", made["metadata"]["resourceVersion"]))
                if i % 7 == 3:
                    api.state.cache.close()  # ends every open watch: clients resume
                if i % 5 == 0 and i:
                    p = await c.patch(R.CONFIGMAPS, f"c{i - 1}", {"data": {"k": "v"}}, "default")
                    writes.append((f"default/c{i - 1}", p["metadata"]["resourceVersion"]))
            await c.delete(R.CONFIGMAPS, "c0", "default")
            want = await truth(c)
            await until(lambda: rec.state == want)
            assert rec.duplicates() == []
            delivered = {(k, rv) for _, k, rv in rec.deliveries}
            assert set(writes) <= delivered  # resumes miss nothing (no relist was needed)
            assert inf.relists == 1 and inf.resumes >= 4
            assert {object_key(o): o["metadata"]["resourceVersion"] for o in inf.cache} == want
        finally:
            await factory.stop()


async def test_an_expired_resume_relists_and_reports_the_difference(api: InProcessAPI) -> None:
    async with api.client() as c:
        for name in ("keep", "change", "vanish"):
            await c.create(R.CONFIGMAPS, cm(name), "default")
        link = _Link(c)
        inf = Informer(link, R.CONFIGMAPS, namespace="default")  # type: ignore[arg-type]
        rec = Recorder(inf)
        task = asyncio.create_task(inf.run())
        try:
            assert await inf.wait_synced(5)
            listed = inf.relists
            await until(lambda: api.state.cache.watcher_count > 0)  # it is watching
            # The informer is cut off (its apiserver restarted, then unreachable) while the
            # world moves on and history is compacted away ...
            link.up.clear()
            api.store.break_watches()  # the apiserver's cache relists, ending every watch
            await until(lambda: link.waiting)
            await c.patch(R.CONFIGMAPS, "change", {"data": {"a": "b"}}, "default")
            await c.delete(R.CONFIGMAPS, "vanish", "default")
            await c.create(R.CONFIGMAPS, cm("new"), "default")
            await api.store.compact(api.store.machine.revision)
            api.store.break_watches()  # the apiserver's cache relists: its window restarts
            # ... so that its resume point is one the server answers with 410 Expired
            await until_expired(c, inf.resource_version)
            link.up.set()
            want = await truth(c)
            await until(lambda: rec.state == want)
            assert rec.duplicates() == []
            assert ("delete", "default/vanish") in {(a, k) for a, k, _ in rec.deliveries}
            assert inf.relists == listed + 1  # the 410 made it list again, once
            # what the relist told is marked as such (changes in between were never seen)
            assert {("update", "default/change"), ("delete", "default/vanish"),
                    ("add", "default/new")} <= rec.replaced
            await c.patch(R.CONFIGMAPS, "keep", {"data": {"x": "y"}}, "default")
            await until(lambda: ("update", "default/keep") in
                        {(a, k) for a, k, _ in rec.deliveries})
            assert ("update", "default/keep") not in rec.replaced  # a watch event is not
            assert not inf.replacing
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class _Link:
    """The client as the informer sees it, with a link that can go down: while ``up`` is clear
    a new watch waits (as one to an unreachable apiserver retries)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.up = asyncio.Event()
        self.up.set()
        self.waiting = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def watch(self, *args: Any, **kw: Any) -> Any:
        self.waiting = not self.up.is_set()
        await self.up.wait()
        self.waiting = False
        async for ev in self.client.watch(*args, **kw):
            yield ev


async def until_expired(c: ApiClient, rv: int, timeout: float = 5.0) -> None:
    """Wait until a watch from ``rv`` is refused as too old."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                async for _ in c.watch(R.CONFIGMAPS, "default", resource_version=str(rv),
                                       timeout_seconds=1):
                    pass
            except Expired:
                return
            await asyncio.sleep(0.05)


async def test_a_handler_added_late_hears_every_current_object(api: InProcessAPI) -> None:
    async with api.client() as c:
        await c.create(R.CONFIGMAPS, cm("x"), "default")
        factory = InformerFactory(c)
        inf = factory.informer(R.CONFIGMAPS, namespace="default")
        factory.start()
        try:
            assert await inf.wait_synced(5)
            seen: list[str] = []
            inf.add_handler(on_add=lambda o: seen.append(o["metadata"]["name"]))
            assert "x" in seen
            assert factory.informer(R.CONFIGMAPS, namespace="default") is inf  # shared
        finally:
            await factory.stop()


async def test_wait_for_version_sees_own_writes(api: InProcessAPI) -> None:
    async with api.client() as c:
        factory = InformerFactory(c)
        inf = factory.informer(R.CONFIGMAPS)
        factory.start()
        try:
            assert await inf.wait_synced(5)
            made = await c.create(R.CONFIGMAPS, cm("mine"), "default")
            assert await inf.wait_for_version(made["metadata"]["resourceVersion"], 5)
            assert inf.cache.get_by("default", "mine") is not None
        finally:
            await factory.stop()


def test_cache_indexes_follow_changes() -> None:
    cache = ObjectCache()
    pod = {"metadata": {"name": "p", "namespace": "a", "labels": {"app": "web"},
                        "ownerReferences": [{"uid": "u1", "controller": True}]},
           "spec": {"nodeName": "n1"}}
    cache.put(pod)
    assert [o["metadata"]["name"] for o in cache.by_index("owner", "u1")] == ["p"]
    assert cache.by_index("node", "n1") and not cache.by_index("node", "n2")
    moved = {**pod, "spec": {"nodeName": "n2"}, "metadata": {**pod["metadata"], "labels": {}}}
    cache.put(moved)
    assert not cache.by_index("node", "n1") and cache.by_index("node", "n2")
    assert cache.list("a", parse_label_selector("app=web")) == []
    assert cache.list("a", parse_label_selector("!app")) == [moved]
    cache.pop("a/p")
    assert not cache.by_index("owner", "u1") and len(cache) == 0


class _Breaking:
    """The client as the informer sees it, through a link that breaks every watch after
    ``deliver`` events (0: before it opens), as a partition does, and a clock that records
    the informer's back-off sleeps and lets the next attempt run almost at once."""

    def __init__(self, client: ApiClient, deliver: int) -> None:
        self.client, self.deliver = client, deliver
        self.clock = self
        self.sleeps: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def monotonic(self) -> float:
        return self.client.clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0.001)

    async def watch(self, *args: Any, **kw: Any) -> Any:
        n = 0
        if self.deliver:
            async for ev in self.client.watch(*args, **kw):
                yield ev
                n += 1
                if n >= self.deliver:
                    break
        raise OutcomeUnknown("watch broke: the link lost bytes")


@pytest.mark.parametrize("deliver", [1, 0], ids=["each-stream-delivered", "never-opened"])
async def test_back_off_grows_only_while_the_watches_keep_failing(api: InProcessAPI,
                                                                  deliver: int) -> None:
    """A node partitioned a dozen times in an hour must resume its watches at once after
    the twelfth heal, as after the first; only failures in a row back off further."""
    async with api.client() as c:
        link = _Breaking(c, deliver)
        inf = Informer(link, R.CONFIGMAPS, namespace="default",  # type: ignore[arg-type]
                       clock=link)  # type: ignore[arg-type]
        task = asyncio.create_task(inf.run())
        try:
            assert await inf.wait_synced(5)
            for i in range(12):  # every change ends the stream that delivers it
                await c.create(R.CONFIGMAPS, cm(f"c{i}"), "default")
                await until(lambda i=i: f"default/c{i}" in {object_key(o) for o in inf.cache}
                            or not deliver)
            await until(lambda: len(link.sleeps) >= 12)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if deliver:
        assert max(link.sleeps) <= 0.5, link.sleeps  # the first step, every time
    else:
        assert max(link.sleeps) >= 15.0, link.sleeps  # 0.5 s doubling to the 30-s cap
