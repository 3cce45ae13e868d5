"""Apiservers inside a chaos cluster: real ``control.apiserver`` processes whose store
connections cross fault-injecting proxies, so "cut this apiserver from the store" is one of
their own client links going dark.

Why a thin launcher (``python -m chaos.apiserver --route REAL=PROXY … -- ARGS``) rather than
``python -m control.apiserver ARGS`` itself: the store client goes straight to the leader
URL a replica names (``store.endpoints.Endpoints.learn`` accepts URLs outside its list), and
replicas name their real client URLs, so after the first leader hint every request would
bypass the proxies.  The launcher installs a route table on ``Endpoints.learn`` (a leader's
real URL → this apiserver's proxy for that replica) and then runs
``control.apiserver.__main__.main(ARGS)`` unchanged.

Role in the data flow: the runner starts :class:`ApiServers` after the store is up; the API
workload (:mod:`chaos.api_workload`) talks to them with the admin certificate; the faults
``kill-apiserver`` and ``cut-apiserver-store`` act on them.  Every process is one we started:
it is signalled only through its own ``Popen`` (its pid), never looked up by name.

Layout under the cluster directory: ``apiserver-N/apiserver.log`` (stdout and stderr of every
incarnation, each start marked) and ``apiserver-N/apiserver.pid``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from certs.layout import admin_paths, apiserver_paths, apiserver_store_client_paths
from certs.tls import client_context
from store.launch import free_ports

from .cluster import ChaosCluster

__all__ = ["READY_TIMEOUT", "ApiServer", "ApiServerError", "ApiServers"]

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0
_ROOT = Path(__file__).resolve().parent.parent  # so `python -m control.apiserver` imports this tree


class ApiServerError(Exception):
    """An apiserver could not be started or did not become ready; the message says why."""


@dataclass
class ApiServer:
    """One apiserver: its listen address, its proxied store URLs and its current process."""

    name: str
    listen: str
    store_urls: list[str]
    routes: dict[str, str]  # a replica's real client URL -> this apiserver's proxy to it
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)  # exit codes of earlier incarnations

    @property
    def url(self) -> str:
        return f"https://{self.listen}"

    @property
    def log(self) -> Path:
        return self.dir / "apiserver.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class ApiServers:
    """``count`` apiservers of one :class:`ChaosCluster` (whose store must be up)."""

    def __init__(self, cluster: ChaosCluster, *, count: int = 2,
                 python: str = sys.executable, extra_args: Sequence[str] = ()) -> None:
        self._cluster = cluster
        self._count = count
        self._python = python
        self._extra_args = list(extra_args)  # more apiserver flags (the cluster run's)
        self.servers: list[ApiServer] = []

    @property
    def certs_dir(self) -> Path:
        assert self._cluster.store is not None
        return self._cluster.store.certs_dir

    def ssl_context(self) -> ssl.SSLContext:
        """The admin identity (system:masters) against the cluster CA."""
        return client_context(admin_paths(self.certs_dir))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.servers]

    def server(self, name: str) -> ApiServer:
        return next(s for s in self.servers if s.name == name)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start_all(self) -> None:
        """Check the certificates, open each apiserver's client links, start every apiserver
        and wait until each answers /readyz."""
        for paths in (apiserver_paths(self.certs_dir), apiserver_store_client_paths(self.certs_dir),
                      admin_paths(self.certs_dir)):
            if not paths.cert.exists() or not paths.key.exists():
                raise ApiServerError(f"{paths.cert} is missing: the store's `up` should have made "
                                     "it (certs.layout.COMPONENTS); re-run in a fresh directory")
        assert self._cluster.store is not None
        real = self._cluster.store.client_urls
        for i in range(self._count):
            name = f"apiserver-{i + 1}"
            urls = await self._cluster.add_client_links(name)
            d = self._cluster.dir / name
            d.mkdir(parents=True, exist_ok=True)
            self.servers.append(ApiServer(name, f"127.0.0.1:{free_ports('127.0.0.1', 1)[0]}", urls,
                                          dict(zip(real, urls, strict=True)), d))
        # One after the other: apiservers that bootstrap the same empty store at once race
        # for the `kubernetes` Service's cluster IP and the loser exits (see the report).
        for s in self.servers:
            self.start(s.name)
            await self.wait_ready(s.name)
            self._cluster.progress(f"{s.name}: ready on {s.url} (store via "
                                   f"{', '.join(u.removeprefix('https://') for u in s.store_urls)})")

    def start(self, name: str) -> int:
        """Start ``name`` unless it runs; its pid.  Does not wait for it to be ready."""
        s = self.server(name)
        if s.running and s.proc is not None:
            return s.proc.pid
        if s.proc is not None and (code := s.proc.poll()) is not None:
            s.exits.append(code)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        with s.log.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
            out.flush()
            routes = [a for real, proxy in s.routes.items() for a in ("--route", f"{real}={proxy}")]
            s.proc = subprocess.Popen(
                [self._python, "-m", "chaos.apiserver", *routes, "--",
                 "--certs", str(self.certs_dir), "--store", ",".join(s.store_urls),
                 "--listen", s.listen, *self._extra_args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=s.dir,
                env=env, start_new_session=True)
        (s.dir / "apiserver.pid").write_text(f"{s.proc.pid}\n")
        s.starts += 1
        return s.proc.pid

    async def ready(self, name: str, session: aiohttp.ClientSession | None = None) -> bool:
        s = self.server(name)
        try:
            if session is None:
                async with self._session() as own:
                    return await self._readyz(own, s)
            return await self._readyz(session, s)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def _readyz(self, session: aiohttp.ClientSession, s: ApiServer) -> bool:
        async with session.get(f"{s.url}/readyz",
                               timeout=aiohttp.ClientTimeout(total=1.0)) as r:
            return r.status == 200

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl_context()))

    async def wait_ready(self, name: str, timeout: float = READY_TIMEOUT) -> float:
        """Poll /readyz until it answers 200; the seconds it took.  ApiServerError (with the
        log's tail) when the process exits or ``timeout`` passes."""
        s = self.server(name)
        t0 = time.monotonic()
        async with self._session() as session:
            while time.monotonic() - t0 < timeout:
                if not s.running:
                    break
                if await self.ready(name, session):
                    return time.monotonic() - t0
                await asyncio.sleep(0.1)
        tail = s.log.read_text(errors="replace").splitlines()[-15:] if s.log.exists() else []
        code = None if s.proc is None else s.proc.poll()
        raise ApiServerError(f"{name} did not become ready in {timeout:.0f} s (exit code {code}); "
                             f"log {s.log}:\n" + "\n".join(tail))

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to ``name``'s process (ours, by pid) and wait until it has exited."""
        s = self.server(name)
        if s.proc is None or s.proc.poll() is not None:
            return
        s.proc.send_signal(sig)
        until = time.monotonic() + STOP_TIMEOUT
        while s.proc.poll() is None and time.monotonic() < until:
            await asyncio.sleep(0.02)

    async def stop_all(self) -> None:
        """SIGTERM every apiserver we started; SIGKILL what is still there after STOP_TIMEOUT."""
        live = [s for s in self.servers if s.running]
        for s in live:
            assert s.proc is not None
            with contextlib.suppress(ProcessLookupError):
                s.proc.send_signal(signal.SIGTERM)
        until = time.monotonic() + STOP_TIMEOUT
        while any(s.running for s in live) and time.monotonic() < until:
            await asyncio.sleep(0.05)
        for s in live:
            if s.running and s.proc is not None:
                s.proc.kill()
                await asyncio.to_thread(s.proc.wait, STOP_TIMEOUT)
            (s.dir / "apiserver.pid").unlink(missing_ok=True)

    async def ensure_running(self) -> None:
        """Restart any apiserver that is down (a fault's heal failed, or it crashed) and wait
        until every one is ready."""
        for s in self.servers:
            if not s.running:
                code = None if s.proc is None else s.proc.poll()
                self._cluster.progress(f"{s.name} was not running (exit code {code}); starting it")
                self.start(s.name)
        for s in self.servers:
            await self.wait_ready(s.name)

    def crashed(self) -> list[str]:
        """Apiservers that exited on their own with an error (not by our SIGKILL/SIGTERM)."""
        out = []
        for s in self.servers:
            codes = [*s.exits, *([] if s.proc is None else [s.proc.poll()])]
            for code in codes:
                if code not in (None, 0, -signal.SIGKILL, -signal.SIGTERM):
                    out.append(f"{s.name} exited on its own with code {code} (log {s.log})")
        return out


# --- the launcher ------------------------------------------------------------------------------


def route_leader_hints(routes: dict[str, str]) -> None:
    """Make every store client of this process translate a leader URL it is told through
    ``routes`` (real client URL → proxy URL), so it keeps to its proxies."""
    from store.endpoints import Endpoints

    learn = Endpoints.learn

    def routed(self: Endpoints, leader: object) -> None:
        if isinstance(leader, str):
            leader = routes.get(leader.rstrip("/"), leader)
        learn(self, leader)

    Endpoints.learn = routed  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chaos.apiserver [--route REAL=PROXY]… -- APISERVER-ARGS``."""
    args = list(sys.argv[1:] if argv is None else argv)
    own, rest = (args[:args.index("--")], args[args.index("--") + 1:]) if "--" in args \
        else (args, [])
    p = argparse.ArgumentParser(prog="python -m chaos.apiserver")
    p.add_argument("--route", action="append", default=[], metavar="REAL=PROXY")
    parsed: Any = p.parse_args(own)
    route_leader_hints(dict(r.split("=", 1) for r in parsed.route))
    apiserver = importlib.import_module("control.apiserver.__main__")
    return int(apiserver.main(rest))


if __name__ == "__main__":
    sys.exit(main())
