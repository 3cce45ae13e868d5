"""Checkers of the API history: what the apiservers acknowledged, served and streamed.

Role in the data flow: the API workload (:mod:`chaos.api_workload`) records ``api_*`` ops in
the run's history and reads an :class:`ApiFinalState` after the heal; these pure functions
judge them.  Objects are judged by name and only names some ``api_create`` targeted count.

Vocabulary.  A write "may have happened" when its status is ok or unknown (a "fail" is a
definite 4xx: nothing was written).  An acknowledged (ok) create/update/patch has the rv its
answer carried; a delete answers no rv, so an acknowledged delete takes the rv of the DELETED
event the watchers saw for that object (when they agree on exactly one).  An unknown write may
land at ANY later time (the apiserver carries on after the client gave up), so it explains any
later state its value matches.

Checkers (each a :class:`CheckResult`):

- ``api_lost_writes``: the final GET of each object agrees with its last acknowledged write
  (same rv and value, or a newer rv holding an unknown write's value; 404 after an
  acknowledged delete or when some delete may have happened).
- ``api_revisions``: acknowledged writes (and consistent lists) never answer an rv below one
  already acknowledged before they were invoked (so per client too); per watcher, across its
  resumptions and relists, events arrive with strictly increasing rvs, never twice, and no
  bookmark or relist goes back.
- ``api_watches``: every acknowledged write's rv reaches every watcher whose stream covered it
  (between a list and the last rv it saw); events carry what the write wrote; every list shows
  each object at least as new as its acknowledged writes at or below the list's rv; after the
  heal each watcher's view at the final list's rv equals that list.
- ``api_conflicts``: no 409 for a write that cannot conflict: AlreadyExists only for a create
  retried after an unknown create of that name; Conflict only after an unknown write of that
  object or a write of it by another client.
- ``api_linearizable``: each object is a register (create = cas from absent, CAS update = cas
  from the value read, patch = put, delete, get) checked by :mod:`.linearizability`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from chaos.history import Op, Value

from .api_index import (
    API_WRITES,
    ApiFinalState,
    Index,
    Write,
    by_watcher,
    ops_of,
    show,
)
from .api_watches import api_watches
from .linearizability import check_linearizable
from .result import CheckResult, verdict_of

__all__ = [
    "API_WRITES",
    "ApiFinalState",
    "api_checks",
    "api_conflicts",
    "api_linearizable",
    "api_lost_writes",
    "api_revisions",
    "api_watches",
]



# --- lost writes -------------------------------------------------------------------------------


def api_lost_writes(history: Iterable[Op], final: ApiFinalState) -> CheckResult:
    """Every object's final GET against its writes; "unknown" if nothing was acknowledged."""
    index = Index.of(ops_of(history))
    counts = dict.fromkeys(("objects", "acknowledged", "visible", "replaced", "deleted",
                            "lost", "not_read"), 0)
    violations: list[str] = []
    for name in sorted(index.names):
        writes = index.writes.get(name, [])
        acked = [w for w in writes if w.op.status == "ok"]
        counts["objects"] += 1
        counts["acknowledged"] += len(acked)
        if name not in final.objects:
            counts["not_read"] += 1
            continue
        outcome = _judge(name, _latest(acked), final.objects[name], index)
        if outcome.startswith("LOST"):
            counts["lost"] += 1
            violations.append(f"{name!r}: {outcome[5:]}")
        else:
            counts[outcome] += 1
    return CheckResult("api_lost_writes", verdict_of(violations, counts["acknowledged"]),
                       violations, counts)


def _latest(acked: list[Write]) -> Write | None:
    """The acknowledged write that took effect last: the last one invoked (an owner writes
    sequentially), unless a put with a higher rv exists (concurrent writers of one object);
    a delete whose rv nobody saw keeps its place."""
    if not acked:
        return None
    last = acked[-1]
    if last.deletes and last.rv is None:
        return last
    puts = [w for w in acked if not w.deletes and w.rv is not None]
    top = max(puts, key=lambda w: w.rv or 0, default=None)
    if top is not None and (last.rv is None or (top.rv or 0) > last.rv):
        return top
    return last


def _judge(name: str, last: Write | None, got: tuple[Value, int | None] | None,
           index: Index) -> str:
    """ "visible", "replaced", "deleted" or "LOST <why>" for one object."""
    if got is None:
        if last is None or last.deletes or index.any_delete(name):
            return "deleted"
        return (f"LOST {show(last.op)} wrote {last.value!r} at rv {last.rv}, but the object is "
                "gone and no delete of it was ever sent")
    value, rv = got
    if last is not None and not last.deletes and last.rv is not None and rv is not None:
        if rv < last.rv:
            return f"LOST {show(last.op)} answered rv {last.rv}; the object is back at rv {rv}"
        if rv == last.rv:
            if value == last.value:
                return "visible"
            return f"LOST {show(last.op)} wrote {last.value!r} at rv {rv}; it holds {value!r}"
    if last is not None and not last.deletes and value == last.value:
        return "visible"
    if index.unknown_put(name, value):
        return "replaced"
    what = "never acknowledged a write" if last is None else f"last acknowledged {show(last.op)}"
    return f"LOST final GET shows {value!r} at rv {rv}, which no later write can explain ({what})"


# --- resourceVersions --------------------------------------------------------------------------


def api_revisions(history: Iterable[Op]) -> CheckResult:
    """Real-time order of acknowledged writes and lists; per-watcher order of what arrived."""
    ops = ops_of(history)
    violations = _realtime(ops)
    counts = {"writes_and_lists": sum(1 for op in ops if _answer_rv(op) is not None),
              "watch_records": 0, "backwards": len(violations), "duplicates": 0}
    for wid, seq in by_watcher(ops).items():
        counts["watch_records"] += len(seq)
        for kind, line in _stream_order(seq):
            counts[kind] += 1
            violations.append(f"watcher {wid}: {line}")
    checked = counts["writes_and_lists"] + counts["watch_records"]
    return CheckResult("api_revisions", verdict_of(violations, checked), violations, counts)


def _answer_rv(op: Op) -> int | None:
    """The rv an ok write answered (it made that revision) or a consistent list read at."""
    if op.status != "ok" or op.complete is None:
        return None
    if op.kind in ("api_create", "api_update", "api_patch", "api_relist", "api_final_list"):
        rv = op.output.get("rv")
        return rv if isinstance(rv, int) else None
    return None


def _realtime(ops: list[Op]) -> list[str]:
    answered = [op for op in ops if _answer_rv(op) is not None]
    completed = sorted(answered, key=lambda o: o.complete or 0.0)
    violations: list[str] = []
    best: Op | None = None
    done = 0
    for op in sorted(answered, key=lambda o: o.invoke):
        while done < len(completed) and (completed[done].complete or 0.0) < op.invoke:
            if best is None or (_answer_rv(completed[done]) or 0) > (_answer_rv(best) or 0):
                best = completed[done]
            done += 1
        if best is None:
            continue
        floor, mine = _answer_rv(best) or 0, _answer_rv(op) or 0
        write = op.kind in API_WRITES
        if mine < floor or (write and mine == floor):
            need = "above" if write else "at least"
            violations.append(f"{show(op)} answered rv {mine}, but {show(best)} had already "
                              f"answered rv {floor}; needed {need} {floor}")
    return violations


def _stream_order(seq: list[Op]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    seen: set[tuple[int, str]] = set()
    last = 0
    for op in seq:
        rv = op.output.get("rv")
        if op.kind == "api_watch_error" or not isinstance(rv, int):
            continue
        if op.kind == "api_watch_event":
            ident = (rv, op.key or "")
            if ident in seen:
                problems.append(("duplicates", (f"event rv {rv} {op.output.get('type')} "
                                 f"{op.key!r} delivered twice (#{op.id})")))
            elif rv <= last:
                problems.append(("backwards", (f"event rv {rv} {op.key!r} (#{op.id}) arrived "
                                 f"after rv {last}")))
            seen.add(ident)
        elif rv < last:
            what = "relist" if op.kind == "api_relist" else "bookmark"
            problems.append(("backwards", f"{what} at rv {rv} (#{op.id}) after rv {last}"))
        last = max(last, rv)
    return problems


# --- 409s --------------------------------------------------------------------------------------


def api_conflicts(history: Iterable[Op]) -> CheckResult:
    """Every 409 must have a cause (see the module doc)."""
    ops = ops_of(history)
    by_name: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind in API_WRITES and op.key:
            by_name.setdefault(op.key, []).append(op)
    counts = {"writes": 0, "conflicts": 0, "excused": 0}
    violations: list[str] = []
    for name, writes in sorted(by_name.items()):
        for op in writes:
            counts["writes"] += 1
            if op.status != "fail" or op.output.get("code") != 409:
                continue
            counts["conflicts"] += 1
            done = op.complete if op.complete is not None else float("inf")
            before = [o for o in writes if o.id != op.id and o.invoke < done]
            if op.kind == "api_create":
                excuse = any(o.kind == "api_create" and o.status == "unknown" for o in before)
                why = "no earlier create of that name had an unknown outcome"
            else:
                excuse = any(o.status == "unknown" or (o.client != op.client
                                                       and o.status != "fail") for o in before)
                why = "no write of it by anyone else and no unknown write of it came before"
            if excuse:
                counts["excused"] += 1
            else:
                violations.append(f"{show(op)} got 409 {op.output.get('reason')}, but {why}")
    return CheckResult("api_conflicts", verdict_of(violations, counts["writes"]), violations,
                       counts)


# --- linearizability ---------------------------------------------------------------------------


def register_ops(history: Iterable[Op]) -> list[Op]:
    """The API ops as register ops (put/get/cas/delete) on keys ``api:<name>``."""
    out: list[Op] = []
    for op in ops_of(history):
        reg = _as_register(op)
        if reg is not None:
            out.append(reg)
    return out


def _as_register(op: Op) -> Op | None:
    code, ok, unknown = op.output.get("code"), op.status == "ok", op.status == "unknown"
    kind: str
    inp: dict[str, Any]
    out: dict[str, Any] = {}
    status = op.status
    if op.kind == "api_get" and ok:
        kind, inp, out = "get", {}, {"value": op.output.get("value")}
    elif op.kind == "api_create" and (ok or unknown or code == 409):
        kind, inp = "cas", {"expected": None, "value": op.input.get("value")}
        out, status = ({} if unknown else {"succeeded": ok}), ("unknown" if unknown else "ok")
    elif op.kind == "api_update" and (ok or unknown or code in (404, 409)):
        kind, inp = "cas", {"expected": op.input.get("expected"), "value": op.input.get("value")}
        out, status = ({} if unknown else {"succeeded": ok}), ("unknown" if unknown else "ok")
    elif op.kind == "api_patch" and (ok or unknown):
        kind, inp = "put", {"value": op.input.get("value")}
    elif op.kind == "api_patch" and code == 404:
        kind, inp, out, status = "get", {}, {"value": None}, "ok"
    elif op.kind == "api_delete" and (ok or unknown or code == 404):
        kind, inp = "delete", {}
        out, status = ({} if unknown else {"deleted": int(ok)}), ("unknown" if unknown else "ok")
    else:
        return None
    return dataclasses.replace(op, kind=kind, key=f"api:{op.key}", input=inp, output=out,
                               status=status)


def api_linearizable(history: Iterable[Op], *, timeout: float = 30.0) -> CheckResult:
    result = check_linearizable(register_ops(history), timeout=timeout).as_check_result()
    return dataclasses.replace(result, name="api_linearizable")


def api_checks(history: Iterable[Op], final: ApiFinalState | None, *,
               timeout: float = 30.0) -> list[CheckResult]:
    """Every API checker; without a final state, lost writes are "unknown"."""
    ops = ops_of(history)
    lost = (api_lost_writes(ops, final) if final is not None
            else CheckResult("api_lost_writes", "unknown", ["no final state was read"]))
    return [api_linearizable(ops, timeout=timeout), lost, api_revisions(ops),
            api_watches(ops, final), api_conflicts(ops)]
