"""CPU accounting of the cluster's process groups during a benchmark phase: how many cores the
apiserver(s), the store replicas and this process used (from /proc, like `machine.CpuMeter`).
The benchmarks talk to the apiserver through the shared client (:class:`control.client.ApiClient`
with retries off: every failure is a data point)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping

from ketch.bench.api_report import CpuUse
from ketch.bench.machine import CpuMeter, process_ticks

__all__ = ["GroupCpu"]


class GroupCpu:
    """Cores used by named groups of processes between `start` and `stop`.

    ``groups`` maps a name ("apiserver", "store") to a callable listing its pids now; "client"
    is always this process.  A pid seen only at `stop` counts from zero; one gone by `stop`
    counts up to the last `start`/`stop` sample of it (so a crash under-counts, never
    over-counts).  The machine's share used by others comes from `machine.CpuMeter`."""

    def __init__(self, groups: Mapping[str, Callable[[], Iterable[int]]]) -> None:
        self._groups = dict(groups)
        self._groups["client"] = lambda: [os.getpid()]
        self._meter = CpuMeter(lambda: [p for f in groups.values() for p in f()])
        self._first: dict[str, dict[int, int]] = {}
        self._began = 0.0

    def _ticks(self) -> dict[str, dict[int, int]]:
        return {name: {pid: process_ticks(pid) for pid in pids()}
                for name, pids in self._groups.items()}

    def start(self) -> None:
        self._meter.start()
        self._first = self._ticks()
        self._began = time.monotonic()

    def stop(self) -> CpuUse:
        share = self._meter.stop()
        wall = max(time.monotonic() - self._began, 1e-9)
        hz = os.sysconf("SC_CLK_TCK")
        cores: dict[str, float] = {}
        for name, now in self._ticks().items():
            first = self._first.get(name, {})
            used = sum(t - first.get(pid, 0) for pid, t in now.items() if t)
            cores[name] = used / hz / wall
        return CpuUse(apiserver=cores.get("apiserver", 0.0), store=cores.get("store", 0.0),
                      client=cores["client"], machine=share)

