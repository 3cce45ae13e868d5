"""Resource usage of containers and of the node, measured from the cgroup when the container
has one, else from ``/proc`` (the sum over the container's processes), for the agent's metrics
(``kubectl top``, metrics.k8s.io).

CPU is cumulative nanoseconds; :func:`cpu_nano_cores` turns two samples into a rate, as the
metrics pipeline does.  Memory is the working set: RSS from ``/proc``, or the cgroup's usage
minus inactive file cache (cAdvisor's definition).  Blocking reads: run in a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from control.api.clock import Clock

from . import procfs
from .api import ContainerStats

if TYPE_CHECKING:
    from .cgroups import CgroupManager
    from .process_state import ContainerRecord

__all__ = ["NodeStats", "container_stats", "cpu_nano_cores", "host_cpus", "node_stats"]

_NS_PER_TICK = 1_000_000_000 // procfs.CLOCK_TICKS


def container_stats(rec: ContainerRecord, cgroups: CgroupManager | None,
                    clock: Clock) -> ContainerStats | None:
    """A sample of ``rec``'s processes: the cgroup's accounting, or ``/proc`` over the
    container's process tree (everything below its shim, or below its own process when it
    runs without one)."""
    now, mono = clock.now(), clock.monotonic()
    if rec.cgroup and cgroups is not None:
        usage = cgroups.usage(rec.cgroup)
        if usage is not None:
            return ContainerStats(rec.id, now, mono, usage[0], usage[1], usage[1])
    table = procfs.process_table()
    if rec.shim_pid and procfs.is_same_process(rec.shim_pid, rec.shim_start):
        pids = procfs.subtree(table, [rec.shim_pid]) - {rec.shim_pid}
    elif rec.pid and procfs.is_same_process(rec.pid, rec.pid_start):
        pids = procfs.subtree(table, [rec.pid])
    else:
        return None
    cpu = sum(table[p].cpu_ticks for p in pids) * _NS_PER_TICK
    rss = sum(table[p].rss_pages for p in pids) * procfs.PAGE_SIZE
    return ContainerStats(rec.id, now, mono, cpu, rss, rss)


def cpu_nano_cores(before: ContainerStats, after: ContainerStats) -> int:
    """CPU use between two samples, in billionths of a core (never negative: a process that
    exited takes its CPU time with it)."""
    elapsed = after.monotonic - before.monotonic
    if elapsed <= 0:
        return 0
    return max(int((after.cpu_usage_ns - before.cpu_usage_ns) / elapsed), 0)


@dataclass(frozen=True)
class NodeStats:
    cpu_usage_ns: int  # cumulative, all CPUs, since boot
    memory_total_bytes: int
    memory_working_set_bytes: int  # total - available


def node_stats() -> NodeStats:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    busy = sum(int(x) for i, x in enumerate(fields[:8]) if i not in (3, 4))  # not idle/iowait
    mem: dict[str, int] = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            mem[key] = int(rest.split()[0]) * 1024
    total = mem.get("MemTotal", 0)
    return NodeStats(busy * _NS_PER_TICK, total, total - mem.get("MemAvailable", total))


def host_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1
