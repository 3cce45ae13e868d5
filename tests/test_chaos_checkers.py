"""The chaos checkers on known-good and known-bad histories, and on simulated ones.

`simulate` runs a reference register store (one dict, one global revision) under concurrent
clients: each op takes effect at a chosen instant strictly inside its [invoke, complete]
interval, so whatever it records is linearizable, loses no write and feeds a perfect watch.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.checkers import (
    check_linearizable,
    leases_expire_after_ttl,
    lost_writes,
    one_leader_per_term,
    revisions_monotonic,
    watch_checker,
)
from chaos.checkers.register import compile_op, step
from chaos.history import (
    Convergence,
    FaultRecord,
    History,
    LeaderObservation,
    LeaseRecord,
    Observation,
    Op,
    RevisionObservation,
    WatchEvent,
    WatchRecord,
)

# -- building histories ---------------------------------------------------------------------


def op(
    kind: str,
    invoke: float,
    complete: float | None,
    status: str = "ok",
    *,
    key: str | None = "k",
    client: int = 0,
    out: dict[str, Any] | None = None,
    **input: Any,
) -> Op:
    """An op with id 0; `ops` renumbers.  ``input`` are the op's input fields."""
    return Op(0, client, kind, key, input, invoke, complete, status, out or {})  # type: ignore[arg-type]


def ops(*items: Op) -> list[Op]:
    return [dataclasses.replace(o, id=i) for i, o in enumerate(items)]


def put(v: Any, t0: float, t1: float | None, status: str = "ok", **kw: Any) -> Op:
    rev = kw.pop("rev", None)
    return op("put", t0, t1, status, value=v, out={} if rev is None else {"revision": rev}, **kw)


def get(v: Any, t0: float, t1: float, **kw: Any) -> Op:
    return op("get", t0, t1, out={"value": v, **kw.pop("out", {})}, **kw)


def cas(expected: Any, new: Any, ok: bool | None, t0: float, t1: float | None, **kw: Any) -> Op:
    status = "unknown" if ok is None else "ok"
    rev = kw.pop("rev", None)
    out = {} if ok is None else {"succeeded": ok}
    out |= {} if rev is None else {"revision": rev}
    return op("cas", t0, t1, status, expected=expected, value=new, out=out, **kw)


def delete(deleted: int | None, t0: float, t1: float | None, **kw: Any) -> Op:
    rev = kw.pop("rev", None)
    out = {} if deleted is None else {"deleted": deleted}
    out |= {} if rev is None else {"revision": rev}
    return op("delete", t0, t1, "unknown" if deleted is None else "ok", out=out, **kw)


def hard_history(n: int = 16) -> list[Op]:
    """n overlapping puts and n overlapping reads of them, then two contradicting reads.

    Deciding it takes about 0.3 s for n = 12 and grows ~5x per 2 more (so ~10 s at 16).
    """
    block = [put(f"v{i}", 0, 10, client=i) for i in range(n)]
    block += [get(f"v{i}", 0, 10, client=n + i) for i in range(n)]
    return ops(*block, get("v0", 11, 12), get("v1", 13, 14))


# -- the reference simulation ----------------------------------------------------------------

OUTCOMES = ["ok"] * 6 + ["fail", "unknown_applied", "unknown_lost"]


@dataclass
class Simulated:
    ops: list[Op]
    final: dict[str, tuple[Any, int]]
    events: list[WatchEvent] = field(default_factory=list)


def simulate(plan: list[tuple[int, str, int, int, int, int, str, bool]]) -> Simulated:
    """Run ``plan`` = [(client, kind, key, gap, to_effect, to_return, outcome, cas_hit)]."""
    clock: dict[int, int] = {}
    timed = []
    for n, (client, kind, key_no, gap, to_effect, to_return, outcome, hit) in enumerate(plan):
        invoke = clock.get(client, 0) + gap
        at = invoke + to_effect
        clock[client] = at + to_return
        timed.append((at, n, client, kind, f"k{key_no}", invoke, at + to_return, outcome, hit))
    state: dict[str, tuple[Any, int]] = {}
    revision = 1
    result: list[Op] = []
    events: list[WatchEvent] = []
    for at, n, client, kind, key, invoke, complete, outcome, hit in sorted(timed):
        applied = outcome in ("ok", "unknown_applied")
        current = state.get(key, (None, 0))[0]
        inp: dict[str, Any] = {}
        out: dict[str, Any] = {}
        if kind == "get":
            out = {"value": current}
        elif kind in ("put", "cas"):
            inp = {"value": f"v{n}"}
            if kind == "cas":
                inp["expected"] = current if hit else f"v{n - 1}"
            wrote = kind == "put" or inp["expected"] == current
            out = {"succeeded": wrote} if kind == "cas" else {}
            if applied and wrote:
                revision += 1
                state[key] = (inp["value"], revision)
                events.append(WatchEvent(revision, "put", key, inp["value"]))
        else:
            out = {"deleted": int(current is not None)}
            if applied and current is not None:
                revision += 1
                del state[key]
                events.append(WatchEvent(revision, "delete", key, None))
        out["revision"] = revision
        status = outcome if outcome in ("ok", "fail") else "unknown"
        end = None if outcome == "unknown_lost" and n % 2 else complete
        out = out if status == "ok" else {}
        result.append(Op(n, client, kind, key, inp, float(invoke), end, status, out))  # type: ignore[arg-type]
    return Simulated(sorted(result, key=lambda o: o.id), dict(state), events)


steps = st.tuples(
    st.integers(0, 3),
    st.sampled_from(["put", "get", "get", "cas", "delete"]),
    st.integers(0, 2),
    st.integers(0, 3),
    st.integers(1, 4),
    st.integers(1, 4),
    st.sampled_from(OUTCOMES),
    st.booleans(),
)


def random_plan(
    rng: random.Random, n: int, *, clients: int, keys: int, outcomes: list[str] = OUTCOMES
) -> list[Any]:
    """A "nice" plan for benchmarks: sequential-ish per key, some concurrency and unknowns."""
    kinds = ["put", "get", "get", "cas", "delete"]
    return [
        (
            rng.randrange(clients),
            rng.choice(kinds),
            rng.randrange(keys),
            rng.randint(0, 3),
            rng.randint(1, 4),
            rng.randint(1, 4),
            rng.choice(outcomes),
            rng.random() < 0.7,
        )
        for _ in range(n)
    ]


# -- linearizability -------------------------------------------------------------------------

LINEARIZABLE = [
    pytest.param(
        ops(put("a", 0, 1), get("a", 2, 3), put("b", 4, 5), get("b", 6, 7)), "ok", id="sequential"
    ),
    pytest.param(ops(get(None, 0, 1)), "ok", id="read-absent"),
    pytest.param(
        ops(put("a", 0, 1), put("b", 2, 5), get("a", 3, 4, client=1), get("b", 3, 6, client=2)),
        "ok",
        id="concurrent-either-order",
    ),
    pytest.param(ops(put("a", 0, 1), get(None, 1, 2, client=1)), "ok", id="touching-is-concurrent"),
    pytest.param(ops(put("a", 0, 1), put("b", 2, 3), get("a", 4, 5)), "illegal", id="stale-read"),
    pytest.param(
        ops(
            put("0", 0, 1),
            cas("0", "1", True, 2, 5, client=1),
            cas("0", "2", True, 2, 5, client=2),
            get("2", 6, 7),
        ),
        "illegal",
        id="lost-update-cas",
    ),
    pytest.param(
        ops(put("a", 0, 1), put("b", 2, 3, "unknown"), get("b", 5, 6)), "ok", id="unknown-put-seen"
    ),
    pytest.param(
        ops(put("a", 0, 1), put("b", 2, None, "unknown"), get("a", 5, 6)),
        "ok",
        id="unknown-put-never-seen",
    ),
    pytest.param(
        ops(put("a", 0, 1), put("b", 2, 3, "unknown"), get("b", 5, 6), get("b", 7, 8)),
        "ok",
        id="unknown-put-seen-late",
    ),
    pytest.param(
        ops(put("a", 0, 1), put("b", 2, 3, "fail"), get("b", 4, 5)), "illegal", id="failed-put-seen"
    ),
    pytest.param(ops(put("a", 0, 1), get("zzz", 2, 3)), "illegal", id="never-written"),
    pytest.param(
        ops(put("a", 0, 1), delete(1, 2, 3), get(None, 4, 5), delete(0, 6, 7)), "ok", id="delete"
    ),
    pytest.param(ops(delete(1, 0, 1)), "illegal", id="delete-absent-reports-1"),
    pytest.param(ops(cas(None, "a", True, 0, 1), get("a", 2, 3)), "ok", id="create-if-absent"),
    pytest.param(ops(cas(None, "a", False, 0, 1)), "illegal", id="create-failed-on-absent"),
    pytest.param(
        ops(put("a", 0, 1), cas("a", "b", None, 2, 3), get("b", 4, 5)),
        "ok",
        id="unknown-cas-applied",
    ),
    pytest.param(
        ops(put("a", 0, 1), delete(None, 2, 3), get(None, 4, 5)), "ok", id="unknown-delete-applied"
    ),
    pytest.param(
        ops(put("a", 0, 1), get("b", 2, 3, status="unknown")), "ok", id="unknown-get-unconstrained"
    ),
    pytest.param(
        ops(put("a", 0, 1), put("b", 2, 3, "unknown"), get("b", 5, 6), get("a", 7, 8)),
        "illegal",
        id="unknown-put-seen-then-stale",
    ),
    pytest.param(
        ops(put("a", 0, None, "unknown"), delete(1, 2, 3)), "ok", id="unknown-put-shown-by-delete"
    ),
    pytest.param(
        ops(put("x", 0, 1), put("a", 2, None, "unknown"), cas("x", "y", False, 3, 4)),
        "ok",
        id="unknown-put-shown-by-failed-cas",
    ),
    pytest.param(
        ops(put("a", 0, 1), put("b", 2, 3, "unknown"), put("b", 9, 10), get("b", 5, 6)),
        "ok",
        id="unknown-put-of-a-value-written-twice",
    ),
    pytest.param(
        ops(put("a", 0, 1, key="x"), get("a", 2, 3, key="x"), put("b", 0, 1), get("a", 2, 3)),
        "illegal",
        id="one-bad-key-of-two",
    ),
    pytest.param(
        ops(put(b"\x00\xff", 0, 1), get("\x00\xff", 2, 3)), "illegal", id="bytes-are-not-str"
    ),
]


@pytest.mark.parametrize(("history", "verdict"), LINEARIZABLE)
def test_linearizability_known_histories(history: list[Op], verdict: str) -> None:
    result = check_linearizable(history, timeout=5.0)
    assert result.verdict == verdict
    assert (result.counterexample is not None) == (verdict == "illegal")


def test_stale_read_counterexample_names_the_read() -> None:
    history = ops(put("a", 0, 1), put("b", 2, 3), get("a", 4, 5))
    result = check_linearizable(History.from_ops(history))
    ce = result.counterexample
    assert ce is not None and ce.key == "k" and ce.state == "b"
    assert [o.id for o in ce.prefix] == [0, 1]
    assert [(o.id, why) for o, why in ce.unplaced] == [(2, "read 'a' but the register held 'b'")]
    assert result.as_check_result().verdict == "violation"
    assert any("read 'a'" in line for line in result.as_check_result().lines())


def test_per_key_verdicts_and_counts() -> None:
    history = ops(
        put("a", 0, 1, key="x"),
        put("b", 0, 1, key="y"),
        get("b", 2, 3, key="y"),
        put("c", 4, 5, "fail"),
        op("lease_grant", 0, 1, ttl=5),
    )
    result = check_linearizable(history)
    assert result.verdict == "ok" and result.per_key == {"x": "ok", "y": "ok"}
    assert result.counts["failed_dropped"] == 1 and result.counts["ignored"] == 1


def test_too_hard_for_the_time_given_is_unknown() -> None:
    result = check_linearizable(hard_history(), timeout=0.05)
    assert result.verdict == "unknown" and result.per_key == {"k": "unknown"}
    assert result.as_check_result().verdict == "unknown"


def test_unknown_by_injected_clock() -> None:
    ticks = itertools.count()
    result = check_linearizable(hard_history(), timeout=0.5, clock=lambda: float(next(ticks)))
    assert result.verdict == "unknown"


def test_malformed_op_is_an_error() -> None:
    with pytest.raises(ValueError, match="lacks 'value'"):
        check_linearizable([op("get", 0, 1, out={})])


@settings(max_examples=300, deadline=None)
@given(plan=st.lists(steps, max_size=40))
def test_simulated_history_is_linearizable(plan: list[Any]) -> None:
    sim = simulate(plan)
    assert check_linearizable(sim.ops, timeout=20).verdict == "ok"


@settings(max_examples=200, deadline=None)
@given(plan=st.lists(steps, min_size=1, max_size=40), pick=st.integers(0, 1000))
def test_read_of_a_never_written_value_is_illegal(plan: list[Any], pick: int) -> None:
    sim = simulate(plan + [(0, "get", 0, 0, 1, 1, "ok", False)])
    reads = [o for o in sim.ops if o.kind == "get" and o.status == "ok"]
    bad = reads[pick % len(reads)]
    sim.ops[bad.id] = dataclasses.replace(bad, output={"value": "never-written"})
    result = check_linearizable(sim.ops, timeout=20)
    assert result.verdict == "illegal" and result.per_key[bad.key or ""] == "illegal"
    assert result.counterexample is not None and bad not in result.counterexample.prefix


VALUES = st.sampled_from(["a", "b", None])
RANDOM_OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "get", "cas", "delete"]),
        VALUES,
        VALUES,
        st.booleans(),
        st.integers(0, 6),
        st.integers(0, 4),
        st.sampled_from(["ok", "ok", "ok", "unknown", "fail"]),
    ),
    max_size=7,
)


def random_op(n: int, kind: str, v: Any, w: Any, flag: bool, t: int, d: int, status: str) -> Op:
    end = None if status == "unknown" and flag else float(t + d)
    out: dict[str, Any] = {
        "get": {"value": v},
        "cas": {"succeeded": flag},
        "delete": {"deleted": int(flag)},
        "put": {},
    }[kind]
    inp = {"put": {"value": v or "a"}, "cas": {"expected": v, "value": w or "b"}}.get(kind, {})
    return Op(n, n, kind, "k", inp, float(t), end, status, out)  # type: ignore[arg-type]


def brute_force(history: list[Op]) -> bool:
    """Some order of the ops that happened respects real time and the register."""
    rops = [r for r in map(compile_op, history) if r is not None]
    for order in itertools.permutations(rops):
        state, legal = None, True
        for i, r in enumerate(order):
            legal, state = step(r, state)
            if not legal or any(later.complete < r.invoke for later in order[i + 1 :]):
                legal = False
                break
        if legal:
            return True
    return False


@settings(max_examples=600, deadline=None)
@given(raw=RANDOM_OPS)
def test_search_agrees_with_brute_force(raw: list[Any]) -> None:
    history = [random_op(n, *item) for n, item in enumerate(raw)]
    expected = "ok" if brute_force(history) else "illegal"
    assert check_linearizable(history, timeout=20).verdict == expected


def test_nice_history_of_two_thousand_ops() -> None:
    sim = simulate(random_plan(random.Random(7), 2000, clients=20, keys=20))
    result = check_linearizable(sim.ops, timeout=60)
    assert result.verdict == "ok" and result.ops_checked > 1500


# -- lost writes -----------------------------------------------------------------------------

LOST_WRITES = [
    pytest.param(ops(put("a", 0, 1, rev=5)), {}, "violation", id="acked-put-missing"),
    pytest.param(
        ops(put("a", 0, 1, rev=5)), {"k": ("old", 3)}, "violation", id="older-mod-revision"
    ),
    pytest.param(
        ops(put("a", 0, 1, rev=5)), {"k": ("x", 5)}, "violation", id="same-rev-other-value"
    ),
    pytest.param(ops(put("a", 0, 1, rev=5)), {"k": ("a", 5)}, "ok", id="visible"),
    pytest.param(
        ops(put("a", 0, 1, rev=5), put("b", 2, 3, rev=6)),
        {"k": ("b", 6)},
        "ok",
        id="overwritten-by-ok",
    ),
    pytest.param(
        ops(put("a", 0, 1, rev=5), put("b", 2, 3, "unknown")),
        {"k": ("b", 7)},
        "ok",
        id="overwritten-by-unknown",
    ),
    pytest.param(
        ops(put("a", 0, 1), put("b", 2, None, "unknown")),
        {"k": "b"},
        "ok",
        id="no-revs-unknown-later",
    ),
    pytest.param(
        ops(put("a", 0, 1), put("b", 2, 3)), {"k": "a"}, "violation", id="no-revs-older-value"
    ),
    pytest.param(ops(put("a", 0, 3), put("b", 1, 2)), {"k": "a"}, "ok", id="no-revs-concurrent"),
    pytest.param(
        ops(put("a", 0, 1, rev=5), delete(None, 2, 3)), {}, "ok", id="absent-unknown-delete"
    ),
    pytest.param(
        ops(put("a", 0, 1, rev=5), delete(1, 2, 3, rev=6)), {}, "ok", id="absent-ok-delete"
    ),
    pytest.param(
        ops(delete(1, 0, 1, rev=4), put("a", 2, 3, rev=5)),
        {},
        "violation",
        id="absent-delete-before",
    ),
    pytest.param(ops(put("a", 0, 1, rev=5, lease=7)), {}, "ok", id="absent-lease-expired"),
    pytest.param(
        ops(put("a", 0, 1, rev=5), put("b", 2, 3, "unknown", lease=7)), {}, "ok", id="later-lease"
    ),
    pytest.param(
        ops(put("a", 0, 1, rev=5), delete(1, 2, 3, rev=7)),
        {"k": ("a", 5)},
        "violation",
        id="delete-undone",
    ),
    pytest.param(ops(put("a", 0, 1, "fail")), {}, "unknown", id="nothing-acknowledged"),
    pytest.param(ops(cas(None, "a", True, 0, 1, rev=3)), {}, "violation", id="cas-lost"),
]


@pytest.mark.parametrize(("history", "final", "verdict"), LOST_WRITES)
def test_lost_writes_known_histories(
    history: list[Op], final: dict[str, Any], verdict: str
) -> None:
    result = lost_writes(history, final)
    assert result.verdict == verdict, result.violations
    assert bool(result.violations) == (verdict == "violation")


@settings(max_examples=200, deadline=None)
@given(plan=st.lists(steps, min_size=1, max_size=40))
def test_simulated_history_loses_nothing(plan: list[Any]) -> None:
    sim = simulate(plan)
    assert lost_writes(sim.ops, sim.final).verdict in ("ok", "unknown")
    plain = {k: v for k, (v, _) in sim.final.items()}
    assert lost_writes(sim.ops, plain).verdict in ("ok", "unknown")


# -- watches ---------------------------------------------------------------------------------

WRITES = ops(
    put("a", 0, 1, key="k1", rev=2),
    put("b", 2, 3, key="k2", rev=3),
    delete(1, 4, 5, key="k1", rev=4),
    op(
        "txn",
        6,
        7,
        key=None,
        ops=[
            {"type": "put", "key": "k1", "value": "c"},
            {"type": "put", "key": "k2", "value": "d"},
        ],
        out={"succeeded": True, "revision": 5},
    ),
    put("e", 8, 9, "unknown", key="k3"),
)
E2, E3, E4 = (
    WatchEvent(2, "put", "k1", "a"),
    WatchEvent(3, "put", "k2", "b"),
    WatchEvent(4, "delete", "k1", None),
)
E5a, E5b = WatchEvent(5, "put", "k1", "c"), WatchEvent(5, "put", "k2", "d")


def prefix_watch(*events: WatchEvent, start: int = 2) -> WatchRecord:
    return WatchRecord(client=9, key="k", range_end="l", start_revision=start, events=list(events))


WATCHES = [
    pytest.param([prefix_watch(E2, E3, E4, E5a, E5b)], "ok", id="all-with-shared-txn-revision"),
    pytest.param([prefix_watch(E2, E3)], "ok", id="stopped-early"),
    pytest.param([prefix_watch(E2, E4, E5a, E5b)], "violation", id="skipped-event"),
    pytest.param([prefix_watch(E2, E3, E3, E4)], "violation", id="duplicate"),
    pytest.param([prefix_watch(E2, E4, E3)], "violation", id="out-of-order"),
    pytest.param([prefix_watch(E2, E3, E4, E5a)], "violation", id="txn-half-seen"),
    pytest.param([prefix_watch(E2, E3, E4, E5b, E5a)], "ok", id="txn-events-any-order"),
    pytest.param(
        [prefix_watch(E2, E3, E4, E5a, E5b, WatchEvent(6, "put", "k3", "e"))],
        "ok",
        id="unknown-put-seen",
    ),
    pytest.param(
        [prefix_watch(E2, WatchEvent(3, "put", "k2", "zz"))], "violation", id="invented-value"
    ),
    pytest.param(
        [prefix_watch(E2, WatchEvent(3, "put", "k1", "a"))],
        "violation",
        id="revision-of-another-key",
    ),
    pytest.param(
        [prefix_watch(E2, E3, WatchEvent(4, "put", "k1", "a"))],
        "violation",
        id="put-instead-of-delete",
    ),
    pytest.param(
        [prefix_watch(E2, E3, E4, E5a, E5b, WatchEvent(7, "delete", "k3", None))],
        "ok",
        id="lease-expiry-delete",
    ),
    pytest.param([prefix_watch(E3, E4, start=3)], "ok", id="from-start-revision"),
    pytest.param([prefix_watch(E2, E3, start=3)], "violation", id="below-start-revision"),
    pytest.param([prefix_watch(E3, E4, start=0)], "ok", id="start-zero-means-first-event"),
    pytest.param(
        [
            WatchRecord(1, "k2", None, 2, [E3, E5b]),
            WatchRecord(2, "k1", None, 2, [E2, E4, E5a], reconnects=2),
        ],
        "ok",
        id="single-key-watches",
    ),
    pytest.param([WatchRecord(1, "k2", None, 2, [E2, E3])], "violation", id="event-outside-range"),
    pytest.param([prefix_watch()], "unknown", id="no-events"),
]


@pytest.mark.parametrize(("watches", "verdict"), WATCHES)
def test_watch_known_histories(watches: list[WatchRecord], verdict: str) -> None:
    result = watch_checker(watches, WRITES)
    assert result.verdict == verdict, result.violations


def test_watch_violation_lines_say_what_was_missed() -> None:
    result = watch_checker([prefix_watch(E2, E4)], WRITES)
    assert result.counts["missed"] == 1
    assert "never saw rev 3: put #1 (put 'k2'='b')" in result.violations[0]


@settings(max_examples=200, deadline=None)
@given(plan=st.lists(steps, min_size=1, max_size=40), pick=st.integers(0, 1000))
def test_simulated_watch_is_complete(plan: list[Any], pick: int) -> None:
    sim = simulate(plan)
    everything = WatchRecord(0, "k", "l", 2, list(sim.events))
    assert watch_checker([everything], sim.ops).verdict in ("ok", "unknown")
    acked = {o.output["revision"] for o in sim.ops if o.kind == "put" and o.status == "ok"}
    droppable = [e for e in sim.events[:-1] if e.revision in acked]
    if droppable:  # an acknowledged put's event goes missing below the last revision seen
        gone = droppable[pick % len(droppable)]
        holed = WatchRecord(0, "k", "l", 2, [e for e in sim.events if e != gone])
        assert watch_checker([holed], sim.ops).verdict == "violation"


# -- revisions, leaders, leases --------------------------------------------------------------


def rd(rev: int, t0: float, t1: float, **kw: Any) -> Op:
    return get("v", t0, t1, out={"revision": rev}, **kw)


REVISIONS = [
    pytest.param(
        ops(put("a", 0, 1, rev=2), rd(2, 2, 3), put("b", 4, 5, rev=3)), [], "ok", id="sequential"
    ),
    pytest.param(
        ops(put("a", 0, 1, rev=5), rd(4, 2, 3, client=1)), [], "violation", id="read-went-back"
    ),
    pytest.param(
        ops(put("a", 0, 1, rev=5), rd(4, 2, 3, serializable=True)),
        [],
        "ok",
        id="serializable-stale",
    ),
    pytest.param(ops(rd(5, 0, 1), put("a", 2, 3, rev=5)), [], "violation", id="write-not-above"),
    pytest.param(ops(put("a", 0, 3, rev=5), rd(4, 1, 2, client=1)), [], "ok", id="concurrent"),
    pytest.param(
        ops(put("a", 0, 1, rev=5), put("b", 2, 3, "unknown"), rd(5, 4, 5)),
        [],
        "ok",
        id="unknown-ignored",
    ),
    pytest.param(
        [],
        [RevisionObservation(0, "s1", 5), RevisionObservation(1, "s1", 4)],
        "violation",
        id="replica-went-back",
    ),
    pytest.param(
        [],
        [RevisionObservation(0, "s1", 5), RevisionObservation(1, "s1", 4, incarnation=1)],
        "ok",
        id="replica-restarted",
    ),
    pytest.param(
        [],
        [RevisionObservation(1, "s1", 5), RevisionObservation(0, "s2", 9)],
        "ok",
        id="per-replica",
    ),
    pytest.param([], [], "unknown", id="nothing"),
]


@pytest.mark.parametrize(("history", "replicas", "verdict"), REVISIONS)
def test_revisions_monotonic(
    history: list[Op], replicas: list[RevisionObservation], verdict: str
) -> None:
    result = revisions_monotonic(history, replicas)
    assert result.verdict == verdict, result.violations


@settings(max_examples=100, deadline=None)
@given(plan=st.lists(steps, min_size=1, max_size=40))
def test_simulated_revisions_are_monotonic(plan: list[Any]) -> None:
    assert revisions_monotonic(simulate(plan).ops).verdict in ("ok", "unknown")


def lo(t: float, member: str, term: int, leader: bool = True) -> LeaderObservation:
    return LeaderObservation(t, member, term, leader)


@pytest.mark.parametrize(
    ("observations", "verdict"),
    [
        pytest.param([lo(0, "s1", 1), lo(1, "s1", 1), lo(2, "s2", 2)], "ok", id="one-each"),
        pytest.param([lo(0, "s1", 1), lo(1, "s2", 1)], "violation", id="two-in-a-term"),
        pytest.param(
            [lo(0, "s1", 1), lo(1, "s2", 1, False), lo(2, "s3", 1, False)], "ok", id="followers"
        ),
        pytest.param([lo(0, "s1", 1, False)], "unknown", id="no-claims"),
    ],
)
def test_one_leader_per_term(observations: list[LeaderObservation], verdict: str) -> None:
    result = one_leader_per_term(observations)
    assert result.verdict == verdict
    if verdict == "violation":
        assert result.violations == ["term 1 claimed by s1 (first at 0.000), s2 (first at 1.000)"]


@pytest.mark.parametrize(
    ("leases", "verdict"),
    [
        pytest.param([LeaseRecord(1, 3, 10.0, (), 13.1)], "ok", id="on-time"),
        pytest.param([LeaseRecord(1, 3, 10.0, (), 12.9)], "ok", id="within-tolerance"),
        pytest.param([LeaseRecord(1, 3, 10.0, (), 11.0)], "violation", id="early"),
        pytest.param(
            [LeaseRecord(1, 3, 10.0, (11.0, 12.0), 14.5)], "violation", id="early-after-keepalive"
        ),
        pytest.param([LeaseRecord(1, 3, 10.0, (11.0, 12.0), 15.0)], "ok", id="kept-alive"),
        pytest.param([(1, 3, 10.0, [12.0], 13.0)], "violation", id="plain-tuple"),
        pytest.param([LeaseRecord(1, 3, 10.0, (), None)], "unknown", id="never-expired"),
    ],
)
def test_leases_expire_after_ttl(leases: list[Any], verdict: str) -> None:
    assert leases_expire_after_ttl(leases).verdict == verdict


# -- the history itself ----------------------------------------------------------------------


def test_history_records_and_round_trips(tmp_path: Any) -> None:
    ticks = itertools.count()
    history = History(clock=lambda: float(next(ticks)))
    a = history.record_invoke(0, "put", "k", {"value": b"\x00\xffbytes"})
    b = history.record_invoke(1, "get", "k")
    c = history.record_invoke(2, "put", "k", {"value": "str"}, at=0.5)
    history.record_complete(a, "ok", {"revision": 2})
    history.record_complete(b, "ok", {"value": b"\x00\xffbytes", "revision": 2}, at=9.0)
    with pytest.raises(ValueError, match="already completed"):
        history.record_complete(a, "ok")
    with pytest.raises(ValueError, match="status"):
        history.record_complete(c, "failed")  # type: ignore[arg-type]
    history.watches.append(
        WatchRecord(3, "k", None, 2, [WatchEvent(2, "put", "k", b"\x00\xffbytes")])
    )
    history.faults.append(FaultRecord("kill-leader", "s1", 1.0, 2.0))
    history.leaders.append(lo(1.0, "s1", 3))
    history.revisions.append(RevisionObservation(1.0, "s1", 2))
    history.leases.append(LeaseRecord(7, 5, 1.0, (2.0,), None))
    # a cluster run's records, among them one whose own field is named "type"
    history.observations.append(Observation(3.0, "pods", "DELETED", 9, "ns", "p", {"uid": "u"}))
    history.convergence.append(Convergence(0, 2.0, 4.5, [], [[0.0, ["pod p not Ready"]]]))
    assert history.summary() == {"put": {"ok": 1, "pending": 1}, "get": {"ok": 1}}
    assert [o.id for o in history.ops(kind="put")] == [a, c] and history.ops(
        status="ok", kind="get"
    )[0].id == b
    path = tmp_path / "h.jsonl"
    history.to_jsonl(path)
    again = History.from_jsonl(path)
    assert list(again) == list(history)
    assert again[a].input["value"] == b"\x00\xffbytes" and again[c].input["value"] == "str"
    assert (again.watches, again.faults, again.leaders) == (
        history.watches,
        history.faults,
        history.leaders,
    )
    assert (again.revisions, again.leases) == (history.revisions, history.leases)
    assert (again.observations, again.convergence) == (history.observations,
                                                       history.convergence)
    assert '{"$b64": "AP9ieXRlcw=="}' in path.read_text()
    assert check_linearizable(again).verdict == "ok"
    assert "pending" in history.format_summary()


def test_history_rejects_foreign_files(tmp_path: Any) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"record": "header", "format": "other", "version": 2}\n')
    with pytest.raises(ValueError, match="not a ketch-chaos-history"):
        History.from_jsonl(path)
    path.write_text('{"record": "header", "format": "ketch-chaos-history", "version": 1}\n')
    with pytest.raises(ValueError, match="not a ketch-chaos-history v2"):
        History.from_jsonl(path)
    path.write_text('{"record": "mystery"}\n')
    with pytest.raises(ValueError, match="unknown record type"):
        History.from_jsonl(path)


def test_unknown_op_complete_is_infinite_for_the_checker() -> None:
    history = ops(put("a", 0, 1), put("b", 2, 3, "unknown"), get("a", 10, 11), get("b", 12, 13))
    assert check_linearizable(history).verdict == "ok"
    assert math.inf > 13  # the unknown put may land between the two reads
