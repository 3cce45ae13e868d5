"""Readings from ``/proc`` for a handler's :meth:`~node.streaming.StreamHandler.stats`: the
machine's CPU time and memory in use (what kubelet reports for the node, its root cgroup), and
the CPU time and resident memory of a set of processes (a container of the process runtime is
its process group).

Cumulative CPU is in core-nanoseconds, memory in bytes, as :class:`Usage` wants them.  A process
that has gone between listing and reading simply counts for nothing.  ``/proc`` is a kernel
interface, not a disk: reading it on the event loop is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from control.api.streamproto.summary import Usage

__all__ = ["host_usage", "process_usage"]

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def host_usage(proc: Path = Path("/proc")) -> Usage:
    """All CPUs' busy time (user, nice, system, irq, softirq, steal; not idle or iowait) and
    memory in use (MemTotal - MemAvailable: the working set, as the root cgroup counts it)."""
    fields = (proc / "stat").read_text().splitlines()[0].split()
    if fields[0] != "cpu":
        raise ValueError(f"{proc / 'stat'} does not start with the cpu total line")
    ticks = [int(v) for v in fields[1:9]] + [0] * 8
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    meminfo = {}
    for line in (proc / "meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        meminfo[key] = int(rest.split()[0]) * 1024 if rest.split() else 0
    used = meminfo.get("MemTotal", 0) - meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    return Usage(busy * _TICK_NS, max(0, used))


def process_usage(pids: Iterable[int], proc: Path = Path("/proc")) -> Usage:
    """The processes' CPU time (user + system) and resident memory, summed."""
    cpu = memory = 0
    for pid in pids:
        try:
            stat = (proc / str(pid) / "stat").read_text()
            statm = (proc / str(pid) / "statm").read_text().split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        # the command name is in parentheses and may hold spaces: split after the last ')'
        after = stat[stat.rindex(")") + 2:].split()
        cpu += (int(after[11]) + int(after[12])) * _TICK_NS  # utime, stime (fields 14, 15)
        memory += int(statm[1]) * _PAGE
    return Usage(cpu, memory)
