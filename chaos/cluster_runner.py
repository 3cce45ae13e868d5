"""One whole-cluster chaos run (``ketch chaos run --cluster``): the store, two apiservers, two
controller-managers, two schedulers and three node agents as real processes behind fault
proxies; the store, API and cluster workloads; a seeded schedule of faults over every
component; after each heal, the time until the cluster is whole again; then every checker.

The schedule, one fault at a time: pick an available fault, inject it, let the cluster
workload change the apps a few times while it holds (:meth:`ClusterWorkload.mutate`), heal
(and, for a fault with ``wake_actions``, change the apps once more at once: the paused leader
must wake to work it must leave alone), then wait — changing nothing — until the cluster has
converged (:mod:`chaos.convergence`), for at most ``settle`` seconds; the time from the heal is that fault's time to convergence.
Faults, holds and actions are a pure function of the seed.

After the last fault: the workloads stop, every component is stopped (agents stop their pods,
so every process run ends with an exit line), the store's final state is read across kill -9
of every replica (as in a store run), the API's final state is read, and the checkers run:
the store's and the API's unchanged, plus the cluster's safety
(:mod:`chaos.checkers.cluster`) and liveness (:mod:`chaos.checkers.cluster_liveness`) ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from .api_workload import ApiWorkload
from .apiserver import ApiServers
from .checkers.api import api_checks
from .checkers.cluster import (
    indexed_job_at_most_one,
    one_active_leader,
    pod_on_one_node,
    replica_surge,
    statefulset_at_most_one,
)
from .checkers.cluster_liveness import convergence, node_partitions
from .cluster import ChaosCluster
from .cluster_faults import CLUSTER_FAULTS
from .cluster_observer import Observer, RunTracker, kill_leftovers, read_writes
from .cluster_workload import ClusterWorkload
from .components import Components, Timings
from .convergence import problems
from .faults import FAULTS
from .history import Convergence, FaultRecord, History
from .runner import (
    RunResult,
    _check,
    _final_state,
    _next_injection,
    _recovery,
    api_figures,
    pick_fault,
)
from .workload import Workload

__all__ = ["CLUSTER_FAULT_NAMES", "cluster_fault_names", "run_cluster"]

Progress = Callable[[str], None]
CLUSTER_FAULT_NAMES = ["kill-controller-manager", "kill-scheduler", "pause-controller-manager",
                       "partition-controller-manager", "lag-controller-manager", "kill-node",
                       "partition-node", "kill-pod"]
_STORE_AND_API = ["kill-leader", "kill-follower", "kill-all", "pause-leader", "isolate-leader",
                  "split-minority-majority", "asymmetric", "slow-links", "client-cut",
                  "kill-apiserver", "cut-apiserver-store"]
CLUSTER_SCENARIOS = {"all": _STORE_AND_API + CLUSTER_FAULT_NAMES,
                     "cluster-processes": CLUSTER_FAULT_NAMES,
                     "leaders": ["kill-controller-manager", "kill-scheduler",
                                 "pause-controller-manager", "partition-controller-manager",
                                 "lag-controller-manager"],
                     "nodes": ["kill-node", "partition-node", "kill-pod"]}


def cluster_fault_names(scenario: str) -> list[str]:
    """The faults a ``--cluster`` scenario draws from; ValueError for an unknown one."""
    if scenario in CLUSTER_SCENARIOS:
        return CLUSTER_SCENARIOS[scenario]
    if scenario in _STORE_AND_API + CLUSTER_FAULT_NAMES:
        return [scenario]
    raise ValueError(f"unknown --cluster scenario {scenario!r}; known: "
                     f"{', '.join([*CLUSTER_SCENARIOS, *_STORE_AND_API, *CLUSTER_FAULT_NAMES])}")


async def run_cluster(*, scenario: str, duration: float, seed: int, workdir: Path,
                      progress: Progress = print, overrides: dict[str, Any] | None = None,
                      clients: int = 2, keys: int = 8, think: float = 0.05,
                      api_clients: int = 2, sabotage: dict[str, str] | None = None,
                      timings: Timings | None = None, bound: float = 30.0,
                      settle: float = 90.0, actions: tuple[str, ...] | None = None,
                      ) -> RunResult:
    """Run ``scenario`` for ``duration`` seconds of faults; artefacts stay in ``workdir``.
    ``sabotage``: component kind -> ``--sabotage`` kind; ``actions``: restrict the cluster
    workload's actions (the proofs); ``bound``: the convergence checker's limit."""
    names = cluster_fault_names(scenario)
    timings = timings or Timings()
    cluster = ChaosCluster(workdir / "cluster", seed=seed, overrides=overrides,
                           progress=progress)
    history = History()
    store_load = Workload(cluster, history, seed=seed, clients=clients, keys=keys, think=think)
    servers = ApiServers(cluster, extra_args=timings.apiserver_args())
    cluster.api = servers
    comps = Components(cluster, servers, timings=timings, sabotage=sabotage)
    cluster.components = comps
    api_load = ApiWorkload(servers, history, seed=seed, clients=api_clients)
    apps = ClusterWorkload(servers, comps, history, seed=seed)
    if actions:
        apps.allowed = actions
    tracker = RunTracker(comps)
    comps.runs = tracker
    notes: list[str] = []
    stats: dict[str, Any] = {"timings": vars(timings) | {}, "bound_s": bound, "settle_s": settle,
                             "sabotage": sorted(set((sabotage or {}).values())),
                             "actions": list(actions or ())}
    stop, watch_stop = asyncio.Event(), asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    observer: Observer | None = None
    api_final = None
    await cluster.start()
    try:
        await servers.start_all()
        await comps.start_all()
        await api_load.setup()
        observer = Observer(apps.client(retries=True), history)
        observer.start()  # before the apps: their first pods are observed too
        await apps.setup()
        async with apps.client(retries=True) as c, aiohttp.ClientSession() as session:
            started = time.monotonic()
            left = await _until_converged(c, tracker, apps, session, 180.0)
            if left:
                raise RuntimeError("the cluster never became whole before the faults: "
                                   + "; ".join(left[:8]))
            stats["initial_convergence_s"] = round(time.monotonic() - started, 2)
            progress(f"cluster whole after {stats['initial_convergence_s']} s; faults begin")
            tasks = [asyncio.create_task(store_load.run(stop)),
                     asyncio.create_task(api_load.run_clients(stop)),
                     asyncio.create_task(api_load.run_watchers(watch_stop)),
                     asyncio.create_task(apps.run_probes(stop))]
            try:
                await _schedule(cluster, history, names, duration, seed, timings, apps,
                                tracker, c, session, settle, progress)
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks[:2], tasks[3]), 30)
        progress(f"workloads stopped: {store_load.ops_done} store ops, {api_load.ops_done} "
                 f"API ops, {apps.actions} cluster actions; stopping the components")
        cluster.heal_network()
        await comps.stop_all()
        final = await _final_state(cluster, notes, progress)
        await servers.ensure_running()
        api_final = await api_load.final_state(progress)
    finally:
        watch_stop.set()
        stop.set()
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        if observer is not None:
            with contextlib.suppress(Exception):
                await observer.stop()
        await comps.stop_all()
        notes += kill_leftovers(tracker, comps)
        notes += servers.crashed() + comps.crashed()
        await servers.stop_all()
        await cluster.stop()
    history.runs = tracker.finish()
    history.writes = read_writes(comps)
    history.components = list(comps.events)
    checks = _check(history, final, store_load)
    checks += api_checks(history, api_final, timeout=max(30.0, len(history) / 2000))
    checks += cluster_checks(history, timings, bound)
    stats |= _stats(history, comps)
    recovery = [(f, *_recovery(history, f, _next_injection(history, f)))
                for f in history.faults]
    api_recovery, api_stats = api_figures(history, servers, api_load)
    return RunResult(scenario, seed, duration, history, checks, recovery, final,
                     notes + store_load.watch_errors + api_load.notes + apps.notes,
                     api_clients, api_recovery, api_final, api_stats, cluster=stats)


def cluster_checks(history: History, timings: Timings, bound: float) -> list[Any]:
    """The cluster's checkers over a finished history."""
    t0 = min((op.invoke for op in history), default=0.0)
    partitions = [node_partitions(history.faults, history.observations, history.runs,
                                  grace=timings.node_monitor_grace, t0=t0)
                  if any(f.name == "partition-node" for f in history.faults) else None]
    return [c for c in [
        convergence(history.convergence, history.faults, bound=bound, t0=t0),
        statefulset_at_most_one(history.runs, t0=t0),
        pod_on_one_node(history.runs, t0=t0),
        indexed_job_at_most_one(history.runs, t0=t0),
        replica_surge(history.observations, t0=t0),
        one_active_leader(history.writes, "controller-manager", t0=t0),
        one_active_leader(history.writes, "scheduler", t0=t0),
        *partitions] if c is not None]


async def _until_converged(c: Any, tracker: RunTracker, apps: ClusterWorkload,
                           session: aiohttp.ClientSession, limit: float,
                           trail: list[list[Any]] | None = None) -> list[str]:
    """Poll until the cluster is whole (returns []) or ``limit`` passes (what is left).
    ``trail`` gets [seconds, first problems] each time what is wrong changes."""
    start = time.monotonic()
    until = start + limit
    left = ["not checked yet"]
    while time.monotonic() < until:
        try:
            left = await problems(c, tracker, apps, session)
        except Exception as e:  # noqa: BLE001 - a read that failed is "not converged yet"
            left = [f"cannot read the cluster: {type(e).__name__} {e}"[:200]]
        if trail is not None and (not trail or trail[-1][1] != left[:3]):
            trail.append([round(time.monotonic() - start, 1), left[:3]])
        if not left:
            return []
        await asyncio.sleep(0.5)
    return left


async def _schedule(cluster: ChaosCluster, history: History, names: list[str],
                    duration: float, seed: int, timings: Timings, apps: ClusterWorkload,
                    tracker: RunTracker, c: Any, session: aiohttp.ClientSession,
                    settle: float, progress: Progress) -> None:
    rng = random.Random(seed)
    faults: dict[str, Any] = {**FAULTS(), **CLUSTER_FAULTS()}
    start = time.monotonic()
    while time.monotonic() - start < duration:
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        fault = await pick_fault(cluster, faults, names, rng)
        if fault is None:
            await asyncio.sleep(0.5)
            continue
        hold = fault.hold(rng, timings) if hasattr(fault, "hold") else rng.uniform(1.0, 3.0)
        actions = rng.randint(1, 3)
        action_rng = random.Random(rng.random())
        target = await fault.inject(cluster, rng)
        record = FaultRecord(fault.name, target, time.monotonic())
        history.faults.append(record)
        progress(f"[{time.monotonic() - start:6.1f}s] fault #{len(history.faults)}: "
                 f"{fault.name} on {target} for {hold:.1f}s")
        changes = asyncio.create_task(apps.mutate(action_rng, actions, min(hold, 3.0)))
        await asyncio.sleep(hold)
        await fault.heal(cluster)
        record.healed_at = time.monotonic()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(changes, 30)
        if wake := getattr(fault, "wake_actions", 0):  # work for whoever wakes from it
            with contextlib.suppress(Exception):
                await asyncio.wait_for(apps.mutate(action_rng, wake, 0.0), 30)
        since = max(record.healed_at, time.monotonic())
        trail: list[list[Any]] = []
        left = await _until_converged(c, tracker, apps, session, settle, trail)
        done = None if left else time.monotonic()
        history.convergence.append(Convergence(len(history.faults) - 1, since, done, left,
                                               trail))
        progress(f"          converged in {done - since:.1f}s" if done is not None else
                 f"          NOT converged after {settle:.0f}s: {'; '.join(left[:4])}")


def _stats(history: History, comps: Components) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = {}
    for conv in history.convergence:
        name = history.faults[conv.fault].name
        by_kind.setdefault(name, [])
        if conv.seconds is not None:
            by_kind[name].append(conv.seconds)
    return {
        "convergence_s_by_fault": {k: _spread(v) for k, v in sorted(by_kind.items())},
        "convergence_s_all": _spread([s for v in by_kind.values() for s in v]),
        "processes": len(history.runs),
        "component_starts": {c.name: c.starts for c in comps.items},
        "writes": len(history.writes),
        "observations": len(history.observations),
    }


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    s = sorted(values)
    p99 = s[min(len(s) - 1, max(0, round(0.99 * len(s) + 0.5) - 1))]
    return {"n": len(s), "p50": round(statistics.median(s), 2), "p99": round(p99, 2),
            "max": round(s[-1], 2)}
