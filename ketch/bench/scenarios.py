"""What `ketch bench store` does to one running target: the throughput matrix and the failover series.

Both take a `Target` that is already set up and a `Settings` value, report progress through a
callback, and add their figures to a `Figures` collector, so the CLI only sequences systems and
prints.  CPU use of the machine is metered per run (`machine.CpuMeter`) so a figure taken while
something else was busy can be flagged.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ketch.bench.load import GapRecorder, LoadResult, Op, run_closed_loop
from ketch.bench.machine import CpuMeter, CpuShare
from ketch.bench.report import KillRecord, ResultKey
from ketch.bench.targets import Target

__all__ = ["OPS", "Figures", "Settings", "check", "failover", "throughput"]

OPS = ("put", "get")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """The load's shape, from the command line."""

    seconds: float = 5.0
    warmup: float = 1.0
    value_size: int = 100
    keys: int = 1000
    timeout: float = 5.0
    ops: tuple[str, ...] = OPS
    kills: int = 5
    settle: float = 2.0

    @property
    def value(self) -> bytes:
        return (b"0123456789" * (self.value_size // 10 + 1))[: self.value_size]

    def key(self, i: int) -> bytes:
        """Key of op ``i``: the key space is cycled so gets find what puts wrote."""
        return b"bench/%08d" % (i % self.keys)


@dataclass
class Figures:
    """Everything measured in one invocation, filled in as systems run."""

    results: dict[ResultKey, LoadResult] = field(default_factory=dict)
    cpu: dict[str, CpuShare] = field(default_factory=dict)
    """By run label ("etcd put c=16", "ketch failover c=16")."""
    kills: dict[str, list[KillRecord]] = field(default_factory=dict)


def describe(r: LoadResult, cpu: CpuShare | None = None) -> str:
    """One progress line's figures."""
    text = (
        f"c={r.concurrency:<4} {r.ops_per_s:9.0f} ops/s  p50 {r.p50 * 1e3:7.2f} ms  "
        f"p99 {r.p99 * 1e3:7.2f} ms  errors {r.errors}"
    )
    if cpu is not None:
        text += f"  cpu ours {cpu.ours:.0%} others {cpu.others:.0%}"
    if r.error_kinds:
        text += " (" + ", ".join(f"{kind} {n}" for kind, n in r.error_kinds) + ")"
    return text + (f"; e.g. {r.error_samples[0]}" if r.error_samples else "")


async def check(target: Target, settings: Settings) -> None:
    """One put/get round trip; a target that cannot do this has nothing to measure."""
    key, value = b"bench/check", settings.value
    await target.put(key, value)
    got = await target.get(key)
    if got != value:
        raise RuntimeError(f"{target.name}: read {got!r:.60} after writing {value!r:.60}")


def _op(target: Target, settings: Settings, name: str) -> Op:
    value = settings.value
    if name == "put":
        return lambda i: target.put(settings.key(i), value)
    if name == "get":
        return lambda i: target.get(settings.key(i))
    raise ValueError(f"unknown op {name!r}; known: {', '.join(OPS)}")


async def throughput(
    target: Target,
    settings: Settings,
    concurrencies: Sequence[int],
    figures: Figures,
    progress: Progress,
) -> None:
    """Each op in ``settings.ops`` at each concurrency, in that order, into ``figures``.

    Gets without puts first fill the key space, so every get reads an existing key.
    """
    if "get" in settings.ops and "put" not in settings.ops:
        await run_closed_loop(
            _op(target, settings, "put"), concurrency=16, seconds=max(1.0, settings.keys / 500)
        )
    for op_name in settings.ops:
        op = _op(target, settings, op_name)
        for conc in concurrencies:
            meter = CpuMeter(target.pids)
            meter.start()
            r = await run_closed_loop(
                op,
                concurrency=conc,
                seconds=settings.seconds,
                warmup=settings.warmup,
                op_timeout=settings.timeout * 2,
            )
            cpu = meter.stop()
            label = f"{target.name} {op_name} c={conc}"
            progress(f"{target.name} {op_name} {describe(r, cpu)}")
            figures.results[(target.name, op_name, conc)] = r
            if cpu is not None:
                figures.cpu[label] = cpu


async def _wait_for(cond: Callable[[], bool], *, deadline: float) -> bool:
    until = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > until:
            return False
        await asyncio.sleep(0.005)
    return True


def _recovered(recorder: GapRecorder, killed_at: float, in_flight: int) -> bool:
    return recorder.successes_since(killed_at) > in_flight


async def failover(
    target: Target,
    settings: Settings,
    conc: int,
    figures: Figures,
    progress: Progress,
    *,
    label: str,
) -> None:
    """``settings.kills`` times: steady writes, SIGKILL the leader, wait for writes, restart it.

    Each kill's record (into ``figures.kills[label]``) is the longest gap between successful
    writes from the kill until recovery.  Recovery is declared only after more than ``conc``
    writes succeed after the kill: at most ``conc`` were in flight when the leader died, so the
    next one was committed under a new leader.  A kill with no recovery within
    max(30 s, 4 × timeout) is recorded as unrecovered and the series goes on.
    """
    recorder = GapRecorder()
    stop = asyncio.Event()
    records = figures.kills.setdefault(label, [])
    recover_deadline = max(30.0, settings.timeout * 4)
    put = _op(target, settings, "put")

    async def op(i: int) -> None:
        await put(i)
        recorder.record()

    meter = CpuMeter(target.pids)
    meter.start()
    async with asyncio.TaskGroup() as group:
        load = group.create_task(
            run_closed_loop(
                op, concurrency=conc, seconds=math.inf, stop=stop, op_timeout=settings.timeout * 2
            )
        )
        try:
            for index in range(1, settings.kills + 1):
                await asyncio.sleep(settings.settle)  # steady state before the fault
                meter.sample()  # a killed member's CPU still counts as ours
                t_kill = recorder.now()
                member = await target.leader_kill()
                killed_at = recorder.now()
                await _wait_for(
                    functools.partial(_recovered, recorder, killed_at, conc),
                    deadline=recover_deadline,
                )
                gap = recorder.gap(start=t_kill, end=recorder.now())
                records.append(KillRecord(index, member, gap))
                state = "" if gap.recovered else " (NOT recovered)"
                progress(
                    f"{target.name} kill {index}: {member} → write gap "
                    f"{gap.length * 1e3:.0f} ms{state}; restarting {member}"
                )
                await target.restart(member)
        finally:
            stop.set()
    cpu = meter.stop()
    if cpu is not None:
        figures.cpu[f"{target.name} failover c={conc}"] = cpu
    progress(f"{target.name} failover load: {describe(load.result(), cpu)}")
