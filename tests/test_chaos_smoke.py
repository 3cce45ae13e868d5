"""The chaos suite against the real store: a short mixed run must find nothing, and each
deliberately broken store must be caught by the checker that exists to catch it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaos.report import render_text, write_report
from chaos.runner import run
from store.errors import Unavailable

pytestmark = pytest.mark.integration

SMOKE_SEED = 20261125


def _verdicts(result) -> dict[str, str]:
    return {c.name: c.verdict for c in result.checks}


async def test_chaos_smoke_mixed_faults_find_no_violation(tmp_path: Path) -> None:
    result = await run(scenario="all", duration=45, seed=SMOKE_SEED, workdir=tmp_path,
                       progress=lambda _: None)
    write_report(result, tmp_path / "report")
    text = render_text(result)
    assert not result.violations, text
    v = _verdicts(result)
    for name in ("linearizable", "lost_writes", "watches", "revisions_monotonic",
                 "one_leader_per_term"):
        assert v[name] == "ok", text
    assert len(result.history.faults) >= 10, text
    assert (tmp_path / "report" / "timeline.html").stat().st_size > 1000


@pytest.mark.parametrize("sabotage, scenario, caught_by", [
    pytest.param("ack-before-commit", "kill-leader", "linearizable", id="ack-before-commit"),
    pytest.param("stale-reads", "isolate-leader", "linearizable", id="stale-reads"),
    pytest.param("watch-skip", "slow-links", "watches", id="watch-skip"),
])
async def test_a_broken_store_is_caught_by_the_right_checker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sabotage: str, scenario: str,
    caught_by: str,
) -> None:
    """A broken store is only visibly wrong when the timing exposes it (a stale read needs a
    write to land elsewhere while a cut-off member still answers), so each gets up to three
    seeded runs of 12 s; in practice the first run catches it almost always."""
    monkeypatch.setenv("KETCH_ALLOW_SABOTAGE", "1")
    for attempt in range(3):
        result = await run(scenario=scenario, duration=12, seed=7 + attempt,
                           workdir=tmp_path / f"run{attempt}", progress=lambda _: None,
                           overrides={"extra": {"sabotage": sabotage}})
        if _verdicts(result)[caught_by] == "violation":
            return
    pytest.fail(f"{sabotage} was not caught by {caught_by} in 3 runs:\n{render_text(result)}")


def test_sabotage_needs_explicit_permission(tmp_path: Path) -> None:
    from store.sabotage import sabotage_of

    os.environ.pop("KETCH_ALLOW_SABOTAGE", None)
    with pytest.raises(ValueError, match="KETCH_ALLOW_SABOTAGE"):
        sabotage_of({"sabotage": "stale-reads"})
    assert sabotage_of({}) is None


# Each run kills the leader about twice.  Most runs catch the loss at the first or second
# kill, but one CI run (stop 18) and 1 of 4 local tries missed it in three runs (6 kills);
# six runs give it 12 kills, and a run that catches it ends the test at once.
MAX_RUNS = 6


async def _truncation_run(tmp_path: Path, fixes: bool, attempt: int):
    from chaos.cli import PYSYNCOBJ_PIPELINE

    overrides = {**PYSYNCOBJ_PIPELINE, "raft_fixes": fixes}
    return await run(scenario="kill-leader", duration=14, seed=3 + attempt,
                     workdir=tmp_path / f"run{attempt}", progress=lambda _: None,
                     overrides=overrides, flood=256, clients=2)


async def test_the_pysyncobj_truncation_bug_is_caught_when_the_workaround_is_off(
    tmp_path: Path,
) -> None:
    """With pysyncobj's own pipelining (64 KiB messages, one command per entry, hundreds in
    flight) and 256 writers, the unpatched store loses acknowledged writes; seen at the
    first or second leader kill in most runs (76, 138, 182 writes lost).  The bug is a race,
    so the test allows up to MAX_RUNS runs (about 12 kills) to catch it."""
    kills = 0
    readable, attempt = 0, 0
    report = "no run could be read to the end"
    while readable < MAX_RUNS and attempt <= MAX_RUNS:
        attempt += 1
        try:
            result = await _truncation_run(tmp_path, False, attempt - 1)
        except Unavailable:
            # the unpatched store could not even serve its final read (a broken log after
            # the restart, or a slow machine): that run decides nothing; one more may run
            continue
        readable += 1
        report = render_text(result)
        kills += sum(1 for f in result.history.faults if f.name == "kill-leader")
        if _verdicts(result)["lost_writes"] == "violation":
            print(f"caught after {kills} leader kills")
            return
    pytest.fail(f"no lost write after {kills} leader kills:\n{report}")


async def test_the_patched_store_loses_nothing_under_the_same_load(tmp_path: Path) -> None:
    result = await _truncation_run(tmp_path, True, 0)
    assert sum(1 for f in result.history.faults if f.name == "kill-leader") >= 2
    assert not result.violations, render_text(result)
