"""The chaos suite against the apiservers: the API checkers on crafted histories (each broken
guarantee caught by the checker that exists for it, a correct history passing all of them),
and a short seeded ``--api`` run with store leader kills and apiserver kills that must find
nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaos.checkers.api import (
    ApiFinalState,
    api_checks,
    api_conflicts,
    api_linearizable,
    api_lost_writes,
    api_revisions,
    api_watches,
)
from chaos.history import History, Op

# -- building API histories --------------------------------------------------------------------

C, W = 200, 300  # a client, a watcher


class Builder:
    """Ops one after the other (each 0.1 s long, 0.01 s apart) unless ``at`` is given."""

    def __init__(self) -> None:
        self.h = History()
        self.t = 0.0

    def op(self, client: int, kind: str, key: str | None, input: dict[str, Any],
           status: str, output: dict[str, Any], *, at: float | None = None,
           dur: float = 0.1) -> Op:
        t0 = self.t if at is None else at
        self.t = max(self.t, t0 + dur + 0.01)
        op_id = self.h.record_invoke(client, kind, key, {"server": 0, **input}, at=t0)
        return self.h.record_complete(op_id, status, output, at=t0 + dur)  # type: ignore[arg-type]

    def _write(self, kind: str, name: str, input: dict[str, Any], rv: int | None,
               status: str, code: int | None, value: str | None, client: int,
               **kw: Any) -> Op:
        if status == "ok":
            out: dict[str, Any] = {"code": code or 200, "rv": rv, "value": value}
        elif status == "fail":
            out = {"code": code, "reason": {409: "Conflict", 404: "NotFound"}.get(code or 0, "")}
        else:
            out = {"error": "timeout"}
        return self.op(client, kind, name, input, status, out, **kw)

    def create(self, name: str, value: str, rv: int | None = None, status: str = "ok",
               code: int | None = 201, client: int = C, **kw: Any) -> Op:
        return self._write("api_create", name, {"value": value}, rv, status, code, value,
                           client, **kw)

    def update(self, name: str, expected: str, expected_rv: int, value: str,
               rv: int | None = None, status: str = "ok", code: int | None = 200,
               client: int = C, **kw: Any) -> Op:
        return self._write("api_update", name, {"value": value, "expected": expected,
                                                "expected_rv": expected_rv},
                           rv, status, code, value, client, **kw)

    def patch(self, name: str, value: str, rv: int | None = None, status: str = "ok",
              code: int | None = 200, client: int = C, **kw: Any) -> Op:
        return self._write("api_patch", name, {"value": value}, rv, status, code, value,
                           client, **kw)

    def delete(self, name: str, status: str = "ok", code: int | None = 200,
               client: int = C, **kw: Any) -> Op:
        out = ({"code": code} if status == "ok" else
               {"code": code, "reason": "NotFound"} if status == "fail" else {"error": "x"})
        return self.op(client, "api_delete", name, {}, status, out, **kw)

    def get(self, name: str, value: str | None, rv: int | None, client: int = C,
            **kw: Any) -> Op:
        return self.op(client, "api_get", name, {}, "ok",
                       {"code": 200 if value is not None else 404, "value": value, "rv": rv},
                       **kw)

    def relist(self, rv: int, items: dict[str, list[Any]], watcher: int = W,
               reason: str = "initial") -> Op:
        return self.op(watcher, "api_relist", None, {"reason": reason}, "ok",
                       {"code": 200, "rv": rv, "items": items})

    def event(self, name: str, type: str, rv: int, value: str | None,
              watcher: int = W) -> Op:
        return self.op(watcher, "api_watch_event", name, {"stream": 1}, "ok",
                       {"type": type, "rv": rv, "value": value}, dur=0.0)

    def bookmark(self, rv: int, watcher: int = W) -> Op:
        return self.op(watcher, "api_watch_bookmark", None, {"stream": 1}, "ok", {"rv": rv},
                       dur=0.0)


def good(b: Builder, *, skip: set[str] = frozenset()) -> ApiFinalState:  # type: ignore[assignment]
    """A correct run: create, CAS update, patch, a second object created and deleted; one
    watcher that saw everything.  ``skip`` leaves out named steps (to break it)."""
    b.relist(5, {})
    b.create("a0", "c0-1", 10)
    if "event10" not in skip:
        b.event("a0", "ADDED", 10, "c0-1")
    b.get("a0", "c0-1", 10)
    b.update("a0", "c0-1", 10, "c0-2", 12)
    b.event("a0", "MODIFIED", 12, "c0-2")
    b.patch("a0", "c0-3", 13)
    b.event("a0", "MODIFIED", 13, "c0-3")
    b.create("a1", "c0-4", 14)
    b.event("a1", "ADDED", 14, "c0-4")
    b.delete("a1")
    if "delete-event" not in skip:
        b.event("a1", "DELETED", 15, "c0-4")
    b.bookmark(16)
    return ApiFinalState(16, {"a0": ("c0-3", 13)}, {"a0": ("c0-3", 13), "a1": None})


def _verdicts(history: History, final: ApiFinalState) -> dict[str, str]:
    return {r.name: r.verdict for r in api_checks(history, final, timeout=5.0)}


def test_a_correct_api_history_passes_every_checker() -> None:
    b = Builder()
    final = good(b)
    assert set(_verdicts(b.h, final).values()) == {"ok"}


def test_an_api_history_survives_the_jsonl_round_trip(tmp_path: Path) -> None:
    b = Builder()
    final = good(b)
    b.h.to_jsonl(tmp_path / "h.jsonl")
    again = History.from_jsonl(tmp_path / "h.jsonl")
    assert set(_verdicts(again, final).values()) == {"ok"}


# -- each broken guarantee, caught by its checker ----------------------------------------------


def _rv_backwards(b: Builder) -> ApiFinalState:
    final = good(b)
    b.event("a0", "MODIFIED", 11, "c0-2")  # after rv 16's bookmark
    return final


def _duplicate_event(b: Builder) -> ApiFinalState:
    final = good(b)
    b.relist(16, {"a0": ["c0-3", 13]}, reason="expired")
    b.event("a0", "MODIFIED", 13, "c0-3")  # at the relist's rv: already in the list
    b.event("a0", "MODIFIED", 13, "c0-3")
    return final


def _write_rv_not_increasing(b: Builder) -> ApiFinalState:
    good(b)
    b.create("a2", "c0-9", 13)  # invoked after a write that answered rv 14
    b.event("a2", "ADDED", 13, "c0-9", watcher=W + 1)
    return ApiFinalState(16, {"a0": ("c0-3", 13), "a2": ("c0-9", 13)},
                         {"a0": ("c0-3", 13), "a1": None, "a2": ("c0-9", 13)})


def _lost_update(b: Builder) -> ApiFinalState:
    final = good(b)
    return ApiFinalState(final.list_rv, {"a0": ("c0-2", 12)},
                         {"a0": ("c0-2", 12), "a1": None})  # the patch at rv 13 is gone


def _lost_create(b: Builder) -> ApiFinalState:
    final = good(b)
    return ApiFinalState(final.list_rv, final.listed, {"a0": None, "a1": None})


def _resurrected(b: Builder) -> ApiFinalState:
    final = good(b)
    return ApiFinalState(final.list_rv, final.listed,
                         {"a0": ("c0-3", 13), "a1": ("c0-4", 14)})


def _missed_event(b: Builder) -> ApiFinalState:
    return good(b, skip={"event10"})


def _stale_list(b: Builder) -> ApiFinalState:
    final = good(b)
    b.relist(20, {"a0": ["c0-2", 12]}, watcher=W + 1)  # after the patch at rv 13
    return final


def _diverged_view(b: Builder) -> ApiFinalState:
    """The only watcher missed a delete: nobody knows its rv, but its view still has a1."""
    return good(b, skip={"delete-event"})


def _wrong_event_value(b: Builder) -> ApiFinalState:
    final = good(b)
    b.relist(16, {"a0": ["c0-3", 13]}, watcher=W + 1)
    b.update("a0", "c0-3", 13, "c0-5", 17)
    b.event("a0", "MODIFIED", 17, "c0-3", watcher=W + 1)  # rv 17 wrote c0-5
    return final


def _409_for_fresh_create(b: Builder) -> ApiFinalState:
    final = good(b)
    b.create("a9", "c0-7", status="fail", code=409)
    return final


def _409_for_uncontended_cas(b: Builder) -> ApiFinalState:
    final = good(b)
    b.get("a0", "c0-3", 13)
    b.update("a0", "c0-3", 13, "c0-8", status="fail", code=409)
    return final


def _stale_read(b: Builder) -> ApiFinalState:
    final = good(b)
    b.get("a0", "c0-2", 12)  # after the patch to c0-3 was acknowledged
    return final


@pytest.mark.parametrize("build, checker, why", [
    pytest.param(_rv_backwards, api_revisions, "arrived after rv 16", id="watch-rv-backwards"),
    pytest.param(_duplicate_event, api_revisions, "delivered twice", id="duplicate-event"),
    pytest.param(_write_rv_not_increasing, api_revisions, "needed above 14",
                 id="write-rv-not-increasing"),
    pytest.param(_lost_update, api_lost_writes, "answered rv 13", id="lost-update"),
    pytest.param(_lost_create, api_lost_writes, "no delete of it", id="lost-create"),
    pytest.param(_resurrected, api_lost_writes, "no later write", id="deleted-is-back"),
    pytest.param(_missed_event, api_watches, "never saw rv 10", id="missed-event"),
    pytest.param(_stale_list, api_watches, "older than api_patch", id="stale-relist"),
    pytest.param(_diverged_view, api_watches, "its view has 'a1'", id="diverged-view"),
    pytest.param(_wrong_event_value, api_watches, "wrote 'c0-5'", id="event-wrong-value"),
    pytest.param(_409_for_fresh_create, api_conflicts, "no earlier create",
                 id="409-fresh-create"),
    pytest.param(_409_for_uncontended_cas, api_conflicts, "no write of it by anyone else",
                 id="409-uncontended-cas"),
    pytest.param(_stale_read, api_linearizable, "read 'c0-2'", id="stale-read"),
])
def test_a_broken_api_guarantee_is_caught(build: Callable[[Builder], ApiFinalState],
                                          checker: Callable[..., Any], why: str) -> None:
    b = Builder()
    final = build(b)
    if checker in (api_lost_writes, api_watches):
        result = checker(b.h, final)
    else:
        result = checker(b.h)
    assert result.verdict == "violation", result.lines()
    assert any(why in line for line in result.violations), result.violations


def test_two_cas_updates_from_one_read_cannot_both_succeed() -> None:
    """What ``--api-contend`` provokes: racers PUT the same resourceVersion at once."""
    b = Builder()
    b.create("s1", "s1-0", 10, client=250)
    b.get("s1", "s1-0", 10, client=250)
    t = b.t
    b.update("s1", "s1-0", 10, "s1-r0", 11, client=251, at=t)
    b.update("s1", "s1-0", 10, "s1-r1", 12, client=252, at=t + 0.001)
    result = api_linearizable(b.h)
    assert result.verdict == "violation", result.lines()
    assert any("cas(expected='s1-0') succeeded" in line for line in result.violations)
    b.update("s1", "s1-0", 10, "s1-r2", status="fail", code=409, client=253, at=t + 0.002)
    assert api_conflicts(b.h).verdict == "ok"  # the loser's 409 has its cause


# -- what unknown outcomes excuse --------------------------------------------------------------


def test_a_409_after_an_unknown_write_of_the_same_object_is_excused() -> None:
    b = Builder()
    good(b)
    b.create("a5", "c0-20", status="unknown", code=None)
    b.create("a5", "c0-21", status="fail", code=409)  # the retry: the first one landed
    b.get("a0", "c0-3", 13)
    b.patch("a0", "c0-22", status="unknown", code=None)
    b.update("a0", "c0-3", 13, "c0-23", status="fail", code=409)  # the patch landed in between
    result = api_conflicts(b.h)
    assert result.verdict == "ok", result.lines()
    assert result.counts["excused"] == 2


def test_an_unknown_write_may_land_after_later_acknowledged_ones() -> None:
    """The apiserver carries on with a request its client gave up on: its value may show up
    after the client's next acknowledged write."""
    b = Builder()
    good(b)
    b.patch("a0", "c0-30", status="unknown", code=None)
    b.get("a0", "c0-3", 13)
    b.update("a0", "c0-3", 13, "c0-31", 18)
    final = ApiFinalState(19, {"a0": ("c0-30", 19)}, {"a0": ("c0-30", 19), "a1": None})
    assert api_lost_writes(b.h, final).verdict == "ok"
    assert api_linearizable(b.h).verdict == "ok"


def test_a_watcher_that_relisted_across_writes_is_judged_by_its_list() -> None:
    b = Builder()
    b.relist(5, {})
    b.create("a0", "c0-1", 10)
    b.event("a0", "ADDED", 10, "c0-1")
    b.op(W, "api_watch_error", None, {"stream": 1}, "ok", {"code": 410, "reason": "Expired"})
    b.update("a0", "c0-1", 10, "c0-2", 12)
    b.relist(12, {"a0": ["c0-2", 12]}, reason="expired")  # rv 12 arrived through the list
    b.bookmark(14)
    final = ApiFinalState(14, {"a0": ("c0-2", 12)}, {"a0": ("c0-2", 12)})
    assert api_watches(b.h, final).verdict == "ok"
    assert api_revisions(b.h).verdict == "ok"


def test_apiserver_faults_need_an_api_run() -> None:
    from chaos.runner import ALL_FAULTS, API_FAULTS, scenario_faults

    assert scenario_faults("all", api=False) == ALL_FAULTS  # the store-only schedule as before
    assert scenario_faults("all", api=True) == ALL_FAULTS + API_FAULTS
    for scenario in ("kill-apiserver", "cut-apiserver-store", "api-processes"):
        with pytest.raises(ValueError, match="--api"):
            scenario_faults(scenario, api=False)


# -- a real run --------------------------------------------------------------------------------

SMOKE_SEED = 24  # its schedule: apiserver cut, leader kill, apiserver kill, leader kill, ...


@pytest.mark.integration
async def test_chaos_api_smoke_finds_no_violation(tmp_path: Path) -> None:
    from chaos.report import render_text, write_report
    from chaos.runner import run

    result = await run(scenario="api-processes", duration=20, seed=SMOKE_SEED,
                       workdir=tmp_path, progress=lambda _: None, api=True)
    write_report(result, tmp_path / "report")
    text = render_text(result)
    assert not result.violations, text
    verdicts = {c.name: c.verdict for c in result.checks}
    for name in ("api_linearizable", "api_lost_writes", "api_revisions", "api_watches",
                 "api_conflicts", "linearizable", "lost_writes", "watches"):
        assert verdicts[name] == "ok", text
    faults = {f.name for f in result.history.faults}
    assert {"kill-leader", "kill-apiserver"} <= faults, text
    summary = result.history.summary()
    for kind in ("api_create", "api_update", "api_patch", "api_delete", "api_get",
                 "api_watch_event"):
        assert summary.get(kind, {}).get("ok", 0) > 0, text
    assert "API (2 apiservers" in (tmp_path / "report" / "report.txt").read_text()
