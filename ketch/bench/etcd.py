"""A throwaway 3-member etcd cluster on loopback with mTLS: the benchmark's reference system.

`issue_tls` issues etcd's certificates from ketch's CA (via the ``certs`` package) so both
systems are reached through the same client identity and CA; `EtcdCluster` starts Debian's
``etcd`` binary once per member in a directory the caller owns, waits for health, finds the
leader through the v3 JSON gateway, and kills (SIGKILL) and restarts members for failover runs.
Only processes this object started are ever signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

import aiohttp

from certs import authority, layout
from certs.layout import CertPaths
from certs.tls import client_context
from store.launch import free_ports

__all__ = [
    "CLIENT_CN",
    "EtcdCluster",
    "EtcdError",
    "EtcdMember",
    "EtcdTLS",
    "client_ssl",
    "create_ca",
    "issue_tls",
]

CLIENT_CN = "ketch-store-client"
"""The client identity when ketch's own ``store-client`` pair is not in the CA dir."""


class EtcdError(RuntimeError):
    """The etcd cluster could not be started, became unhealthy, or a member died unexpectedly."""


@dataclass(frozen=True)
class EtcdTLS:
    """Every PEM file the cluster and its client use; all issued by one CA (``ca``).

    ``members`` maps a member name to one certificate, valid for server *and* client use, for
    both its client and peer listeners.  The client usage is not optional: etcd 3.4's JSON
    gateway dials its own gRPC port presenting the server certificate, and
    ``--client-cert-auth`` rejects it unless it carries the clientAuth usage.
    """

    ca: Path
    client: CertPaths
    members: dict[str, CertPaths]


def _write(path: Path, data: bytes, *, private: bool = False) -> Path:
    """Write a fresh file; a key is created 0600 before any byte of it is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def create_ca(ca_dir: Path) -> Path:
    """Create a fresh CA (``ca.crt``, ``ca.key``) in ``ca_dir``, for etcd-only runs; return it.

    A run with ketch uses ketch's cluster CA instead, so both systems share one trust root.
    """
    ca = authority.create_ca(common_name="ketch-bench-ca")
    ca_dir.mkdir(parents=True, exist_ok=True)
    _write(ca_dir / "ca.crt", ca.cert_pem)
    _write(ca_dir / "ca.key", ca.key_pem, private=True)
    return ca_dir


def issue_tls(ca_dir: Path, out_dir: Path, members: Sequence[str]) -> EtcdTLS:
    """Issue one server+peer certificate per member from the CA in ``ca_dir`` into ``out_dir``.

    The client identity is ketch's ``store-client`` pair from ``ca_dir`` when it exists (the
    very certificate ketch's client presents), else a fresh client certificate with the same
    CN.  Member certificates name ``localhost`` and 127.0.0.1, where `EtcdCluster` listens.
    Raises `certs.CertsError` if the CA cannot be loaded.
    """
    ca = authority.load_ca(ca_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ca_pem = ca_dir / "ca.crt"
    client = layout.store_client_paths(ca_dir)
    if not (client.cert.exists() and client.key.exists()):
        cert, key = authority.issue(ca, common_name=CLIENT_CN, client=True)
        client = CertPaths(
            ca=ca_pem,
            cert=_write(out_dir / "client.crt", cert),
            key=_write(out_dir / "client.key", key, private=True),
        )
    issued: dict[str, CertPaths] = {}
    for name in members:
        cert, key = authority.issue(
            ca,
            common_name=name,
            dns_names=("localhost",),
            ip_addresses=("127.0.0.1",),
            server=True,
            client=True,
        )
        issued[name] = CertPaths(
            ca=ca_pem,
            cert=_write(out_dir / f"{name}.crt", cert),
            key=_write(out_dir / f"{name}.key", key, private=True),
        )
    return EtcdTLS(ca=ca_pem, client=client, members=issued)


def client_ssl(tls: EtcdTLS) -> ssl.SSLContext:
    """The client context ketch's own client builds (`certs.tls.client_context`), for etcd."""
    return client_context(tls.client)


@dataclass(frozen=True)
class EtcdMember:
    """One member's fixed identity: its name, ports and data directory."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path

    @property
    def client_url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://127.0.0.1:{self.peer_port}"


class EtcdCluster:
    """A 3-member (by default) etcd cluster under ``root``; use as ``async with``.

    Owns its member processes and an aiohttp session for control requests.  `start` returns when
    every member reports healthy and a leader is known, or raises `EtcdError` at ``deadline``
    (killing what it started).  `stop` SIGKILLs the remaining members and is idempotent; data is
    left in ``root`` (the caller's temp dir) for post-mortems.  Default etcd tuning is kept on
    purpose (heartbeat 100 ms, election 1000 ms, WAL fsync on every commit, which 3.4 cannot turn
    off) so the figures are of etcd as shipped.
    """

    def __init__(
        self,
        root: Path,
        *,
        tls: EtcdTLS,
        binary: str = "etcd",
        extra_args: Sequence[str] = (),
        progress: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        names = sorted(tls.members)
        ports = free_ports("127.0.0.1", 2 * len(names))
        self.root = root
        self.tls = tls
        self.members = {
            name: EtcdMember(name, ports[2 * i], ports[2 * i + 1], root / name / "data")
            for i, name in enumerate(names)
        }
        self._binary = binary
        self._extra = tuple(extra_args)
        self._progress = progress
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def client_urls(self) -> list[str]:
        return [m.client_url for m in self.members.values()]

    def command(self, name: str) -> list[str]:
        """The exact argv that starts (or restarts) member ``name``."""
        m = self.members[name]
        paths = self.tls.members[name]
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members.values())
        return [
            self._binary,
            f"--name={name}",
            f"--data-dir={m.data_dir}",
            f"--listen-client-urls={m.client_url}",
            f"--advertise-client-urls={m.client_url}",
            f"--listen-peer-urls={m.peer_url}",
            f"--initial-advertise-peer-urls={m.peer_url}",
            f"--initial-cluster={initial}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=ketch-bench",
            f"--cert-file={paths.cert}",
            f"--key-file={paths.key}",
            f"--trusted-ca-file={self.tls.ca}",
            "--client-cert-auth",
            f"--peer-cert-file={paths.cert}",
            f"--peer-key-file={paths.key}",
            f"--peer-trusted-ca-file={self.tls.ca}",
            "--peer-client-cert-auth",
            "--logger=zap",
            "--log-outputs=stderr",
            *self._extra,
        ]

    def _spawn(self, name: str) -> None:
        member_dir = self.root / name
        member_dir.mkdir(parents=True, exist_ok=True)
        if name in self._logs:
            self._logs[name].close()
        log = open(member_dir / "etcd.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs[name] = log
        self._procs[name] = subprocess.Popen(
            self.command(name), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, *, deadline: float = 30.0) -> None:
        """Start every member and wait (≤ ``deadline`` s) for health and a leader."""
        if shutil.which(self._binary) is None:
            raise EtcdError(f"{self._binary!r} not found: apt-get install -y etcd-server")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_ssl(self.tls), limit=16),
            timeout=aiohttp.ClientTimeout(total=2.0),
        )
        for name in self.members:
            self._spawn(name)
        try:
            await self.wait_healthy(deadline=deadline)
        except BaseException:
            await self.stop()
            raise
        self._progress(f"etcd: {len(self.members)} members healthy, leader {await self.leader()}")

    async def _post(self, name: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None, "start() first"
        url = self.members[name].client_url + path
        async with self._session.post(url, json=body) as resp:
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json(content_type=None)
            return data

    async def _healthy(self, name: str) -> bool:
        assert self._session is not None, "start() first"
        try:
            async with self._session.get(self.members[name].client_url + "/health") as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        return resp.status == 200 and str(body.get("health")) == "true"

    def _check_alive(self, names: Sequence[str]) -> None:
        for name in names:
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                log = self.root / name / "etcd.log"
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                raise EtcdError(f"etcd member {name} is not running; log tail:\n{tail}")

    async def wait_healthy(self, *, names: Sequence[str] | None = None, deadline: float) -> None:
        """Poll /health of ``names`` (default: all) until all are healthy and a leader is known.

        Raises `EtcdError` if a member process exits or ``deadline`` seconds pass.
        """
        wanted = list(names if names is not None else self.members)
        until = time.monotonic() + deadline
        while True:
            self._check_alive(wanted)
            states = await asyncio.gather(*(self._healthy(n) for n in wanted))
            if all(states) and await self.leader() is not None:
                return
            if time.monotonic() > until:
                raise EtcdError(f"etcd not healthy after {deadline}s: {dict(zip(wanted, states))}")
            await asyncio.sleep(0.1)

    async def status(self, name: str) -> dict[str, Any] | None:
        """``/v3/maintenance/status`` of one member, or None if it does not answer."""
        try:
            return await self._post(name, "/v3/maintenance/status", {})
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def leader(self) -> str | None:
        """Name of the member that reports itself leader (its id equals its ``leader``), or None.

        Asks every running member; a member's view of the leader is only believed when that
        leader is itself among the answering members, so a dead leader is never returned.
        """
        running = [n for n, p in self._procs.items() if p.poll() is None]
        answers = await asyncio.gather(*(self.status(n) for n in running))
        for name, st in zip(running, answers):
            if (
                st
                and st.get("leader")
                and st.get("leader") == st.get("header", {}).get("member_id")
            ):
                return name
        return None

    def pids(self) -> list[int]:
        """Process ids of the members this object started that are still running."""
        return [p.pid for p in self._procs.values() if p.poll() is None]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) to member ``name``'s process — ours only — and reap it."""
        proc = self._procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            proc.wait()

    async def restart(self, name: str, *, deadline: float = 30.0) -> None:
        """Start a killed member again on its data dir and wait until it is healthy."""
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is None:
            raise EtcdError(f"etcd member {name} is still running")
        self._spawn(name)
        await self.wait_healthy(names=[name], deadline=deadline)

    async def stop(self) -> None:
        """SIGKILL every member still running, close logs and the control session."""
        for name in list(self._procs):
            with contextlib.suppress(ProcessLookupError):
                self.kill(name)
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
