"""`ketch bench api`: its pure parts (matching watch deliveries, worker slices, verdicts, the
tables, argument checks) and one short run against a real cluster (marked integration)."""

from __future__ import annotations

import asyncio
import json
import math
import re
import resource
from pathlib import Path

import pytest

from ketch.bench.api import raise_nofile
from ketch.bench.api_load import VERBS, _Slots, owned_index
from ketch.bench.api_report import (
    SLOS,
    WATCH_SLO,
    CpuUse,
    PhaseResult,
    Slo,
    WatchResult,
    format_crud,
    format_watch,
    latency,
    phase_failed,
    to_json,
    verdict,
    watch_failed,
)
from ketch.bench.api_watch import parse_event, tally
from ketch.bench.load import summarize
from ketch.cli import main

# --- watch matching ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrivals", "lost", "dup", "unexpected", "after_response"),
    [
        pytest.param([[(10, 1.5), (11, 2.5)]], 0, 0, 0, [0.5, 0.5], id="all-once"),
        pytest.param([[(10, 1.5)]], 1, 0, 0, [0.5], id="one-lost"),
        pytest.param([[(10, 1.5), (10, 1.7), (11, 2.5)]], 0, 1, 0, [0.5, 0.5], id="duplicate"),
        pytest.param([[(10, 1.5), (99, 1.6), (11, 2.5)]], 0, 0, 1, [0.5, 0.5], id="unexpected"),
        pytest.param([[(10, 0.9), (11, 2.0)], []], 2, 0, 0, [-0.1, 0.0], id="early-and-empty"),
    ],
)
def test_tally(
    arrivals: list[list[tuple[int, float]]],
    lost: int,
    dup: int,
    unexpected: int,
    after_response: list[float],
) -> None:
    writes = {10: (0.5, 1.0), 11: (1.5, 2.0)}  # rv -> (sent, answered)
    t = tally(writes, arrivals)
    assert (t.lost, t.duplicated, t.unexpected) == (lost, dup, unexpected)
    assert t.after_response == pytest.approx(after_response)
    assert len(t.after_send) == len(t.after_response)
    assert all(s >= r for s, r in zip(t.after_send, t.after_response))


def test_parse_event_reads_the_object_resource_version() -> None:
    line = (b'{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":'
            b'{"name":"w-1","managedFields":[{"manager":"x","time":"t"}],'
            b'"resourceVersion":"1234"},"data":{"seq":"7"}}}\n')
    assert parse_event(line) == ("MODIFIED", 1234)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b'{"type":"ERROR","object":{"kind":"Status","code":410}}\n', id="error"),
        pytest.param(b'{"type":"ADDED","object":{"metadata":{}}}\n', id="no-rv"),
    ],
)
def test_parse_event_refuses(line: bytes) -> None:
    with pytest.raises(ValueError):
        parse_event(line)


# --- worker slices ----------------------------------------------------------------------


@pytest.mark.parametrize(("conc", "pool"), [(1, 1), (4, 10), (16, 16), (7, 100)])
def test_owned_indexes_are_disjoint_and_in_range(conc: int, pool: int) -> None:
    owned = [{owned_index(w, k, conc, pool) for k in range(50)} for w in range(conc)]
    for w, indexes in enumerate(owned):
        assert all(0 <= i < pool for i in indexes)
        for other in owned[w + 1:]:
            assert not indexes & other


async def test_slots_number_each_task_and_count_its_ops() -> None:
    slots = _Slots()

    async def worker() -> list[tuple[int, int]]:
        out = [slots.take()]
        await asyncio.sleep(0)
        out.append(slots.take())
        return out

    a, b = await asyncio.gather(worker(), worker())
    assert {a[0][0], b[0][0]} == {0, 1}
    assert a == [(a[0][0], 0), (a[0][0], 1)] and b == [(b[0][0], 0), (b[0][0], 1)]


# --- verdicts and tables ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("p99", "expected"),
    [
        pytest.param(0.5, "✓", id="within"),
        pytest.param(1.0, "✓", id="at-limit"),
        pytest.param(1.01, "✗", id="over"),
        pytest.param(math.nan, "✗", id="nothing-succeeded"),
    ],
)
def test_verdict(p99: float, expected: str) -> None:
    assert verdict(p99, Slo(1.0, "p99 ≤ 1 s")) == expected


def test_latency_summary() -> None:
    lat = latency([0.3, -0.1, 0.2, 0.1])
    assert (lat.p50, lat.max, lat.count) == (0.1, 0.3, 4)
    assert math.isnan(latency([]).p99)


def _phase(verb: str, conc: int, p99: float, *, errors: int = 0, conflicts: int = 0
           ) -> PhaseResult:
    load = summarize([0.001, p99], concurrency=conc, seconds=1.0, errors=errors + conflicts,
                     error_kinds={"Conflict": conflicts} if conflicts else None)
    return PhaseResult(verb=verb, load=load, conflicts=conflicts,
                       items=100 if verb == "list" else 0,
                       cpu=CpuUse(apiserver=0.9, store=0.3, client=0.2))


def _watch(*, lost: int = 0, p99: float = 0.05) -> WatchResult:
    lat = latency([0.01, p99])
    return WatchResult(watchers=10, established=10, establish_s=0.2, events=5, write_errors=0,
                       rate=50.0, after_response=lat, after_send=lat, lost=lost, duplicated=0)


def test_crud_table_has_every_verb_and_verdict() -> None:
    results = [_phase(v, 1, 0.002) for v in VERBS] + [_phase("create", 64, 2.0)]
    text = format_crud(results)
    lines = text.splitlines()
    for verb in VERBS:
        assert any(line.startswith(verb) for line in lines)
    create64 = next(line for line in lines if re.match(r"create\s+64\s", line))
    assert create64.endswith("✗") and "2000.0" in create64
    list1 = next(line for line in lines if line.startswith("list"))
    assert SLOS["list"].text in list1 and list1.endswith("✓") and "200" in list1  # items/s
    assert "90%" in list1  # apiserver CPU, % of one core


def test_conflicts_are_not_errors() -> None:
    r = _phase("update", 4, 0.01, errors=0, conflicts=3)
    assert (r.errors, r.conflicts) == (0, 3) and not phase_failed(r)
    assert phase_failed(_phase("update", 4, 0.01, errors=1, conflicts=3))


def test_watch_lines_and_failure() -> None:
    ok = _watch()
    text = format_watch(ok)
    assert "after write response" in text and WATCH_SLO.text in text and "✓" in text
    assert not watch_failed(ok)
    assert watch_failed(_watch(lost=1))
    late = format_watch(_watch(p99=0.5)).splitlines()
    assert late[1].startswith("after write response") and late[1].endswith("✗")
    assert late[2].startswith("after write sent") and late[2].endswith("✗")


def test_json_is_plain() -> None:
    doc = to_json([_phase("get", 1, 0.002)], _watch(), {"duration": 1.0})
    again = json.loads(json.dumps(doc))
    assert again["crud"][0]["verb"] == "get" and again["crud"][0]["slo_met"] is True
    assert again["watch"]["lost"] == 0 and again["watch"]["slo_met"] is True


def test_raise_nofile_never_lowers() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_nofile(16) == soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(["--duration", "0"], id="duration"),
        pytest.param(["--watchers", "0"], id="watchers"),
        pytest.param(["--concurrency", "0"], id="concurrency"),
        pytest.param(["--warmup", "-1"], id="warmup"),
    ],
)
def test_bad_arguments_exit_2(extra: list[str], tmp_path: Path) -> None:
    assert main(["bench", "api", "--dir", str(tmp_path), *extra]) == 2
    assert not (tmp_path / "cluster").exists()  # refused before starting anything


# --- against a real cluster -------------------------------------------------------------


@pytest.mark.integration
def test_short_run_against_a_real_cluster(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "figures.json"
    code = main(["bench", "api", "--duration", "0.5", "--concurrency", "1,4", "--watchers", "20",
                 "--watch-events", "10", "--dir", str(tmp_path / "work"), "--json",
                 str(out_json)])
    out = capsys.readouterr().out
    for verb in VERBS:
        for conc in (1, 4):
            assert re.search(rf"^{verb}\s+{conc}\s", out, re.MULTILINE), f"no {verb} c={conc} line"
    watch_line = re.search(r"^after write response\s+20/20\s+10\s.*$", out, re.MULTILINE)
    assert watch_line is not None, out
    figures = json.loads(out_json.read_text())
    assert figures["watch"]["lost"] == 0 and figures["watch"]["duplicated"] == 0
    assert figures["watch"]["established"] == 20 and figures["watch"]["events"] == 10
    assert {(r["verb"], r["concurrency"]) for r in figures["crud"]} == {
        (v, c) for v in VERBS for c in (1, 4)}
    assert all(r["ok"] > 0 for r in figures["crud"])
    assert code == 0, out
    assert not list((tmp_path / "work" / "cluster").glob("*/*.pid"))  # the cluster is down
