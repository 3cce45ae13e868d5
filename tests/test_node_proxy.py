"""The service proxy: its table (pure) and real traffic through ClusterIPs and NodePorts against
the in-process apiserver, with real listening sockets on loopback addresses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from control.client import InformerFactory
from control.client import resources as R
from node.proxy import Backend, Frontend, ServiceProxy, build_table
from node.proxy.relay import Choice
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]


def svc(name: str, *, ports: list[Obj], ip: str = "127.16.5.5", type: str = "ClusterIP",
        affinity: bool = False) -> Obj:
    spec: Obj = {"type": type, "clusterIP": ip, "clusterIPs": [ip], "ports": ports,
                 "selector": {"app": name}}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


def eps(name: str, endpoints: list[tuple[str, bool, bool]], ports: list[Obj],
        slice_name: str = "") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name or f"{name}-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": ports,
            "endpoints": [{"addresses": [ip], "conditions": {
                "ready": ready, "serving": ready or term, "terminating": term}}
                for ip, ready, term in endpoints]}


@pytest.mark.parametrize(("service", "slices", "want"), [
    pytest.param(svc("a", ports=[{"port": 80, "targetPort": 8080}]),
                 [eps("a", [("127.64.0.2", True, False), ("127.64.0.3", False, False)],
                      [{"port": 8080}])],
                 {Frontend("127.16.5.5", 80, "TCP", "default/a", ""): [
                     Backend("127.64.0.2", 8080)]}, id="ready-only"),
    pytest.param(svc("a", ports=[{"name": "web", "port": 80}, {"name": "dns", "port": 53,
                                                             "protocol": "UDP"}]),
                 [eps("a", [("127.64.0.2", True, False)],
                      [{"name": "web", "port": 8080}, {"name": "dns", "port": 5353,
                                                      "protocol": "UDP"}])],
                 {Frontend("127.16.5.5", 80, "TCP", "default/a", "web"): [
                     Backend("127.64.0.2", 8080)],
                  Frontend("127.16.5.5", 53, "UDP", "default/a", "dns"): [
                      Backend("127.64.0.2", 5353)]}, id="named-ports-by-protocol"),
    pytest.param(svc("a", ports=[{"port": 80}]),
                 [eps("a", [("127.64.0.2", False, True)], [{"port": 80}])],
                 {Frontend("127.16.5.5", 80, "TCP", "default/a", ""): [
                     Backend("127.64.0.2", 80)]}, id="terminating-serving-fallback"),
    pytest.param(svc("a", ports=[{"port": 80, "nodePort": 30080}], type="NodePort"),
                 [], {Frontend("127.16.5.5", 80, "TCP", "default/a", ""): [],
                      Frontend("127.10.0.1", 30080, "TCP", "default/a", ""): []},
                 id="nodeport-without-endpoints"),
    pytest.param(svc("a", ports=[{"port": 80}], ip="None"), [], {}, id="headless"),
])
def test_table(service: Obj, slices: list[Obj], want: dict[Frontend, list[Backend]]) -> None:
    assert build_table([service], slices, "127.10.0.1") == want


def test_session_affinity_sticks_to_one_backend() -> None:
    c = Choice(affinity_seconds=100)
    c.update([Backend("127.64.0.1", 80), Backend("127.64.0.2", 80)], 100)
    first = c.order("127.0.0.9")[0]
    c.chose("127.0.0.9", first)
    assert all(c.order("127.0.0.9")[0] == first for _ in range(5))
    plain = Choice()
    plain.update([Backend("127.64.0.1", 80), Backend("127.64.0.2", 80)], 0)
    assert {plain.order("x")[0] for _ in range(4)} == {Backend("127.64.0.1", 80),
                                                       Backend("127.64.0.2", 80)}


@contextlib.asynccontextmanager
async def echo_server(ip: str, port: int, tag: str) -> AsyncIterator[None]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        data = await r.read(1024)
        w.write(tag.encode() + b":" + data)
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, ip, port)
    try:
        yield
    finally:
        server.close()


async def ask(ip: str, port: int, timeout: float = 2.0) -> str:
    r, w = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    w.write(b"hi")
    await w.drain()
    data = await asyncio.wait_for(r.read(1024), timeout)
    w.close()
    return data.decode()


async def until(probe: Any, timeout: float = 5.0) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    last: Any = None
    while loop.time() < end:
        try:
            last = await probe()
            if last:
                return last
        except (OSError, TimeoutError) as e:
            last = e
        await asyncio.sleep(0.02)
    raise TimeoutError(f"not met: {last!r}")


async def test_traffic_follows_endpoints_through_clusterip_and_nodeport(
        api: InProcessAPI) -> None:
    async with api.client() as c, echo_server("127.64.9.1", 18080, "one"), \
            echo_server("127.64.9.2", 18080, "two"):
        made = await c.create(R.SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                     "ports": [{"port": 80, "targetPort": 18080}]}}, "default")
        ip = made["spec"]["clusterIP"]
        node_port = made["spec"]["ports"][0]["nodePort"]
        assert ip.startswith("127.")
        await c.create(R.ENDPOINTSLICES, eps("web", [("127.64.9.1", True, False)],
                                             [{"port": 18080}]), "default")
        factory = InformerFactory(c)
        proxy = ServiceProxy(factory, "127.10.9.1", delay=0.01)
        factory.start()
        task = asyncio.create_task(proxy.run())
        try:
            assert await until(lambda: _is(ask(ip, 80), "one:hi"))
            assert await until(lambda: _is(ask("127.10.9.1", node_port), "one:hi"))
            # the endpoint moves: the next connection goes to the new one
            await c.patch(R.ENDPOINTSLICES, "web-abc", {"endpoints": [
                {"addresses": ["127.64.9.2"], "conditions": {"ready": True}}]}, "default")
            assert await until(lambda: _is(ask(ip, 80), "two:hi"))
            # the service goes: its address stops answering
            await c.delete(R.SERVICES, "web", "default")
            await until(lambda: _refused(ip, 80))
            assert proxy.frontends == [] or all(k[0] != ip for k in proxy.frontends)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await factory.stop()


async def _is(coro: Any, want: str) -> bool:
    return bool(await coro == want)


async def _refused(ip: str, port: int) -> bool:
    try:
        await ask(ip, port, 0.5)
    except (OSError, TimeoutError):
        return True
    return False


async def test_udp_is_relayed(api: InProcessAPI) -> None:
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.t.sendto(b"udp:" + data, addr)

    server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.64.9.3", 15353))
    try:
        async with api.client() as c:
            made = await c.create(R.SERVICES, {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
                "spec": {"selector": {"app": "dns"},
                         "ports": [{"port": 53, "targetPort": 15353, "protocol": "UDP"}]}},
                "default")
            await c.create(R.ENDPOINTSLICES, eps("dns", [("127.64.9.3", True, False)],
                                                 [{"port": 15353, "protocol": "UDP"}]),
                           "default")
            factory = InformerFactory(c)
            proxy = ServiceProxy(factory, "127.10.9.1", delay=0.01)
            factory.start()
            task = asyncio.create_task(proxy.run())
            try:
                got = await until(lambda: _udp(made["spec"]["clusterIP"], 53))
                assert got == b"udp:ping"
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await factory.stop()
    finally:
        server.close()


async def _udp(ip: str, port: int) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if not got.done():
                got.set_result(data)

    t, _ = await loop.create_datagram_endpoint(Client, remote_addr=(ip, port))
    try:
        t.sendto(b"ping")
        return await asyncio.wait_for(got, 0.3)
    finally:
        t.close()
