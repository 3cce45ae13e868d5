"""`ketch bench api`: the apiserver measured through HTTPS with the admin client certificate.

Flow: parse → raise the open-files limit (watches need one socket each, in this process and in
the apiserver, which inherits it) → start a cluster (store ×3 + ``--apiservers``) in a work dir
→ the CRUD phases (`api_load`) → the watch fan-out (`api_watch`) → print each figure beside its
anchor (`api_report`) → stop the cluster, also on Ctrl-C or an error.  Progress goes to stderr,
the tables to stdout.  Exit code: 0 if every phase ran without errors (409s of a CAS are not
errors) and no watch event was lost or repeated, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Any

from certs.layout import admin_paths
from certs.tls import client_context
from control.client import ApiClient, ClientConfig
from ketch.bench.api_load import VERBS, CrudSettings, run_crud
from ketch.bench.api_report import (
    PhaseResult,
    WatchResult,
    format_crud,
    format_watch,
    phase_failed,
    to_json,
    watch_failed,
)
from ketch.bench.api_watch import WatchSettings, run_watch
from ketch.bench.cli import parse_concurrency
from ketch.bench.cpu import GroupCpu
from ketch.bench.report import format_cpu_note
from ketch.cluster import Cluster, ClusterError

__all__ = ["add_parser", "raise_nofile", "run_api"]

DEFAULT_CONCURRENCY = (1, 16, 64, 256)
_SPARE_FDS = 256  # the client's own files, the CRUD connections, the cluster's pipes


def add_parser(sub: Any) -> None:
    """Add ``api`` to the ``ketch bench`` subparsers; ``func`` returns an exit code."""
    p = sub.add_parser("api", help="the apiserver through HTTPS: CRUD latency and watch fan-out "
                       "against Kubernetes' SLOs")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each phase "
                   "(default: a fifth of --duration, at most 1)")
    p.add_argument("--concurrency", action="append", metavar="N[,N...]",
                   help="closed-loop workers (repeatable; default 1,16,64,256)")
    p.add_argument("--watchers", type=int, default=1000, help="concurrent watches (default 1000)")
    p.add_argument("--watch-events", type=int, default=200,
                   help="writes the watchers must all see (default 200)")
    p.add_argument("--watch-rate", type=float, default=50.0,
                   help="writes per second during the fan-out (default 50)")
    p.add_argument("--only", choices=("crud", "watch"), help="run one part only")
    p.add_argument("--apiservers", type=int, default=1,
                   help="apiservers to start; workers and watches are spread over them")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--dir", type=Path, help="work dir (default: a temp dir, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, certs)")
    p.set_defaults(func=run_api)


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raise_nofile(need: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``need`` (never above the hard limit,
    never lower than it is); children started afterwards inherit it.  The soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


def _settings(args: argparse.Namespace) -> tuple[CrudSettings, WatchSettings]:
    for name, value in (("--duration", args.duration), ("--timeout", args.timeout),
                        ("--watch-rate", args.watch_rate)):
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {value}")
    for name, count in (("--watchers", args.watchers), ("--watch-events", args.watch_events),
                        ("--apiservers", args.apiservers)):
        if count < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {count}")
    warmup = min(1.0, args.duration / 5) if args.warmup is None else args.warmup
    if warmup < 0:
        raise argparse.ArgumentTypeError(f"--warmup must be >= 0, got {warmup}")
    concs = parse_concurrency(args.concurrency, DEFAULT_CONCURRENCY)
    crud = CrudSettings(duration=args.duration, warmup=warmup, concurrency=tuple(concs),
                        timeout=args.timeout, verbs=VERBS)
    watch = WatchSettings(watchers=args.watchers, events=args.watch_events, rate=args.watch_rate)
    return crud, watch


def _cpu_groups(cluster: Cluster) -> GroupCpu:
    apis = [p for a in cluster.apiservers if (p := cluster.pid(a["name"])) is not None]
    store = [p for n in cluster.store.names if (p := cluster.store.pid(n)) is not None]
    return GroupCpu({"apiserver": lambda: apis, "store": lambda: store})


def _busy_note(crud: list[PhaseResult], watch: WatchResult | None) -> str:
    shares = {f"{r.verb} c={r.load.concurrency}": r.cpu for r in crud}
    if watch is not None:
        shares["watch"] = watch.cpu
    return format_cpu_note({label: c.machine for label, c in shares.items()
                            if c is not None and c.machine is not None})


async def _measure(cluster: Cluster, args: argparse.Namespace, crud_s: CrudSettings,
                   watch_s: WatchSettings) -> int:
    urls = [f"https://{a['listen']}" for a in cluster.apiservers]
    ctx = client_context(admin_paths(cluster.store.certs_dir))
    cpu = _cpu_groups(cluster)
    crud: list[PhaseResult] = []
    watch: WatchResult | None = None
    limit = max(max(crud_s.concurrency), 64)
    config = ClientConfig(tuple(urls), ctx, "admin")
    async with ApiClient(config, retries=False, max_connections=limit, timeout=args.timeout,
                         attempt_timeout=args.timeout) as client:
        if args.only in (None, "crud"):
            crud = await run_crud(client, crud_s, cpu=cpu, progress=_progress)
        if args.only in (None, "watch"):
            watch = await run_watch(client, watch_s, cpu=cpu, progress=_progress)
    print(f"ketch bench api: {len(urls)} apiserver(s), store ×{len(cluster.store.names)}, "
          f"{crud_s.duration:g} s per phase after {crud_s.warmup:g} s warm-up")
    if crud:
        print(format_crud(crud))
    if watch is not None:
        print()
        print(format_watch(watch))
    if note := _busy_note(crud, watch):
        print(note)
    sys.stdout.flush()
    if args.json:
        settings = {"crud": asdict(crud_s), "watch": asdict(watch_s), "apiservers": len(urls)}
        args.json.write_text(json.dumps(to_json(crud, watch, settings), indent=2) + "\n")
    failed = any(phase_failed(r) for r in crud) or (watch is not None and watch_failed(watch))
    return 1 if failed else 0


class _Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, so the cluster's detached processes are stopped."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated


async def _until_terminated(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro``; SIGTERM cancels it and raises `_Terminated` (a handler installed with
    signal.signal cannot raise through uvloop, which only logs it)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def on_term() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    try:
        return await coro
    except asyncio.CancelledError:
        if terminated:
            raise _Terminated from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _terminated)


def _run_loop(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_until_terminated(coro))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_until_terminated(coro))


def run_api(args: argparse.Namespace) -> int:
    """Entry point of ``ketch bench api`` (see the module docstring for the exit codes).

    The cluster is always stopped before returning; the work dir is removed unless ``--dir``
    or ``--keep`` was given."""
    try:
        crud_s, watch_s = _settings(args)
    except (argparse.ArgumentTypeError, ValueError) as e:
        print(f"ketch bench api: {e}", file=sys.stderr)
        return 2
    need = (watch_s.watchers if args.only != "crud" else 0) + max(crud_s.concurrency)
    if (soft := raise_nofile(need + _SPARE_FDS)) < need + _SPARE_FDS:
        _progress(f"open-files limit {soft} < {need + _SPARE_FDS}: some watches may fail")
    root = args.dir or Path(tempfile.mkdtemp(prefix="ketch-bench-api-"))
    root.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root / "cluster", apiservers=args.apiservers, controller_managers=0,
                      schedulers=0, nodes=0)  # the apiserver and the store alone
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _progress(f"starting store ×3 + {args.apiservers} apiserver(s) in {cluster.dir}")
        cluster.up(progress=_progress)
        return _run_loop(_measure(cluster, args, crud_s, watch_s))
    except KeyboardInterrupt:
        _progress("interrupted")
        return 130
    except _Terminated:
        _progress("terminated")
        return 143
    except Exception as e:  # noqa: BLE001 - say why, then still stop the cluster
        _progress(f"FAILED: {type(e).__name__}: {e}")
        return 1
    finally:
        try:
            cluster.down(progress=_progress)
        except ClusterError:
            pass
        if args.keep or args.dir:
            _progress(f"work dir kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
