"""The scheduler process: ``python -m control.scheduler --kubeconfig F`` (or ``ketch
scheduler``).

Identity ``system:kube-scheduler`` (from the kubeconfig's client certificate).  Leader-elected
on the Lease ``kube-system/kube-scheduler`` unless ``--leader-elect=false``: it schedules only
while holding the Lease, and its informers run either way, so a standby takes over with a warm
cache.  Its writes go through a client fenced by the lease (not one write after the lease is
lost); the lease itself is written by a separate, unfenced client.  ``--listen`` serves
/metrics, /healthz, /readyz and /leader over HTTPS (client certificates required);
``--metrics-port`` serves /metrics and /healthz in plain HTTP on loopback (benchmarks).
SIGTERM/SIGINT stop it cleanly and release the Lease, so a standby takes over at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from certs.authority import CertsError
from certs.layout import CertPaths
from certs.tls import server_context
from control.api import sabotage
from control.client import (
    ApiClient,
    ClientConfig,
    EventRecorder,
    InformerFactory,
    LeaderElector,
    LeaseConfig,
)
from control.client.health import health_app, serve_health
from control.client.process import configure_logging, lease_identity, run_main, stop_event
from control.client.writelog import WriteLog

from .metrics import Metrics
from .scheduler import Scheduler

__all__ = ["add_arguments", "main", "run", "serve"]

log = logging.getLogger("ketch.scheduler")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of system:kube-scheduler")
    p.add_argument("--server", action="append", default=[],
                   help="another apiserver URL to fail over to (repeatable)")
    p.add_argument("--leader-elect", type=_bool, nargs="?", const=True, default=True,
                   metavar="BOOL", help="campaign for the Lease kube-system/kube-scheduler and "
                   "schedule only while holding it (default true)")
    p.add_argument("--leader-elect-lease-duration", type=float, default=8.0)
    p.add_argument("--leader-elect-renew-deadline", type=float, default=5.0)
    p.add_argument("--leader-elect-retry-period", type=float, default=1.0)
    p.add_argument("--lease-name", default="kube-scheduler")
    p.add_argument("--lease-namespace", default="kube-system")
    p.add_argument("--scheduler-name", default="default-scheduler",
                   help="schedule pods whose spec.schedulerName is this")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=0,
                   help="0: adaptive, as kube-scheduler (50%% - nodes/125, at least 5%%)")
    p.add_argument("--bind-concurrency", type=int, default=256)
    p.add_argument("--kube-api-qps", type=float, default=0.0,
                   help="client requests per second (0: unlimited; Kubernetes: 50)")
    p.add_argument("--no-scheduled-events", action="store_true",
                   help="do not write a 'Scheduled' event per bound pod")
    p.add_argument("--listen", default="", help="HOST:PORT for /metrics, /healthz, /readyz "
                   "and /leader over HTTPS")
    p.add_argument("--serving-cert", default="")
    p.add_argument("--serving-key", default="")
    p.add_argument("--ca", default="", help="CA for the listener's client certificates")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="also serve /metrics and /healthz in plain HTTP on 127.0.0.1:PORT")
    p.add_argument("--record-writes", default="", metavar="FILE",
                   help="append a JSON line per write request, with this process's lease "
                        "term (chaos runs)")
    p.add_argument("--sabotage", choices=sabotage.KINDS["scheduler"],
                   help="run deliberately broken (chaos proofs; needs KETCH_ALLOW_SABOTAGE=1)")
    p.add_argument("--log-level", default="INFO")


async def _plain_metrics(port: int, metrics: Metrics) -> web.AppRunner:
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
    kind = sabotage.permit("scheduler", args.sabotage)
    config = ClientConfig.from_kubeconfig(args.kubeconfig, extra_servers=tuple(args.server))
    identity = lease_identity()
    writes = WriteLog(args.record_writes, identity) if args.record_writes else None
    client = ApiClient(config, user_agent="kube-scheduler/ketch", qps=args.kube_api_qps,
                       max_connections=args.bind_concurrency + 32, on_request=writes)
    lease_client = ApiClient(config, user_agent="kube-scheduler/ketch leader-election")
    factory = InformerFactory(client)
    metrics = Metrics()
    recorder = EventRecorder(client, component=args.scheduler_name)
    sched = Scheduler(client, factory, name=args.scheduler_name, recorder=recorder,
                      metrics=metrics, percentage=args.percentage_of_nodes_to_score,
                      bind_concurrency=args.bind_concurrency)
    sched.scheduled_events = not args.no_scheduled_events
    work: Callable[[], Coroutine[Any, Any, None]] = sched.run
    leading: Callable[[], bool] = lambda: True
    if args.leader_elect:
        elector = LeaderElector(lease_client, LeaseConfig(
            args.lease_namespace, args.lease_name, identity,
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period),
            on_change=lambda holder: log.info("lease %s/%s held by %s", args.lease_namespace,
                                              args.lease_name, holder or "nobody"))
        elector.keep_leading_for_sabotage = kind == "keep-leading"
        if writes is not None:
            writes.follow(elector)
        client.fence = elector.is_leading
        leading = elector.is_leading
        work = lambda: elector.run(sched.run)
    runners: list[Any] = []
    if args.listen:
        tls = server_context(CertPaths(Path(args.ca), Path(args.serving_cert),
                                       Path(args.serving_key)))
        app = health_app(metrics.registry, checks={
            "informer-sync": lambda: None if all(
                i.synced.is_set() for i in (sched.pods, sched.nodes)) else "caches syncing"},
            leader=lambda: identity if leading() else "")
        runners.append(await serve_health(app, args.listen, tls))
    if args.metrics_port:
        runners.append(await _plain_metrics(args.metrics_port, metrics))
    stop = stop_event()
    log.info("scheduler %s starting as %s (%s), leader election %s", args.scheduler_name,
             config.user, identity, "on" if args.leader_elect else "off")
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
        for runner in runners:
            await runner.cleanup()
        await client.close()
        await lease_client.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m control.scheduler",
                                description="Run ketch's scheduler.")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        return run_main(serve(args))
    except (CertsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
