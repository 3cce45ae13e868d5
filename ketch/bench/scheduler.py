"""`ketch bench scheduler --nodes N --pods M`: the scheduler's throughput against a real store
and apiserver, kube-scheduler's scheduler_perf style (node objects, no agents).

Flow: start a cluster (store ×3 + apiserver) in a work dir → start ``python -m
control.scheduler`` as ``system:kube-scheduler`` → create N Ready nodes (4 cpu, 32Gi, 110 pods,
scheduler_perf's node-default) and wait until the scheduler's cache holds them → create M pods
(100m / 500Mi, pod-default) from ``--workers`` concurrent clients while a watch notes when
each pod is bound → print the figures beside kube-scheduler's published ones → stop
everything, also on Ctrl-C or an error.

Figures: pods/s over the whole run (first create to last bind) and steady (the middle 80 % of
binds), e2e scheduling latency p50/p99 (create acknowledged → bound seen on the watch), the
scheduler's CPU seconds per 1,000 pods (from /proc), its own decision rate (decisions per
CPU-second of the algorithm, from its metrics), and the CPU share of every process, so the
bottleneck is visible.  Progress goes to stderr, the table to stdout.
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
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from certs.kubeconfig import write_kubeconfig
from certs.layout import scheduler_paths
from control.api.errors import APIError
from control.client import ApiClient, ClientConfig, Informer
from control.client import resources as R
from ketch.bench.machine import machine_ticks, process_ticks, py_spy
from ketch.cluster import Cluster, ClusterError
from store.launch import free_ports

__all__ = ["add_parser", "run_scheduler"]

_ROOT = Path(__file__).resolve().parent.parent.parent
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# kube-scheduler's published figures (control-plane-anchors.md §2)
ANCHORS = [
    ("scheduler_perf SchedulingBasic 5000Nodes_10000Pods, CI floor (large machine)",
     "680 pods/s"),
    ("scheduler_perf SchedulingBasic 5000Nodes_50000Pods, CI floor", "810 pods/s"),
    ("real 5,000-node clusters (perf-dash, KEP-4247/5229)", "~100-150 pods/s"),
    ("k8s-1m: 50K pods on 50K nodes, stock kube-scheduler", "~185 pods/s"),
    ("clusterloader2 load-test gate", ">= 100 pods/s"),
]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("scheduler", help="the scheduler's throughput and latency with a real "
                       "store and apiserver (node objects, no agents), beside kube-scheduler's")
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=5000)
    p.add_argument("--workers", type=int, default=64, help="concurrent pod creators")
    p.add_argument("--apiservers", type=int, default=1,
                   help="apiservers to start; with 2+, pods are created through the first and "
                        "the scheduler watches and binds through the last")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=0)
    p.add_argument("--precreate", action="store_true",
                   help="create every pod before the scheduler starts: measures deciding and "
                        "binding alone, without pod creation competing for the apiserver")
    p.add_argument("--bind-concurrency", type=int, default=256,
                   help="the scheduler's binds in flight at once")
    p.add_argument("--scheduled-events", action="store_true",
                   help="let the scheduler write a 'Scheduled' event per pod (kube-scheduler "
                        "does; off by default here so the apiserver's budget goes to binds)")
    p.add_argument("--profile", type=Path, help="py-spy record the scheduler into this file "
                   "(.svg: flame graph; .txt: collapsed stacks)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--dir", type=Path, help="work dir (default: a temp dir, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, certs)")
    p.set_defaults(func=run_scheduler)


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _node(name: str) -> dict[str, Any]:
    alloc = {"cpu": "4", "memory": "32Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"capacity": alloc, "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def _pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "pause", "image": "pause", "resources": {
                "requests": {"cpu": "100m", "memory": "500Mi"}}}],
                "terminationGracePeriodSeconds": 0}}


@dataclass
class Result:
    nodes: int
    pods: int
    bound: int = 0
    create_seconds: float = 0.0
    run_seconds: float = 0.0
    steady_pods_per_s: float = 0.0
    whole_pods_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    scheduler_cpu_s: float = 0.0
    apiserver_cpu_s: float = 0.0
    store_cpu_s: float = 0.0
    bench_cpu_s: float = 0.0
    decisions: int = 0
    decision_cpu_s: float = 0.0
    machine_busy: float = 0.0  # the whole machine's busy share during the run (1.0 = all cores)
    others: float = 0.0  # the share used by processes outside the benchmark
    errors: list[str] = field(default_factory=list)

    @property
    def cpu_per_1000(self) -> float:
        return 1000 * self.scheduler_cpu_s / self.bound if self.bound else 0.0

    @property
    def decisions_per_s(self) -> float:
        return self.decisions / self.decision_cpu_s if self.decision_cpu_s else 0.0


def _metrics(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
    return out


def _ticks(pids: list[int]) -> float:
    return sum(process_ticks(p) for p in pids) / _TICK


def _start_scheduler(cluster: Cluster, workdir: Path, port: int,
                     args: argparse.Namespace) -> subprocess.Popen[bytes]:
    paths = scheduler_paths(cluster.store.certs_dir)
    kubeconfig = workdir / "scheduler.kubeconfig"
    write_kubeconfig(kubeconfig, server=cluster.urls[-1], ca=paths.ca, cert=paths.cert,
                     key=paths.key, user="system:kube-scheduler")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "control.scheduler", "--kubeconfig", str(kubeconfig),
           "--leader-elect=false", "--metrics-port", str(port), "--log-level", "WARNING",
           "--percentage-of-nodes-to-score", str(args.percentage_of_nodes_to_score),
           "--bind-concurrency", str(args.bind_concurrency)]
    if not args.scheduled_events:
        cmd.append("--no-scheduled-events")
    log = (workdir / "scheduler.log").open("ab")
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)


async def _wait_nodes(port: int, n: int, timeout: float = 300.0) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        try:
            if _metrics(port).get('scheduler_cache_size{type="nodes"}', 0) >= n:
                return
        except OSError:
            pass
        await asyncio.sleep(0.5)
    raise ClusterError(f"the scheduler did not see {n} nodes in {timeout:.0f}s")


async def _create_all(client: ApiClient, res: R.Resource, objs: list[dict[str, Any]],
                      workers: int, namespace: str, done: dict[str, float] | None,
                      errors: list[str]) -> None:
    it = iter(objs)

    async def worker() -> None:
        for obj in it:
            try:
                made = await client.create(res, obj, namespace)
            except APIError as e:
                errors.append(f"create {obj['metadata']['name']}: {e}")
                continue
            if res == R.NODES and not (made.get("status") or {}).get("allocatable"):
                made["status"] = obj["status"]
                await client.update_status(R.NODES, made)
            if done is not None:
                done[obj["metadata"]["name"]] = time.monotonic()

    await asyncio.gather(*(worker() for _ in range(workers)))


@dataclass
class _Procs:
    """The scheduler (and py-spy on it), started when the benchmark says so."""

    cluster: Cluster
    workdir: Path
    port: int
    args: argparse.Namespace
    sched: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        self.sched = _start_scheduler(self.cluster, self.workdir, self.port, self.args)
        _progress(f"scheduler: pid {self.sched.pid}, metrics on 127.0.0.1:{self.port}, "
                  f"log {self.workdir / 'scheduler.log'}")
        if self.args.profile:
            fmt = "raw" if self.args.profile.suffix in (".txt", ".raw") else "flamegraph"
            self.spy = subprocess.Popen(
                [py_spy(), "record", "-o", str(self.args.profile), "-p", str(self.sched.pid),
                 "--nonblocking", "--format", fmt],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.sched

    def stop(self) -> None:
        if self.spy is not None:
            self.spy.send_signal(signal.SIGINT)
            self.spy.wait(timeout=30)
        if self.sched is not None:
            self.sched.terminate()
            try:
                self.sched.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sched.kill()


async def _measure(procs: _Procs, result: Result) -> None:
    cluster, args, port = procs.cluster, procs.args, procs.port
    admin = ApiClient(ClientConfig.from_kubeconfig(cluster.kubeconfig), max_connections=256)
    try:
        _progress(f"creating {args.nodes} nodes")
        t0 = time.monotonic()
        await _create_all(admin, R.NODES, [_node(f"node-{i:05}") for i in range(args.nodes)],
                          args.workers, "", None, result.errors)
        _progress(f"nodes created in {time.monotonic() - t0:.1f}s")
        await _wait_service_account(admin)
        created: dict[str, float] = {}
        bound: dict[str, float] = {}
        watch = asyncio.create_task(_watch_bound(admin, bound, args.pods))
        await asyncio.sleep(0.5)  # the watch is open before the first create
        pods = [_pod(f"pod-{i:06}") for i in range(args.pods)]
        if args.precreate:
            _progress(f"creating {args.pods} pods before the scheduler starts")
            await _create_all(admin, R.PODS, pods, args.workers, "default", created,
                              result.errors)
        def pids_of(sched: subprocess.Popen[bytes]) -> dict[str, list[int]]:
            return {"scheduler": [sched.pid],
                    "apiserver": [p for a in cluster.apiservers if (p := cluster.pid(a["name"]))],
                    "store": [p for n in cluster.store.names if (p := cluster.store.pid(n))],
                    "bench": [os.getpid()]}

        machine0 = machine_ticks()
        if args.precreate:
            # measured from the scheduler's start: its sync of N nodes and M pods included
            start = time.monotonic()
            sched = procs.start()
            pids = pids_of(sched)
            before = {k: 0.0 if k == "scheduler" else _ticks(v) for k, v in pids.items()}
            m0: dict[str, float] = {}
            created = dict.fromkeys(created, start)
            await _wait_nodes(port, args.nodes)
        else:
            sched = procs.start()
            await _wait_nodes(port, args.nodes)
            pids = pids_of(sched)
            before = {k: _ticks(v) for k, v in pids.items()}
            m0 = _metrics(port)
            start = time.monotonic()
            _progress(f"creating {args.pods} pods with {args.workers} workers")
            await _create_all(admin, R.PODS, pods, args.workers, "default", created,
                              result.errors)
            result.create_seconds = time.monotonic() - start
            _progress(f"pods created in {result.create_seconds:.1f}s "
                      f"({args.pods / result.create_seconds:.0f}/s); waiting for binds")
        try:
            await asyncio.wait_for(watch, timeout=max(120.0, args.pods / 20))
        except TimeoutError:
            result.errors.append(f"only {len(bound)} of {args.pods} pods bound in time")
        after = {k: _ticks(v) for k, v in pids.items()}
        machine1 = machine_ticks()
        if machine0 is not None and machine1 is not None and machine1[1] > machine0[1]:
            total = machine1[1] - machine0[1]
            result.machine_busy = (machine1[0] - machine0[0]) / total
            ours = sum(after.values()) - sum(before.values())
            cores = os.cpu_count() or 1
            wall = max(1e-9, time.monotonic() - start)
            result.others = max(0.0, result.machine_busy - ours / (wall * cores))
        m1 = _metrics(port)
        _summarize(result, created, bound, start, before, after, m0, m1)
    finally:
        await admin.close()


async def _wait_service_account(admin: ApiClient) -> None:
    """The pods run as ``default/default``: wait for the service account (the
    controller-manager or the apiserver's bootstrap makes it), and make it if nobody does."""
    for attempt in range(50):
        try:
            await admin.get(R.SERVICEACCOUNTS, "default", "default")
            return
        except APIError:
            if attempt == 20:
                with contextlib.suppress(APIError):
                    await admin.create(R.SERVICEACCOUNTS, {
                        "apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "default"}}, "default")
            await asyncio.sleep(0.1)


async def _watch_bound(admin: ApiClient, bound: dict[str, float], want: int) -> None:
    """Note when each pod is first seen bound, until ``want`` are (an informer: after a
    410 it relists instead of retrying the expired version)."""
    done = asyncio.Event()

    def seen(obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if (obj.get("spec") or {}).get("nodeName") and name not in bound:
            bound[name] = time.monotonic()
            if len(bound) % max(1, want // 10) == 0:
                _progress(f"{len(bound)} bound")
            if len(bound) >= want:
                done.set()

    pods = Informer(admin, R.PODS, namespace="default")
    pods.add_handler(on_add=seen, on_update=lambda _old, new: seen(new))
    follow = asyncio.create_task(pods.run())
    try:
        await done.wait()
    finally:
        follow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _summarize(r: Result, created: dict[str, float], bound: dict[str, float], start: float,
               before: dict[str, float], after: dict[str, float], m0: dict[str, float],
               m1: dict[str, float]) -> None:
    r.bound = len(bound)
    times = sorted(bound.values())
    if times:
        r.run_seconds = times[-1] - start
        r.whole_pods_per_s = len(times) / r.run_seconds
        lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10 - 1]
        span = (len(times) * 9) // 10 - len(times) // 10
        r.steady_pods_per_s = span / (hi - lo) if hi > lo else 0.0
    lat = [bound[k] - created[k] for k in bound if k in created]
    r.p50_ms, r.p99_ms = 1000 * _pct(lat, 0.5), 1000 * _pct(lat, 0.99)
    r.scheduler_cpu_s = after["scheduler"] - before["scheduler"]
    r.apiserver_cpu_s = after["apiserver"] - before["apiserver"]
    r.store_cpu_s = after["store"] - before["store"]
    r.bench_cpu_s = after["bench"] - before["bench"]
    key = "scheduler_scheduling_algorithm_duration_seconds_"
    r.decisions = int(m1.get(key + "count", 0) - m0.get(key + "count", 0))
    r.decision_cpu_s = m1.get(key + "sum", 0) - m0.get(key + "sum", 0)


def format_result(r: Result) -> str:
    run = r.run_seconds or 1.0
    whole = ("pods/s, whole run (scheduler start -> last bind)" if not r.create_seconds
             else "pods/s, whole run (first create -> last bind)")
    rows = [
        ("nodes / pods bound", f"{r.nodes} / {r.bound} of {r.pods}"),
        (whole, f"{r.whole_pods_per_s:.0f}"),
        ("pods/s, steady (middle 80% of binds)", f"{r.steady_pods_per_s:.0f}"),
        ("pod creation rate (the load offered)",
         f"{r.pods / r.create_seconds:.0f}/s" if r.create_seconds else "all created first"),
        ("e2e scheduling latency p50 / p99", f"{r.p50_ms:.0f} ms / {r.p99_ms:.0f} ms"),
        ("scheduler CPU per 1,000 pods", f"{r.cpu_per_1000:.2f} s"),
        ("scheduler's own decision rate (algorithm only)", f"{r.decisions_per_s:.0f}/s"),
        ("CPU share of run: scheduler / apiserver / store / bench",
         (f"{r.scheduler_cpu_s / run:.0%} / {r.apiserver_cpu_s / run:.0%} / "
          f"{r.store_cpu_s / run:.0%} / {r.bench_cpu_s / run:.0%} of one core")),
    ]
    if r.machine_busy:
        rows.append(("machine busy (all cores) / of it, other processes",
                     f"{r.machine_busy:.0%} / {r.others:.0%}"))
    width = max(len(k) for k, _ in rows + ANCHORS)
    lines = ["ketch scheduler", *(f"  {k:<{width}}  {v}" for k, v in rows),
             "kube-scheduler (published)", *(f"  {k:<{width}}  {v}" for k, v in ANCHORS)]
    if r.errors:
        lines.append(f"errors ({len(r.errors)}): " + "; ".join(r.errors[:5]))
    return "\n".join(lines)


def run_scheduler(args: argparse.Namespace) -> int:
    if args.nodes < 1 or args.pods < 1 or args.workers < 1:
        print("error: --nodes, --pods and --workers must be >= 1", file=sys.stderr)
        return 2
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="ketch-bench-sched-"))
    cluster = Cluster(workdir / "cluster", apiservers=args.apiservers, controller_managers=0,
                      schedulers=0)
    result = Result(args.nodes, args.pods)
    procs: _Procs | None = None
    try:
        cluster.up(_progress)
        procs = _Procs(cluster, workdir, free_ports("127.0.0.1", 1)[0], args)
        asyncio.run(_measure(procs, result))
    except (ClusterError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    finally:
        if procs is not None:
            procs.stop()
        try:
            cluster.down(_progress)
        except ClusterError:
            pass
        if not args.dir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(format_result(result))
    if args.json:
        args.json.write_text(json.dumps({**asdict(result), "cpu_per_1000": result.cpu_per_1000,
                                         "decisions_per_s": result.decisions_per_s}, indent=2))
    return 1 if result.errors or result.bound < result.pods else 0
