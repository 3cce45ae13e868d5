"""`ketch bench store`: the same load through one asyncio client stack against ketch and etcd.

Flow: parse → make a work dir → for each system in turn (ketch first, because etcd's
certificates are issued from ketch's CA): start its 3-member cluster, check a put/get round trip,
run the throughput matrix or the failover series (`scenarios`), stop it → print the tables
(`report`).  Only one cluster runs at a time so the two never compete for the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ketch.bench import etcd as etcd_mod
from ketch.bench.machine import CpuMeter
from ketch.bench.report import format_cpu_note, format_failover, format_table, to_json
from ketch.bench.scenarios import OPS, Figures, Settings, check, failover, throughput
from ketch.bench.targets import ENDPOINT_MODES, EtcdTarget, KetchTarget, Target

__all__ = ["parse_concurrency", "register", "run_store"]

DEFAULT_CONCURRENCY = (1, 16, 64, 256)
FAILOVER_CONCURRENCY = 16


def parse_concurrency(values: Sequence[str] | None, default: Sequence[int]) -> list[int]:
    """Flatten repeated/comma-separated ``--concurrency`` values; sorted, unique, each ≥ 1."""
    if not values:
        return list(default)
    out: set[int] = set()
    for value in values:
        for part in value.split(","):
            if part.strip():
                n = int(part)
                if n < 1:
                    raise argparse.ArgumentTypeError(f"concurrency must be >= 1, got {n}")
                out.add(n)
    return sorted(out)


def register(subparsers: Any) -> None:
    """Add ``bench store`` and ``bench api`` to the top-level ``ketch`` subparsers; ``func``
    returns an exit code."""
    bench = subparsers.add_parser("bench", help="benchmarks")
    sub = bench.add_subparsers(dest="bench_command", required=True)
    p = sub.add_parser("store", help="ketch's 3-replica store vs a 3-member etcd, same client load")
    p.add_argument(
        "--concurrency",
        action="append",
        metavar="N[,N...]",
        help="closed-loop workers (repeatable; default 1,16,64,256; failover: 16)",
    )
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each run")
    p.add_argument("--system", choices=("ketch", "etcd", "both"), default="both")
    p.add_argument("--ops", default="put,get", help="operations to run: put,get (default both)")
    p.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    p.add_argument(
        "--keys", type=int, default=1000, help="distinct keys cycled over (default 1000)"
    )
    p.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, seconds")
    p.add_argument(
        "--failover",
        action="store_true",
        help="SIGKILL the leader under steady writes and report the longest write gaps",
    )
    p.add_argument("--kills", type=int, default=5, help="leader kills in --failover (default 5)")
    p.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="--failover: seconds of steady writes before each kill",
    )
    p.add_argument(
        "--no-coalesce",
        action="store_true",
        help="ketch's client sends one request per op, as the etcd client does "
        "(by default it batches concurrent ops into one request)",
    )
    p.add_argument(
        "--ketch-no-fsync",
        action="store_true",
        help="run ketch's replicas with fsync off (acknowledged once in a majority's page "
        "cache), to measure what fsync costs; etcd 3.4 cannot turn it off",
    )
    p.add_argument(
        "--etcd-endpoints",
        choices=ENDPOINT_MODES,
        default="leader",
        help="etcd requests go to the known leader (like ketch's client; default) "
        "or round-robin to any member (like clientv3)",
    )
    p.add_argument(
        "--etcd-election-timeout",
        type=int,
        metavar="MS",
        help="etcd --election-timeout (default: etcd's own, 1000)",
    )
    p.add_argument(
        "--etcd-heartbeat-interval",
        type=int,
        metavar="MS",
        help="etcd --heartbeat-interval (default: etcd's own, 100)",
    )
    p.add_argument("--dir", type=Path, help="work dir (default: a temp dir, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, data, certs)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.set_defaults(func=run_store)

    from ketch.bench.api import add_parser as add_api  # imports this module: bind late
    from ketch.bench.cluster import add_parser as add_cluster
    from ketch.bench.controllers import add_parser as add_controllers
    from ketch.bench.pods import add_parser as add_pods
    from ketch.bench.scheduler import add_parser as add_scheduler

    add_api(sub)
    add_scheduler(sub)
    add_controllers(sub)
    add_pods(sub)
    add_cluster(sub)


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def _idle_check(system: str) -> None:
    """Say how busy the machine is before a cluster starts: others' load skews every figure."""
    meter = CpuMeter(list)
    meter.start()
    await asyncio.sleep(1.0)
    share = meter.stop()
    if share is not None:
        _progress(f"{system}: machine {share.others:.0%} busy before start (other processes)")


def _settings(args: argparse.Namespace) -> Settings:
    ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
    unknown = [o for o in ops if o not in OPS]
    if unknown or not ops:
        raise argparse.ArgumentTypeError(f"--ops takes {', '.join(OPS)}; got {args.ops!r}")
    for name, value, low in (
        ("--seconds", args.seconds, 0.0),
        ("--timeout", args.timeout, 0.0),
        ("--settle", args.settle, 0.0),
    ):
        if not value > low:
            raise argparse.ArgumentTypeError(f"{name} must be > {low:g}, got {value}")
    for name, count in (("--kills", args.kills), ("--keys", args.keys)):
        if count < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {count}")
    if args.warmup < 0 or args.value_size < 0:
        raise argparse.ArgumentTypeError("--warmup and --value-size must be >= 0")
    return Settings(
        seconds=args.seconds,
        warmup=args.warmup,
        value_size=args.value_size,
        keys=args.keys,
        timeout=args.timeout,
        ops=ops,
        kills=args.kills,
        settle=args.settle,
    )


def _make_target(
    system: str, root: Path, args: argparse.Namespace, ca_dir: Path | None, max_conc: int
) -> Target:
    if system == "ketch":
        return KetchTarget(
            root / "ketch",
            timeout=args.timeout,
            progress=_progress,
            coalesce=False if args.no_coalesce else None,
            fsync=not args.ketch_no_fsync,
        )
    assert ca_dir is not None
    extra = []
    if args.etcd_election_timeout is not None:
        extra.append(f"--election-timeout={args.etcd_election_timeout}")
    if args.etcd_heartbeat_interval is not None:
        extra.append(f"--heartbeat-interval={args.etcd_heartbeat_interval}")
    return EtcdTarget(
        root / "etcd",
        ca_dir=ca_dir,
        concurrency=max_conc,
        timeout=args.timeout,
        endpoints=args.etcd_endpoints,
        extra_args=extra,
        progress=_progress,
    )


async def _run(
    args: argparse.Namespace, settings: Settings, concs: Sequence[int], root: Path
) -> int:
    systems = ["ketch", "etcd"] if args.system == "both" else [args.system]
    figures = Figures()
    ca_dir: Path | None = None
    failed = False
    for system in systems:
        await _idle_check(system)
        if system == "etcd" and ca_dir is None:
            ca_dir = await asyncio.to_thread(etcd_mod.create_ca, root / "ca")
        target = _make_target(system, root, args, ca_dir, max(concs))
        try:
            _progress(f"{system}: starting a 3-member cluster in {root / system}")
            await target.setup()
            if isinstance(target, KetchTarget):
                ca_dir = target.certs_dir
            await check(target, settings)
            for conc in concs if args.failover else ():
                label = system if len(concs) == 1 else f"{system} c={conc}"
                await failover(target, settings, conc, figures, _progress, label=label)
            if not args.failover:
                await throughput(target, settings, concs, figures, _progress)
        except Exception as exc:  # noqa: BLE001 - report, and still measure the other system
            _progress(f"{system}: FAILED: {type(exc).__name__}: {exc}")
            failed = True
        finally:
            await target.close()
    if figures.results:
        print(format_table(figures.results, systems=systems))
    if figures.kills:
        print(format_failover(figures.kills))
    if note := format_cpu_note(figures.cpu):
        print(note)
    if args.json:
        args.json.write_text(json.dumps(to_json(figures), indent=2) + "\n")
    return 1 if failed else 0


def run_store(args: argparse.Namespace) -> int:
    """Entry point of ``ketch bench store``: 0 if every system ran, 1 if one failed to, 2 on
    bad arguments.  The work dir is removed afterwards unless ``--keep`` or ``--dir``."""
    try:
        settings = _settings(args)
        default = (FAILOVER_CONCURRENCY,) if args.failover else DEFAULT_CONCURRENCY
        concs = parse_concurrency(args.concurrency, default)
    except (argparse.ArgumentTypeError, ValueError) as e:
        print(f"ketch bench store: {e}", file=sys.stderr)
        return 2
    root = args.dir or Path(tempfile.mkdtemp(prefix="ketch-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(_run(args, settings, concs, root))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_run(args, settings, concs, root))
    finally:
        if args.keep or args.dir:
            _progress(f"work dir kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
