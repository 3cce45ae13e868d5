"""`ketch bench controllers`: how fast the controller-manager turns Deployments into pods.

Flow: start a cluster in a work dir (store ×3, apiserver, controller-manager; no scheduler and
no nodes, so only the controllers work) → create ``--deployments`` Deployments of
``--replicas`` replicas from ``--clients`` concurrent clients while a watch counts pod objects
→ report the time from the first create until every pod exists, the create and pod rates, and
the controller-manager's CPU seconds and peak memory → stop everything (also on Ctrl-C).

``--kcm-defaults`` runs ketch's controller-manager with kube-controller-manager's client
limits (QPS 20, burst 30; 5 concurrent syncs per controller is the default either way), so
the table can show what those limits cost on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certs.layout import admin_paths
from control.api.errors import APIError
from control.client import ApiClient, ClientConfig, Informer
from control.client import resources as R
from ketch.bench.machine import process_ticks
from ketch.cluster import Cluster, ClusterError

__all__ = ["add_parser", "run_controllers"]

_TICK = 100.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("controllers", help="Deployments to pod objects through the "
                       "controller-manager")
    p.add_argument("--deployments", type=int, default=1000)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--clients", type=int, default=16, help="concurrent creating clients")
    p.add_argument("--kcm-defaults", action="store_true",
                   help="run with kube-controller-manager's client QPS 20 / burst 30")
    p.add_argument("--timeout", type=float, default=900.0, help="give up after this long")
    p.add_argument("--dir", default="", help="work dir (default: a new temporary one, removed)")
    p.set_defaults(func=run_controllers)


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
class Result:
    created_s: float = 0.0
    all_pods_s: float = 0.0
    pods: int = 0
    cm_cpu_s: float = 0.0
    cm_rss_peak_mib: float = 0.0
    api_cpu_s: float = 0.0
    errors: int = 0


def _deployment(i: int, replicas: int) -> dict[str, Any]:
    labels = {"app": f"bench-{i}"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"bench-{i}", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c",
                                                           "image": "registry.k8s.io/pause"}]}}}}


async def _measure(cluster: Cluster, args: argparse.Namespace) -> Result:
    res = Result()
    cfg = ClientConfig.from_cert_paths(cluster.urls, admin_paths(cluster.store.certs_dir))
    want = args.deployments * args.replicas
    cm = cluster.pid("controller-manager-1")
    api = cluster.pid("apiserver-1")
    assert cm is not None and api is not None
    cm0, api0 = process_ticks(cm), process_ticks(api)
    seen: set[str] = set()
    all_seen = asyncio.Event()

    async with ApiClient(cfg, timeout=60, max_connections=args.clients + 4) as c:
        pods = Informer(c, R.PODS, namespace="default")

        def added(pod: dict[str, Any]) -> None:
            if pods.synced.is_set():  # a pod made after the start (the list's are not)
                seen.add(pod["metadata"]["name"])
                if len(seen) >= want:
                    all_seen.set()

        pods.add_handler(on_add=added)

        async def rss() -> None:
            while True:
                res.cm_rss_peak_mib = max(res.cm_rss_peak_mib, _rss_kib(cm) / 1024)
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(pods.run())
        await pods.wait_synced()
        sampler = asyncio.create_task(rss())
        queue = iter(range(args.deployments))
        started = time.monotonic()

        async def creator() -> None:
            for i in queue:
                try:
                    await c.create(R.DEPLOYMENTS, _deployment(i, args.replicas), "default")
                except APIError as e:
                    res.errors += 1
                    _progress(f"create bench-{i}: {e}")

        async def report() -> None:
            while True:
                await asyncio.sleep(5)
                _progress(f"  {time.monotonic() - started:6.1f}s: {len(seen)}/{want} pods")

        reporter = asyncio.create_task(report())
        await asyncio.gather(*(creator() for _ in range(args.clients)))
        res.created_s = time.monotonic() - started
        _progress(f"{args.deployments} Deployments created in {res.created_s:.1f}s")
        try:
            await asyncio.wait_for(all_seen.wait(), args.timeout)
        except TimeoutError:
            _progress(f"timed out with {len(seen)}/{want} pods")
        res.all_pods_s = time.monotonic() - started
        res.pods = len(seen)
        for t in (watcher, sampler, reporter):
            t.cancel()
        await asyncio.gather(watcher, sampler, reporter, return_exceptions=True)
    res.cm_cpu_s = (process_ticks(cm) - cm0) / _TICK
    res.api_cpu_s = (process_ticks(api) - api0) / _TICK
    return res


def _print(args: argparse.Namespace, res: Result) -> None:
    want = args.deployments * args.replicas
    writes = args.deployments * (1 + args.replicas + 2)  # RS + pods + RS/Deployment status
    kcm_floor = writes / 20.0
    limits = "QPS 20 / burst 30 (kube-controller-manager's)" if args.kcm_defaults else \
        "no client QPS limit (ketch's default)"
    print(f"\nketch bench controllers: {args.deployments} Deployments x {args.replicas} "
          f"replicas, {args.clients} creating clients; controller-manager with {limits}, "
          f"5 workers per controller")
    print(f"{'':44} {'ketch':>14}")
    print(f"{'Deployments created (s)':44} {res.created_s:>14.1f}")
    print(f"{'every pod object exists (s)':44} {res.all_pods_s:>14.1f}")
    print(f"{'pods seen':44} {res.pods:>8}/{want}")
    print(f"{'pods per second':44} {res.pods / max(res.all_pods_s, 1e-9):>14.1f}")
    print(f"{'controller-manager CPU (s)':44} {res.cm_cpu_s:>14.1f}")
    print(f"{'controller-manager CPU per 1,000 pods (s)':44} "
          f"{res.cm_cpu_s * 1000 / max(res.pods, 1):>14.2f}")
    print(f"{'controller-manager peak RSS (MiB)':44} {res.cm_rss_peak_mib:>14.0f}")
    print(f"{'apiserver CPU (s)':44} {res.api_cpu_s:>14.1f}")
    print(f"{'create errors':44} {res.errors:>14}")
    print("\nbeside kube-controller-manager's defaults (5 concurrent syncs, client QPS 20/30):")
    print(f"  the same work needs about {writes:,} writes (ReplicaSet, pods, statuses); at "
          f"20 requests/s that is at least {kcm_floor:,.0f} s before any pod-creation "
          f"latency — the client limit, not the work, bounds it.")


def run_controllers(args: argparse.Namespace) -> int:
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ketch-bench-cm-"))
    cluster = Cluster(root / "cluster", controller_managers=1, schedulers=0, nodes=0)
    try:
        _progress(f"starting store x3 + apiserver + controller-manager in {cluster.dir}")
        cluster.up(progress=_progress)
        if args.kcm_defaults:
            cm = cluster.component("controller-manager-1")
            cluster.stop(cm.name)
            argv = cluster.argv(cm)
            cluster.argv = lambda c, _a=argv: [*_a, "--kube-api-qps", "20",  # type: ignore
                                               "--kube-api-burst", "30"]
            cluster.start(cm.name, _progress)
            cluster.wait_ready(cm.name, _progress)
        res = asyncio.run(_measure(cluster, args))
        _print(args, res)
        return 0 if res.pods >= args.deployments * args.replicas else 1
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
