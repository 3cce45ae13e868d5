"""`ketch bench store`: the same load through one asyncio client stack against ketch and etcd.

Flow: parse → make a work dir → for each system in turn (ketch first, because etcd's
certificates are issued from ketch's CA): start its 3-member cluster, check a put/get round trip,
run the throughput matrix or the failover series, stop it → print the table.  Only one cluster
runs at a time so the two never compete for the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ketch.bench import etcd as etcd_mod
from ketch.bench.load import GapRecorder, LoadResult, Op, run_closed_loop
from ketch.bench.report import KillRecord, ResultKey, format_failover, format_table
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
    """Add ``bench store`` to the top-level ``ketch`` subparsers; ``func`` returns an exit code."""
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


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat; None where there is none."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def _machine_busy(seconds: float = 1.0) -> float | None:
    """Fraction of all cores busy over ``seconds``: others' load that would skew the figures."""
    before = _cpu_jiffies()
    await asyncio.sleep(seconds)
    after = _cpu_jiffies()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def _key(i: int, keys: int) -> bytes:
    return b"bench/%08d" % (i % keys)


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _describe(r: LoadResult) -> str:
    text = (
        f"c={r.concurrency:<4} {r.ops_per_s:9.0f} ops/s  p50 {r.p50 * 1e3:7.2f} ms  "
        f"p99 {r.p99 * 1e3:7.2f} ms  errors {r.errors}"
    )
    if r.error_kinds:
        text += " (" + ", ".join(f"{kind} {n}" for kind, n in r.error_kinds) + ")"
    return text + (f"; e.g. {r.error_samples[0]}" if r.error_samples else "")


async def _check(target: Target, value: bytes) -> None:
    """One put/get round trip; a target that cannot do this has nothing to measure."""
    key = b"bench/check"
    await target.put(key, value)
    got = await target.get(key)
    if got != value:
        raise RuntimeError(f"{target.name}: read {got!r:.60} after writing {value!r:.60}")


async def _throughput(
    target: Target, args: argparse.Namespace, concs: Sequence[int], value: bytes
) -> dict[ResultKey, LoadResult]:
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    results: dict[ResultKey, LoadResult] = {}
    if "get" in ops and "put" not in ops:  # gets need the key space written
        await run_closed_loop(
            lambda i: target.put(_key(i, args.keys), value),
            concurrency=16,
            seconds=max(1.0, args.keys / 500),
        )
    for op_name in ops:
        op: Op
        if op_name == "put":
            op = lambda i: target.put(_key(i, args.keys), value)
        elif op_name == "get":
            op = lambda i: target.get(_key(i, args.keys))
        else:
            raise ValueError(f"unknown op {op_name!r} (put, get)")
        for conc in concs:
            r = await run_closed_loop(
                op,
                concurrency=conc,
                seconds=args.seconds,
                warmup=args.warmup,
                op_timeout=args.timeout * 2,
            )
            _progress(f"{target.name} {op_name} {_describe(r)}")
            results[(target.name, op_name, conc)] = r
    return results


async def _wait_for(cond: Callable[[], bool], *, deadline: float) -> bool:
    until = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > until:
            return False
        await asyncio.sleep(0.005)
    return True


def _recovered(recorder: GapRecorder, killed_at: float, in_flight: int) -> bool:
    return recorder.successes_since(killed_at) > in_flight


async def _failover(
    target: Target, args: argparse.Namespace, conc: int, value: bytes
) -> list[KillRecord]:
    """``args.kills`` times: steady writes, SIGKILL the leader, wait for writes, restart it.

    Recovery is declared only after more than ``conc`` writes succeed after the kill: at most
    ``conc`` were in flight when the leader died, so the next one was committed by a new leader.
    """
    recorder = GapRecorder()
    stop = asyncio.Event()
    records: list[KillRecord] = []
    recover_deadline = max(30.0, args.timeout * 4)

    async def op(i: int) -> None:
        await target.put(_key(i, args.keys), value)
        recorder.record()

    async with asyncio.TaskGroup() as group:
        load = group.create_task(
            run_closed_loop(
                op, concurrency=conc, seconds=math.inf, stop=stop, op_timeout=args.timeout * 2
            )
        )
        try:
            for index in range(1, args.kills + 1):
                await asyncio.sleep(args.settle)
                t_kill = recorder.now()
                member = await target.leader_kill()
                killed_at = recorder.now()
                await _wait_for(
                    functools.partial(_recovered, recorder, killed_at, conc),
                    deadline=recover_deadline,
                )
                gap = recorder.gap(start=t_kill, end=recorder.now())
                records.append(KillRecord(index, member, gap))
                state = "" if gap.recovered else " (NOT recovered)"
                _progress(
                    f"{target.name} kill {index}: {member} → write gap "
                    f"{gap.length * 1e3:.0f} ms{state}; restarting {member}"
                )
                await target.restart(member)
        finally:
            stop.set()
    _progress(f"{target.name} failover load: {_describe(load.result())}")
    return records


def _make_target(
    system: str, root: Path, args: argparse.Namespace, ca_dir: Path | None, max_conc: int
) -> Target:
    if system == "ketch":
        return KetchTarget(root / "ketch", timeout=args.timeout, progress=_progress)
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


async def _run(args: argparse.Namespace, root: Path) -> int:
    systems = ["ketch", "etcd"] if args.system == "both" else [args.system]
    concs = parse_concurrency(
        args.concurrency, (FAILOVER_CONCURRENCY,) if args.failover else DEFAULT_CONCURRENCY
    )
    value = (b"0123456789" * (args.value_size // 10 + 1))[: args.value_size]
    results: dict[ResultKey, LoadResult] = {}
    kills: dict[str, list[KillRecord]] = {}
    ca_dir: Path | None = None
    failed = False
    for system in systems:
        if system == "etcd" and ca_dir is None:
            ca_dir = await asyncio.to_thread(etcd_mod.create_ca, root / "ca")
        target = _make_target(system, root, args, ca_dir, max(concs))
        busy = await _machine_busy()
        if busy is not None:
            _progress(f"{system}: machine {busy:.0%} busy before start (other processes)")
        try:
            _progress(f"{system}: starting a 3-member cluster in {root / system}")
            await target.setup()
            if isinstance(target, KetchTarget):
                ca_dir = target.certs_dir
            await _check(target, value)
            if args.failover:
                for conc in concs:
                    kills[system if len(concs) == 1 else f"{system} c={conc}"] = await _failover(
                        target, args, conc, value
                    )
            else:
                results.update(await _throughput(target, args, concs, value))
        except Exception as exc:  # noqa: BLE001 - report, and still measure the other system
            _progress(f"{system}: FAILED: {type(exc).__name__}: {exc}")
            failed = True
        finally:
            await target.close()
    if results:
        print(format_table(results, systems=systems))
    if kills:
        print(format_failover(kills))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "results": [
                        {"system": s, "op": o, **dataclasses.asdict(r)}
                        for (s, o, _), r in results.items()
                    ],
                    "failover": {
                        s: [
                            {
                                "kill": k.index,
                                "member": k.member,
                                "gap_s": k.gap.length,
                                "recovered": k.gap.recovered,
                            }
                            for k in recs
                        ]
                        for s, recs in kills.items()
                    },
                },
                indent=2,
            )
        )
    return 1 if failed else 0


def run_store(args: argparse.Namespace) -> int:
    """Entry point of ``ketch bench store``: 0 if every system ran, 1 if one failed to."""
    root = args.dir or Path(tempfile.mkdtemp(prefix="ketch-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(_run(args, root))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_run(args, root))
    finally:
        if args.keep or args.dir:
            _progress(f"work dir kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
