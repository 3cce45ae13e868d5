"""Integration: watch semantics over real HTTPS against a real ``ketch up`` cluster with two
apiservers: one JSON event per line, every change after a resourceVersion exactly once and in
order, bookmarks, watch-list, selector transitions, timeouts, 410 Expired for history the
cache does not hold, a write through one apiserver seen by a watch on the other, and no gap or
duplicate across a store leader kill.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from certs.layout import admin_paths
from control.api.errors import Expired
from control.apiserver.watchcache import WatchCache
from ketch.cluster import Cluster
from store.client import prefix_end
from tests.apiclient import APIClient, Reply, WatchStream, poll_async
from tests.conftest import wait_for_leader

pytestmark = pytest.mark.integration

INITIAL_END = "k8s.io/initial-events-end"
NAMESPACES = ("w-order", "w-bookmark", "w-list", "w-select", "w-misc", "w-two", "w-chaos")


def _quiet(_: str) -> None:
    pass


def cms(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps"


async def _setup(c: Cluster) -> None:
    async with APIClient(c.url, admin_paths(c.store.certs_dir)) as a:
        for ns in NAMESPACES:
            st, body = await a.post("/api/v1/namespaces", {"metadata": {"name": ns}})
            assert st == 201, body


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # Watch semantics over exactly the objects these tests write: no scheduler, no nodes, and
    # no kube-root-ca.crt appearing in every namespace.
    c = Cluster(tmp_path_factory.mktemp("ketch-watch") / "cluster", port=0, apiservers=2,
                schedulers=0, nodes=0, controllers="*,-root-ca-cert-publisher")
    c.up(progress=_quiet)
    try:
        asyncio.run(_setup(c))
        yield c
    finally:
        c.down(progress=_quiet)


def _url(c: Cluster, i: int) -> str:
    return f"https://{c.apiservers[i]['listen']}"


@pytest.fixture
async def admin(ketch: Cluster) -> AsyncIterator[APIClient]:
    async with APIClient(_url(ketch, 0), admin_paths(ketch.store.certs_dir)) as c:
        yield c


@pytest.fixture
async def admin2(ketch: Cluster) -> AsyncIterator[APIClient]:
    """The same admin, through the second apiserver."""
    async with APIClient(_url(ketch, 1), admin_paths(ketch.store.certs_dir)) as c:
        yield c


async def _list_rv(c: APIClient, path: str) -> str:
    st, body = await c.get(path)
    assert st == 200, body
    return str(body["metadata"]["resourceVersion"])


def _summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


def _saw(typ: str, name: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: (typ, name) in _summary(events)


def _rvs(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["object"]["metadata"]["resourceVersion"]) for e in events]


def _ok(r: Reply, *codes: int) -> dict[str, Any]:
    assert r.status in (codes or (200, 201)), r.body
    return r.body  # type: ignore[no-any-return]


async def _batch(c: APIClient, ns: str) -> list[tuple[str, str, int | None]]:
    """Creates, updates and deletes; the (type, name, resourceVersion) a watch must report
    (a delete's resourceVersion is not in its answer: None)."""
    done: list[tuple[str, str, int | None]] = []
    for i in range(6):
        obj = _ok(await c.post(cms(ns), {"metadata": {"name": f"o{i}"}, "data": {"i": "0"}}))
        done.append(("ADDED", f"o{i}", int(obj["metadata"]["resourceVersion"])))
    for i in (1, 3, 1):
        obj = _ok(await c.patch(f"{cms(ns)}/o{i}", {"data": {"i": str(time.monotonic())}}))
        done.append(("MODIFIED", f"o{i}", int(obj["metadata"]["resourceVersion"])))
    for i in (0, 3):
        _ok(await c.delete(f"{cms(ns)}/o{i}"))
        done.append(("DELETED", f"o{i}", None))
    obj = _ok(await c.post(cms(ns), {"metadata": {"name": "o0"}}))  # the same name again
    done.append(("ADDED", "o0", int(obj["metadata"]["resourceVersion"])))
    return done


def _check_stream(events: list[dict[str, Any]], expected: list[tuple[str, str, int | None]],
                  kind: str = "ConfigMap") -> None:
    assert _summary(events) == [(t, n) for t, n, _ in expected]
    rvs = _rvs(events)
    assert rvs == sorted(set(rvs)), "events out of order or repeated"
    for ev, (_, _, rv) in zip(events, expected, strict=True):
        assert (ev["object"]["kind"], ev["object"]["apiVersion"]) == (kind, "v1")
        if rv is not None:
            assert int(ev["object"]["metadata"]["resourceVersion"]) == rv


async def test_watch_from_a_resource_version_sees_every_later_change_once_in_order(
    ketch: Cluster, admin: APIClient,
) -> None:
    ns = "w-order"
    start = await _list_rv(admin, cms(ns))
    async with admin.watch(cms(ns), {"resourceVersion": start}) as w:
        assert w.status == 200
        assert w.headers["Content-Type"].startswith("application/json")
        expected = await _batch(admin, ns)
        live = await w.collect(lambda e: len(e) >= len(expected))
    _check_stream(live, expected)
    # the same history again, from the cache's window, after the fact
    async with admin.watch(cms(ns), {"resourceVersion": start}) as w:
        replay = await w.collect(lambda e: len(e) >= len(expected))
    assert replay == live
    # raw framing: exactly one JSON object per line
    async with admin.watch(cms(ns), {"resourceVersion": start, "timeoutSeconds": "1"}) as w:
        raw = await w.resp.read()
    lines = raw.decode().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(expected)
    assert [json.loads(line) for line in lines[:-1]] == live


async def test_watch_without_resource_version_starts_with_the_current_objects(
    admin: APIClient,
) -> None:
    ns = "w-misc"
    for name in ("a", "b"):
        _ok(await admin.post(cms(ns), {"metadata": {"name": name}}))
    for params in ({}, {"resourceVersion": "0"}):
        async with admin.watch(cms(ns), params) as w:
            first = await w.collect(lambda e: len(e) >= 2)
            assert sorted(_summary(first)) == [("ADDED", "a"), ("ADDED", "b")]
            obj = _ok(await admin.patch(f"{cms(ns)}/a", {"data": {"k": str(params)}}))
            nxt = await w.next()
            assert nxt is not None and _summary([nxt]) == [("MODIFIED", "a")]
            assert nxt["object"]["metadata"]["resourceVersion"] == \
                obj["metadata"]["resourceVersion"]


async def test_bookmarks_only_when_asked_for(admin: APIClient) -> None:
    """Nothing changes in the watched namespace, something elsewhere does (as lease renewals
    do in a live cluster): a bookmark then moves the watcher's resourceVersion past it."""
    ns = "w-bookmark"
    start = await _list_rv(admin, cms(ns))
    elsewhere = _ok(await admin.post(cms("w-misc"), {"metadata": {"name": "elsewhere"}}))
    moved = int(elsewhere["metadata"]["resourceVersion"])

    async def marked() -> dict[str, Any]:
        async with admin.watch(cms(ns), {"resourceVersion": start,
                                         "allowWatchBookmarks": "true"}) as w:
            events = await w.collect(lambda e: any(x["type"] == "BOOKMARK" for x in e),
                                     timeout=15)
            return events[-1]

    async def plain() -> list[dict[str, Any]]:
        # the store reports progress every ~5 s: 7 s without bookmarks saw one pass by
        async with admin.watch(cms(ns), {"resourceVersion": start,
                                         "timeoutSeconds": "7"}) as w:
            return await w.collect(lambda e: False, timeout=15)

    bookmark, unmarked = await asyncio.gather(marked(), plain())
    obj = bookmark["object"]
    assert bookmark["type"] == "BOOKMARK"
    assert (obj["kind"], obj["apiVersion"]) == ("ConfigMap", "v1")
    assert set(obj["metadata"]) == {"resourceVersion"}
    assert int(obj["metadata"]["resourceVersion"]) >= moved
    assert unmarked == []


async def test_watch_list_sends_the_snapshot_a_bookmark_then_changes(admin: APIClient) -> None:
    ns = "w-list"
    for name in ("x1", "x2", "x3"):
        _ok(await admin.post(cms(ns), {"metadata": {"name": name}}))
    floor = await _list_rv(admin, cms(ns))
    params = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
              "allowWatchBookmarks": "true"}
    present = ["x1", "x2", "x3"]
    for extra in ({}, {"resourceVersion": floor}):
        async with admin.watch(cms(ns), {**params, **extra}) as w:
            assert w.status == 200
            initial = await w.collect(lambda e: bool(e) and e[-1]["type"] == "BOOKMARK")
            *added, end = initial
            assert sorted(_summary(added)) == [("ADDED", n) for n in sorted(present)]
            assert end["object"]["metadata"]["annotations"] == {INITIAL_END: "true"}
            snapshot = int(end["object"]["metadata"]["resourceVersion"])
            assert snapshot >= int(floor) and snapshot >= max(_rvs(added))
            name = f"x-live-{len(extra)}"
            obj = _ok(await admin.post(cms(ns), {"metadata": {"name": name}}))
            present.append(name)
            nxt = await w.collect(lambda e: bool(e) and e[-1]["type"] != "BOOKMARK")
            assert _summary(nxt[-1:]) == [("ADDED", name)]
            assert nxt[-1]["object"]["metadata"]["resourceVersion"] == \
                obj["metadata"]["resourceVersion"]


@pytest.mark.parametrize(("params", "message"), [
    pytest.param({"sendInitialEvents": "true"},
                 'ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: '
                 "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                 id="send-initial-events-without-match"),
    pytest.param({"sendInitialEvents": "true", "resourceVersionMatch": "Exact",
                  "allowWatchBookmarks": "true"},
                 'Unsupported value: "Exact": supported values: "NotOlderThan"',
                 id="send-initial-events-with-exact"),
    pytest.param({"resourceVersionMatch": "NotOlderThan", "resourceVersion": "1"},
                 "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch "
                 "unless sendInitialEvents is provided", id="match-without-send-initial-events"),
])
async def test_invalid_watch_options_are_422(admin: APIClient, params: dict[str, str],
                                             message: str) -> None:
    st, status = await admin.get(cms("w-list"), params={"watch": "true", **params})
    assert st == 422, status
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Invalid", 422)
    assert status["details"]["kind"] == "ListOptions"
    assert status["details"]["group"] == "meta.k8s.io"
    assert message in status["message"]
    assert all(c["message"].startswith(("Forbidden: ", "Unsupported value: "))
               for c in status["details"]["causes"])


async def test_selector_watch_reports_objects_entering_and_leaving(admin: APIClient) -> None:
    ns = "w-select"
    start = await _list_rv(admin, cms(ns))
    async with admin.watch(cms(ns), {"resourceVersion": start,
                                     "labelSelector": "app=x"}) as w:
        _ok(await admin.post(cms(ns), {"metadata": {"name": "a", "labels": {"app": "x"}}}))
        _ok(await admin.post(cms(ns), {"metadata": {"name": "b", "labels": {"app": "y"}}}))
        _ok(await admin.patch(f"{cms(ns)}/b", {"data": {"not": "seen"}}))
        _ok(await admin.patch(f"{cms(ns)}/b", {"metadata": {"labels": {"app": "x"}}}))
        _ok(await admin.patch(f"{cms(ns)}/a", {"metadata": {"labels": {"app": "z"}}}))
        _ok(await admin.patch(f"{cms(ns)}/a", {"data": {"not": "seen"}}))
        _ok(await admin.patch(f"{cms(ns)}/b", {"data": {"seen": "yes"}}))
        _ok(await admin.delete(f"{cms(ns)}/a"))
        _ok(await admin.delete(f"{cms(ns)}/b"))
        events = await w.collect(_saw("DELETED", "b"))
    assert _summary(events) == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a"),
                                ("MODIFIED", "b"), ("DELETED", "b")]
    assert events[1]["object"]["metadata"]["labels"] == {"app": "x"}
    assert events[2]["object"]["metadata"]["labels"] == {"app": "z"}  # the state that left
    rvs = _rvs(events)
    assert rvs == sorted(set(rvs))


async def test_field_selector_watch(admin: APIClient) -> None:
    ns = "w-select"
    start = await _list_rv(admin, cms(ns))
    async with admin.watch(cms(ns), {"resourceVersion": start,
                                     "fieldSelector": "metadata.name=only"}) as w:
        _ok(await admin.post(cms(ns), {"metadata": {"name": "other"}}))
        _ok(await admin.post(cms(ns), {"metadata": {"name": "only"}}))
        events = await w.collect(lambda e: len(e) >= 1)
    assert _summary(events) == [("ADDED", "only")]


async def test_timeout_seconds_ends_the_stream(admin: APIClient) -> None:
    started = time.monotonic()
    async with admin.watch(cms("w-misc"), {"timeoutSeconds": "1",
                                           "resourceVersion": await _list_rv(
                                               admin, cms("w-misc"))}) as w:
        assert w.status == 200
        assert await w.next(timeout=10) is None  # the server closed it
    assert 0.9 <= time.monotonic() - started < 5


async def _open_watches(admin: APIClient) -> float:
    st, text = await admin.get("/metrics")
    assert st == 200
    text = text if isinstance(text, str) else text.decode()
    for line in text.splitlines():
        if line.startswith("apiserver_registered_watchers "):
            return float(line.split()[1])
    raise AssertionError("apiserver_registered_watchers missing from /metrics")


async def test_a_client_that_goes_away_ends_its_watch(admin: APIClient) -> None:
    """An idle watch whose client disconnects is removed from the cache (no leak)."""
    before = await _open_watches(admin)
    rv = await _list_rv(admin, cms("w-misc"))
    streams = [admin.watch(cms("w-misc"), {"resourceVersion": rv}) for _ in range(5)]
    opened = [await s.__aenter__() for s in streams]
    assert all(w.status == 200 for w in opened)
    await poll_async(lambda: _ge(admin, before + 5))
    for s in streams:
        await s.__aexit__(None, None, None)
    await poll_async(lambda: _le(admin, before))


async def _ge(admin: APIClient, n: float) -> bool:
    return await _open_watches(admin) >= n


async def _le(admin: APIClient, n: float) -> bool:
    return await _open_watches(admin) <= n


async def test_a_write_through_one_apiserver_reaches_a_watch_on_the_other(
    admin: APIClient, admin2: APIClient,
) -> None:
    ns = "w-two"
    start = await _list_rv(admin, cms(ns))
    for reader, writer, name in ((admin2, admin, "via-1"), (admin, admin2, "via-2")):
        async with reader.watch(cms(ns), {"resourceVersion": start}) as w:
            obj = _ok(await writer.post(cms(ns), {"metadata": {"name": name}}))
            events = await w.collect(_saw("ADDED", name))
        rv = obj["metadata"]["resourceVersion"]
        assert events[-1]["object"]["metadata"]["resourceVersion"] == rv
        # and a read at that resourceVersion on the other apiserver sees it
        st, got = await reader.get(f"{cms(ns)}/{name}", params={"resourceVersion": rv})
        assert st == 200 and got["metadata"]["resourceVersion"] == rv
        st, listed = await reader.get(cms(ns), params={"resourceVersion": rv})
        assert name in [o["metadata"]["name"] for o in listed["items"]]


async def test_watch_cache_window_in_process(ketch: Cluster) -> None:
    """The event window, in process (20,000 events are too many to write here):
    WatchCache(window=5) over the real store; a watch starting before the oldest event it
    holds is 410 Expired, one inside it replays the rest."""
    prefix = b"/registry/test.ketch.io/things/"
    async with ketch.store.client() as client:
        cache = WatchCache(client, window=5)
        task = asyncio.create_task(cache.run())
        try:
            await asyncio.wait_for(cache.ready.wait(), 10)
            revs = []
            for i in range(8):
                value = json.dumps({"apiVersion": "test.ketch.io/v1", "kind": "Thing",
                                    "metadata": {"name": f"t{i}"}}).encode()
                ans = await client.put(prefix + f"t{i}".encode(), value)
                revs.append(ans["header"]["revision"])
            assert await cache.wait_for(revs[-1], 10)
            with pytest.raises(Expired) as gone:
                cache.watch(prefix, revs[1])
            assert gone.value.code == 410
            assert gone.value.message.startswith(f"too old resource version: {revs[1]} (")
            w = cache.watch(prefix, revs[-3])  # inside the window: the rest is replayed
            got = [w.queue.get_nowait() for _ in range(w.queue.qsize())]
            assert [ev.revision for ev in got if ev is not None] == revs[-2:]
            cache.stop(w)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.delete(prefix, range_end=prefix_end(prefix))


async def test_watch_from_before_the_apiservers_history_is_expired(
    ketch: Cluster, admin: APIClient,
) -> None:
    """A restarted apiserver's cache starts at the store's revision then: a watch from before
    that gets 200 and one ERROR event, 410 Expired (what client-go relists on)."""
    ns = "w-misc"
    old = _ok(await admin.post(cms(ns), {"metadata": {"name": "before-restart"}}))
    _ok(await admin.post(cms(ns), {"metadata": {"name": "after-it"}}))
    old_rv = old["metadata"]["resourceVersion"]
    ketch.stop_apiserver("apiserver-2")
    ketch.up(progress=_quiet)  # starts it again and waits until it is ready
    async with APIClient(_url(ketch, 1), admin_paths(ketch.store.certs_dir)) as fresh:
        async with fresh.watch(cms(ns), {"resourceVersion": old_rv}) as w:
            assert w.status == 200
            ev = await w.next()
            assert ev is not None and ev["type"] == "ERROR"
            status = ev["object"]
            assert (status["kind"], status["code"], status["reason"]) == ("Status", 410,
                                                                         "Expired")
            assert status["message"].startswith(f"too old resource version: {old_rv} (")
            assert await w.next() is None  # and the stream ends
        # a current resourceVersion is fine there
        async with fresh.watch(cms(ns), {"resourceVersion": await _list_rv(fresh, cms(ns))}) \
                as w:
            obj = _ok(await admin.post(cms(ns), {"metadata": {"name": "after-restart"}}))
            events = await w.collect(lambda e: len(e) >= 1)
            assert _summary(events) == [("ADDED", "after-restart")]
            assert events[0]["object"]["metadata"]["resourceVersion"] == \
                obj["metadata"]["resourceVersion"]


async def _create_retrying(c: APIClient, path: str, name: str, deadline: float) -> None:
    """Create through a store leader change: 5xx is "unknown", so retry; AlreadyExists on
    a retry means an earlier attempt landed."""
    attempt = 0
    while True:
        attempt += 1
        try:
            r = await c.post(path, {"metadata": {"name": name}}, timeout=15)
        except (TimeoutError, OSError):
            r = Reply(599, None)
        if r.status == 201 or (r.status == 409 and attempt > 1):
            return
        assert r.status in (503, 504, 599), r.body  # unavailable or indeterminate, no 500
        assert time.monotonic() < deadline, f"could not create {name}: {r.body}"
        await asyncio.sleep(0.1)


async def test_store_leader_kill_leaves_no_gap_or_duplicate_in_a_watch(
    ketch: Cluster, admin: APIClient,
) -> None:
    ns = "w-chaos"
    start = await _list_rv(admin, cms(ns))
    names = [f"k{i:02d}" for i in range(30)]
    deadline = time.monotonic() + 60
    async with admin.watch(cms(ns), {"resourceVersion": start}) as w:
        events: list[dict[str, Any]] = []

        async def consume(stream: WatchStream) -> None:
            while (ev := await stream.next(timeout=60)) is not None:
                events.append(ev)
                if len({e["object"]["metadata"]["name"] for e in events}) == len(names):
                    return

        reader = asyncio.create_task(consume(w))
        try:
            leader = await asyncio.to_thread(wait_for_leader, ketch.store)
            for i, name in enumerate(names):
                if i == 10:
                    await asyncio.to_thread(ketch.store.kill, leader)
                if i == 20:
                    await asyncio.to_thread(ketch.store.start, leader)
                await _create_retrying(admin, cms(ns), name, deadline)
            await asyncio.wait_for(reader, 30)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    assert [e["type"] for e in events] == ["ADDED"] * len(names)
    assert [e["object"]["metadata"]["name"] for e in events] == names
    rvs = _rvs(events)
    assert rvs == sorted(set(rvs)), "events out of order or repeated"
    listed = _ok(await admin.get(cms(ns)))
    assert {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed["items"]} \
        == {e["object"]["metadata"]["name"]: e["object"]["metadata"]["resourceVersion"]
            for e in events}
    await poll_async(lambda: asyncio.to_thread(lambda: ketch.store.leader() is not None))
