"""Unit tests of the benchmark's pure parts: percentiles, gaps, the closed loop, the tables,
CPU accounting (on a fake /proc) and the command's argument parsing."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
from pathlib import Path

import pytest

from ketch.bench.cli import parse_concurrency
from ketch.bench.load import (
    Gap,
    GapRecorder,
    LoadResult,
    longest_gap,
    percentile,
    run_closed_loop,
    summarize,
)
from ketch.bench.machine import CpuMeter, CpuShare, machine_ticks, process_ticks
from ketch.bench.report import (
    KillRecord,
    format_cpu_note,
    format_failover,
    format_table,
    ratio,
    to_json,
)
from ketch.bench.scenarios import Figures, Settings


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([5.0], 50, 5.0, id="single"),
        pytest.param([1.0, 2.0], 50, 1.0, id="median-of-two-is-lower-rank"),
        pytest.param([1.0, 2.0, 3.0], 50, 2.0, id="odd-median"),
        pytest.param([float(i) for i in range(1, 101)], 99, 99.0, id="p99-of-100"),
        pytest.param([float(i) for i in range(1, 101)], 100, 100.0, id="p100-is-max"),
        pytest.param([float(i) for i in range(1, 1001)], 99, 990.0, id="p99-of-1000"),
        pytest.param([1.0, 2.0, 3.0], 0.0001, 1.0, id="tiny-q-is-min"),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_empty_is_nan_and_bad_q_raises() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 0)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_sorts_and_divides_by_window() -> None:
    r = summarize([0.3, 0.1, 0.2, 0.4], concurrency=2, seconds=2.0, errors=1, error_kinds={"A": 1})
    assert (r.ok, r.errors, r.ops_per_s, r.p50, r.p99, r.max) == (4, 1, 2.0, 0.2, 0.4, 0.4)
    assert r.error_kinds == (("A", 1),)
    empty = summarize([], concurrency=1, seconds=1.0, errors=3)
    assert empty.ops_per_s == 0 and math.isnan(empty.p50) and math.isnan(empty.max)
    with pytest.raises(ValueError):
        summarize([0.1], concurrency=1, seconds=0, errors=0)


@pytest.mark.parametrize(
    ("successes", "start", "end", "expected"),
    [
        pytest.param(
            [0.0, 1.0, 1.1, 3.1, 3.2], 1.05, 4.0, Gap(1.1, 3.1, True), id="gap-after-fault"
        ),
        pytest.param(
            [0.0, 1.0, 2.5, 2.6], 1.05, 3.0, Gap(1.0, 2.5, True), id="anchored-before-fault"
        ),
        pytest.param([0.0, 1.0], 1.5, 4.0, Gap(1.0, 4.0, False), id="never-recovered"),
        pytest.param([2.0, 2.1], 1.0, 3.0, Gap(1.0, 2.0, True), id="no-success-before-start"),
        pytest.param([], 1.0, 2.0, Gap(1.0, 2.0, False), id="nothing-at-all"),
        pytest.param([0.0, 5.0, 9.0], 1.0, 6.0, Gap(0.0, 5.0, True), id="later-gap-outside-window"),
        pytest.param([1.0, 2.0], 1.0, 2.0, Gap(1.0, 2.0, True), id="boundaries-inclusive"),
    ],
)
def test_longest_gap(successes: list[float], start: float, end: float, expected: Gap) -> None:
    assert longest_gap(successes, start=start, end=end) == expected


def test_longest_gap_rejects_reversed_window() -> None:
    with pytest.raises(ValueError):
        longest_gap([1.0], start=2.0, end=1.0)


def test_gap_recorder_uses_its_clock() -> None:
    now = [0.0]
    rec = GapRecorder(clock=lambda: now[0])
    for t in (0.1, 0.2, 1.7, 1.8):
        now[0] = t
        rec.record()
    assert rec.successes_since(0.2) == 2
    assert rec.successes_since(5.0) == 0
    gap = rec.gap(start=0.25, end=2.0)
    assert gap == Gap(0.2, 1.7, True)
    assert gap.length == pytest.approx(1.5)


class FakeClock:
    """Time that moves only when an op says so: the closed loop becomes deterministic."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_closed_loop_counts_ops_latency_and_errors() -> None:
    clock = FakeClock()
    seen: list[int] = []

    async def op(i: int) -> None:
        seen.append(i)
        clock.now += 0.01
        await asyncio.sleep(0)
        if i % 10 == 9:
            raise RuntimeError("boom")

    r = await run_closed_loop(op, concurrency=1, seconds=1.0, clock=clock)
    assert seen == list(range(len(seen)))  # sequence numbers are 0, 1, 2, ... without reuse
    assert r.ok + r.errors == len(seen)
    assert r.errors == len(seen) // 10
    assert r.p50 == pytest.approx(0.01) and r.p99 == pytest.approx(0.01)
    assert r.error_kinds == (("RuntimeError", r.errors),)
    assert r.error_samples == ("RuntimeError: boom",)
    assert r.ops_per_s == pytest.approx(r.ok / r.seconds)


async def test_closed_loop_warmup_ops_are_not_counted() -> None:
    clock = FakeClock()

    async def op(i: int) -> None:
        clock.now += 0.1
        await asyncio.sleep(0)

    r = await run_closed_loop(op, concurrency=1, seconds=1.0, warmup=0.5, clock=clock)
    # ops start at 0.0 .. 1.4; those starting at >= 0.5 are measured (floating-point edges aside)
    assert 9 <= r.ok <= 10


async def test_closed_loop_runs_concurrency_workers_and_times_out_stuck_ops() -> None:
    in_flight = 0
    peak = 0

    async def op(i: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(3600 if i == 0 else 0.001)
        finally:
            in_flight -= 1

    r = await run_closed_loop(op, concurrency=8, seconds=0.05, op_timeout=0.05)
    assert peak == 8
    assert ("TimeoutError", 1) in r.error_kinds


async def test_closed_loop_stops_on_event() -> None:
    stop = asyncio.Event()

    async def op(i: int) -> None:
        if i == 20:
            stop.set()
        await asyncio.sleep(0)

    r = await run_closed_loop(op, concurrency=4, seconds=math.inf, stop=stop)
    assert 21 <= r.ok <= 24


def _result(ops: float, p50: float, p99: float, errors: int = 0) -> LoadResult:
    return LoadResult(
        concurrency=1,
        seconds=1.0,
        ok=int(ops),
        errors=errors,
        ops_per_s=ops,
        p50=p50,
        p99=p99,
        max=p99,
    )


def test_format_table_both_systems_with_ratios() -> None:
    results = {
        ("ketch", "put", 16): _result(1000, 0.004, 0.010),
        ("etcd", "put", 16): _result(2000, 0.002, 0.020, errors=3),
        ("ketch", "put", 1): _result(500, 0.002, 0.003),
        ("etcd", "get", 1): _result(800, 0.001, 0.002),
    }
    lines = format_table(results, systems=["ketch", "etcd"]).splitlines()
    assert lines[0].split() == [
        "op",
        "conc",
        "ketch",
        "ops/s",
        "p50",
        "ms",
        "p99",
        "ms",
        "err",
        "etcd",
        "ops/s",
        "p50",
        "ms",
        "p99",
        "ms",
        "err",
        "k/e",
        "ops/s",
        "k/e",
        "p50",
        "k/e",
        "p99",
    ]
    assert lines[1].split() == [
        "put",
        "1",
        "500",
        "2.00",
        "3.00",
        "0",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
    ]
    assert lines[2].split() == [
        "put",
        "16",
        "1000",
        "4.00",
        "10.00",
        "0",
        "2000",
        "2.00",
        "20.00",
        "3",
        "0.50",
        "2.00",
        "0.50",
    ]
    assert lines[3].split()[:6] == ["get", "1", "-", "-", "-", "-"]
    assert len(lines) == 4  # (get, 16) has no result anywhere: no line
    assert len({len(line) for line in lines[1:3]}) == 1  # columns line up


def test_format_table_single_system_has_no_ratio_columns() -> None:
    text = format_table({("etcd", "put", 1): _result(10, 0.1, 0.2)}, systems=["etcd"])
    assert "k/e" not in text and "ketch" not in text


def test_format_failover_median_max_and_ratio() -> None:
    kills = {
        "ketch": [
            KillRecord(1, "r0", Gap(0.0, 0.5, True)),
            KillRecord(2, "r1", Gap(1.0, 1.3, True)),
            KillRecord(3, "r2", Gap(2.0, 3.0, False)),
        ],
        "etcd": [
            KillRecord(1, "etcd-0", Gap(0.0, 1.0, True)),
            KillRecord(2, "etcd-1", Gap(0.0, 2.0, True)),
        ],
    }
    text = format_failover(kills)
    assert "1000+" in text  # unrecovered marked as a lower bound
    summary = {line.split()[0]: line.split()[1:] for line in text.splitlines()[-3:]}
    assert summary["ketch"] == ["3", "500", "1000"]
    assert summary["etcd"] == ["2", "1500", "2000"]
    assert summary["ketch/etcd"] == ["0.33", "0.50"]


def test_ratio_handles_missing() -> None:
    assert ratio(1.0, 2.0) == 0.5
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(None, [1, 16, 64, 256], id="default"),
        pytest.param(["64"], [64], id="one"),
        pytest.param(["16,1", "256", "16"], [1, 16, 256], id="comma-and-repeat-dedup-sorted"),
    ],
)
def test_parse_concurrency(values: list[str] | None, expected: list[int]) -> None:
    assert parse_concurrency(values, (1, 16, 64, 256)) == expected


def test_parse_concurrency_rejects_zero() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_concurrency(["0"], (1,))


def test_format_cpu_note_flags_only_busy_runs() -> None:
    cpu = {
        "etcd put c=1": CpuShare(busy=0.60, ours=0.55),
        "ketch put c=1": CpuShare(busy=0.90, ours=0.40),
    }
    note = format_cpu_note(cpu)
    assert "ketch put c=1: others 50%, benchmark 40%" in note
    assert "etcd put" not in note
    assert format_cpu_note({"x": CpuShare(busy=0.5, ours=0.6)}) == ""  # others clamps at 0


def test_to_json_is_plain_values() -> None:
    figures = Figures()
    figures.results[("etcd", "put", 1)] = _result(10, 0.1, 0.2)
    figures.cpu["etcd put c=1"] = CpuShare(busy=0.5, ours=0.4)
    figures.kills["etcd"] = [KillRecord(1, "etcd-0", Gap(1.0, 2.5, True))]
    data = json.loads(json.dumps(to_json(figures)))
    assert data["results"][0]["system"] == "etcd" and data["results"][0]["ops_per_s"] == 10
    assert data["cpu"]["etcd put c=1"] == {"busy": 0.5, "ours": 0.4}
    assert data["failover"]["etcd"] == [
        {"kill": 1, "member": "etcd-0", "gap_s": 1.5, "recovered": True}
    ]


def _fake_proc(root: Path, *, busy: int, idle: int, pids: dict[int, tuple[int, int]]) -> None:
    (root / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0\n")
    for pid, (utime, stime) in pids.items():
        (root / str(pid)).mkdir(exist_ok=True)
        rest = ["S"] + ["0"] * 10 + [str(utime), str(stime)] + ["0"] * 30
        (root / str(pid) / "stat").write_text(f"{pid} (etcd (x)) " + " ".join(rest) + "\n")


def test_cpu_meter_splits_ours_and_others(tmp_path: Path) -> None:
    me = os.getpid()
    _fake_proc(tmp_path, busy=1000, idle=1000, pids={me: (10, 0), 42: (100, 0)})
    assert machine_ticks(tmp_path) == (1000, 2000)
    assert process_ticks(42, tmp_path) == 100
    assert process_ticks(43, tmp_path) == 0  # gone
    meter = CpuMeter(lambda: [42], proc=tmp_path)
    meter.start()
    # 200 ticks pass on the machine: 150 busy, of which ours 20 + 80 = 100.
    _fake_proc(tmp_path, busy=1150, idle=1050, pids={me: (20, 10), 42: (150, 30)})
    share = meter.stop()
    assert share == CpuShare(busy=0.75, ours=0.5)
    assert share.others == pytest.approx(0.25)


def test_cpu_meter_without_proc_is_none(tmp_path: Path) -> None:
    meter = CpuMeter(list, proc=tmp_path / "missing")
    meter.start()
    assert meter.stop() is None


def test_settings_cycle_keys_and_size_values() -> None:
    s = Settings(keys=3, value_size=25)
    assert [s.key(i) for i in (0, 1, 3, 4)] == [
        b"bench/00000000",
        b"bench/00000001",
        b"bench/00000000",
        b"bench/00000001",
    ]
    assert len(s.value) == 25


def test_cpu_meter_keeps_a_killed_process_up_to_its_last_sample(tmp_path: Path) -> None:
    me = os.getpid()
    alive = [42]
    _fake_proc(tmp_path, busy=0, idle=0, pids={me: (0, 0), 42: (100, 0)})
    meter = CpuMeter(lambda: alive, proc=tmp_path)
    meter.start()
    _fake_proc(tmp_path, busy=100, idle=0, pids={me: (0, 0), 42: (160, 0)})
    meter.sample()  # right before the kill
    (tmp_path / "42" / "stat").unlink()
    alive[:] = [43]  # restarted under a new pid
    _fake_proc(tmp_path, busy=200, idle=0, pids={me: (0, 0), 43: (30, 0)})
    share = meter.stop()
    assert share == CpuShare(busy=1.0, ours=(60 + 30) / 200)
