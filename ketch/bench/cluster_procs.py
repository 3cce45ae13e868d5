"""The processes of `ketch bench cluster`: the control plane (a :class:`~ketch.cluster.Cluster`
without node agents), the hollow-node processes (``python -m node --hollow``), and what each of
them costs (CPU and RSS from /proc), watched for crashes.

Every process is started by this one and stopped by pid, never by name: the hollow processes
are our children (SIGTERM, then SIGKILL after a grace), the control plane goes down through
``Cluster.down``.  :meth:`Fleet.down` is safe to call at any point of :meth:`Fleet.up` and more
than once, so Ctrl-C or a crash anywhere leaves nothing running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ketch.bench.machine import process_ticks
from ketch.cluster import Cluster, ClusterError
from store.launch import process_state

__all__ = ["Component", "Fleet", "Sampler", "Usage", "read_rss"]

Progress = Callable[[str], None]
_ROOT = Path(__file__).resolve().parent.parent.parent
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_HOLLOW_STOP = 30.0


@dataclass(frozen=True)
class Component:
    """One process: ``kind`` apiserver, store, controller-manager, scheduler, hollow, bench."""

    name: str
    kind: str
    pid: int
    log: Path | None = None


def read_rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes; (0, 0) if it is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def _alive(pid: int) -> bool:
    return process_state(pid) not in (None, "Z", "X")


class Fleet:
    """The whole benchmark cluster under ``root``: store ×3, apiserver, controller-manager,
    scheduler (one each), and ``nodes`` hollow nodes in processes of ``per_process``."""

    def __init__(self, root: Path, *, nodes: int, per_process: int,
                 hollow_args: Iterable[str] = (), python: str = sys.executable) -> None:
        self.root = root
        self.nodes = nodes
        self.per_process = per_process
        self.hollow_args = list(hollow_args)
        self.python = python
        self.cluster = Cluster(root / "cluster", apiservers=1, controller_managers=1,
                               schedulers=1, nodes=0, cluster_cidr="10.0.0.0/8",
                               python=python)
        self.hollow: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    # --- lifecycle -------------------------------------------------------------------------

    def up_control_plane(self, progress: Progress) -> None:
        self.cluster.up(progress=progress)

    def start_hollow(self, progress: Progress) -> None:
        """Start the hollow-node processes (they register their nodes on their own)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        base = self.root / "hollow"
        base.mkdir(parents=True, exist_ok=True)
        for k, first in enumerate(range(1, self.nodes + 1, self.per_process)):
            count = min(self.per_process, self.nodes - first + 1)
            name = f"hollow-{k + 1}"
            log = base / f"{name}.log"
            argv = [self.python, "-m", "node", "--hollow", "--count", str(count),
                    "--first", str(first), "--kubeconfig", str(self.cluster.kubeconfig),
                    "--certs", str(self.cluster.store.certs_dir), "--name", "hollow-node",
                    "--dir", str(base), "--log-level", "WARNING", *self.hollow_args]
            with log.open("ab") as out:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, env=env, cwd=base,
                                        start_new_session=True)
            self.hollow.append((name, proc, log))
            progress(f"{name}: nodes {first}..{first + count - 1} (pid {proc.pid}, log {log})")

    def down(self, progress: Progress) -> None:
        """Stop everything this fleet started (idempotent)."""
        for _, proc, _ in self.hollow:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        until = time.monotonic() + _HOLLOW_STOP
        for name, proc, _ in self.hollow:
            try:
                proc.wait(timeout=max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                progress(f"{name}: did not stop in {_HOLLOW_STOP:.0f}s; killing it")
                proc.kill()
                proc.wait()
        if (self.cluster.dir / "control.json").exists() or self.cluster.store.exists:
            try:
                self.cluster.down(progress=progress)
            except ClusterError as e:
                progress(f"stopping the control plane: {e}")

    # --- what runs -------------------------------------------------------------------------

    def components(self) -> list[Component]:
        """Every process of the fleet that has a pid now (and this benchmark process)."""
        out = []
        c = self.cluster
        for name in c.store.names:
            if (pid := c.store.pid(name)) is not None:
                out.append(Component(f"store-{name}", "store", pid, c.store.log_path(name)))
        for comp in c.components():
            if (pid := c.pid(comp.name)) is not None:
                out.append(Component(comp.name, comp.kind, pid, c.log_path(comp.name)))
        for name, proc, log in self.hollow:
            out.append(Component(name, "hollow", proc.pid, log))
        out.append(Component("bench", "bench", os.getpid()))
        return out

    def exit_of(self, comp: Component) -> str:
        """How a dead component ended, as far as we can tell."""
        for name, proc, _ in self.hollow:
            if name == comp.name and proc.poll() is not None:
                code = proc.returncode
                return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
        return "process gone"


def log_tail(path: Path | None, lines: int = 8) -> list[str]:
    if path is None or not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 16384))
        return f.read().decode(errors="replace").splitlines()[-lines:]


@dataclass
class Usage:
    """One component over one phase: CPU seconds, peak RSS seen (bytes) and RSS at the end."""

    cpu_s: float = 0.0
    rss_peak: int = 0
    rss_end: int = 0


@dataclass
class Sampler:
    """Samples every component's CPU ticks and RSS (call :meth:`sample` about once a second);
    per-phase usage with :meth:`begin` / :meth:`end`; notes components that died."""

    components: Callable[[], list[Component]]
    ticks: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    dead: dict[str, Component] = field(default_factory=dict)
    known: dict[str, Component] = field(default_factory=dict)
    _phase_ticks: dict[str, int] = field(default_factory=dict)
    _phase_peak: dict[str, int] = field(default_factory=dict)

    def sample(self) -> list[Component]:
        """Read /proc for each component; the ones found dead since the last call."""
        died = []
        for comp in self.components():
            self.known[comp.name] = comp
        for name, comp in self.known.items():
            if name in self.dead:
                continue
            if not _alive(comp.pid):
                self.dead[name] = comp
                died.append(comp)
                continue
            t = process_ticks(comp.pid)
            if t:
                self.ticks[name] = t
            rss, hwm = read_rss(comp.pid)
            self.peak[name] = max(self.peak.get(name, 0), rss, hwm)
            self._phase_peak[name] = max(self._phase_peak.get(name, 0), rss)
        return died

    def begin(self) -> None:
        self.sample()
        self._phase_ticks = dict(self.ticks)
        self._phase_peak = {}

    def end(self) -> dict[str, Usage]:
        self.sample()
        out = {}
        for name in self.known:
            used = (self.ticks.get(name, 0) - self._phase_ticks.get(name, 0)) / _HZ
            rss = read_rss(self.known[name].pid)[0] if name not in self.dead else 0
            out[name] = Usage(cpu_s=used, rss_peak=self._phase_peak.get(name, 0), rss_end=rss)
        return out
