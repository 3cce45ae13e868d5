"""A whole local cluster in one directory: certificates, the three-replica store and the
apiserver(s), plus the admin kubeconfig.  ``ketch up|down|status`` drive it.

DIR holds the store's layout (:class:`store.launch.LocalCluster`) and::

    DIR/control.json              apiserver listen addresses (ports chosen once)
    DIR/apiserver-N/apiserver.log its output;  DIR/apiserver-N/apiserver.pid its pid
    DIR/admin.kubeconfig          kubectl's key to the cluster (system:masters)
    DIR/apiserver.url             the URL kubeconfigs point at

Processes are detached (their own session) and are only ever signalled by the pid in our pid
file, after /proc confirms they run our command; nothing is killed by name.
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
from pathlib import Path
from typing import Any

from certs.kubeconfig import write_kubeconfig
from certs.layout import admin_paths
from certs.tls import client_context
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

__all__ = ["Cluster", "ClusterError"]

_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0


class Cluster:
    """The cluster of ``dir``: ``apiservers`` apply when it is created (default 1)."""

    def __init__(self, dir: Path | str, *, apiservers: int | None = None,
                 port: int | None = None, python: str = sys.executable) -> None:
        self.dir = Path(dir).resolve()
        self.store = LocalCluster(self.dir, python=python)
        self._apiservers = apiservers
        self._port = port
        self._python = python

    # --- layout --------------------------------------------------------------------------

    def _layout(self) -> dict[str, Any]:
        path = self.dir / "control.json"
        if path.exists():
            return json.loads(path.read_text())
        n = self._apiservers or 1
        if self._port is not None:
            ports = [self._port + i for i in range(n)]
        else:
            ports = _preferred_ports(n)
        layout = {"apiservers": [{"name": f"apiserver-{i + 1}", "listen": f"127.0.0.1:{p}"}
                                 for i, p in enumerate(ports)]}
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(layout, indent=2) + "\n")
        return layout

    @property
    def apiservers(self) -> list[dict[str, str]]:
        return list(self._layout()["apiservers"])

    @property
    def url(self) -> str:
        return f"https://{self.apiservers[0]['listen']}"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    def _pidfile(self, name: str) -> Path:
        return self.dir / name / "apiserver.pid"

    def pid(self, name: str) -> int | None:
        try:
            pid = int(self._pidfile(name).read_text().strip())
        except (OSError, ValueError):
            return None
        argv = process_argv(pid)
        return pid if argv is not None and "control.apiserver" in argv and \
            str(self.store.certs_dir) in argv else None

    # --- lifecycle -----------------------------------------------------------------------

    def up(self, progress: Progress = print) -> None:
        """Store up (certificates, replicas, a leader), then every apiserver until it is
        ready, then the admin kubeconfig.  Idempotent."""
        store_was_up = self.store.exists and all(
            self.store.pid(n) is not None for n in self.store.names)
        self.store.up(progress)
        started = [a["name"] for a in self.apiservers if self.pid(a["name"]) is None]
        try:
            for a in self.apiservers:
                self.start_apiserver(a["name"], progress)
            for a in self.apiservers:
                self._wait_ready(a, progress)
        except BaseException:  # leave nothing half-up behind: stop what this call started
            progress(f"stopping what this command started; logs stay in {self.dir}")
            for name in started:
                self.stop_apiserver(name)
            if not store_was_up:
                self.store.down(progress)
            raise
        paths = admin_paths(self.store.certs_dir)
        write_kubeconfig(self.kubeconfig, server=self.url, ca=paths.ca, cert=paths.cert,
                         key=paths.key, user="admin")
        write_atomic(self.dir / "apiserver.url", self.url + "\n")
        progress(f"admin kubeconfig: {self.kubeconfig}")

    def start_apiserver(self, name: str, progress: Progress = print) -> int:
        entry = next(a for a in self.apiservers if a["name"] == name)
        if (pid := self.pid(name)) is not None:
            progress(f"{name}: already running (pid {pid})")
            return pid
        (self.dir / name).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        log = self.dir / name / "apiserver.log"
        with log.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                [self._python, "-m", "control.apiserver", "--certs", str(self.store.certs_dir),
                 "--store", ",".join(self.store.client_urls), "--listen", entry["listen"]],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.dir / name, env=env, start_new_session=True)
        write_atomic(self._pidfile(name), f"{proc.pid}\n")
        progress(f"{name}: started (pid {proc.pid}) on https://{entry['listen']}, log {log}")
        return proc.pid

    def _ready(self, listen: str, ctx: ssl.SSLContext) -> bool:
        try:
            with urllib.request.urlopen(f"https://{listen}/readyz", context=ctx,
                                        timeout=1.0) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def _wait_ready(self, entry: dict[str, str], progress: Progress) -> None:
        ctx = client_context(admin_paths(self.store.certs_dir))
        until = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < until:
            if self.pid(entry["name"]) is None:
                break
            if self._ready(entry["listen"], ctx):
                progress(f"{entry['name']}: ready")
                return
            time.sleep(0.1)
        log = self.dir / entry["name"] / "apiserver.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        for line in tail:
            progress(f"    {line}")
        raise ClusterError(f"{entry['name']} did not become ready (log: {log}); fix the cause "
                           f"and run `ketch up --dir {self.dir}` again")

    def stop_apiserver(self, name: str, sig: int = signal.SIGTERM) -> None:
        pid = self.pid(name)
        if pid is None:
            return
        os.kill(pid, sig)
        until = time.monotonic() + STOP_TIMEOUT
        while process_state(pid) not in (None, "Z", "X") and time.monotonic() < until:
            time.sleep(0.05)
        if process_state(pid) not in (None, "Z", "X") and self.pid(name) == pid:
            os.kill(pid, signal.SIGKILL)
        self._pidfile(name).unlink(missing_ok=True)

    def down(self, progress: Progress = print) -> None:
        if not (self.dir / "control.json").exists() and not self.store.exists:
            raise ClusterError(f"no cluster in {self.dir}: nothing to stop")
        if (self.dir / "control.json").exists():
            for a in self.apiservers:
                if self.pid(a["name"]) is not None:
                    progress(f"{a['name']}: stopping")
                self.stop_apiserver(a["name"])
        if self.store.exists:
            self.store.down(progress)

    def status(self) -> dict[str, Any]:
        ctx = client_context(admin_paths(self.store.certs_dir))
        apis = {a["name"]: {"listen": a["listen"], "pid": self.pid(a["name"]),
                            "ready": self._ready(a["listen"], ctx)} for a in self.apiservers}
        return {"apiservers": apis, "store": self.store.status()}


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
