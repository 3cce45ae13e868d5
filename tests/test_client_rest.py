"""control.client.rest against a real apiserver in process (and, for the failure cases, small
real HTTPS servers that misbehave on purpose)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from certs.layout import admin_paths, apiserver_paths
from certs.tls import server_context
from control.api.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    NotFound,
    TooManyRequests,
)
from control.client import (
    ApiClient,
    ClientConfig,
    Congested,
    NotLeading,
    OutcomeUnknown,
    Unreachable,
)
from control.client import resources as R
from tests.inprocess import InProcessAPI


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def test_crud_and_typed_errors(api: InProcessAPI) -> None:
    async with api.client() as c:
        made = await c.create(R.CONFIGMAPS, cm("a", x="1"), "default")
        assert made["metadata"]["uid"] and made["data"] == {"x": "1"}
        with pytest.raises(AlreadyExists, match='configmaps "a" already exists'):
            await c.create(R.CONFIGMAPS, cm("a"), "default")
        got = await c.get(R.CONFIGMAPS, "a", "default")
        got["data"]["x"] = "2"
        updated = await c.update(R.CONFIGMAPS, got)
        got["data"]["x"] = "3"  # the same, now stale, resourceVersion
        with pytest.raises(Conflict):
            await c.update(R.CONFIGMAPS, got)
        patched = await c.patch(R.CONFIGMAPS, "a", {"data": {"y": "4"}}, "default")
        assert patched["data"] == {"x": "2", "y": "4"}
        assert int(patched["metadata"]["resourceVersion"]) > int(
            updated["metadata"]["resourceVersion"])
        jp = await c.patch(R.CONFIGMAPS, "a", [{"op": "remove", "path": "/data/y"}], "default",
                           patch_type="json")
        assert jp["data"] == {"x": "2"}
        with pytest.raises(Invalid) as bad:
            await c.create(R.CONFIGMAPS, cm("Not_A_Name"), "default")
        assert bad.value.causes and bad.value.causes[0].field == "metadata.name"
        await c.delete(R.CONFIGMAPS, "a", "default")
        with pytest.raises(NotFound, match='configmaps "a" not found'):
            await c.get(R.CONFIGMAPS, "a", "default")


async def test_server_side_apply_and_subresources(api: InProcessAPI) -> None:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "namespace": "default"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    async with api.client() as c:
        applied = await c.patch(R.DEPLOYMENTS, "web", deploy, "default", patch_type="apply",
                                field_manager="test")
        assert applied["spec"]["replicas"] == 2
        scale = await c.get(R.DEPLOYMENTS, "web", "default", subresource="scale")
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
        status = {**applied, "status": {"replicas": 5, "observedGeneration": 1}}
        written = await c.update_status(R.DEPLOYMENTS, status)
        assert written["status"]["replicas"] == 5
        assert written["spec"] == applied["spec"]


async def test_list_all_follows_continue_pages_of_one_snapshot(api: InProcessAPI) -> None:
    async with api.client() as c:
        for i in range(7):
            await c.create(R.CONFIGMAPS, cm(f"p{i}"), "default")
        items, rv = await c.list_all(R.CONFIGMAPS, "default", page_size=3)
        names = [o["metadata"]["name"] for o in items]
        assert len(names) == len(set(names)) and set(names) >= {f"p{i}" for i in range(7)}
        assert int(rv) >= max(int(o["metadata"]["resourceVersion"]) for o in items)
        sel, _ = await c.list_all(R.CONFIGMAPS, "default", field_selector="metadata.name=p3")
        assert [o["metadata"]["name"] for o in sel] == ["p3"]


async def test_forbidden_for_an_identity_without_rights(api: InProcessAPI) -> None:
    async with api.node("n1") as c:
        with pytest.raises(Forbidden):
            await c.create(R.CONFIGMAPS, cm("x"), "kube-system")


async def test_a_dead_apiserver_fails_over_to_the_next(api: InProcessAPI) -> None:
    dead = "https://127.0.0.1:1"  # nothing listens on port 1
    cfg = ClientConfig.from_cert_paths([dead, api.url], admin_paths(api.certs))
    async with ApiClient(cfg) as c:
        got = await c.get(R.NAMESPACES, "default")
        assert got["metadata"]["name"] == "default"
        assert c.server == api.url
        made = await c.create(R.CONFIGMAPS, cm("after-failover"), "default")
        assert made["metadata"]["name"] == "after-failover"


async def test_nothing_reachable_is_unreachable_after_the_deadline(api: InProcessAPI) -> None:
    cfg = ClientConfig.from_cert_paths(["https://127.0.0.1:1"], admin_paths(api.certs))
    async with ApiClient(cfg, timeout=0.5) as c:
        with pytest.raises(Unreachable):
            await c.create(R.CONFIGMAPS, cm("x"), "default")


async def test_the_fence_refuses_writes_before_sending(api: InProcessAPI) -> None:
    leading = True
    async with api.client(fence=lambda: leading) as c:
        await c.create(R.CONFIGMAPS, cm("fenced"), "default")
        leading = False
        with pytest.raises(NotLeading):
            await c.delete(R.CONFIGMAPS, "fenced", "default")
        assert (await c.get(R.CONFIGMAPS, "fenced", "default"))["metadata"]["name"] == "fenced"


# --- misbehaving servers -----------------------------------------------------------------------

@asynccontextmanager
async def _https(certs: Path, handler: Callable[[web.Request], Any]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    ctx = server_context(apiserver_paths(certs))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_429_and_503_are_retried_after_retry_after(certs_dir_session: Path) -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(request.method)
        if len(calls) == 1:
            return web.json_response({"kind": "Status", "status": "Failure", "code": 429,
                                      "reason": "TooManyRequests", "message": "slow down",
                                      "details": {"retryAfterSeconds": 0}}, status=429)
        if len(calls) == 2:
            return web.json_response({"kind": "Status", "code": 503,
                                      "reason": "ServiceUnavailable", "message": "busy"},
                                     status=503)
        return web.json_response({"metadata": {"name": "ok"}}, status=201)

    async with _https(certs_dir_session, handler) as url:
        cfg = ClientConfig.from_cert_paths(url, admin_paths(certs_dir_session))
        async with ApiClient(cfg, timeout=10) as c:
            made = await c.create(R.CONFIGMAPS, cm("x"), "default")
    assert made == {"metadata": {"name": "ok"}} and calls == ["POST"] * 3


async def test_429_past_the_deadline_is_raised(certs_dir_session: Path) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"kind": "Status", "code": 429, "reason": "TooManyRequests",
                                  "message": "no", "details": {"retryAfterSeconds": 5}},
                                 status=429)

    async with _https(certs_dir_session, handler) as url:
        cfg = ClientConfig.from_cert_paths(url, admin_paths(certs_dir_session))
        async with ApiClient(cfg, timeout=0.5) as c:
            with pytest.raises(TooManyRequests):
                await c.create(R.CONFIGMAPS, cm("x"), "default")


async def test_a_lost_answer_is_unknown_for_a_create_and_retried_for_a_read(
        certs_dir_session: Path) -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(request.method)
        if len(calls) <= 2:  # read the request, then drop the connection without answering
            await request.read()
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.05)
        return web.json_response({"metadata": {"name": "ok"}})

    async with _https(certs_dir_session, handler) as url:
        cfg = ClientConfig.from_cert_paths(url, admin_paths(certs_dir_session))
        async with ApiClient(cfg, timeout=10) as c:
            with pytest.raises(OutcomeUnknown):
                await c.create(R.CONFIGMAPS, cm("x"), "default")
            got = await c.get(R.CONFIGMAPS, "x", "default")  # dropped once, then answered
    assert got == {"metadata": {"name": "ok"}}
    assert calls == ["POST", "GET", "GET"]


async def test_a_watch_error_event_raises_its_error(api: InProcessAPI) -> None:
    async with api.client() as c:
        made = await c.create(R.CONFIGMAPS, cm("w"), "default")
        rv = int(made["metadata"]["resourceVersion"])
        for _ in range(3):  # push the cache window on, then relist it away
            await c.patch(R.CONFIGMAPS, "w", {"data": {"n": str(_)}}, "default")
        await api.store.compact(rv + 2)
        api.store.break_watches()  # the cache's feed ends: it relists at the current revision
        after = await c.create(R.CONFIGMAPS, cm("after"), "default")  # seen once relisted
        assert await _eventually(lambda: api.state.cache.revision >= int(
            after["metadata"]["resourceVersion"]))

        async def first() -> None:
            async for _ev in c.watch(R.CONFIGMAPS, "default", resource_version=str(rv)):
                pass

        with pytest.raises(Expired):
            await asyncio.wait_for(first(), 5)


async def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while not check():
        if loop.time() > until:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_requests_share_a_bounded_pool_and_watches_do_not_count(api: InProcessAPI) -> None:
    """Thirty concurrent writes through a 2-connection client open at most 2 connections
    (a node starting 30 pods opened 30 TLS connections before); three open watches, more than
    that limit, still leave the requests their pool."""
    async with api.client(max_connections=2) as c:
        watches = [c.watch(R.CONFIGMAPS, "default", timeout_seconds=30) for _ in range(3)]
        opened = [asyncio.create_task(anext(w)) for w in watches]  # first event or bookmark
        await asyncio.sleep(0)
        made = await asyncio.wait_for(asyncio.gather(
            *(c.create(R.CONFIGMAPS, cm(f"pool-{i}"), "default") for i in range(30))), 20)
        assert len(made) == 30
        connector = c.session.connector
        assert connector is not None and connector.limit == 2
        # every request connection is back in the pool, and there are at most two
        assert sum(len(v) for v in connector._conns.values()) <= 2
        for t in opened:
            t.cancel()
        for w in watches:
            await w.aclose()


async def test_waiting_for_a_free_connection_does_not_count_against_the_attempt(
        certs_dir_session: Path) -> None:
    """Five creates through one connection, each answered in 0.3 s, with 0.5 s per attempt:
    the last waits 1.2 s for the connection, which is not its attempt's time (in aiohttp's
    pool it was: a node's burst of pod work timed out in its own client's queue, and a
    create that times out is an unknown outcome).  Past the request's whole deadline a
    request still waiting is Congested, and was never sent."""
    calls: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(request.method)
        await asyncio.sleep(0.3)
        return web.json_response({"metadata": {"name": "ok"}}, status=201)

    async with _https(certs_dir_session, handler) as url:
        cfg = ClientConfig.from_cert_paths(url, admin_paths(certs_dir_session))
        async with ApiClient(cfg, timeout=10, attempt_timeout=0.5, max_connections=1) as c:
            made = await asyncio.gather(
                *(c.create(R.CONFIGMAPS, cm(f"q{i}"), "default") for i in range(5)))
            assert len(made) == 5 and calls == ["POST"] * 5
            busy = asyncio.create_task(c.create(R.CONFIGMAPS, cm("busy"), "default"))
            await asyncio.sleep(0)  # it takes the connection
            with pytest.raises(Congested):
                await c.raw("POST", R.CONFIGMAPS.path("default"), body=cm("late"), timeout=0.1)
            await busy
    assert calls == ["POST"] * 6  # the late one never left the client


async def test_a_watch_whose_request_is_lost_fails_over_instead_of_waiting_forever(
        api: InProcessAPI) -> None:
    """A watch opened into a partition is never answered: with no timeout on the answer's
    head it would wait for good (even after the heal, nothing more crosses that
    connection).  It is an attempt like any other: it times out and the client fails over."""
    from urllib.parse import urlsplit

    from chaos.proxy import DROP, LinkProxy

    target = urlsplit(api.url)
    proxy = LinkProxy("api", (target.hostname or "127.0.0.1", target.port or 443))
    await proxy.start()
    config = ClientConfig.from_cert_paths(f"https://127.0.0.1:{proxy.port}",
                                          admin_paths(api.certs))
    try:
        async with ApiClient(config, timeout=1.5, attempt_timeout=0.5) as c:
            # a watch that ends leaves its connection in the pool, where the next one
            # finds it: its request then crosses a connection that is already open
            async for _ in c.watch(R.CONFIGMAPS, "default", timeout_seconds=1):
                pass
            proxy.set(forward=DROP, backward=DROP)
            async with asyncio.timeout(10):
                with pytest.raises(Unreachable):
                    async for _ in c.watch(R.CONFIGMAPS, "default"):
                        pass
    finally:
        await proxy.stop()
