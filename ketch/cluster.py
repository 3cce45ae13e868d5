"""A whole local cluster in one directory: certificates, the three-replica store, apiserver(s),
controller-manager(s), scheduler(s) and node agents, plus the admin kubeconfig.
``ketch up|down|status`` drive it.

DIR holds the store's layout (:class:`store.launch.LocalCluster`) and::

    DIR/control.json                 the components and their listen addresses (chosen once)
    DIR/<name>/<kind>.log, .pid      each component's output and process id
    DIR/<kind>.kubeconfig            each component's identity (controller-manager, scheduler)
    DIR/node-N/kubeconfig, runtime/  each node agent's identity and its pods' state
                                     (addresses and pod CIDRs: :mod:`ketch.cluster_nodes`)
    DIR/admin.kubeconfig             kubectl's key to the cluster (system:masters)
    DIR/apiserver.url                the URL kubeconfigs point at

Processes are detached (their own session) and are only ever signalled by the pid in our pid
file, after /proc confirms they run our command for this cluster; nothing is killed by name.
``up`` is idempotent: run again, it starts whatever is missing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certs.kubeconfig import write_kubeconfig
from certs.layout import (
    admin_paths,
    component_serving_paths,
    controller_manager_paths,
    init_cluster_certs,
    scheduler_paths,
)
from certs.tls import client_context
from control.apiserver.allocation import kubernetes_service_ip
from ketch.cluster_nodes import (
    NODE_STOP_TIMEOUT,
    cluster_cidr,
    node_argv,
    node_layout,
    node_states,
    prepare_nodes,
    service_cidr,
)
from store.launch import (
    STOP_TIMEOUT,
    ClusterError,
    LocalCluster,
    Progress,
    free_ports,
    process_argv,
    process_state,
    write_atomic,
)

__all__ = ["KINDS", "Cluster", "ClusterError", "Component"]

_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Kind:
    """One kind of component: its layout key in control.json, the module it runs and whether
    its identity has a kubeconfig of its own."""

    name: str
    key: str
    module: str


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("apiserver", "apiservers", "control.apiserver"),
    Kind("controller-manager", "controller_managers", "control.controllers"),
    Kind("scheduler", "schedulers", "control.scheduler"),
    Kind("node", "nodes", "node"),
)}
_START_ORDER = ("apiserver", "controller-manager", "scheduler", "node")
_DEFAULT_COUNTS = {"apiserver": 1, "controller-manager": 1, "scheduler": 1, "node": 2}
_STOP_TIMEOUTS = {"node": NODE_STOP_TIMEOUT}  # an agent first stops its pods gracefully


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    listen: str

    @property
    def url(self) -> str:
        return f"https://{self.listen}"


class Cluster:
    """The cluster of ``dir``.  ``apiservers``, ``controller_managers`` and ``schedulers``
    apply when the cluster is created (defaults 1, 1, 1); an existing cluster keeps its own."""

    def __init__(self, dir: Path | str, *, apiservers: int | None = None,
                 controller_managers: int | None = None, schedulers: int | None = None,
                 nodes: int | None = None, port: int | None = None,
                 controllers: str | None = None, cluster_cidr: str | None = None,
                 python: str = sys.executable) -> None:
        self.dir = Path(dir).resolve()
        self.store = LocalCluster(self.dir, python=python)
        self._counts = {"apiserver": apiservers, "controller-manager": controller_managers,
                        "scheduler": schedulers, "node": nodes}
        self._port = port
        self._controllers = controllers  # the controller-manager's --controllers (default *)
        self._cluster_cidr = cluster_cidr  # its --cluster-cidr (default: this cluster's /18)
        self._python = python

    # --- layout --------------------------------------------------------------------------

    def _layout(self) -> dict[str, Any]:
        path = self.dir / "control.json"
        layout: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        changed = not path.exists()
        for kind in _START_ORDER:
            key = KINDS[kind].key
            if key in layout:
                continue
            n = self._counts[kind]
            n = _DEFAULT_COUNTS[kind] if n is None else n
            if kind == "node":
                layout[key] = node_layout(self.dir, n)
                changed = True
                continue
            if kind == "apiserver":
                if self._port == 0:  # any free ports (tests: never compete for 6443)
                    ports = free_ports("127.0.0.1", n)
                elif self._port is not None:
                    ports = [self._port + i for i in range(n)]
                else:
                    ports = _preferred_ports(n)
            else:
                ports = free_ports("127.0.0.1", n) if n else []
            layout[key] = [{"name": f"{kind}-{i + 1}", "listen": f"127.0.0.1:{p}"}
                           for i, p in enumerate(ports)]
            changed = True
        if "controllers" not in layout:
            layout["controllers"] = self._controllers or "*"
            changed = True
        if "service_cidr" not in layout:
            layout["service_cidr"] = service_cidr(self.dir)
            changed = True
        if "cluster_cidr" not in layout:
            layout["cluster_cidr"] = self._cluster_cidr or cluster_cidr(self.dir)
            changed = True
        if changed:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(layout, indent=2) + "\n")
        return layout

    def components(self, kind: str | None = None) -> list[Component]:
        layout = self._layout()
        kinds = [kind] if kind else list(_START_ORDER)
        return [Component(k, e["name"], e["listen"]) for k in kinds
                for e in layout.get(KINDS[k].key, [])]

    def component(self, name: str) -> Component:
        for c in self.components():
            if c.name == name:
                return c
        raise ClusterError(f"no component {name!r} in {self.dir}")

    @property
    def apiservers(self) -> list[dict[str, str]]:
        return [{"name": c.name, "listen": c.listen} for c in self.components("apiserver")]

    @property
    def urls(self) -> list[str]:
        return [c.url for c in self.components("apiserver")]

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    def component_kubeconfig(self, kind: str) -> Path:
        return self.dir / f"{kind}.kubeconfig"

    def _pidfile(self, c: Component) -> Path:
        return self.dir / c.name / f"{c.kind}.pid"

    def log_path(self, name: str) -> Path:
        c = self.component(name)
        return self.dir / c.name / f"{c.kind}.log"

    def pid(self, name: str) -> int | None:
        """The pid of component ``name`` if it is running our command for this cluster."""
        c = self.component(name)
        try:
            pid = int(self._pidfile(c).read_text().strip())
        except (OSError, ValueError):
            return None
        argv = process_argv(pid)
        ours = argv is not None and KINDS[c.kind].module in argv and any(
            str(self.dir) in a for a in argv)
        return pid if ours and process_state(pid) not in (None, "Z", "X") else None

    # --- processes -----------------------------------------------------------------------

    def argv(self, c: Component) -> list[str]:
        certs = self.store.certs_dir
        base = [self._python, "-m", KINDS[c.kind].module]
        if c.kind == "apiserver":
            return [*base, "--certs", str(certs), "--store", ",".join(self.store.client_urls),
                    "--listen", c.listen, "--service-cluster-ip-range",
                    self._layout()["service_cidr"]]
        if c.kind == "node":
            return node_argv(self, c, self._python)
        if c.kind == "controller-manager":
            layout = self._layout()
            base += ["--cluster-cidr", layout.get("cluster_cidr") or cluster_cidr(self.dir),
                     "--controllers", layout.get("controllers", "*")]
        serving = component_serving_paths(certs, c.kind)
        others = [a for u in self.urls[1:] for a in ("--server", u)]
        return [*base, "--kubeconfig", str(self.component_kubeconfig(c.kind)), *others,
                "--listen", c.listen, "--serving-cert", str(serving.cert),
                "--serving-key", str(serving.key), "--ca", str(serving.ca)]

    def start(self, name: str, progress: Progress = print) -> int:
        c = self.component(name)
        if (pid := self.pid(name)) is not None:
            progress(f"{name}: already running (pid {pid})")
            return pid
        (self.dir / c.name).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        log = self.dir / c.name / f"{c.kind}.log"
        with log.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
            out.flush()
            proc = subprocess.Popen(self.argv(c), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=self.dir / c.name, env=env,
                                    start_new_session=True)
        write_atomic(self._pidfile(c), f"{proc.pid}\n")
        progress(f"{name}: started (pid {proc.pid}) on {c.url}, log {log}")
        return proc.pid

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Signal ``name`` (SIGTERM: wait, then SIGKILL if it lingers; others: just send)."""
        c = self.component(name)
        pid = self.pid(name)
        if pid is None:
            return
        os.kill(pid, sig)
        if sig != signal.SIGTERM:
            if sig == signal.SIGKILL:
                self._wait_gone(pid, STOP_TIMEOUT)
                self._pidfile(c).unlink(missing_ok=True)
            return
        if not self._wait_gone(pid, _STOP_TIMEOUTS.get(c.kind, STOP_TIMEOUT)) \
                and self.pid(name) == pid:
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, STOP_TIMEOUT)
        self._pidfile(c).unlink(missing_ok=True)

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        until = time.monotonic() + timeout
        while process_state(pid) not in (None, "Z", "X"):
            if time.monotonic() > until:
                return False
            time.sleep(0.05)
        return True

    # compatibility with callers that only knew apiservers
    def start_apiserver(self, name: str, progress: Progress = print) -> int:
        return self.start(name, progress)

    def stop_apiserver(self, name: str, sig: int = signal.SIGTERM) -> None:
        self.stop(name, sig)

    # --- readiness -------------------------------------------------------------------------

    def _ctx(self) -> ssl.SSLContext:
        return client_context(admin_paths(self.store.certs_dir))

    @staticmethod
    def _get(url: str, ctx: ssl.SSLContext, timeout: float = 1.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=timeout) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()
        except OSError:
            return 0, b""

    def ready(self, name: str, ctx: ssl.SSLContext | None = None) -> bool:
        c = self.component(name)
        return self._get(f"{c.url}/readyz", ctx or self._ctx())[0] == 200

    def leading(self, name: str, ctx: ssl.SSLContext | None = None) -> bool:
        """Whether a leader-elected component currently leads (its /leader answer)."""
        c = self.component(name)
        code, body = self._get(f"{c.url}/leader", ctx or self._ctx())
        try:
            return code == 200 and bool(json.loads(body).get("leader"))
        except ValueError:
            return False

    def wait_ready(self, name: str, progress: Progress = print,
                   timeout: float = READY_TIMEOUT) -> None:
        ctx = self._ctx()
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.pid(name) is None:
                break
            if self.ready(name, ctx):
                progress(f"{name}: ready")
                return
            time.sleep(0.1)
        log = self.log_path(name)
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        for line in tail:
            progress(f"    {line}")
        raise ClusterError(f"{name} did not become ready (log: {log}); fix the cause "
                           f"and run `ketch up --dir {self.dir}` again")

    # --- lifecycle -----------------------------------------------------------------------

    def _write_kubeconfigs(self) -> None:
        certs = self.store.certs_dir
        for kind, paths, user in (("controller-manager", controller_manager_paths(certs),
                                   "system:kube-controller-manager"),
                                  ("scheduler", scheduler_paths(certs),
                                   "system:kube-scheduler")):
            write_kubeconfig(self.component_kubeconfig(kind), server=self.url, ca=paths.ca,
                             cert=paths.cert, key=paths.key, user=user)
        paths = admin_paths(certs)
        write_kubeconfig(self.kubeconfig, server=self.url, ca=paths.ca, cert=paths.cert,
                         key=paths.key, user="admin")
        write_atomic(self.dir / "apiserver.url", self.url + "\n")
        prepare_nodes(self)

    def up(self, progress: Progress = print) -> None:
        """Store up (certificates, replicas, a leader), then each component kind in order,
        each ready before the next; then the admin kubeconfig.  Idempotent: only what is not
        running is started.  On failure, what this call started is stopped again."""
        store_was_up = self.store.exists and all(
            self.store.pid(n) is not None for n in self.store.names)
        layout = self._layout()
        # the apiserver's certificate must also name this cluster's kubernetes Service IP
        self.store.prepare(progress)
        init_cluster_certs(self.store.certs_dir, replicas=self.store.names,
                           hosts=[kubernetes_service_ip(layout["service_cidr"])])
        self.store.up(progress)
        self._write_kubeconfigs()
        started: list[str] = []
        try:
            for kind in _START_ORDER:
                batch = [c.name for c in self.components(kind) if self.pid(c.name) is None]
                for name in batch:
                    self.start(name, progress)
                    started.append(name)
                for c in self.components(kind):
                    self.wait_ready(c.name, progress)
        except BaseException:  # leave nothing half-up behind: stop what this call started
            progress(f"stopping what this command started; logs stay in {self.dir}")
            for name in reversed(started):
                self.stop(name)
            if not store_was_up:
                self.store.down(progress)
            raise
        progress(f"admin kubeconfig: {self.kubeconfig}")

    def down(self, progress: Progress = print) -> None:
        if not (self.dir / "control.json").exists() and not self.store.exists:
            raise ClusterError(f"no cluster in {self.dir}: nothing to stop")
        if (self.dir / "control.json").exists():
            for c in self.components("node"):  # all at once: each stops its pods first
                if (pid := self.pid(c.name)) is not None:
                    progress(f"{c.name}: stopping its pods, then itself")
                    os.kill(pid, signal.SIGTERM)
            for kind in reversed(_START_ORDER):
                for c in self.components(kind):
                    if self.pid(c.name) is not None:
                        progress(f"{c.name}: stopping")
                    self.stop(c.name)
        if self.store.exists:
            self.store.down(progress)

    def status(self) -> dict[str, Any]:
        ctx = self._ctx()
        out: dict[str, Any] = {}
        for kind in _START_ORDER:
            entries = {}
            for c in self.components(kind):
                pid = self.pid(c.name)
                entry: dict[str, Any] = {"listen": c.listen, "pid": pid,
                                         "ready": pid is not None and self.ready(c.name, ctx)}
                if kind not in ("apiserver", "node"):
                    entry["leader"] = pid is not None and self.leading(c.name, ctx)
                entries[c.name] = entry
            out[KINDS[kind].key] = entries
        for name, state in node_states(self, ctx).items():
            if name in out["nodes"]:
                out["nodes"][name].update(state)
        out["store"] = self.store.status()
        return out

    def wait(self, check: Callable[[], bool], timeout: float = 30.0) -> bool:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if check():
                return True
            time.sleep(0.1)
        return False


def _preferred_ports(n: int) -> list[int]:
    """6443, 6444, … when free (what kubeconfigs usually say), else any free ports."""
    wanted = [6443 + i for i in range(n)]
    for p in wanted:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return free_ports("127.0.0.1", n)
    return wanted
