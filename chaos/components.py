"""The rest of a chaos cluster (``ketch chaos run --cluster``): controller-managers,
schedulers and node agents as real processes, each of whose links to the apiservers crosses a
fault-injecting proxy of its own, and a proxy in front of every agent's streaming server.

Wiring.  Component C gets one :class:`~chaos.proxy.LinkProxy` per apiserver A (``C->A``);
its kubeconfig names its proxy to the first apiserver and ``--server`` its proxy to the
second, so "partition C from the apiservers" is C's own proxies going dark and nothing else.
A node agent listens for the apiserver (logs, exec) on ``ADDRESS:S`` and publishes
``ADDRESS:P`` (``--streaming-advertise-port``), where the proxy ``apiservers->NODE``
forwards to S.  Node agents get addresses ``127.11.K.i`` and pod CIDRs from
``127.(128+K).0.0/16`` (K from the run directory), apart from ``ketch up`` clusters'.

Every component records for the checkers: agents append each container start and exit to
``node-N/runs.jsonl`` (``--run-record``), controller-managers and schedulers every write with
their lease term to ``NAME/writes.jsonl`` (``--record-writes``).  Processes are ours: started
here, signalled only through their own ``Popen``.  Layout: ``NAME/KIND.log`` (every
incarnation, each start marked), ``NAME/kubeconfig``, and the agents' ``node-N/`` state.

:class:`Timings` are the chaos cluster's failure-detection settings; the README explains them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from certs.kubeconfig import write_kubeconfig
from certs.layout import (
    admin_paths,
    component_serving_paths,
    controller_manager_paths,
    issue_node,
    issue_node_serving,
    node_paths,
    node_serving_paths,
    scheduler_paths,
)
from certs.tls import client_context
from store.launch import free_ports

from .apiserver import ApiServers
from .cluster import ChaosCluster
from .history import ComponentEvent
from .proxy import DROP, LinkProxy

__all__ = ["Component", "ComponentError", "Components", "Timings"]

_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
_MODULES = {"controller-manager": "control.controllers", "scheduler": "control.scheduler",
            "node": "node"}


class ComponentError(Exception):
    """A component could not be started or did not become ready; the message says why."""


@dataclass(frozen=True)
class Timings:
    """Failure detection in the chaos cluster (Kubernetes' defaults in brackets): node Lease
    10 s renewed every 2.5 s [40 s / 10 s]; a node silent for 15 s goes Unknown [50 s],
    checked every second [5 s]; pods tolerate not-ready/unreachable for 5 s [300 s]; the
    controller-manager and scheduler Leases 8/5/1 s [15/10/2 s]."""

    node_lease: int = 10
    node_monitor_grace: float = 15.0
    node_monitor_period: float = 1.0
    toleration: int = 5
    leader_lease: float = 8.0
    node_shutdown_grace: float = 10.0

    def apiserver_args(self) -> list[str]:
        return ["--default-not-ready-toleration-seconds", str(self.toleration),
                "--default-unreachable-toleration-seconds", str(self.toleration)]


@dataclass
class Component:
    """One controller-manager, scheduler or node agent and its current process."""

    name: str
    kind: str
    dir: Path
    listen: str  # its own health listener (/readyz, /leader), reached directly
    links: dict[str, LinkProxy]  # apiserver name -> this component's proxy to it
    argv: list[str] = field(default_factory=list)
    address: str = ""  # node agents: their InternalIP
    streaming: LinkProxy | None = None  # node agents: apiservers -> its streaming server
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.dir / f"{self.kind}.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    def proxies(self) -> list[LinkProxy]:
        return [*self.links.values(), *([self.streaming] if self.streaming else [])]


class Components:
    """The controller-managers, schedulers and node agents of one chaos cluster.

    ``sabotage`` maps a kind to the ``--sabotage`` every instance of it runs (the proofs;
    the run's environment must allow it)."""

    def __init__(self, cluster: ChaosCluster, servers: ApiServers, *,
                 timings: Timings | None = None, controller_managers: int = 2,
                 schedulers: int = 2, nodes: int = 3, sabotage: dict[str, str] | None = None,
                 python: str = sys.executable) -> None:
        self._cluster = cluster
        self._servers = servers
        self.timings = timings or Timings()
        self._counts = {"controller-manager": controller_managers, "scheduler": schedulers,
                        "node": nodes}
        self._sabotage = dict(sabotage or {})
        self._python = python
        self.items: list[Component] = []
        self.events: list[ComponentEvent] = []  # what was done to each process, when
        self.runs: Any = None  # the run's chaos.cluster_observer.RunTracker (kill-pod)
        self.block = int.from_bytes(hashlib.sha256(str(cluster.dir).encode()).digest()[:2]) % 60

    # --- views -------------------------------------------------------------------------------

    @property
    def certs(self) -> Path:
        assert self._cluster.store is not None
        return self._cluster.store.certs_dir

    @property
    def cluster_cidr(self) -> str:
        return f"127.{128 + self.block}.0.0/16"

    def of(self, kind: str) -> list[Component]:
        return [c for c in self.items if c.kind == kind]

    def get(self, name: str) -> Component:
        return next(c for c in self.items if c.name == name)

    def run_record(self, node: str) -> Path:
        return self.get(node).dir / "runs.jsonl"

    def write_log(self, name: str) -> Path:
        return self.get(name).dir / "writes.jsonl"

    def admin_ssl(self) -> ssl.SSLContext:
        return client_context(admin_paths(self.certs))

    # --- set-up ------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Certificates, kubeconfigs, proxies and command lines of every component."""
        for kind in ("controller-manager", "scheduler", "node"):
            for i in range(1, self._counts[kind] + 1):
                self.items.append(await self._prepare(kind, f"{kind}-{i}", i))

    async def _prepare(self, kind: str, name: str, i: int) -> Component:
        d = self._cluster.dir / name
        d.mkdir(parents=True, exist_ok=True)
        links: dict[str, LinkProxy] = {}
        for s in self._servers.servers:
            host, port = s.listen.rsplit(":", 1)
            proxy = LinkProxy(f"{name}->{s.name}", (host, int(port)))
            await proxy.start()
            self._cluster.extra_proxies.append(proxy)
            links[s.name] = proxy
        urls = [f"https://{p.address}" for p in links.values()]
        others = [a for u in urls[1:] for a in ("--server", u)]
        sabotage = self._sabotage.get(kind)
        extra = ["--sabotage", sabotage] if sabotage else []
        if kind == "node":
            return await self._prepare_node(name, i, d, links, urls, others + extra)
        paths = controller_manager_paths(self.certs) if kind == "controller-manager" \
            else scheduler_paths(self.certs)
        user = "system:kube-controller-manager" if kind == "controller-manager" \
            else "system:kube-scheduler"
        write_kubeconfig(d / "kubeconfig", server=urls[0], ca=paths.ca, cert=paths.cert,
                         key=paths.key, user=user)
        serving = component_serving_paths(self.certs, kind)
        (health,) = free_ports("127.0.0.1", 1)
        listen = f"127.0.0.1:{health}"
        t = self.timings
        argv = [self._python, "-m", _MODULES[kind], "--kubeconfig", str(d / "kubeconfig"),
                *others, "--listen", listen, "--serving-cert", str(serving.cert),
                "--serving-key", str(serving.key), "--ca", str(serving.ca),
                "--record-writes", str(d / "writes.jsonl"),
                "--leader-elect-lease-duration", str(t.leader_lease), *extra]
        if kind == "controller-manager":
            argv += ["--cluster-cidr", self.cluster_cidr,
                     "--node-monitor-grace-period", str(t.node_monitor_grace),
                     "--node-monitor-period", str(t.node_monitor_period)]
        return Component(name, kind, d, listen, links, argv)

    async def _prepare_node(self, name: str, i: int, d: Path, links: dict[str, LinkProxy],
                            urls: list[str], more: list[str]) -> Component:
        address = f"127.11.{self.block}.{i}"
        await asyncio.to_thread(issue_node, self.certs, name)
        await asyncio.to_thread(issue_node_serving, self.certs, name, [address])
        paths = node_paths(self.certs, name)
        write_kubeconfig(d / "kubeconfig", server=urls[0], ca=paths.ca, cert=paths.cert,
                         key=paths.key, user=f"system:node:{name}")
        serving = node_serving_paths(self.certs, name)
        streaming_port, health_port = free_ports(address, 2)
        streaming = LinkProxy(f"apiservers->{name}", (address, streaming_port), host=address)
        await streaming.start()
        self._cluster.extra_proxies.append(streaming)
        t = self.timings
        argv = [self._python, "-m", "node", "--kubeconfig", str(d / "kubeconfig"), *more,
                "--name", name, "--dir", str(d), "--address", address,
                "--streaming-port", str(streaming_port),
                "--streaming-advertise-port", str(streaming.port),
                "--listen", f"{address}:{health_port}", "--serving-cert", str(serving.cert),
                "--serving-key", str(serving.key), "--ca", str(serving.ca),
                "--lease-duration", str(t.node_lease), "--run-record", str(d / "runs.jsonl"),
                "--shutdown-grace", str(t.node_shutdown_grace)]
        return Component(name, "node", d, f"{address}:{health_port}", links, argv, address,
                         streaming)

    # --- processes ---------------------------------------------------------------------------

    async def start_all(self) -> None:
        """Prepare, then start each kind in order, every one ready before the next kind."""
        await self.prepare()
        for kind in ("controller-manager", "scheduler", "node"):
            for c in self.of(kind):
                self.start(c.name)
            for c in self.of(kind):
                await self.wait_ready(c.name)
                self._cluster.progress(f"{c.name}: ready (pid {c.pid})")

    def start(self, name: str) -> int:
        """Start ``name`` unless it runs; its pid.  Does not wait for it to be ready."""
        c = self.get(name)
        if c.running and c.proc is not None:
            return c.proc.pid
        if c.proc is not None and (code := c.proc.poll()) is not None:
            c.exits.append(code)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        with c.log.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
            out.flush()
            c.proc = subprocess.Popen(c.argv, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, cwd=c.dir, env=env,
                                      start_new_session=True)
        c.starts += 1
        self.events.append(ComponentEvent(time.monotonic(), name, "start", str(c.proc.pid)))
        return c.proc.pid

    def send(self, name: str, sig: int) -> bool:
        """Send ``sig`` to ``name``'s process if it runs (ours, by its Popen)."""
        c = self.get(name)
        if c.proc is None or c.proc.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            c.proc.send_signal(sig)
        self.events.append(ComponentEvent(time.monotonic(), name,
                                          signal.Signals(sig).name.lower()))
        return True

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and wait until the process has exited (SIGKILL, SIGTERM)."""
        if not self.send(name, sig):
            return
        c = self.get(name)
        assert c.proc is not None
        if sig == signal.SIGTERM:  # a paused process cannot act on it
            self.send(name, signal.SIGCONT)
        until = time.monotonic() + STOP_TIMEOUT
        while c.proc.poll() is None and time.monotonic() < until:
            await asyncio.sleep(0.02)

    async def stop_all(self) -> None:
        """SIGTERM every component (agents stop their pods gracefully, so every run ends
        with an exit line), then SIGKILL what is left."""
        live = [c for c in self.items if c.running]
        for c in live:
            self.send(c.name, signal.SIGCONT)
            self.send(c.name, signal.SIGTERM)
        until = time.monotonic() + STOP_TIMEOUT + self.timings.node_shutdown_grace
        while any(c.running for c in live) and time.monotonic() < until:
            await asyncio.sleep(0.05)
        for c in live:
            if c.running and c.proc is not None:
                c.proc.kill()
                await asyncio.to_thread(c.proc.wait, STOP_TIMEOUT)

    def crashed(self) -> list[str]:
        """Components that exited on their own with an error (not by our signals)."""
        ours = (None, 0, -signal.SIGKILL, -signal.SIGTERM)
        return [f"{c.name} exited on its own with code {code} (log {c.log})"
                for c in self.items
                for code in [*c.exits, *([] if c.proc is None else [c.proc.poll()])]
                if code not in ours]

    # --- health and leadership ------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.admin_ssl()))

    async def _get(self, session: aiohttp.ClientSession, c: Component,
                   path: str) -> tuple[int, Any]:
        try:
            async with session.get(f"https://{c.listen}{path}",
                                   timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                body = await r.json(content_type=None) if path == "/leader" else await r.text()
                return r.status, body
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return 0, None

    async def wait_ready(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        c = self.get(name)
        until = time.monotonic() + timeout
        async with self.session() as session:
            while time.monotonic() < until and c.running:
                if (await self._get(session, c, "/readyz"))[0] == 200:
                    return
                await asyncio.sleep(0.2)
        tail = c.log.read_text(errors="replace").splitlines()[-15:] if c.log.exists() else []
        raise ComponentError(f"{name} did not become ready in {timeout:.0f} s (running: "
                             f"{c.running}); log {c.log}:\n" + "\n".join(tail))

    async def leader(self, kind: str) -> str | None:
        """The component of ``kind`` that says it leads now (its /leader), if one does."""
        async with self.session() as session:
            for c in self.of(kind):
                if c.running:
                    code, body = await self._get(session, c, "/leader")
                    if code == 200 and isinstance(body, dict) and body.get("leader"):
                        return c.name
        return None

    async def ensure_running(self) -> None:
        """Resume and restart whatever a fault left stopped, and wait until all are ready."""
        for c in self.items:
            if c.pid is not None and _stopped(c.pid):
                self.send(c.name, signal.SIGCONT)
            if not c.running:
                self._cluster.progress(f"{c.name} was not running; starting it")
                self.start(c.name)
        for c in self.items:
            await self.wait_ready(c.name)

    # --- network -----------------------------------------------------------------------------

    def cut_off(self, name: str) -> None:
        """Every byte between ``name`` and the apiservers dropped, both ways (an agent's
        streaming link too)."""
        for p in self.get(name).proxies():
            p.set(forward=DROP, backward=DROP)


def _stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t")
    except (OSError, IndexError):
        return False
