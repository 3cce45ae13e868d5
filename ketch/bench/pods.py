"""`ketch bench pods`: pod startup latency on one node, as Kubernetes' SLI defines it.

The SLI (``sig-scalability/slos/pod_startup_latency.md``): from the pod's creation to all of its
containers reported started, *observed via watch*; clusterloader2 measures it as the watch
receive time of the pod's first sight to the watch receive time of ``phase=Running``, and
splits it into create→schedule and schedule→run.  The SLO: p99 <= 5 s for schedulable
stateless pods (no image pull in ketch: the catalog runs host programs).

Flow: start a cluster in a work dir (store x3, apiserver, controller-manager, scheduler, one
node agent) → open a watch on the bench's pods → create ``--pods`` pods at ``--qps`` (through
the scheduler, or bound directly with ``--bind``) → wait until every one is Running → report
p50/p90/p99 of each phase beside the SLO, and the node agent's CPU and peak memory → stop
everything (the agent terminates the pods; also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certs.layout import admin_paths
from control.api.errors import APIError
from control.client import ApiClient, ClientConfig, Informer
from control.client import resources as R
from ketch.bench.load import percentile
from ketch.bench.machine import process_ticks
from ketch.cluster import Cluster, ClusterError

__all__ = ["add_parser", "run_pods"]

_TICK = 100.0
_SLO_P99 = 5.0
_LABEL = "ketch-bench"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pods", help="pod startup latency on one node (create -> Running, "
                       "seen by a watch) beside Kubernetes' SLO")
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--qps", type=float, default=10.0, help="pod creations per second")
    p.add_argument("--image", default="busybox",
                   help="busybox (runs sleep) or registry.k8s.io/pause")
    p.add_argument("--bind", action="store_true",
                   help="set spec.nodeName at creation (no scheduler in the path)")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this long")
    p.add_argument("--dir", default="", help="work dir (default: a new temporary one, removed)")
    p.set_defaults(func=run_pods)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class _Seen:
    created: float | None = None  # client: just before the POST
    first: float | None = None  # watch: first sight
    scheduled: float | None = None  # watch: first sight with spec.nodeName
    running: float | None = None  # watch: first sight of phase Running


@dataclass
class Result:
    pods: dict[str, _Seen] = field(default_factory=dict)
    created_s: float = 0.0
    errors: int = 0
    agent_cpu_s: float = 0.0
    agent_rss_peak_mib: float = 0.0


def _pod(i: int, image: str, node: str) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": image}
    if "pause" not in image:
        c["command"] = ["sleep", "3600"]
    spec: dict[str, Any] = {"containers": [c], "terminationGracePeriodSeconds": 1}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"bench-{i}", "labels": {"app": _LABEL}}, "spec": spec}


def _running(obj: dict[str, Any]) -> bool:
    st = obj.get("status") or {}
    return st.get("phase") == "Running" and all(
        "running" in (c.get("state") or {}) or c.get("started")
        for c in st.get("containerStatuses") or [{}])


async def _measure(cluster: Cluster, args: argparse.Namespace) -> Result:
    res = Result()
    cfg = ClientConfig.from_cert_paths(cluster.urls, admin_paths(cluster.store.certs_dir))
    agent = cluster.pid("node-1")
    assert agent is not None
    ticks0 = process_ticks(agent)
    done = asyncio.Event()

    async with ApiClient(cfg, timeout=60, max_connections=16) as c:
        pods = Informer(c, R.PODS, namespace="default", label_selector=f"app={_LABEL}")

        def seen(pod: dict[str, Any]) -> None:
            now = time.monotonic()
            s = res.pods.setdefault(pod["metadata"]["name"], _Seen())
            s.first = s.first or now
            if (pod.get("spec") or {}).get("nodeName"):
                s.scheduled = s.scheduled or now
            if _running(pod):
                s.running = s.running or now
            if sum(1 for p in res.pods.values() if p.running) >= args.pods:
                done.set()

        pods.add_handler(on_add=seen, on_update=lambda _old, new: seen(new))

        async def rss() -> None:
            while True:
                res.agent_rss_peak_mib = max(res.agent_rss_peak_mib, _rss_kib(agent) / 1024)
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(pods.run())
        await pods.wait_synced()
        sampler = asyncio.create_task(rss())
        started = time.monotonic()
        for i in range(args.pods):
            due = started + i / args.qps
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            res.pods.setdefault(f"bench-{i}", _Seen()).created = time.monotonic()
            try:
                await c.create(R.PODS, _pod(i, args.image, "node-1" if args.bind else ""),
                               "default")
            except APIError as e:
                res.errors += 1
                _progress(f"create bench-{i}: {e}")
        res.created_s = time.monotonic() - started
        _progress(f"{args.pods} pods created in {res.created_s:.1f}s")
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except TimeoutError:
            _progress(f"timed out with {sum(1 for p in res.pods.values() if p.running)}/"
                      f"{args.pods} pods running")
        for t in (watcher, sampler):
            t.cancel()
        await asyncio.gather(watcher, sampler, return_exceptions=True)
    res.agent_cpu_s = (process_ticks(agent) - ticks0) / _TICK
    return res


def _row(name: str, values: list[float]) -> str:
    v = sorted(values)
    cells = [f"{percentile(v, q):>8.2f}" for q in (50, 90, 99)] if v else ["     n/a"] * 3
    return f"{name:<48} {''.join(cells)} {len(v):>6}"


def _print(args: argparse.Namespace, res: Result) -> None:
    seen = list(res.pods.values())
    startup = [s.running - s.first for s in seen if s.running and s.first]
    sched = [s.scheduled - s.first for s in seen if s.scheduled and s.first]
    run = [s.running - s.scheduled for s in seen if s.running and s.scheduled]
    client = [s.running - s.created for s in seen if s.running and s.created]
    path = "bound directly (--bind)" if args.bind else "through the scheduler"
    print(f"\nketch bench pods: {args.pods} pods ({args.image}) on one node at {args.qps:g} "
          f"pods/s, {path}")
    print(f"{'seconds':<48} {'p50':>8}{'p90':>8}{'p99':>8} {'pods':>6}")
    print(_row("pod startup (SLI: watch first sight -> Running)", startup))
    print(_row("  create -> scheduled", sched))
    print(_row("  scheduled -> Running", run))
    print(_row("client POST -> Running seen", client))
    p99 = percentile(sorted(startup), 99) if startup else float("nan")
    verdict = "meets" if p99 <= _SLO_P99 else "misses"
    print(f"\nKubernetes' SLO: p99 pod startup <= {_SLO_P99:.0f} s (schedulable, stateless pods, "
          f"image pull excluded) — ketch {verdict} it here (p99 {p99:.2f} s).")
    print(f"node agent CPU {res.agent_cpu_s:.1f} s, peak RSS {res.agent_rss_peak_mib:.0f} MiB; "
          f"create errors {res.errors}")


def run_pods(args: argparse.Namespace) -> int:
    if args.pods < 1 or args.qps <= 0:
        print("error: --pods must be >= 1 and --qps > 0", file=sys.stderr)
        return 2
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ketch-bench-pods-"))
    cluster = Cluster(root / "cluster", controller_managers=1, schedulers=1, nodes=1)
    try:
        _progress(f"starting store x3 + apiserver + controller-manager + scheduler + one node "
                  f"agent in {cluster.dir}")
        cluster.up(progress=_progress)
        res = asyncio.run(_measure(cluster, args))
        _print(args, res)
        return 0 if sum(1 for p in res.pods.values() if p.running) >= args.pods else 1
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _progress("interrupted")
        return 130
    finally:
        try:
            cluster.down(progress=_progress)
        except ClusterError:
            pass
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
