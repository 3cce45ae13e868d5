"""Probe and hook actions for real: httpGet and tcpSocket against local servers, exec through
a runtime, named ports, and timeouts on the injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from control.api.clock import FakeClock, RealClock
from node.pods.handlers import ActionContext, ActionRunner
from node.runtime.api import ContainerConfig, ContainerStatus, ExecResult, PodSandboxConfig
from node.runtime.fake import FakeRuntime
from tests.nodefakes import settle


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """An HTTP server on 127.0.0.1 answering /ok with 200, /redirect with 302, else 500."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        seen.append(request)
        path = request.split(b" ")[1]
        code = {b"/ok": b"200 OK", b"/redirect": b"302 Found"}.get(path, b"500 Oops")
        writer.write(b"HTTP/1.1 " + code + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        srv.close()
        await srv.wait_closed()


def ctx(port: int, cid: str = "") -> ActionContext:
    return ActionContext(pod={"metadata": {"name": "p"}}, container={
        "name": "c", "ports": [{"name": "web", "containerPort": port}]},
        container_id=cid, pod_ip="127.0.0.1")


async def test_http_get(server: tuple[int, list[bytes]]) -> None:
    port, seen = server
    runner = ActionRunner(FakeRuntime(RealClock()), RealClock())
    ok = await runner.run({"httpGet": {"path": "/ok", "port": "web", "httpHeaders": [
        {"name": "X-Probe", "value": "1"}]}}, ctx(port), 5)
    assert ok.ok
    assert b"User-Agent: kube-probe/" in seen[0] and b"X-Probe: 1" in seen[0]
    assert (await runner.run({"httpGet": {"path": "/redirect", "port": port}}, ctx(port), 5)).ok
    bad = await runner.run({"httpGet": {"path": "/boom", "port": port}}, ctx(port), 5)
    assert (bad.ok, bad.message) == (False, "HTTP probe failed with statuscode: 500")


async def test_tcp_socket_and_refusals(server: tuple[int, list[bytes]]) -> None:
    port, _ = server
    runner = ActionRunner(FakeRuntime(RealClock()), RealClock())
    assert (await runner.run({"tcpSocket": {"port": port}}, ctx(port), 5)).ok
    probe = socket_port()
    refused = await runner.run({"tcpSocket": {"port": probe}}, ctx(port), 5)
    assert not refused.ok and "connection refused" in refused.message
    refused = await runner.run({"httpGet": {"path": "/", "port": probe}}, ctx(port), 5)
    assert not refused.ok and refused.message.startswith(f'Get "http://127.0.0.1:{probe}/"')
    unnamed = await runner.run({"tcpSocket": {"port": "nope"}}, ctx(port), 5)
    assert not unnamed.ok and "not a named port" in unnamed.message


def socket_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_exec_and_its_timeout_on_the_clock() -> None:
    clock = FakeClock()
    rt = FakeRuntime(clock)
    await rt.run_pod_sandbox(PodSandboxConfig(uid="u", name="p", namespace="default"))
    cid = await rt.create_container("u", ContainerConfig(name="c", image="busybox"))
    await rt.start_container(cid)

    async def handler(c: ContainerStatus, command: Any) -> ExecResult:
        if command[0] == "hang":
            await asyncio.Event().wait()
        return ExecResult(0 if command[0] == "ok" else 1, b"said " + command[0].encode())

    rt.exec_handler = handler
    runner = ActionRunner(rt, clock)
    assert (await runner.run({"exec": {"command": ["ok"]}}, ctx(1, cid), 1)).ok
    failed = await runner.run({"exec": {"command": ["no"]}}, ctx(1, cid), 1)
    assert (failed.ok, failed.message) == (False, "said no")
    task = asyncio.ensure_future(runner.run({"exec": {"command": ["hang"]}}, ctx(1, cid), 3))
    await settle()
    assert not task.done()
    clock.advance(3)
    await settle()
    result = task.result()
    assert not result.ok and "timed out" in result.message
    slept = asyncio.ensure_future(runner.run({"sleep": {"seconds": 5}}, ctx(1, cid), 30))
    await settle()
    clock.advance(5)
    await settle()
    assert slept.result().ok
    await rt.close()
