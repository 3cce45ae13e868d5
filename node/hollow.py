"""Hollow nodes (kubemark's idea): many real node agents in one process over the fake runtime,
so a scale test puts the load of N agents on the control plane without N machines.

Each hollow node is a whole :class:`~node.agent.NodeAgent` — registration, the Lease heartbeat
on its own client, node status, the pods informer (``spec.nodeName=NAME``), the pod workers,
the status writer and its events — with its own identity (``system:node:NAME``, a client
certificate issued from the cluster CA) and its own connections, so the apiserver sees exactly
what N agents would send.  What is hollow: the runtime (:class:`~node.runtime.fake.FakeRuntime`:
every container "starts" at once and runs until stopped; "it just lies it does", as kubemark's
guide says), the machine (fixed facts and readings, no ``/proc`` per agent), and no streaming
server or service proxy listener.  The agents share the process and its event loop, nothing
else.

:class:`HollowNodes` starts them at ``start_rate`` per second (a thousand TLS handshakes and
registrations at once would only measure the stampede), restarts one whose agent fails (as
systemd would restart a kubelet) and stops them all on :meth:`HollowNodes.stop`.  By default
a stopping hollow node leaves its pods to the API (``keep_pods_on_exit``): faking graceful
termination of thousands of pods would only delay the end of a benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certs.layout import issue_node, node_paths
from control.api.clock import Clock, RealClock
from control.client import ClientConfig
from node.runtime.api import Runtime
from node.runtime.fake import FakeRuntime

from .agent import NodeAgent
from .clients import agent_clients
from .config import KUBELET_VERSION, AgentConfig
from .machine import MachineFacts, Readings

__all__ = ["HollowConfig", "HollowNodes", "hollow_facts"]

log = logging.getLogger("ketch.node.hollow")

_READINGS = Readings(memory_available_bytes=12 << 30, disk_available_bytes=80 << 30,
                     disk_total_bytes=100 << 30, pids_in_use=300, pid_max=4_194_304)
_RESTART_DELAY = 5.0


def hollow_facts(name: str, cpus: int, memory_bytes: int) -> MachineFacts:
    """A hollow node's machine: what it reports, read from nowhere."""
    return MachineFacts(cpus=cpus, memory_bytes=memory_bytes, disk_bytes=100 << 30,
                        machine_id=f"hollow-{name}", system_uuid=f"hollow-{name}",
                        boot_id=f"hollow-{name}", kernel_version="6.1.0-hollow",
                        os_image="ketch hollow node", architecture="amd64")


@dataclass(frozen=True)
class HollowConfig:
    """``count`` agents named ``PREFIX-FIRST`` .. ``PREFIX-(FIRST+count-1)`` under ``dir``,
    identities issued from the cluster CA in ``certs``, talking to ``servers``.  Every
    setting of a real agent (:class:`~node.config.AgentConfig`) the hollow ones share comes
    from ``agent``; its name, dir, address and fallback pod CIDR are filled in per node."""

    count: int
    dir: str
    certs: str
    servers: tuple[str, ...]
    prefix: str = "hollow-node"
    first: int = 1
    cpus: int = 4
    memory_bytes: int = 16 << 30
    start_rate: float = 50.0
    client_qps: float = 0.0
    client_burst: int = 0
    agent: Mapping[str, Any] = field(default_factory=dict)

    def name(self, i: int) -> str:
        return f"{self.prefix}-{i}"

    @property
    def names(self) -> list[str]:
        return [self.name(i) for i in range(self.first, self.first + self.count)]


def _agent_config(config: HollowConfig, i: int) -> AgentConfig:
    # Addresses and fallback CIDRs from 10.0.0.0/8, one /24 per node index: nothing listens
    # there (no streaming server, no proxy); they only have to be distinct.
    hi, lo = (i >> 8) & 0xFF, i & 0xFF
    settings: dict[str, Any] = {
        "keep_pods_on_exit": True, "service_proxy": False, "pod_cidr_wait": 10.0,
        **config.agent}
    return AgentConfig(name=config.name(i), dir=str(Path(config.dir) / config.name(i)),
                       address=f"10.255.{hi}.{lo}", streaming_port=0,
                       pod_cidr=f"10.{hi}.{lo}.0/24", **settings)


class _Hollow:
    """One hollow node: its clients, its agent, restarted when the agent fails."""

    def __init__(self, config: HollowConfig, i: int, clock: Clock) -> None:
        self.name = config.name(i)
        self.config = _agent_config(config, i)
        self.hollow = config
        self.clock = clock
        self.agent: NodeAgent | None = None
        self.failures = 0
        self.last_error = ""
        self._stopping = False

    async def _runtime(self, pod_cidr: str) -> Runtime:
        return FakeRuntime(self.clock, any_image=True, record_calls=False, pod_cidr=pod_cidr)

    async def run(self) -> None:
        """Run the agent until :meth:`stop`; restart it after a failure."""
        client_config = ClientConfig.from_cert_paths(
            self.hollow.servers, node_paths(self.hollow.certs, self.name),
            user=f"system:node:{self.name}")
        ua = f"kubelet/{KUBELET_VERSION} (linux) ketch-hollow"
        facts = hollow_facts(self.name, self.hollow.cpus, self.hollow.memory_bytes)
        while not self._stopping:
            async with agent_clients(client_config, ua, self.config, qps=self.hollow.client_qps,
                                     burst=self.hollow.client_burst) as (client, hb):
                self.agent = NodeAgent(self.config, client, heartbeat_client=hb,
                                       clock=self.clock, runtime_factory=self._runtime,
                                       facts=facts, readings=lambda: _READINGS)
                try:
                    await self.agent.run()
                except Exception as e:  # noqa: BLE001 - one node's failure, not the process's
                    self.failures += 1
                    self.last_error = f"{type(e).__name__}: {e}"
                    log.error("hollow node %s failed (%s); restarting in %.0fs", self.name,
                              self.last_error, _RESTART_DELAY)
            if not self._stopping:
                await asyncio.sleep(_RESTART_DELAY)

    def stop(self) -> None:
        self._stopping = True
        if self.agent is not None:
            self.agent.stop()

    @property
    def ready(self) -> bool:
        return self.agent is not None and self.agent.started.is_set()


class HollowNodes:
    """The hollow nodes of one process (see the module docstring)."""

    def __init__(self, config: HollowConfig, *, clock: Clock | None = None) -> None:
        if config.count < 1:
            raise ValueError(f"hollow nodes: count must be >= 1, got {config.count}")
        self.config = config
        self.clock = clock or RealClock()
        self.nodes = [_Hollow(config, i, self.clock)
                      for i in range(config.first, config.first + config.count)]
        self._stop = asyncio.Event()

    @property
    def ready(self) -> int:
        """How many agents are up (registered, runtime started, pods listed)."""
        return sum(1 for n in self.nodes if n.ready)

    @property
    def failures(self) -> dict[str, str]:
        """Nodes whose agent failed at least once, with their last error."""
        return {n.name: n.last_error for n in self.nodes if n.failures}

    def stop(self) -> None:
        self._stop.set()

    async def _issue(self) -> None:
        """Every node's client certificate (kept if valid), off the event loop."""
        certs = self.config.certs

        def issue_all() -> None:
            for n in self.nodes:
                issue_node(certs, n.name)

        await asyncio.to_thread(issue_all)

    async def run(self) -> None:
        """Start every agent (``start_rate`` per second), run until :meth:`stop`, then stop
        them all at once and wait for each to finish."""
        await self._issue()
        tasks: list[asyncio.Task[None]] = []
        try:
            gap = 1.0 / self.config.start_rate if self.config.start_rate > 0 else 0.0
            for n in self.nodes:
                if self._stop.is_set():
                    break
                tasks.append(asyncio.create_task(n.run(), name=f"hollow {n.name}"))
                if gap:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), gap)
            log.info("%d hollow nodes started", len(tasks))
            await self._stop.wait()
        finally:
            for n in self.nodes:
                n.stop()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=60.0)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
