"""Per-container cgroups, when the host lets the agent have them (root, a writable hierarchy):
memory and CPU limits, accounting, OOM detection and killing everything a container left.

cgroup v1 (one hierarchy per controller: memory, cpu, cpuacct) and v2 (unified) are both
handled.  Each container's cgroup is ``<the agent's own cgroup>/ketch/<pod uid>/<container id>``
in every hierarchy used; a process joins by writing its pid to each ``cgroup.procs`` (the shim
does so in the container's process before ``exec``).  Where cgroups are unavailable
:func:`detect` returns None and the runtime falls back to ``RLIMIT_*`` (no CPU limit then).

Blocking file I/O: callers run these in worker threads.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass

from .api import Resources

__all__ = ["CPU_PERIOD_US", "CgroupManager", "detect"]

CPU_PERIOD_US = 100_000
_V1_CONTROLLERS = ("memory", "cpu", "cpuacct")


@dataclass(frozen=True)
class _Hierarchy:
    controller: str  # "memory", "cpu", "cpuacct", or "unified"
    base: str  # the agent's own cgroup directory in this hierarchy, plus "/ketch"


def detect(root_name: str = "ketch") -> CgroupManager | None:
    """A manager if this process may create cgroups, else None."""
    if os.geteuid() != 0:
        return None
    mounts = _mounts()
    own = _own_paths()
    hierarchies = []
    if "unified" in mounts and not any(c in mounts for c in _V1_CONTROLLERS):
        base = os.path.join(mounts["unified"], own.get("", "/").lstrip("/"), root_name)
        hierarchies.append(_Hierarchy("unified", base))
    else:
        for c in _V1_CONTROLLERS:
            if c in mounts:
                hierarchies.append(_Hierarchy(c, os.path.join(
                    mounts[c], own.get(c, "/").lstrip("/"), root_name)))
    manager = CgroupManager(tuple(hierarchies))
    return manager if hierarchies and manager.usable() else None


class CgroupManager:
    def __init__(self, hierarchies: tuple[_Hierarchy, ...]) -> None:
        self.hierarchies = hierarchies

    @property
    def version(self) -> int:
        return 2 if any(h.controller == "unified" for h in self.hierarchies) else 1

    def usable(self) -> bool:
        try:
            for h in self.hierarchies:
                os.makedirs(h.base, exist_ok=True)
            if self.version == 2:
                _enable_v2_controllers(self.hierarchies[0].base)
            return True
        except OSError:
            return False

    def create(self, key: str, resources: Resources) -> list[str]:
        """Create the cgroup ``key`` (``<pod uid>/<container id>``) with ``resources``' limits;
        returns the ``cgroup.procs`` files a process writes its pid to, to join it."""
        procs = []
        for h in self.hierarchies:
            path = os.path.join(h.base, key)
            os.makedirs(path, exist_ok=True)
            self._limit(h.controller, path, resources)
            procs.append(os.path.join(path, "cgroup.procs"))
        return procs

    def _limit(self, controller: str, path: str, r: Resources) -> None:
        mem, cpu = r.memory_limit_bytes, r.cpu_limit_millis
        if controller == "unified":
            if mem is not None:
                _write(path, "memory.max", str(mem))
                _write(path, "memory.swap.max", "0", required=False)
            if cpu is not None:
                _write(path, "cpu.max", f"{max(cpu * CPU_PERIOD_US // 1000, 1000)} {CPU_PERIOD_US}")
        elif controller == "memory" and mem is not None:
            _write(path, "memory.limit_in_bytes", str(mem))
        elif controller == "cpu" and cpu is not None:
            _write(path, "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(path, "cpu.cfs_quota_us", str(max(cpu * CPU_PERIOD_US // 1000, 1000)))

    def pids(self, key: str) -> set[int]:
        out: set[int] = set()
        for h in self.hierarchies:
            with contextlib.suppress(OSError), \
                    open(os.path.join(h.base, key, "cgroup.procs")) as f:
                out.update(int(x) for x in f.read().split())
        return out

    def kill(self, key: str) -> None:
        """SIGKILL every process in the cgroup."""
        for h in self.hierarchies:
            if h.controller == "unified" and os.path.exists(os.path.join(h.base, key,
                                                                          "cgroup.kill")):
                with contextlib.suppress(OSError):
                    _write(os.path.join(h.base, key), "cgroup.kill", "1")
                    return
        for pid in self.pids(key):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def usage(self, key: str) -> tuple[int, int] | None:
        """(cumulative CPU ns, memory working set bytes), or None if not accounted."""
        cpu_ns = mem = None
        for h in self.hierarchies:
            path = os.path.join(h.base, key)
            try:
                if h.controller == "unified":
                    cpu_ns = _stat(path, "cpu.stat").get("usage_usec", 0) * 1000
                    mem = _working_set(_read_int(path, "memory.current"),
                                       _stat(path, "memory.stat").get("inactive_file", 0))
                elif h.controller == "cpuacct":
                    cpu_ns = _read_int(path, "cpuacct.usage")
                elif h.controller == "memory":
                    mem = _working_set(_read_int(path, "memory.usage_in_bytes"),
                                       _stat(path, "memory.stat").get("total_inactive_file", 0))
            except OSError:
                continue
        return None if cpu_ns is None and mem is None else (cpu_ns or 0, mem or 0)

    def oom_killed(self, key: str) -> bool:
        for h in self.hierarchies:
            name = {"unified": "memory.events", "memory": "memory.oom_control"}.get(h.controller)
            if name:
                with contextlib.suppress(OSError):
                    if _stat(os.path.join(h.base, key), name).get("oom_kill", 0) > 0:
                        return True
        return False

    def remove(self, key: str) -> None:
        """Remove the cgroup (and its pod's, once empty); a cgroup still holding processes
        stays."""
        for h in self.hierarchies:
            path = os.path.join(h.base, key)
            with contextlib.suppress(OSError):
                os.rmdir(path)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))


def _mounts() -> dict[str, str]:
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = (right.split() + ["", "", ""])[:3]
            mountpoint = left.split()[4]
            if fstype == "cgroup2":
                out.setdefault("unified", mountpoint)
            elif fstype == "cgroup":
                for c in opts.split(","):
                    if c in _V1_CONTROLLERS:
                        out.setdefault(c, mountpoint)
    return out


def _own_paths() -> dict[str, str]:
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    return out


def _enable_v2_controllers(base: str) -> None:
    with contextlib.suppress(OSError):
        _write(base, "cgroup.subtree_control", "+memory +cpu")


def _write(path: str, name: str, value: str, *, required: bool = True) -> None:
    try:
        with open(os.path.join(path, name), "w") as f:
            f.write(value)
    except OSError:
        if required:
            raise


def _read_int(path: str, name: str) -> int:
    with open(os.path.join(path, name)) as f:
        return int(f.read().split()[0])


def _stat(path: str, name: str) -> dict[str, int]:
    out = {}
    with open(os.path.join(path, name)) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                out[parts[0]] = int(parts[1])
    return out


def _working_set(usage: int, inactive_file: int) -> int:
    return max(usage - inactive_file, 0)
