"""``python -m control.controllers --kubeconfig F``: the controller-manager process.

Identity: the kubeconfig's client certificate (``system:kube-controller-manager`` from
``ketch certs``).  Leader-elected on ``kube-system/kube-controller-manager`` unless
``--leader-elect=false``; standbys keep warm caches.  ``--listen`` serves /metrics, /healthz,
/readyz and /leader over HTTPS (client certificates required) with ``--serving-cert/-key``.
SIGTERM stops it cleanly and releases the Lease, so a standby takes over at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from certs.authority import CertsError
from certs.kubeconfig import read_kubeconfig
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

from . import expectations
from .base import ControllerContext, Settings
from .manager import DEFAULT_CONTROLLERS, ControllerManager
from .metrics import ControllerMetrics
from .registry import CONTROLLERS

log = logging.getLogger("ketch.controllers")

LEASE = ("kube-system", "kube-controller-manager")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m control.controllers",
                                description="Run ketch's controller-manager.")
    add_arguments(p)
    return p.parse_args(argv)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", required=True, help="kubeconfig with this identity")
    p.add_argument("--server", action="append", default=[],
                   help="another apiserver URL to fail over to (repeatable)")
    p.add_argument("--controllers", default="*",
                   help="comma-separated names, '*' for all, '-name' to leave one out; known: "
                   + ",".join(sorted(CONTROLLERS)))
    p.add_argument("--leader-elect", type=_bool, default=True, metavar="BOOL")
    p.add_argument("--leader-elect-lease-duration", type=float, default=8.0)
    p.add_argument("--leader-elect-renew-deadline", type=float, default=5.0)
    p.add_argument("--leader-elect-retry-period", type=float, default=1.0)
    p.add_argument("--concurrent-syncs", type=int, default=5,
                   help="workers per controller (Kubernetes: 5)")
    p.add_argument("--concurrent", action="append", default=[], metavar="NAME=N",
                   help="workers for one controller, e.g. garbagecollector=20")
    p.add_argument("--kube-api-qps", type=float, default=0,
                   help="client requests per second (0: unlimited; Kubernetes: 20)")
    p.add_argument("--kube-api-burst", type=int, default=0)
    p.add_argument("--node-monitor-grace-period", type=float, default=50.0)
    p.add_argument("--node-monitor-period", type=float, default=5.0)
    p.add_argument("--cluster-cidr", default="127.64.0.0/10")
    p.add_argument("--node-cidr-mask-size", type=int, default=24)
    p.add_argument("--terminated-pod-gc-threshold", type=int, default=12500)
    p.add_argument("--listen", default="", help="HOST:PORT for /metrics and /healthz")
    p.add_argument("--serving-cert", default="")
    p.add_argument("--serving-key", default="")
    p.add_argument("--ca", default="", help="CA for the listener's client certificates")
    p.add_argument("--record-writes", default="", metavar="FILE",
                   help="append a JSON line per write request, with this process's lease "
                        "term (chaos runs)")
    p.add_argument("--sabotage", choices=sabotage.KINDS["controller-manager"],
                   help="run deliberately broken (chaos proofs; needs KETCH_ALLOW_SABOTAGE=1)")
    p.add_argument("--log-level", default="INFO")


def controller_names(spec: str) -> list[str]:
    """kube-controller-manager's ``--controllers``: ``*`` is every controller, ``name``
    enables one, ``-name`` disables one (``*,-disruption``)."""
    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if item == "*":
            names += [n for n in DEFAULT_CONTROLLERS if n not in names]
        elif item.startswith("-"):
            names = [n for n in names if n != item[1:]]
        elif item and item not in names:
            names.append(item)
    unknown = [n for n in names if n not in CONTROLLERS]
    if unknown:
        raise SystemExit(f"error: unknown controller(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(CONTROLLERS))}")
    return names


def settings_of(args: argparse.Namespace, ca_pem: bytes) -> Settings:
    concurrency = {}
    for item in args.concurrent:
        name, _, n = item.partition("=")
        concurrency[name] = int(n)
    return Settings(concurrency=concurrency, default_concurrency=args.concurrent_syncs,
                    node_monitor_grace=args.node_monitor_grace_period,
                    node_monitor_period=args.node_monitor_period,
                    cluster_cidr=args.cluster_cidr, node_cidr_mask=args.node_cidr_mask_size,
                    terminated_pod_gc_threshold=args.terminated_pod_gc_threshold, ca_pem=ca_pem)


async def amain(args: argparse.Namespace) -> int:
    kind = sabotage.permit("controller-manager", args.sabotage)
    config = ClientConfig.from_kubeconfig(args.kubeconfig, extra_servers=tuple(args.server))
    ca_pem = read_kubeconfig(args.kubeconfig)["ca_pem"]
    metrics = ControllerMetrics()
    names = controller_names(args.controllers)
    expectations.SKIP_FOR_SABOTAGE = kind == "skip-expectations"
    stop = stop_event()
    identity = lease_identity()
    writes = WriteLog(args.record_writes, identity, then=metrics.request) \
        if args.record_writes else None
    # The Lease is renewed on a client of its own (kube-controller-manager's "leader-election"
    # client): behind the controllers' hundred busy connections and rate limit, a renewal
    # waited past the renew deadline on a loaded apiserver and the manager exited.
    async with ApiClient(config, user_agent="kube-controller-manager/ketch",
                         qps=args.kube_api_qps, burst=args.kube_api_burst,
                         on_request=writes or metrics.request) as client, \
            ApiClient(config, user_agent="kube-controller-manager/ketch leader-election",
                      timeout=args.leader_elect_renew_deadline) as lease_client:
        elector = None
        if args.leader_elect:
            elector = LeaderElector(lease_client, LeaseConfig(
                *LEASE, identity, lease_duration=args.leader_elect_lease_duration,
                renew_deadline=args.leader_elect_renew_deadline,
                retry_period=args.leader_elect_retry_period))
            elector.keep_leading_for_sabotage = kind == "keep-leading"
            if writes is not None:
                writes.follow(elector)
        ctx = ControllerContext(client, InformerFactory(client), EventRecorder(
            client, component="controller-manager"), client.clock, metrics,
            settings_of(args, ca_pem))
        manager = ControllerManager(ctx, names, elector=elector)
        runner = None
        if args.listen:
            tls = server_context(CertPaths(Path(args.ca), Path(args.serving_cert),
                                           Path(args.serving_key)))
            app = health_app(metrics.registry, checks={
                "informer-sync": lambda: None if all(
                    i.synced.is_set() for i in ctx.informers.informers) else "caches syncing"},
                leader=lambda: identity if manager.leading else "")
            runner = await serve_health(app, args.listen, tls)
        log.info("controller-manager %s starting: %s", identity, ", ".join(names))
        work = asyncio.create_task(manager.run(), name="controller-manager")
        waiter = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            work.cancel()
            waiter.cancel()
            await asyncio.gather(work, waiter, return_exceptions=True)
            if runner is not None:
                await runner.cleanup()
        if work.done() and not work.cancelled() and work.exception() is not None:
            log.error("controller-manager failed: %r", work.exception())
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse(argv))


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        return run_main(amain(args))
    except (CertsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
