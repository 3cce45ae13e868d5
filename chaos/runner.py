"""One chaos run: start a cluster, run the workload, inject a seeded schedule of faults, heal,
restart everything, read the final state, run every checker, write the report.

The schedule is a pure function of the seed (which fault, on which target choice, for how
long), so ``--seed N`` reproduces a run's faults; timing-dependent outcomes of course vary.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store import errors

from .checkers import (
    CheckResult,
    check_linearizable,
    leases_expire_after_ttl,
    lost_writes,
    one_leader_per_term,
    revisions_monotonic,
    watch_checker,
)
from .cluster import ChaosCluster
from .faults import FAULTS
from .history import FaultRecord, History
from .workload import FLOOD_PREFIX, FLOOD_RANGE_END, KEY_PREFIX, KEY_RANGE_END, Workload

__all__ = ["SCENARIOS", "RunResult", "run"]

ALL_FAULTS = [
    "kill-leader", "kill-follower", "kill-all", "pause-leader", "isolate-leader",
    "split-minority-majority", "asymmetric", "slow-links", "client-cut",
]
SCENARIOS: dict[str, list[str]] = {name: [name] for name in ALL_FAULTS}
SCENARIOS["all"] = ALL_FAULTS
SCENARIOS["leader-kills"] = ["kill-leader"]

Progress = Callable[[str], None]


@dataclass
class RunResult:
    scenario: str
    seed: int
    duration: float
    history: History
    checks: list[CheckResult]
    recovery: list[tuple[FaultRecord, float | None, float | None]]  # fault, recover s, gap s
    final_state: dict[str, tuple[str | None, int | None]]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.verdict == "ok" for c in self.checks)

    @property
    def violations(self) -> bool:
        return any(c.verdict == "violation" for c in self.checks)


async def run(
    *,
    scenario: str,
    duration: float,
    seed: int,
    workdir: Path,
    progress: Progress = print,
    overrides: dict[str, Any] | None = None,
    clients: int = 6,
    keys: int = 8,
    think: float = 0.0,
    flood: int = 0,
) -> RunResult:
    """Run one scenario for ``duration`` seconds of faults; the result and every artefact
    (cluster logs, data) stay in ``workdir``."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    rng = random.Random(seed)
    cluster = ChaosCluster(workdir / "cluster", seed=seed, overrides=overrides, progress=progress)
    history = History()
    workload = Workload(cluster, history, seed=seed, clients=clients, keys=keys, think=think,
                        flood=flood)
    notes: list[str] = []
    await cluster.start()
    try:
        stop = asyncio.Event()
        load = asyncio.create_task(workload.run(stop))
        start = time.monotonic()
        try:
            await _schedule(cluster, history, rng, SCENARIOS[scenario], duration, progress,
                            workload, start)
        finally:
            stop.set()
            await asyncio.wait_for(load, 30)
        cluster.heal_network()
        progress(f"workload stopped: {workload.ops_done} ops; healing and reading final state")
        final = await _final_state(cluster, notes, progress)
    finally:
        await cluster.stop()
    checks = _check(history, final, workload)
    recovery = [(f, *_recovery(history, f, _next_injection(history, f)))
                for f in history.faults]
    return RunResult(scenario, seed, duration, history, checks, recovery, final, notes
                     + workload.watch_errors)


async def _schedule(cluster: ChaosCluster, history: History, rng: random.Random,
                    names: list[str], duration: float, progress: Progress,
                    workload: Workload, start: float) -> None:
    faults = FAULTS()
    await asyncio.sleep(1.0)  # let the workload warm up
    while time.monotonic() - start < duration:
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        candidates = [faults[n] for n in names]
        rng.shuffle(candidates)
        fault = None
        for f in candidates:
            if await f.available(cluster):
                fault = f
                break
        if fault is None:
            await asyncio.sleep(0.5)
            continue
        hold = rng.uniform(1.0, 3.0)
        target = await fault.inject(cluster, rng)
        record = FaultRecord(fault.name, target, time.monotonic())
        history.faults.append(record)
        elapsed = time.monotonic() - start
        progress(f"[{elapsed:6.1f}s] fault #{len(history.faults)}: {fault.name} on {target} "
                 f"for {hold:.1f}s  (ops so far: {workload.ops_done})")
        await asyncio.sleep(hold)
        await fault.heal(cluster)
        record.healed_at = time.monotonic()


async def _final_state(cluster: ChaosCluster, notes: list[str],
                       progress: Progress) -> dict[str, tuple[str | None, int | None]]:
    """Read every workload key after healing, then again after kill -9 of every replica and
    a restart; the two must agree (what was acknowledged survived the crash)."""
    before = await _read_all(cluster)
    assert cluster.store is not None
    store = cluster.store
    for name in store.names:
        if store.pid(name) is not None:
            await asyncio.to_thread(store.kill, name)
    for name in store.names:
        await asyncio.to_thread(store.start, name)
    progress("killed -9 and restarted every replica; reading again")
    after = await _read_all(cluster)
    if after != before:
        diff = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        notes.append(f"final state changed across kill -9 of all replicas: keys {diff}")
    return after


async def _read_all(cluster: ChaosCluster) -> dict[str, tuple[str | None, int | None]]:
    state: dict[str, tuple[str | None, int | None]] = {}
    async with cluster.direct_client(timeout=10.0) as client:
        for lo, hi in ((KEY_PREFIX, KEY_RANGE_END), (FLOOD_PREFIX, FLOOD_RANGE_END)):
            state.update(await _read_range(client, lo.encode(), hi.encode()))
    return state


async def _read_range(client: Any, lo: bytes, hi: bytes) -> dict[str, tuple[str, int]]:
    """Every key in [lo, hi) at one revision, in pages; retried until a leader answers."""
    deadline = time.monotonic() + 60
    out: dict[str, tuple[str, int]] = {}
    start, revision = lo, 0
    while True:
        try:
            got = await client.get(start, range_end=hi, limit=2000, revision=revision)
        except errors.StoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        revision = revision or got["header"]["revision"]
        for kv in got["kvs"]:
            out[kv["key"].decode()] = (kv["value"].decode(), kv["mod_revision"])
        if not got["more"]:
            return out
        start = got["kvs"][-1]["key"] + b"\0"


def _check(history: History, final: dict[str, Any], workload: Workload) -> list[CheckResult]:
    # Budget the search by history size (a long run's history is large but "nice").
    lin = check_linearizable(history, timeout=max(60.0, len(history) / 1000))
    return [
        lin.as_check_result(),
        lost_writes(history, final),
        watch_checker(history.watches, history),
        revisions_monotonic(history, history.revisions),
        one_leader_per_term(history.leaders),
        leases_expire_after_ttl(workload.lease_records()),
    ]


def _next_injection(history: History, fault: FaultRecord) -> float | None:
    later = [f.injected_at for f in history.faults if f.injected_at > fault.injected_at]
    return min(later, default=None)


def _recovery(history: History, fault: FaultRecord,
              next_fault: float | None = None) -> tuple[float | None, float | None]:
    """(seconds from heal to the next acknowledged write, longest time without an
    acknowledged write from 1 s before the injection until that recovery).  The window stops
    at the next fault's injection, so one fault is not blamed for the next one's outage."""
    healed = fault.healed_at or fault.injected_at
    done = sorted(op.complete for op in history
                  if op.kind in ("put", "cas", "delete") and op.status == "ok"
                  and op.complete is not None)
    recovered = next((t for t in done if t >= healed), None)
    recover = None if recovered is None else recovered - healed
    end = healed + 5.0 if recovered is None else recovered
    if next_fault is not None:
        end = min(end, next_fault)
    points = [t for t in done if fault.injected_at - 1.0 <= t <= end] + [end]
    gap = max((b - a for a, b in zip(points, points[1:])), default=None)
    return recover, gap
