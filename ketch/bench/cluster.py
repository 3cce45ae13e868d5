"""`ketch bench cluster --nodes N --pods M`: clusterloader2's density test, in spirit, on hollow
nodes (kubemark's idea) — the whole control plane and N real node agents over a fake runtime
on this machine, M pods, and every figure beside Kubernetes' SLOs.

Flow: check the sizes fit (memory estimate, pods per node) → start store ×3, apiserver,
controller-manager and scheduler (:class:`~ketch.bench.cluster_procs.Fleet`) → start N hollow
nodes in processes of ``--per-process`` and wait until every Node is Ready → *saturation*:
Deployments of ``--replicas`` created at ``--rate`` pods/s until M pods run (scheduling
throughput, the saturation pods' startup) → *latency*: ``--latency-pods`` one-replica
Deployments at ``--latency-rate``/s into the saturated cluster (pod startup latency, the SLI)
→ *idle*: ``--idle`` seconds of steady state (heartbeats, resyncs) → the report: pod startup
p50/p90/p99, API call latency per verb and resource (the apiserver's histogram between
phases), scheduling throughput, each component's CPU and RSS with per-node and per-pod costs,
hollow nodes per core → everything stopped, also on Ctrl-C, SIGTERM, an error or a component's
crash (which is reported by name with its log's last lines).

Exit code: 0 when every pod ran and nothing crashed (the SLOs are reported, not enforced),
1 otherwise, 2 for sizes or arguments refused before anything starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from control.client import ApiClient, ClientConfig
from control.client import resources as R
from control.client.process import Terminated, run_until_signalled
from ketch.bench.api import raise_nofile
from ketch.bench.cluster_load import (
    LoadPlan,
    PodTracker,
    create_deployments,
    prepare_namespaces,
)
from ketch.bench.cluster_procs import Component, Fleet, Sampler, log_tail
from ketch.bench.cluster_report import (
    DELAY_METRIC,
    GIB,
    SLI_METRIC,
    WAIT_METRIC,
    Hist,
    Result,
    estimate_memory,
    format_report,
    parse_histograms,
    subtract,
    to_json,
    traffic,
)
from ketch.bench.machine import CpuMeter, py_spy

__all__ = ["add_parser", "run_cluster"]

class Scrape(NamedTuple):
    """One scrape of the apiserver: request latency (with and without the flow-control
    wait), flow-control wait and watch delay histograms; the store's revision."""

    api: dict[Any, Hist]
    sli: dict[Any, Hist]
    waits: dict[Any, Hist]
    delay: dict[Any, Hist]
    revision: int

_MAX_PODS_PER_NODE = 110
_FDS_PER_NODE = 8
_HZ = os.sysconf("SC_CLK_TCK")
_PROFILABLE = ("apiserver", "controller-manager", "scheduler", "hollow", "store")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cluster", help="N hollow nodes and M pods through the whole control "
                       "plane: pod startup, API latency, scheduling, CPU and memory vs the SLOs")
    p.add_argument("--nodes", type=int, default=1000, help="hollow nodes (default 1000)")
    p.add_argument("--pods", type=int, default=30000, help="saturation pods (default 30000)")
    p.add_argument("--per-process", type=int, default=500,
                   help="hollow nodes per process (default 500)")
    p.add_argument("--replicas", type=int, default=100,
                   help="pods per saturation Deployment (default 100)")
    p.add_argument("--rate", type=float, default=500.0,
                   help="saturation pods offered per second (default 500)")
    p.add_argument("--latency-pods", type=int, default=500,
                   help="one-replica latency Deployments after saturation (default 500)")
    p.add_argument("--latency-rate", type=float, default=5.0,
                   help="latency Deployments per second (default 5, as clusterloader2)")
    p.add_argument("--idle", type=float, default=30.0,
                   help="seconds of steady state measured at the end (default 30)")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="give up on a phase after this many seconds (default 1800)")
    p.add_argument("--hollow-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for every hollow-node process (repeatable), e.g. "
                        "--hollow-arg=--node-status-compute=60")
    p.add_argument("--profile", default="", metavar="COMPONENTS",
                   help=f"py-spy the saturation and latency phases of these ({','.join(_PROFILABLE)})")
    p.add_argument("--force", action="store_true", help="run even if the memory estimate "
                   "says the machine cannot hold it")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--dir", type=Path, help="work dir (default: a temp dir, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, profiles)")
    p.set_defaults(func=run_cluster)


def _progress(msg: str) -> None:
    """One progress line on stderr.  A reader that went away (``2>&1 | head``) must not stop
    the teardown half-way and leave processes behind: the lines are dropped from then on."""
    global _stderr_gone
    if _stderr_gone:
        return
    try:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        _stderr_gone = True


_stderr_gone = False


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _check(args: argparse.Namespace) -> str | None:
    """Why these sizes are refused (None: fine)."""
    for name in ("nodes", "per_process", "replicas"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be >= 1"
    if args.pods < 0 or args.latency_pods < 0:
        return "--pods and --latency-pods must be >= 0"
    if args.rate <= 0 or args.latency_rate <= 0:
        return "--rate and --latency-rate must be > 0"
    if args.profile and (bad := set(args.profile.split(",")) - set(_PROFILABLE)):
        return f"--profile takes {','.join(_PROFILABLE)}; not {','.join(sorted(bad))}"
    if args.profile and not Path(py_spy()).exists():
        return ("--profile needs py-spy, which is not installed: "
                f"{sys.executable} -m pip install 'py-spy>=0.4' (or the package's [profile] extra)")
    total = args.pods + args.latency_pods
    if total > args.nodes * _MAX_PODS_PER_NODE:
        return (f"{total:,} pods do not fit on {args.nodes:,} nodes of {_MAX_PODS_PER_NODE} "
                f"pods each: use at least {-(-total // _MAX_PODS_PER_NODE):,} nodes")
    processes = -(-args.nodes // args.per_process)
    est = estimate_memory(args.nodes, total, processes)
    avail = _mem_available()
    if avail and est.total > 0.9 * avail and not args.force:
        parts = ", ".join(f"{k} {v / GIB:.1f}" for k, v in est.by_component.items())
        return (f"{args.nodes:,} nodes and {total:,} pods need about {est.total / GIB:.1f} GiB "
                f"({parts}) but {avail / GIB:.1f} GiB is available: use fewer, or --force")
    return None


class _Crashed(Exception):
    def __init__(self, comp: Component, how: str, phase: str) -> None:
        super().__init__(f"{comp.name} ({comp.kind}, pid {comp.pid}) died during {phase}: {how}")
        self.comp = comp


class _Run:
    """One benchmark run: the fleet, its sampler, the client, the figures."""

    def __init__(self, fleet: Fleet, args: argparse.Namespace, result: Result) -> None:
        self.fleet, self.args, self.result = fleet, args, result
        self.sampler = Sampler(fleet.components)
        self.phase = "start-up"
        self._last_tick = 0.0
        self._last_report = 0.0
        self.spies: list[subprocess.Popen[bytes]] = []
        self._note_at = time.monotonic()
        self._note_ticks: dict[str, int] = {}

    def cpu_note(self) -> str:
        """Cores used by each kind of component since the last note."""
        now, ticks = time.monotonic(), dict(self.sampler.ticks)
        wall = now - self._note_at
        used: dict[str, float] = {}
        if self._note_ticks and wall > 0:
            for name, t in ticks.items():
                kind = self.sampler.known[name].kind
                delta = (t - self._note_ticks.get(name, t)) / _HZ
                used[kind] = used.get(kind, 0.0) + delta / wall
        self._note_at, self._note_ticks = now, ticks
        return " ".join(f"{k} {v:.2f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]))

    def tick(self) -> None:
        """About once a second: sample every process, stop on a crash, report progress."""
        now = time.monotonic()
        if now - self._last_tick < 1.0:
            return
        self._last_tick = now
        for comp in self.sampler.sample():
            how = self.fleet.exit_of(comp)
            for line in log_tail(comp.log):
                _progress(f"    {line}")
            raise _Crashed(comp, how, self.phase)

    async def scrape(self, client: ApiClient) -> Scrape:
        """The apiserver's request latency, flow-control wait and watch delivery histograms
        and the store's revision (empty when the apiserver cannot be reached: it may be what
        crashed)."""
        try:
            reply = await client.raw("GET", "/metrics")
            rv = (await client.list(R.NAMESPACES, limit=1))["metadata"]["resourceVersion"]
        except Exception:  # noqa: BLE001 - the figures are then missing, not the run
            return Scrape({}, {}, {}, {}, 0)
        text = reply.body.decode()
        return Scrape(parse_histograms(text), parse_histograms(text, SLI_METRIC),
                      parse_histograms(text, WAIT_METRIC), parse_histograms(text, DELAY_METRIC),
                      int(rv))

    def record(self, name: str, started: float, before: Scrape, after: Scrape) -> None:
        res = self.result
        res.phases[name] = self.sampler.end()
        res.walls[name] = wall = time.monotonic() - started
        res.api[name] = subtract(after.api, before.api)
        res.sli[name] = subtract(after.sli, before.sli)
        res.waits[name] = subtract(after.waits, before.waits)
        if after.revision and before.revision:
            res.traffic[name] = traffic(res.api[name], subtract(after.delay, before.delay),
                                        after.revision - before.revision, wall)

    async def wait_ready_nodes(self, client: ApiClient) -> float:
        started = time.monotonic()
        deadline = started + self.args.timeout
        last = -1
        while True:
            page = await client.list(R.NODES)
            ready = sum(1 for n in page["items"] if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or []))
            if ready != last:
                _progress(f"nodes Ready: {ready}/{self.args.nodes}")
                last = ready
            if ready >= self.args.nodes:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {ready}/{self.args.nodes} nodes Ready after "
                                   f"{self.args.timeout:.0f}s")
            for _ in range(30):
                self.tick()
                await asyncio.sleep(0.1)

    def start_profiles(self) -> None:
        if not self.args.profile:
            return
        wanted = set(self.args.profile.split(","))
        spy = py_spy()
        out = self.fleet.root / "profiles"
        out.mkdir(parents=True, exist_ok=True)
        for comp in self.fleet.components():
            if comp.kind in wanted:
                path = out / f"{comp.name}.folded"
                self.spies.append(subprocess.Popen(
                    [spy, "record", "-p", str(comp.pid), "-o", str(path), "--format",
                     "raw", "--rate", "50", "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                _progress(f"py-spy on {comp.name} -> {path}")

    def stop_profiles(self) -> None:
        for spy in self.spies:
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
        for spy in self.spies:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
        self.spies.clear()

    def rss_now(self) -> dict[str, int]:
        from ketch.bench.cluster_procs import read_rss

        return {c.name: read_rss(c.pid)[0] for c in self.fleet.components()}


def _status_line(tracker: PodTracker, group: str, total: int, since: float) -> str:
    wall = max(time.monotonic() - since, 1e-9)
    seen, bound = tracker.count(group, "seen"), tracker.count(group, "scheduled")
    running = tracker.count(group, "running")
    return (f"{group}: {seen:,} created, {bound:,} scheduled, {running:,}/{total:,} running "
            f"({bound / wall:.0f} bound/s)")


async def _phase(run: _Run, client: ApiClient, tracker: PodTracker, name: str,
                 plan: list[tuple[str, str, int]], rate: float, per_pod: bool) -> None:
    """Create ``plan`` on its schedule and wait until every pod of the phase runs."""
    res = run.result
    run.phase = name
    total = sum(r for _, _, r in plan)
    before = await run.scrape(client)
    run.sampler.begin()
    started = time.monotonic()
    creating = asyncio.create_task(create_deployments(client, plan, rate, name,
                                                      per_pod=per_pod, errors=res.errors))
    last = [started]

    def tick() -> None:
        run.tick()
        if time.monotonic() - last[0] >= 10.0:
            last[0] = time.monotonic()
            _progress(f"{_status_line(tracker, name, total, started)}; cores: {run.cpu_note()}")

    ok = False
    try:
        ok = await tracker.until(lambda: tracker.count(name, "running") >= total
                                 and creating.done(), run.args.timeout, tick)
    finally:  # a crash or a timeout still leaves this phase's figures up to now
        if not creating.done():
            creating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await creating
        run.record(name, started, before, await run.scrape(client))
        res.windows[name] = tracker.throughput(started, time.monotonic())
        _progress(_status_line(tracker, name, total, started))
    if not ok:
        res.errors.append(f"{name}: only {tracker.count(name, 'running'):,}/{total:,} pods "
                          f"running after {run.args.timeout:.0f}s")
        raise TimeoutError(res.errors[-1])


async def _measure(fleet: Fleet, args: argparse.Namespace, result: Result) -> None:
    run = _Run(fleet, args, result)
    plan = LoadPlan(args.pods, args.replicas, args.rate, args.latency_pods, args.latency_rate)
    config = ClientConfig.from_kubeconfig(fleet.cluster.kubeconfig)
    async with ApiClient(config, max_connections=64, timeout=60) as client:
        run.sampler.begin()
        result.rss["control plane"] = run.rss_now()
        fleet.start_hollow(_progress)
        try:
            result.ready_s = await run.wait_ready_nodes(client)
            result.phases["start-up"] = run.sampler.end()
            result.rss["nodes"] = run.rss_now()
            _progress(f"{args.nodes:,} nodes Ready in {result.ready_s:.0f}s")
            await prepare_namespaces(client, plan.namespaces, 60.0)
            tracker = PodTracker(client)
            follow = asyncio.create_task(tracker.run())
            try:
                run.start_profiles()
                await _phase(run, client, tracker, "saturation", plan.saturation(), args.rate,
                             per_pod=True)
                result.rss["pods"] = run.rss_now()
                await _phase(run, client, tracker, "latency", plan.latency(), args.latency_rate,
                             per_pod=False)
                run.stop_profiles()
                run.phase = "idle"
                run.sampler.begin()
                before = await run.scrape(client)
                started = time.monotonic()
                end = started + args.idle
                while time.monotonic() < end:
                    run.tick()
                    await asyncio.sleep(0.2)
                run.record("idle", started, before, await run.scrape(client))
            finally:
                follow.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follow
                result.collect(tracker)
        except _Crashed as e:
            result.crash = str(e)
        finally:
            run.stop_profiles()
            result.peak = dict(run.sampler.peak)
            result.kinds = {n: c.kind for n, c in run.sampler.known.items()}


class _Terminated(BaseException):
    """SIGTERM: unwind as Ctrl-C does, so every process is stopped."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def _run_loop(coro: Any) -> None:
    try:
        run_until_signalled(coro)
    except Terminated as e:
        if e.signum == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise _Terminated from None


def run_cluster(args: argparse.Namespace) -> int:
    """Entry point (see the module docstring for the exit codes)."""
    if (why := _check(args)) is not None:
        print(f"ketch bench cluster: {why}", file=sys.stderr)
        return 2
    raise_nofile(args.nodes * _FDS_PER_NODE + 1024)
    root = args.dir or Path(tempfile.mkdtemp(prefix="ketch-bench-cluster-"))
    root.mkdir(parents=True, exist_ok=True)
    processes = -(-args.nodes // args.per_process)
    fleet = Fleet(root, nodes=args.nodes, per_process=args.per_process,
                  hollow_args=args.hollow_arg)
    result = Result(nodes=args.nodes, pods=args.pods, processes=processes,
                    replicas=args.replicas, rate=args.rate, latency_pods=args.latency_pods,
                    latency_rate=args.latency_rate, cores=os.cpu_count() or 1,
                    load_before=os.getloadavg()[0])
    meter = CpuMeter(lambda: [c.pid for c in fleet.components()])
    code = 1
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _progress(f"starting store ×3, apiserver, controller-manager, scheduler in {root}")
        fleet.up_control_plane(_progress)
        meter.start()
        _run_loop(_measure(fleet, args, result))
        code = 0 if result.complete else 1
    except KeyboardInterrupt:
        _progress("interrupted: stopping everything")
        result.errors.append("interrupted")
        code = 130
    except _Terminated:
        _progress("terminated: stopping everything")
        result.errors.append("terminated")
        code = 143
    except Exception as e:  # noqa: BLE001 - say why, then still stop everything
        _progress(f"FAILED: {type(e).__name__}: {e}")
        result.errors.append(f"{type(e).__name__}: {e}")
    finally:
        # Nothing may interrupt the teardown: a second Ctrl-C would leave processes behind.
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        result.machine = meter.stop()
        _progress("stopping every process of the benchmark")
        fleet.down(_progress)
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, previous)
        if args.keep or args.dir:
            _progress(f"work dir kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(to_json(result), indent=2) + "\n")
    try:
        print(format_report(result))
        sys.stdout.flush()
    except BrokenPipeError:  # ``| head``: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code if code != 0 or not result.crash else 1
