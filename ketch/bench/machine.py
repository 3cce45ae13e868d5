"""CPU accounting of the machine during a run: how much went to processes outside the benchmark.

The benchmark shares a small machine (2 cores here) with whatever else runs; a figure taken
while another process burns a core says little.  `CpuMeter` reads Linux's /proc counters
before and after a run and splits the machine's busy time into *ours* (this process and the
cluster's pids) and *others*.  Where /proc is missing every figure is None and nothing fails.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuMeter", "CpuShare", "machine_ticks", "process_ticks", "py_spy"]


@dataclass(frozen=True)
class CpuShare:
    """Fractions of the whole machine (all cores = 1.0) over one interval."""

    busy: float
    ours: float

    @property
    def others(self) -> float:
        """Busy time not spent by the benchmark or its cluster (never below 0)."""
        return max(0.0, self.busy - self.ours)


def machine_ticks(proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from ``/proc/stat``; None if absent."""
    try:
        first = (proc / "stat").read_text().split("\n", 1)[0].split()
        fields = [int(x) for x in first[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def process_ticks(pid: int, proc: Path = Path("/proc")) -> int:
    """User + system clock ticks of ``pid`` (all its threads); 0 if it is gone."""
    try:
        rest = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])  # utime, stime: fields 14 and 15 of stat(5)
    except (OSError, ValueError, IndexError):
        return 0


class CpuMeter:
    """Measures one interval: `start()`, run the load, `stop()` → `CpuShare` or None.

    ``pids`` (called at every sample) names the cluster's processes; this process is always
    included.  A process that appears mid-interval counts from zero; one that is killed counts
    up to the last `sample()` before it died, so call `sample()` right before killing one (else
    its last ticks land in "others", which then is an upper bound).
    """

    def __init__(self, pids: Callable[[], Iterable[int]], proc: Path = Path("/proc")) -> None:
        self._pids = pids
        self._proc = proc
        self._machine: tuple[int, int] | None = None
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}

    def sample(self) -> None:
        """Note the current ticks of every process of ours (new ones start from zero)."""
        for pid in {os.getpid(), *self._pids()}:
            ticks = process_ticks(pid, self._proc)
            if ticks:
                self._first.setdefault(pid, 0)
                self._last[pid] = ticks

    def start(self) -> None:
        self._machine = machine_ticks(self._proc)
        self._first.clear()
        self._last.clear()
        for pid in {os.getpid(), *self._pids()}:
            ticks = process_ticks(pid, self._proc)
            if ticks:
                self._first[pid] = self._last[pid] = ticks

    def stop(self) -> CpuShare | None:
        end = machine_ticks(self._proc)
        if self._machine is None or end is None or end[1] <= self._machine[1]:
            return None
        self.sample()
        ours = sum(self._last[pid] - first for pid, first in self._first.items())
        total = end[1] - self._machine[1]
        return CpuShare(busy=(end[0] - self._machine[0]) / total, ours=ours / total)


def py_spy() -> str:
    """The py-spy binary: on PATH, else beside this interpreter (a venv not activated)."""
    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
