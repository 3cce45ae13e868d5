"""The scheduler process: ``python -m control.scheduler --kubeconfig F`` (or ``ketch
scheduler``).

Identity ``system:kube-scheduler`` (from the kubeconfig's client certificate).  With
``--leader-elect`` it campaigns for the Lease ``kube-system/kube-scheduler`` and schedules
only while holding it; its informers run either way, so a standby takes over with a warm
cache.  Its writes go through a client fenced by the lease; the lease itself is written by a
separate, unfenced client.  ``--metrics-port`` serves ``/metrics`` and ``/healthz`` on
loopback.  SIGTERM/SIGINT stop it cleanly and release the lease.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from control.client import (
    ApiClient,
    ClientConfig,
    EventRecorder,
    InformerFactory,
    LeaderElector,
    LeaseConfig,
)

from .metrics import Metrics
from .scheduler import Scheduler

__all__ = ["add_arguments", "main", "serve"]

log = logging.getLogger("ketch.scheduler")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of system:kube-scheduler")
    p.add_argument("--leader-elect", action="store_true",
                   help="campaign for the Lease kube-system/kube-scheduler; schedule only "
                        "while holding it")
    p.add_argument("--lease-name", default="kube-scheduler")
    p.add_argument("--lease-namespace", default="kube-system")
    p.add_argument("--scheduler-name", default="default-scheduler",
                   help="schedule pods whose spec.schedulerName is this")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="serve /metrics and /healthz on 127.0.0.1:PORT (0: off)")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=0,
                   help="0: adaptive, as kube-scheduler (50%% - nodes/125, at least 5%%)")
    p.add_argument("--bind-concurrency", type=int, default=64)
    p.add_argument("--qps", type=float, default=0.0, help="API requests per second (0: no cap)")
    p.add_argument("--no-scheduled-events", action="store_true",
                   help="do not write a 'Scheduled' event per bound pod")
    p.add_argument("--log-level", default="INFO")


async def _metrics_server(port: int, metrics: Metrics) -> web.AppRunner:
    async def scrape(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def serve(args: argparse.Namespace) -> int:
    config = ClientConfig.from_kubeconfig(args.kubeconfig)
    identity = f"{socket.gethostname()}_{os.getpid()}_{os.urandom(4).hex()}"
    client = ApiClient(config, user_agent=f"ketch-scheduler/{identity}", qps=args.qps)
    lease_client = ApiClient(config, user_agent=f"ketch-scheduler/{identity}/lease")
    factory = InformerFactory(client)
    metrics = Metrics()
    recorder = EventRecorder(client, component=args.scheduler_name)
    sched = Scheduler(client, factory, name=args.scheduler_name, recorder=recorder,
                      metrics=metrics, percentage=args.percentage_of_nodes_to_score,
                      bind_concurrency=args.bind_concurrency)
    if args.no_scheduled_events:
        sched.scheduled_events = False
    work: Callable[[], Coroutine[Any, Any, None]] = sched.run
    if args.leader_elect:
        elector = LeaderElector(lease_client, LeaseConfig(
            args.lease_namespace, args.lease_name, identity),
            on_change=lambda holder: log.info("lease %s/%s held by %s", args.lease_namespace,
                                              args.lease_name, holder or "nobody"))
        client.fence = elector.is_leading
        work = lambda: elector.run(sched.run)
    runner = await _metrics_server(args.metrics_port, metrics) if args.metrics_port else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("scheduler %s starting as %s (leader election %s)", args.scheduler_name,
             config.user, "on" if args.leader_elect else "off")
    factory.start()
    tasks = [asyncio.create_task(work(), name="scheduling"),
             asyncio.create_task(recorder.run(), name="events")]
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopping, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done and tasks[0].exception() is not None:
            log.error("scheduling stopped: %r", tasks[0].exception())
            return 1
        return 0
    finally:
        for t in (*tasks, stopping):
            t.cancel()
        await asyncio.gather(*tasks, stopping, return_exceptions=True)
        with contextlib.suppress(Exception):
            await recorder.flush(1.0)
        await factory.stop()
        if runner is not None:
            await runner.cleanup()
        await client.close()
        await lease_client.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m control.scheduler",
                                description="Run ketch's scheduler.")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        return int(uvloop.run(serve(args)))
    except ImportError:  # uvloop is a dependency; fall back only where it cannot install
        return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
