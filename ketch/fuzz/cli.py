"""``ketch fuzz``: the apiserver and store fuzz run (see :mod:`ketch.fuzz.run`)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

__all__ = ["register"]


def _fuzz(args: argparse.Namespace) -> int:
    from .run import FINDINGS, run_api, run_store, summary, write_report

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="ketch-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    phases = []
    if args.requests:
        print(f"==> apiserver: {args.requests:,} generated requests (seed {args.seed}) against "
              f"ketch up in {workdir}", flush=True)
        phases.append(run_api(workdir, args.requests, args.seed, args.concurrency,
                              lambda m: print(m, flush=True)))
    if args.store_requests:
        print(f"==> store: {args.store_requests:,} malformed CBOR requests (seed {args.seed})",
              flush=True)
        phases.append(run_store(workdir, args.store_requests, args.seed, args.concurrency,
                                lambda m: print(m, flush=True)))
    print("\n" + summary(phases))
    report = workdir / "fuzz-report.json"
    write_report(report, phases, sys.argv)
    print(f"\nreport: {report}")
    bad = sum(sum(v for k, v in p.counts.items() if k in FINDINGS) for p in phases)
    return 1 if bad else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "fuzz", help="throw generated bad input at a real apiserver and store",
        description="Start ketch up (store + apiserver) and a separate store, send generated "
        "requests (schemathesis from the apiserver's OpenAPI, Hypothesis strategies, malformed "
        "CBOR) and report 5xx answers, hangs, crashes, anything stored by a refused request "
        "and memory growth.  Exit 1 on any finding.")
    p.add_argument("--requests", type=int, default=100_000, help="apiserver requests")
    p.add_argument("--store-requests", type=int, default=100_000, help="store requests")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--dir", help="work directory (default: a new temporary one)")
    p.set_defaults(func=_fuzz)
