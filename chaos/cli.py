"""``ketch chaos run``: kill, pause and partition a real store cluster under load, then check.
With ``--api`` two apiservers run on it too, under an API workload, and are killed and cut off.
With ``--cluster`` the whole cluster runs (two apiservers, controller-managers and schedulers,
three node agents) under an apps workload; every component is killed, paused or cut off, and
the cluster must converge after each fault and never break its safety guarantees.

Exit code 0 when every checker passed, 1 on any violation, 3 when a checker could not decide
(e.g. the linearizability search ran out of time), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from control.client.process import Terminated, run_until_signalled

__all__ = ["PYSYNCOBJ_PIPELINE", "register"]

# pysyncobj's defaults, under which its truncation bug loses acknowledged writes.
PYSYNCOBJ_PIPELINE = {"raft_batch_bytes": 65536, "max_inflight_entries": 512,
                      "max_entry_commands": 1}


_CLUSTER_SABOTAGE = {"skip-expectations": {"controller-manager": "skip-expectations"},
                     "keep-leading": {"controller-manager": "keep-leading",
                                      "scheduler": "keep-leading"},
                     "keep-replaced-pods": {"node": "keep-replaced-pods"}}
_STORE_SABOTAGE = ("ack-before-commit", "stale-reads", "watch-skip")


def _run(args: argparse.Namespace) -> int:
    from .report import render_text, write_report
    from .runner import run, scenario_faults

    try:
        if args.cluster:
            from .cluster_runner import cluster_fault_names

            cluster_fault_names(args.scenario)
        else:
            scenario_faults(args.scenario, api=args.api)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    if (args.sabotage in _CLUSTER_SABOTAGE) != bool(args.cluster) and args.sabotage:
        print(f"--sabotage {args.sabotage} " + ("needs --cluster" if not args.cluster else
              "breaks the store; with --cluster use skip-expectations, keep-leading or "
              "keep-replaced-pods"), file=sys.stderr)
        return 2
    defaults = (2, 50.0, 2) if args.cluster else (6, 0.0, 4)
    for name, value in zip(("clients", "think_ms", "api_clients"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.api_clients < 1:
        print("--api-clients must be at least 1", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    report_dir = Path(args.report or tempfile.mkdtemp(prefix="ketch-chaos-")).resolve()
    workdir = report_dir
    if (workdir / "cluster").exists():
        shutil.rmtree(workdir / "cluster")
    overrides: dict[str, Any] = {}
    if args.no_truncation_fix:
        overrides["raft_fixes"] = False
    if args.pipeline == "pysyncobj":
        overrides.update(PYSYNCOBJ_PIPELINE)
    actions: tuple[str, ...] | None = None
    if args.actions:
        from .cluster_workload import ACTIONS

        actions = tuple(a.strip() for a in args.actions.split(",") if a.strip())
        if not args.cluster or not set(actions) <= set(ACTIONS):
            print(f"--actions needs --cluster and names from: {', '.join(ACTIONS)}",
                  file=sys.stderr)
            return 2
    if args.sabotage:
        os.environ["KETCH_ALLOW_SABOTAGE"] = "1"
        if not args.cluster:
            overrides["extra"] = {"sabotage": args.sabotage}
    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {line}", flush=True)

    progress(f"scenario {args.scenario}, seed {seed}, {args.duration:g} s of faults; "
             f"report in {report_dir}")
    if args.cluster:
        from .cluster_runner import run_cluster

        main = run_cluster(
            scenario=args.scenario, duration=args.duration, seed=seed, workdir=workdir,
            progress=progress, overrides=overrides or None, clients=args.clients,
            keys=args.keys, think=args.think_ms / 1000, api_clients=args.api_clients,
            sabotage=_CLUSTER_SABOTAGE.get(args.sabotage or ""), bound=args.bound,
            settle=args.settle, actions=actions)
    else:
        main = run(scenario=args.scenario, duration=args.duration, seed=seed,
                   workdir=workdir, progress=progress, overrides=overrides or None,
                   clients=args.clients, keys=args.keys, think=args.think_ms / 1000,
                   flood=args.flood, api=args.api, api_clients=args.api_clients,
                   api_contend=args.api_contend)
    try:
        # Ctrl-C or kill: the run unwinds and stops every process it started (its pods too).
        result = run_until_signalled(main)
    except Terminated as e:
        progress(f"stopped by {e}; every process of the run was stopped, no verdict")
        return 128 + e.signum
    write_report(result, report_dir)
    print()
    print(render_text(result))
    print(f"\nreport, history, timeline and logs: {report_dir}")
    if result.ok:
        return 0
    return 1 if result.violations else 3


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chaos = subparsers.add_parser("chaos", help="fault-injection runs with mechanical checks")
    sub = chaos.add_subparsers(title="chaos commands", metavar="COMMAND")
    p = sub.add_parser("run", help="run a scenario against a fresh 3-replica cluster",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="all",
                   help="a fault name (kill-leader, kill-follower, kill-all, pause-leader, "
                        "isolate-leader, split-minority-majority, asymmetric, slow-links, "
                        "client-cut; with --api also kill-apiserver, cut-apiserver-store and "
                        "api-processes) or 'all' for a mixed schedule (default)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of faults (default 60)")
    p.add_argument("--seed", type=int, help="schedule seed (default: random, printed)")
    p.add_argument("--report", help="directory for the report, history, timeline and logs")
    p.add_argument("--clients", type=int, default=None,
                   help="key-value clients (default 6; 2 with --cluster)")
    p.add_argument("--keys", type=int, default=8, help="keys the clients contend on (default 8)")
    p.add_argument("--think-ms", type=float, default=None,
                   help="pause between a client's operations (long runs: keeps the history "
                        "checkable; default 0, 50 with --cluster)")
    p.add_argument("--no-truncation-fix", action="store_true",
                   help="run the store without its pysyncobj truncation workaround")
    p.add_argument("--pipeline", choices=("ketch", "pysyncobj"), default="ketch",
                   help="Raft pipelining: ketch's (big entries, default) or pysyncobj's own "
                        "(64 KiB messages, one command per entry, hundreds in flight)")
    p.add_argument("--flood", type=int, default=0,
                   help="extra writers of unique keys, one request per put (deep pipelines)")
    p.add_argument("--api", action="store_true",
                   help="also run 2 apiservers (store links through their own proxies), an "
                        "API workload on ConfigMaps with watchers, the apiserver faults and "
                        "the API checkers")
    p.add_argument("--api-clients", type=int, default=None,
                   help="API clients with --api (default 4) or --cluster (default 2)")
    p.add_argument("--api-contend", action="store_true",
                   help="with --api: a racer also sends concurrent CAS updates of shared "
                        "objects from one resourceVersion (at most one may succeed)")
    p.add_argument("--cluster", action="store_true",
                   help="the whole cluster: 2 apiservers, 2 controller-managers, 2 schedulers "
                        "and 3 node agents behind fault proxies, an apps workload "
                        "(Deployments scaled and rolled, a StatefulSet, Jobs, Services probed "
                        "through the service proxy), faults of every component, convergence "
                        "timed after each heal, and the cluster's safety checkers; scenarios "
                        "all, cluster-processes, leaders, nodes, or one fault name (also "
                        "kill-controller-manager, kill-scheduler, pause-controller-manager, "
                        "partition-controller-manager, lag-controller-manager, kill-node, "
                        "partition-node, kill-pod)")
    p.add_argument("--bound", type=float, default=30.0,
                   help="with --cluster: seconds the cluster may take to converge after a "
                        "heal (default 30)")
    p.add_argument("--settle", type=float, default=90.0,
                   help="with --cluster: seconds to wait for convergence after each heal "
                        "before the next fault (default 90)")
    p.add_argument("--actions",
                   help="with --cluster: only these workload actions, comma-separated "
                        "(scale-deployment, roll-deployment, scale-replicaset, "
                        "scale-statefulset, roll-statefulset, create-job, delete-jobs)")
    p.add_argument("--sabotage", choices=(*_STORE_SABOTAGE, *_CLUSTER_SABOTAGE),
                   help="run a deliberately broken store (ack-before-commit, stale-reads, "
                        "watch-skip) or, with --cluster, broken components "
                        "(skip-expectations, keep-leading, keep-replaced-pods), to see the "
                        "checkers catch it")
    p.set_defaults(func=_run)
    def usage(_args: argparse.Namespace) -> int:
        chaos.print_help(sys.stderr)
        return 2

    chaos.set_defaults(func=usage)
