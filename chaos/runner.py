"""One chaos run: start a cluster, run the workload, inject a seeded schedule of faults, heal,
restart everything, read the final state, run every checker, write the report.

With ``api=True`` the cluster also runs two apiservers (:mod:`chaos.apiserver`) whose store
links cross their own proxies, the API workload (:mod:`chaos.api_workload`) runs beside the
store workload through every fault, the apiserver faults join the schedule, and the API
checkers (:mod:`chaos.checkers.api`) judge the API history after the store's final state.

The schedule is a pure function of the seed (which fault, on which target choice, for how
long), so ``--seed N`` reproduces a run's faults; timing-dependent outcomes of course vary.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store import errors

from .api_workload import ApiWorkload
from .apiserver import ApiServers
from .checkers import (
    CheckResult,
    check_linearizable,
    leases_expire_after_ttl,
    lost_writes,
    one_leader_per_term,
    revisions_monotonic,
    watch_checker,
)
from .checkers.api import API_WRITES, ApiFinalState, api_checks
from .cluster import ChaosCluster
from .faults import FAULTS
from .history import FaultRecord, History
from .workload import FLOOD_PREFIX, FLOOD_RANGE_END, KEY_PREFIX, KEY_RANGE_END, Workload

__all__ = ["SCENARIOS", "RunResult", "run"]

ALL_FAULTS = [
    "kill-leader", "kill-follower", "kill-all", "pause-leader", "isolate-leader",
    "split-minority-majority", "asymmetric", "slow-links", "client-cut",
]
API_FAULTS = ["kill-apiserver", "cut-apiserver-store"]  # need an --api run
SCENARIOS: dict[str, list[str]] = {name: [name] for name in ALL_FAULTS + API_FAULTS}
SCENARIOS["all"] = ALL_FAULTS  # with api=True: ALL_FAULTS + API_FAULTS
SCENARIOS["leader-kills"] = ["kill-leader"]
# What the API feels most, from both layers: store leader and follower kills, apiserver
# kills and apiserver-store cuts (the --api smoke test's schedule).
SCENARIOS["api-processes"] = ["kill-leader", "kill-follower", "kill-apiserver",
                              "cut-apiserver-store"]

Progress = Callable[[str], None]


def scenario_faults(scenario: str, *, api: bool) -> list[str]:
    """The fault names a scenario draws from; ValueError for an unknown scenario or one that
    needs apiservers in a run without them."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    names = ALL_FAULTS + API_FAULTS if scenario == "all" and api else SCENARIOS[scenario]
    if not api and any(n in API_FAULTS for n in names):
        raise ValueError(f"scenario {scenario!r} needs apiservers: add --api")
    return names


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
    api_clients: int = 0  # 0: a store-only run
    api_recovery: list[tuple[FaultRecord, float | None, float | None]] = field(
        default_factory=list)  # fault, first acknowledged API write after the heal s, gap s
    api_final: ApiFinalState | None = None
    api_stats: dict[str, Any] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)  # a --cluster run's figures

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
    api: bool = False,
    api_clients: int = 4,
    api_contend: bool = False,
) -> RunResult:
    """Run one scenario for ``duration`` seconds of faults; the result and every artefact
    (cluster logs, data) stay in ``workdir``.  ``api``: apiservers and their workload too."""
    fault_names = scenario_faults(scenario, api=api)
    if api:
        return await _run_api(scenario=scenario, duration=duration, seed=seed,
                              workdir=workdir, progress=progress, overrides=overrides,
                              clients=clients, keys=keys, think=think, flood=flood,
                              api_clients=api_clients, fault_names=fault_names,
                              api_contend=api_contend)
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
            await _schedule(cluster, history, rng, fault_names, duration, progress,
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


async def _run_api(*, scenario: str, duration: float, seed: int, workdir: Path,
                   progress: Progress, overrides: dict[str, Any] | None, clients: int,
                   keys: int, think: float, flood: int, api_clients: int,
                   fault_names: list[str], api_contend: bool) -> RunResult:
    """``run`` with apiservers: the same store run, plus the API workload and checks."""
    rng = random.Random(seed)
    cluster = ChaosCluster(workdir / "cluster", seed=seed, overrides=overrides, progress=progress)
    history = History()
    workload = Workload(cluster, history, seed=seed, clients=clients, keys=keys, think=think,
                        flood=flood)
    servers = ApiServers(cluster)
    cluster.api = servers
    api_load = ApiWorkload(servers, history, seed=seed, clients=api_clients,
                           contend=api_contend)
    notes: list[str] = []
    stop, watch_stop = asyncio.Event(), asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    api_final: ApiFinalState | None = None
    await cluster.start()
    try:
        await servers.start_all()
        await api_load.setup()
        tasks = [asyncio.create_task(workload.run(stop)),
                 asyncio.create_task(api_load.run_clients(stop)),
                 asyncio.create_task(api_load.run_watchers(watch_stop))]
        start = time.monotonic()
        try:
            await _schedule(cluster, history, rng, fault_names, duration, progress,
                            workload, start, api_load)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks[:2]), 30)
        cluster.heal_network()
        progress(f"workload stopped: {workload.ops_done} store ops, {api_load.ops_done} API "
                 "ops; healing and reading final state")
        final = await _final_state(cluster, notes, progress)
        await servers.ensure_running()
        api_final = await api_load.final_state(progress)
    finally:
        watch_stop.set()
        stop.set()
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        notes += servers.crashed()
        await servers.stop_all()
        await cluster.stop()
    checks = _check(history, final, workload)
    checks += api_checks(history, api_final, timeout=max(30.0, len(history) / 2000))
    recovery = [(f, *_recovery(history, f, _next_injection(history, f))) for f in history.faults]
    api_recovery, stats = api_figures(history, servers, api_load)
    stats["contend"] = api_contend
    return RunResult(scenario, seed, duration, history, checks, recovery, final,
                     notes + workload.watch_errors + api_load.notes, api_clients, api_recovery,
                     api_final, stats)


def api_figures(history: History, servers: ApiServers, api_load: ApiWorkload,
                ) -> tuple[list[tuple[FaultRecord, float | None, float | None]],
                           dict[str, Any]]:
    """Per fault, the first acknowledged API write after the heal and the longest gap; and
    what the API workload and the apiservers went through."""
    api_recovery = [(f, *_recovery(history, f, _next_injection(history, f), kinds=API_WRITES))
                    for f in history.faults]
    # The worst single apiserver: the longest gap in answered API requests sent to it.
    served = API_WRITES | {"api_get"}
    per_server = [max((_recovery(history, f, _next_injection(history, f), kinds=served,
                                 server=i)[1] or 0.0 for i in range(len(servers.servers))),
                      default=0.0) for f in history.faults]
    stats = {"answers": dict(sorted(api_load.codes.items())),
             "relists_after_410": sum(api_load.relists.values()),
             "watch_streams": sum(api_load.watch_streams.values()),
             "watch_breaks": sum(api_load.watch_breaks.values()),
             "watch_refused": sum(api_load.watch_refused.values()),
             "worst_apiserver_gap_s": per_server,
             "apiserver_starts": {s.name: s.starts for s in servers.servers}}
    return api_recovery, stats


async def pick_fault(cluster: ChaosCluster, faults: dict[str, Any], names: list[str],
                     rng: random.Random) -> Any:
    """One of ``names`` that is available now (tried in a seeded random order), or None."""
    candidates = [faults[n] for n in names]
    rng.shuffle(candidates)
    for f in candidates:
        if await f.available(cluster):
            return f
    return None


async def _schedule(cluster: ChaosCluster, history: History, rng: random.Random,
                    names: list[str], duration: float, progress: Progress,
                    workload: Workload, start: float, api_load: ApiWorkload | None = None,
                    ) -> None:
    faults = FAULTS()
    await asyncio.sleep(1.0)  # let the workload warm up
    while time.monotonic() - start < duration:
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        fault = await pick_fault(cluster, faults, names, rng)
        if fault is None:
            await asyncio.sleep(0.5)
            continue
        hold = rng.uniform(1.0, 3.0)
        target = await fault.inject(cluster, rng)
        record = FaultRecord(fault.name, target, time.monotonic())
        history.faults.append(record)
        elapsed = time.monotonic() - start
        api_ops = "" if api_load is None else f", API {api_load.ops_done}"
        progress(f"[{elapsed:6.1f}s] fault #{len(history.faults)}: {fault.name} on {target} "
                 f"for {hold:.1f}s  (ops so far: {workload.ops_done}{api_ops})")
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


def _recovery(history: History, fault: FaultRecord, next_fault: float | None = None, *,
              kinds: Iterable[str] = ("put", "cas", "delete"), server: int | None = None,
              ) -> tuple[float | None, float | None]:
    """(seconds from heal to the next acknowledged write, longest time without an
    acknowledged write from 1 s before the injection until that recovery).  The window stops
    at the next fault's injection, so one fault is not blamed for the next one's outage.
    ``kinds``: which ops count (the store's writes by default; API_WRITES for the API);
    ``server``: only API ops sent to that apiserver (index)."""
    healed = fault.healed_at or fault.injected_at
    wanted = frozenset(kinds)
    done = sorted(op.complete for op in history
                  if op.kind in wanted and op.status == "ok"
                  and op.complete is not None
                  and (server is None or op.input.get("server") == server))
    recovered = next((t for t in done if t >= healed), None)
    recover = None if recovered is None else recovered - healed
    end = healed + 5.0 if recovered is None else recovered
    if next_fault is not None:
        end = min(end, next_fault)
    points = [t for t in done if fault.injected_at - 1.0 <= t <= end] + [end]
    gap = max((b - a for a, b in itertools.pairwise(points)), default=None)
    return recover, gap
