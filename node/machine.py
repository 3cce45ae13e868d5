"""What the machine under the agent is: its CPUs, memory, disk and identity (for the Node's
capacity and ``nodeInfo``), and how much of each is free now (for the pressure conditions).

Readings come from ``/proc``, ``/etc`` and ``statvfs``: kernel interfaces and small files,
cheap enough to read on the event loop every 10 s.  :class:`Readings` is a value so the
condition logic (:mod:`node.conditions`) stays pure and tests can feed it any numbers.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MachineFacts", "Readings", "machine_facts", "read_pressure"]

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True)
class MachineFacts:
    """Totals and identity: ``memory_bytes`` MemTotal, ``disk_bytes`` the size of the
    filesystem holding the agent's directory."""

    cpus: int
    memory_bytes: int
    disk_bytes: int
    machine_id: str
    system_uuid: str
    boot_id: str
    kernel_version: str
    os_image: str
    architecture: str
    operating_system: str = "linux"


@dataclass(frozen=True)
class Readings:
    """Free resources now; ``None`` when unknown (a condition then stays as it was)."""

    memory_available_bytes: int | None = None
    disk_available_bytes: int | None = None
    disk_total_bytes: int | None = None
    pids_in_use: int | None = None
    pid_max: int | None = None


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"')
    return platform.system()


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - Linux has sched_getaffinity


def machine_facts(directory: str) -> MachineFacts:
    """The machine as the Node reports it (the directory must exist)."""
    st = os.statvfs(directory)
    machine_id = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    return MachineFacts(
        cpus=_cpus(), memory_bytes=_meminfo().get("MemTotal", 0),
        disk_bytes=st.f_blocks * st.f_frsize, machine_id=machine_id,
        system_uuid=_read("/sys/class/dmi/id/product_uuid") or machine_id,
        boot_id=_read("/proc/sys/kernel/random/boot_id"), kernel_version=platform.release(),
        os_image=_os_image(), architecture=_ARCH.get(platform.machine(), platform.machine()))


def read_pressure(directory: str) -> Readings:
    """What is free now: MemAvailable, the agent filesystem's free space, the processes
    running against ``kernel.pid_max``."""
    mem = _meminfo().get("MemAvailable")
    try:
        st = os.statvfs(directory)
        disk_free, disk_total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    except OSError:
        disk_free = disk_total = None  # type: ignore[assignment]
    pid_max = _read("/proc/sys/kernel/pid_max")
    loadavg = _read("/proc/loadavg").split()
    running = None
    if len(loadavg) >= 4 and "/" in loadavg[3]:
        running = int(loadavg[3].partition("/")[2])  # "runnable/total" scheduling entities
    return Readings(memory_available_bytes=mem, disk_available_bytes=disk_free,
                    disk_total_bytes=disk_total, pids_in_use=running,
                    pid_max=int(pid_max) if pid_max.isdigit() else None)
