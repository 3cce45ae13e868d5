"""Node agents for in-process tests: the real :class:`~node.agent.NodeAgent` against the
in-process apiserver (``api`` fixture) with the node's own identity, over a runtime the test
chooses (the fake one by default), on a clock the test chooses.

``Relay`` sits between an agent and the apiserver so a test can cut the agent off (every
connection closed, new ones refused) and let it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certs.layout import issue_node, node_paths
from control.api.clock import Clock, FakeClock
from control.api.errors import AlreadyExists, Forbidden
from control.client import ApiClient, ClientConfig
from control.client import resources as R
from node.agent import NodeAgent, RuntimeFactory
from node.config import AgentConfig
from node.machine import MachineFacts, Readings
from node.pods.worker import WorkerConfig
from node.runtime.api import Runtime
from node.runtime.fake import FakeRuntime
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]

FACTS = MachineFacts(cpus=4, memory_bytes=8 << 30, disk_bytes=100 << 30, machine_id="m1",
                     system_uuid="u1", boot_id="b1", kernel_version="6.1.0",
                     os_image="Test Linux", architecture="amd64")
PLENTY = Readings(memory_available_bytes=4 << 30, disk_available_bytes=50 << 30,
                  disk_total_bytes=100 << 30, pids_in_use=500, pid_max=4_000_000)


async def until(probe: Callable[[], Awaitable[Any]], *, timeout: float = 10.0) -> Any:
    """Await ``probe()`` until it is truthy (a real-time deadline)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await probe()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - "eventually succeeds"; keep the last cause
            last = e
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not reached in {timeout}s (last error: {last!r})")


class Relay:
    """A TCP relay to ``target`` on a fixed local port; :meth:`cut` drops every connection
    and refuses new ones until :meth:`restore`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._conns):
            w.transport.abort()
        self._conns.clear()

    async def close(self) -> None:
        await self.cut()
        for t in list(self._tasks):
            t.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._conns |= {writer, uw}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.transport.abort()

        for t in (asyncio.create_task(pipe(reader, uw)), asyncio.create_task(pipe(ur, writer))):
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)


@dataclass
class Running:
    agent: NodeAgent
    task: asyncio.Task[None]
    runtime: Runtime | None = None

    async def stop(self) -> None:
        self.agent.stop()
        await asyncio.wait_for(self.task, 30)


def node_client(api: InProcessAPI, name: str, url: str | None = None, **kw: Any) -> ApiClient:
    issue_node(api.certs, name)
    config = ClientConfig.from_cert_paths(url or api.url, node_paths(api.certs, name),
                                          user=f"system:node:{name}")
    return ApiClient(config, **kw)


def fake_factory(clock: Clock, made: list[Runtime]) -> RuntimeFactory:
    async def make(cidr: str) -> Runtime:
        rt = FakeRuntime(clock, any_image=True, pod_cidr=cidr)
        made.append(rt)
        return rt
    return make


@contextlib.asynccontextmanager
async def running_agent(api: InProcessAPI, tmp: Path, name: str = "node-1", *,
                        clock: Clock | None = None, runtime_factory: RuntimeFactory | None = None,
                        url: str | None = None, readings: Readings = PLENTY,
                        worker: WorkerConfig | None = None, wait: bool = True,
                        client_timeout: float = 30.0,
                        **settings: Any) -> AsyncIterator[Running]:
    """An agent running as a task; stopped (as SIGTERM would) at the end."""
    clock = clock or FakeClock()
    made: list[Runtime] = []
    n = uuid.uuid4().int
    config = AgentConfig(**{"name": name, "dir": str(tmp / name), "address": "127.0.0.1",
                            "pod_cidr": f"127.{150 + n % 50}.{n // 50 % 256}.0/24",
                            "pod_cidr_wait": 0.0, "service_proxy": False, **settings})
    async with node_client(api, name, url, timeout=client_timeout) as client:
        agent = NodeAgent(config, client, clock=clock,
                          runtime_factory=runtime_factory or fake_factory(clock, made),
                          facts=FACTS, readings=lambda: readings,
                          worker_config=worker or WorkerConfig(host_ip="127.0.0.1"))
        task = asyncio.create_task(agent.run())
        run = Running(agent, task)
        try:
            if wait:
                await until(lambda: _started(run), timeout=20)
            run.runtime = agent.runtime
            yield run
        finally:
            if not task.done():
                agent.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)


async def _started(run: Running) -> bool:
    if run.task.done():
        run.task.result()  # raise what ended it
    return run.agent.started.is_set() and bool(run.agent.feed and run.agent.feed.synced.is_set())


async def root_ca(admin: ApiClient, namespace: str = "default") -> None:
    """The ConfigMap the root-CA publisher puts in every namespace (pods mount it)."""
    with contextlib.suppress(AlreadyExists):
        await admin.create(R.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "kube-root-ca.crt"},
                                          "data": {"ca.crt": "test CA"}}, namespace)


def pod(name: str, node: str = "node-1", *, image: str = "busybox", **spec: Any) -> Obj:
    containers = spec.pop("containers", None) or [
        {"name": "c", "image": image, "command": ["sleep", "3600"]}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": containers,
                     "terminationGracePeriodSeconds": 1, **spec}}


async def create_pod(admin: ApiClient, p: Obj, namespace: str = "default") -> Obj:
    """Create a pod; without the namespace's default ServiceAccount (the controller-manager
    makes it; none runs here) admission refuses it, so make it and retry for a moment."""
    deadline = time.monotonic() + 10
    while True:
        try:
            made: Obj = await admin.create(R.PODS, p, namespace)
            return made
        except Forbidden:
            if time.monotonic() > deadline:
                raise
            with contextlib.suppress(AlreadyExists):  # the controller-manager's job
                await admin.create(R.SERVICEACCOUNTS, {
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default"}}, namespace)
            await asyncio.sleep(0.05)


async def phase(admin: ApiClient, name: str, namespace: str = "default") -> str:
    got = await admin.get(R.PODS, name, namespace)
    return str((got.get("status") or {}).get("phase") or "")


def advancing(clock: FakeClock, step: float = 1.0) -> Callable[[], Awaitable[None]]:
    """A coroutine function moving ``clock`` by ``step`` (for probes that need time)."""
    async def tick() -> None:
        clock.advance(step)
        await asyncio.sleep(0)
    return tick
