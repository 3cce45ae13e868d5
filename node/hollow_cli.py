"""``ketch node --hollow --count N ...`` (or ``python -m node --hollow ...``): N hollow node
agents in this process (:mod:`node.hollow`), for scale tests.

``--kubeconfig`` says where the apiserver is and which CA it has (its identity is not used);
each hollow node presents its own ``system:node:NAME`` certificate, issued (or reused) from
the cluster CA in ``--certs`` (``nodes/NAME.crt``, as ``ketch certs node NAME`` makes).
``--name`` is the prefix: nodes ``NAME-FIRST`` .. ``NAME-(FIRST+N-1)``, state under
``--dir/NAME-i``.  The agents' own flags (lease, node status, capacity, client rate) apply to
every hollow node.  Hollow nodes always leave their (imaginary) pods to the API when stopped.
SIGTERM or SIGINT stops them all; a line every 10 s says how many are up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from certs.authority import CertsError
from certs.kubeconfig import read_kubeconfig
from control.api.quantity import parse_quantity
from control.client.process import configure_logging, run_main, stop_event

from .config import positive_seconds
from .hollow import HollowConfig, HollowNodes

__all__ = ["add_hollow_arguments", "run_hollow"]

log = logging.getLogger("ketch.node.hollow")


def add_hollow_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hollow nodes (kubemark's idea: many agents, fake runtime)")
    g.add_argument("--hollow", action="store_true",
                   help="run --count hollow agents in this process instead of one real agent")
    g.add_argument("--count", type=int, default=1, help="hollow agents to run")
    g.add_argument("--first", type=int, default=1, help="index of the first hollow node")
    g.add_argument("--certs", default="", help="the cluster's certificate directory (its CA "
                   "issues each hollow node's client certificate)")
    g.add_argument("--start-rate", type=float, default=50.0,
                   help="hollow agents started per second (0: all at once)")


def hollow_config(args: argparse.Namespace) -> HollowConfig:
    """The hollow nodes' settings from the flags; ValueError naming a bad one."""
    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    if not args.certs:
        raise ValueError("--hollow needs --certs (the cluster CA issues each node's identity)")
    kc = read_kubeconfig(args.kubeconfig)
    servers = tuple(s.strip().rstrip("/") for s in kc["server"].split(",") if s.strip())
    cpus = int(parse_quantity(args.cpu)) if args.cpu else 4
    memory = int(parse_quantity(args.memory)) if args.memory else 16 << 30
    agent = {"lease_duration": args.lease_duration,
             "status_report_seconds": args.node_status_update,
             "status_compute_seconds": args.node_status_compute, "max_pods": args.max_pods,
             "pod_cidr_wait": args.pod_cidr_wait, "sync_seconds": positive_seconds("--sync-frequency", args.sync_frequency)}
    return HollowConfig(count=args.count, first=args.first, prefix=args.name, dir=args.dir,
                        certs=args.certs, servers=servers + tuple(args.server), cpus=cpus,
                        memory_bytes=memory, start_rate=args.start_rate,
                        client_qps=args.kube_api_qps, client_burst=args.kube_api_burst,
                        agent=agent)


async def _amain(config: HollowConfig) -> int:
    nodes = HollowNodes(config)
    stop = stop_event()
    work = asyncio.create_task(nodes.run(), name="hollow nodes")
    waiter = asyncio.create_task(stop.wait())
    reported = -1
    try:
        while not work.done() and not waiter.done():
            await asyncio.wait({work, waiter}, timeout=10.0)
            if nodes.ready != reported:
                reported = nodes.ready
                log.info("%d/%d hollow nodes up", reported, config.count)
    finally:
        nodes.stop()
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
    if nodes.failures:
        log.warning("hollow nodes that failed at least once: %s", nodes.failures)
    return 0


def run_hollow(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        config = hollow_config(args)
    except (ValueError, OSError, CertsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run_main(_amain(config))
