"""A store cluster on this machine: certificates, configs and replica processes in one directory.

``ketch store up`` and the benchmarks use :class:`LocalCluster`; everything it makes lives in
DIR::

    DIR/cluster.json        the members (names, loopback ports chosen once) and fsync
    DIR/certs/              the cluster CA and certificates (certs.layout)
    DIR/<name>/config.json  the replica's ReplicaConfig, as `python -m store --config` reads it
    DIR/<name>/data/        its journal and snapshots
    DIR/<name>/replica.log  its stdout and stderr;  DIR/<name>/replica.pid  its process id

Replicas run detached (their own session), so they outlive the command that started them.  A
process is only ever signalled when its pid is in our pid file AND /proc says it is alive and
running our config file; nothing is killed by name.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from certs.layout import (
    CertPaths,
    init_cluster_certs,
    raft_secret_path,
    store_client_paths,
    store_replica_paths,
)
from certs.tls import client_context
from store.client import StoreClient
from store.client_wire import status_sync
from store.config import Member, ReplicaConfig

__all__ = [
    "STOP_TIMEOUT",
    "UP_TIMEOUT",
    "ClusterError",
    "LocalCluster",
    "ephemeral_port_range",
    "free_ports",
    "process_argv",
    "process_state",
    "write_atomic",
]

UP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ROOT = Path(__file__).resolve().parent.parent  # so `python -m store` imports this tree

Progress = Callable[[str], None]


class ClusterError(Exception):
    """The cluster directory is missing or inconsistent, or replicas did not come up.  The
    message says what to do."""


def _quiet(_: str) -> None:
    pass


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections (inclusive)."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_ports(host: str, n: int) -> list[int]:
    """``n`` distinct ports free on ``host`` right now, outside the ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the same range as the source ports
    of outgoing connections, so between picking it and a child process binding it (or
    binding it again on restart) any client connection may take it.  Ports below or above
    that range are only ever taken by listeners that ask for them.  All candidates are held
    open until all are picked, so the ``n`` never repeat.
    """
    lo, hi = ephemeral_port_range()
    pool = [*range(10000, lo), *range(hi + 1, 65536)]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for port in random.SystemRandom().sample(pool, min(len(pool), 2000)):
            if len(socks) == n:
                break
            s = socket.socket(family)
            try:
                s.bind((host, port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        while len(socks) < n:  # an exhausted pool: let the kernel choose
            s = socket.socket(family)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def process_state(pid: int) -> str | None:
    """The process state letter (R, S, D, Z, ...) or None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def process_argv(pid: int) -> list[str] | None:
    """The argv of a live (not zombie) process, or None (also while it is exiting)."""
    if process_state(pid) in (None, "Z", "X"):
        return None
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None


class LocalCluster:
    """The replicas of one directory.  ``replicas`` and ``fsync`` apply when the cluster is
    created (None: 3 replicas, fsync on); afterwards DIR/cluster.json is the truth, and an
    explicit ``fsync`` given to a later ``up`` is recorded for replicas it starts.  Ports are
    ``base_port`` + 0, 1, ... (client, raft per replica) or free loopback ports, chosen once.
    """

    def __init__(
        self,
        dir: Path | str,
        *,
        replicas: int | None = None,
        fsync: bool | None = None,
        host: str = "127.0.0.1",
        base_port: int | None = None,
        python: str = sys.executable,
    ) -> None:
        self.dir = Path(dir).resolve()
        self._replicas = replicas
        self._fsync = fsync
        self._host = host
        self._base_port = base_port
        self._python = python
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._layout: dict[str, Any] | None = None

    @property
    def exists(self) -> bool:
        return (self.dir / "cluster.json").exists()

    def _load(self) -> dict[str, Any]:
        if self._layout is None:
            path = self.dir / "cluster.json"
            if not path.exists():
                raise ClusterError(
                    f"no cluster in {self.dir}: run `ketch store up --dir {self.dir}`")
            try:
                layout = json.loads(path.read_text())
                for m in layout["members"]:
                    Member(**m)
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ClusterError(f"{path} is unreadable ({e}); move {self.dir} away and run "
                                   f"`ketch store up --dir {self.dir}` for a new cluster") from e
            self._layout = layout
        return self._layout

    def _create_layout(self) -> None:
        n = self._replicas or 3
        if n < 1:
            raise ClusterError("a cluster needs at least one replica")
        if self._base_port is not None:
            ports = [self._base_port + i for i in range(2 * n)]
        else:
            ports = free_ports(self._host, 2 * n)
        h = f"[{self._host}]" if ":" in self._host else self._host
        members = [{"name": f"s{i + 1}", "client": f"https://{h}:{ports[2 * i]}",
                    "raft": f"{self._host}:{ports[2 * i + 1]}"} for i in range(n)]
        self._layout = {"members": members, "fsync": True if self._fsync is None else self._fsync}
        write_atomic(self.dir / "cluster.json", json.dumps(self._layout, indent=2) + "\n")

    @property
    def members(self) -> list[Member]:
        return [Member(**m) for m in self._load()["members"]]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def client_urls(self) -> list[str]:
        return [m.client for m in self.members]

    @property
    def fsync(self) -> bool:
        return bool(self._load().get("fsync", True))

    @property
    def certs_dir(self) -> Path:
        return self.dir / "certs"

    @property
    def client_tls(self) -> CertPaths:
        """The store-client identity (CN ketch-store-client) for CLIs and benchmarks."""
        return store_client_paths(self.certs_dir)

    def config_path(self, name: str) -> Path:
        return self.dir / name / "config.json"

    def log_path(self, name: str) -> Path:
        return self.dir / name / "replica.log"

    def _member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise ClusterError(f"no replica {name!r} in {self.dir} (replicas: {', '.join(self.names)})")

    def _write_config(self, name: str) -> Path:
        paths = store_replica_paths(self.certs_dir, name)
        cfg = ReplicaConfig(
            name=name, data_dir=self.dir / name / "data", members=tuple(self.members),
            ca=paths.ca, cert=paths.cert, key=paths.key,
            raft_secret_file=raft_secret_path(self.certs_dir), fsync=self.fsync,
        )
        overrides = self._load().get("overrides", {}).get(name)
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.config_path(name)
        write_atomic(path, cfg.to_json() + "\n")
        return path

    def configure(self, name: str, **fields: Any) -> None:
        """Record ReplicaConfig overrides for replica ``name`` in DIR/cluster.json; they apply
        when it next starts (e.g. ``raft_routes`` through proxies, ``raft_fixes``)."""
        self._member(name)
        layout = self._load()
        layout.setdefault("overrides", {}).setdefault(name, {}).update(fields)
        write_atomic(self.dir / "cluster.json", json.dumps(layout, indent=2) + "\n")

    def pid(self, name: str) -> int | None:
        """The pid of replica ``name`` if it runs (pid file, alive, running our config)."""
        try:
            pid = int((self.dir / name / "replica.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        argv = process_argv(pid)
        if argv is not None and str(self.config_path(name)) in argv:
            return pid
        proc = self._procs.get(name)
        if proc is not None and proc.pid == pid:
            proc.poll()  # our child exited: reap it (a zombie has no command line)
        return None

    def _exit_note(self, name: str) -> str:
        proc = self._procs.get(name)
        code = None if proc is None else proc.poll()
        return f"{name} (exit code {code})" if code is not None else name

    def start(self, name: str, progress: Progress = _quiet) -> int:
        """Start replica ``name`` unless it runs; its pid.  Does not wait for it to serve."""
        self._member(name)
        if (pid := self.pid(name)) is not None:
            progress(f"{name}: already running (pid {pid})")
            return pid
        config = self._write_config(name)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        log = self.log_path(name)
        with log.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                [self._python, "-m", "store", "--config", str(config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.dir / name, env=env, start_new_session=True,
            )
        self._procs[name] = proc
        write_atomic(self.dir / name / "replica.pid", f"{proc.pid}\n")
        m = self._member(name)
        progress(f"{name}: started (pid {proc.pid}), client {m.client}, raft {m.raft}, log {log}")
        return proc.pid

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to replica ``name``; for SIGKILL and SIGTERM wait (up to STOP_TIMEOUT)
        until it is gone.  Its pid; ClusterError if it is not running."""
        pid = self.pid(name)
        if pid is None:
            raise ClusterError(f"{name} is not running")
        os.kill(pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self._wait_gone({name: pid}, STOP_TIMEOUT)
        return pid

    def _gone(self, name: str, pid: int) -> bool:
        """Has ``pid`` finished exiting (a zombie or no process: its sockets are closed)?
        /proc decides, not Popen (whose poll() calls a process it cannot wait for dead);
        our own exited child is reaped on the way."""
        proc = self._procs.get(name)
        if proc is not None and proc.pid == pid:
            proc.poll()
        return process_state(pid) in (None, "Z", "X")

    def _wait_gone(self, pids: dict[str, int], timeout: float) -> list[str]:
        """Poll until every process of ``pids`` is gone or ``timeout`` passes; the names
        still running.  The pid files of the gone ones are removed."""
        until = time.monotonic() + timeout
        while (alive := [n for n, p in pids.items() if not self._gone(n, p)]) and (
            time.monotonic() < until
        ):
            time.sleep(0.05)
        for n in pids:
            if n not in alive:
                (self.dir / n / "replica.pid").unlink(missing_ok=True)
        return alive

    def down(self, progress: Progress = print) -> None:
        """Stop every replica: SIGTERM, up to STOP_TIMEOUT seconds, then SIGKILL."""
        if not self.exists:
            raise ClusterError(f"no cluster in {self.dir}: nothing to stop")
        self._stop(self.names, progress)

    def _stop(self, names: list[str], progress: Progress) -> None:
        running = {n: p for n in names if (p := self.pid(n)) is not None}
        for n, p in running.items():
            os.kill(p, signal.SIGTERM)
            progress(f"{n}: stopping (pid {p})")
        stubborn = {n: running[n] for n in self._wait_gone(running, STOP_TIMEOUT)}
        for n, p in stubborn.items():
            if self.pid(n) == p:
                os.kill(p, signal.SIGKILL)
                progress(f"{n}: did not stop within {STOP_TIMEOUT:.0f} s; killed (pid {p})")
        if left := self._wait_gone(stubborn, STOP_TIMEOUT):
            raise ClusterError(f"replicas {', '.join(left)} are still running after SIGKILL")
        for n in names:
            if self.pid(n) is None:
                (self.dir / n / "replica.pid").unlink(missing_ok=True)  # stale
        progress(f"stopped {len(running)} replica(s)" if running else "no replica was running")

    def status(self, timeout: float = 2.0) -> dict[str, dict[str, Any] | None]:
        """Every replica's /v1/status by name, asked concurrently; None if it did not answer."""
        ctx, members = client_context(self.client_tls), self.members
        with concurrent.futures.ThreadPoolExecutor(len(members)) as pool:
            got = pool.map(lambda m: status_sync(m.client, ctx, timeout), members)
            return {m.name: s for m, s in zip(members, got, strict=True)}

    def leader(self) -> str | None:
        """The name of the replica that says it leads (the highest term wins), or None."""
        leaders = [s for s in self.status().values() if s and s.get("is_leader")]
        return max(leaders, key=lambda s: s.get("term", 0))["name"] if leaders else None

    def client(self, **kwargs: Any) -> StoreClient:
        """A StoreClient for this cluster as store-client (create and use it in one loop)."""
        return StoreClient(self.client_urls, tls=self.client_tls, **kwargs)

    def add_member(self, progress: Progress = print) -> str:
        """Grow the running cluster by one replica: ports and certificates for it, the
        membership change through the leader, then its process.  Returns its name."""
        import asyncio

        layout = self._load()
        names = {m["name"] for m in layout["members"]}
        name = next(f"s{i}" for i in range(1, 100) if f"s{i}" not in names)
        client_port, raft_port = free_ports(self._host, 2)
        h = f"[{self._host}]" if ":" in self._host else self._host
        new = {"name": name, "client": f"https://{h}:{client_port}",
               "raft": f"{self._host}:{raft_port}"}
        init_cluster_certs(self.certs_dir, replicas=[*sorted(names), name])

        async def change() -> None:
            async with self.client() as c:
                await c.member_add(name, new["raft"], new["client"])

        asyncio.run(change())
        layout["members"].append(new)
        write_atomic(self.dir / "cluster.json", json.dumps(layout, indent=2) + "\n")
        progress(f"{name}: added to the Raft configuration (raft {new['raft']})")
        self.start(name, progress)
        return name

    def remove_member(self, name: str, progress: Progress = print) -> None:
        """Shrink the cluster: the leader removes ``name`` from the Raft configuration, then
        its process stops (its data directory stays).  The leader cannot remove itself."""
        import asyncio

        self._member(name)

        async def change() -> None:
            async with self.client() as c:
                await c.member_remove(name)

        asyncio.run(change())
        progress(f"{name}: removed from the Raft configuration")
        if self.pid(name) is not None:
            self._stop([name], progress)
        layout = self._load()
        layout["members"] = [m for m in layout["members"] if m["name"] != name]
        write_atomic(self.dir / "cluster.json", json.dumps(layout, indent=2) + "\n")

    def prepare(self, progress: Progress = _quiet) -> dict[str, Any]:
        """Create DIR and DIR/cluster.json (members and ports) if missing; start nothing."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.exists:
            self._create_layout()
            progress(f"created {self.dir / 'cluster.json'}")
        return self._load()

    def up(self, progress: Progress = print) -> None:
        """Make the cluster run: certificates, configs, every replica, then wait (UP_TIMEOUT)
        for a leader.  Idempotent: running replicas are left alone.  Raises ClusterError (and
        prints the tail of every log) when no leader is elected in time; CertsError from
        certs.layout when the certificates in DIR/certs are not usable."""
        layout = self.prepare(progress)
        if self._replicas is not None and self._replicas != len(layout["members"]):
            raise ClusterError(f"the cluster in {self.dir} has {len(layout['members'])} replicas, "
                               f"not {self._replicas}; use another --dir for a different size")
        if self._fsync is not None and self._fsync != self.fsync:
            layout["fsync"] = self._fsync
            write_atomic(self.dir / "cluster.json", json.dumps(layout, indent=2) + "\n")
            progress(f"fsync is now {'on' if self._fsync else 'off'} for replicas started from now")
        hosts = sorted({urlsplit(m.client).hostname or "" for m in self.members} - {*_LOOPBACK, ""})
        report = init_cluster_certs(self.certs_dir, replicas=self.names, hosts=hosts)
        progress(f"certificates: {len(report.created)} files created, {len(report.kept)} kept "
                 f"in {self.certs_dir}")
        started = [n for n in self.names if self.pid(n) is None]
        for name in self.names:
            self.start(name, progress)
        try:
            self._wait_for_leader(progress)
        except ClusterError:
            self._stop(started, progress)  # leave nothing half-up behind; logs stay
            raise

    def _wait_for_leader(self, progress: Progress) -> None:
        until = time.monotonic() + UP_TIMEOUT
        next_note = time.monotonic() + 2.0
        suspects: set[str] = set()
        while time.monotonic() < until:
            gone = {n for n in self.names if self.pid(n) is None}
            if dead := sorted(gone & suspects):  # gone twice in a row, 0.1 s apart
                notes = ", ".join(self._exit_note(n) for n in dead)
                self._fail(progress, f"replica(s) {notes} exited during start-up")
            suspects = gone
            if gone:  # look again before declaring anything
                time.sleep(0.1)
                continue
            statuses = self.status(timeout=1.0)
            leaders = [s for s in statuses.values() if s and s.get("is_leader")]
            if leaders:
                lead = max(leaders, key=lambda s: s.get("term", 0))
                progress(f"leader: {lead['name']} (term {lead.get('term')}); "
                         f"{sum(s is not None for s in statuses.values())}/{len(statuses)} "
                         "replicas answering")
                return
            if time.monotonic() >= next_note:
                next_note += 2.0
                progress("waiting for a leader: " + ", ".join(
                    f"{n} " + ("answering" if s else "not answering yet")
                    for n, s in statuses.items()))
            time.sleep(0.1)
        self._fail(progress, f"no leader was elected within {UP_TIMEOUT:.0f} s")

    def _fail(self, progress: Progress, what: str) -> None:
        for name in self.names:
            try:
                lines = self.log_path(name).read_text(errors="replace").splitlines()[-15:]
            except OSError:
                lines = ["(no log)"]
            progress(f"--- last lines of {self.log_path(name)}:")
            for line in lines:
                progress(f"    {line}")
        raise ClusterError(
            f"{what}; the replicas this command started were stopped. Read the logs above (in "
            f"full: {self.dir}/<name>/replica.log), fix the cause and run "
            f"`ketch store up --dir {self.dir}` again"
        )
