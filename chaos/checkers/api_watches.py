"""Watch completeness: every acknowledged write reaches every watcher whose stream covered
it, events carry what was written, lists are at least as new as acknowledged writes, and each
watcher's view at the end equals the final list (see :mod:`chaos.checkers.api`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chaos.history import Op, Value

from .api_index import EVENT_OF, ApiFinalState, Index, Write, by_watcher, ops_of, show
from .result import CheckResult, verdict_of

__all__ = ["api_watches"]


def api_watches(history: Iterable[Op], final: ApiFinalState | None = None) -> CheckResult:
    """Completeness and content of every watcher's stream and list (see the module doc)."""
    ops = ops_of(history)
    index = Index.of(ops)
    counts = dict.fromkeys(("watchers", "events", "relists", "missed", "mismatched",
                            "stale_lists", "diverged", "lagging"), 0)
    violations: list[str] = []
    for wid, seq in sorted(by_watcher(ops).items()):
        counts["watchers"] += 1
        for kind, line in _watch_problems(seq, index, counts):
            counts[kind] += 1
            violations.append(f"watcher {wid}: {line}")
        if final is not None:
            for line in _view_at(seq, final, index):
                counts["diverged"] += 1
                violations.append(f"watcher {wid}: {line}")
    for op in ops:  # the final list is a list too
        if op.kind == "api_final_list" and op.status == "ok":
            for line in _list_problems(op, index):
                counts["stale_lists"] += 1
                violations.append(f"final list: {line}")
    if final is not None:
        for wid, rv in sorted(final.lagging.items()):
            counts["lagging"] += 1
            violations.append(f"watcher {wid} never reached the final list's rv "
                              f"{final.list_rv} after the heal (stuck at rv {rv})")
    return CheckResult("api_watches", verdict_of(violations, counts["events"]), violations,
                       counts)


def _watch_problems(seq: list[Op], index: Index,
                    counts: dict[str, int]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    segments: list[tuple[int, int, set[tuple[int, str]]]] = []  # (from, to, events)
    for op in seq:
        rv = op.output.get("rv")
        if not isinstance(rv, int):
            continue
        if op.kind == "api_relist":
            counts["relists"] += 1
            problems += [("stale_lists", line) for line in _list_problems(op, index)]
            segments.append((rv, rv, set()))
        elif op.kind == "api_watch_event" and segments:
            counts["events"] += 1
            start, end, got = segments[-1]
            got.add((rv, op.key or ""))
            segments[-1] = (start, max(end, rv), got)
            problems += [("mismatched", line) for line in _event_problems(op, index)]
        elif op.kind == "api_watch_bookmark" and segments:
            start, end, got = segments[-1]
            segments[-1] = (start, max(end, rv), got)
    for start, end, got in segments:
        for w in index.acked:
            assert w.rv is not None
            if start < w.rv <= end and (w.rv, w.name) not in got:
                problems.append(("missed", (f"never saw rv {w.rv}: {show(w.op)} "
                                 f"({EVENT_OF[w.op.kind]} {w.value!r}), though its stream "
                                 f"covered rvs {start}..{end}")))
    return problems


def _event_problems(op: Op, index: Index) -> list[str]:
    rv, typ, value, name = op.output["rv"], op.output.get("type"), op.output.get("value"), op.key
    if name not in index.names:
        return []
    out: list[str] = []
    owner = index.by_rv.get(rv)
    if owner is not None and owner.name != name:
        out.append(f"event rv {rv} {typ} {name!r}, but rv {rv} is {show(owner.op)}")
    elif owner is not None:
        if EVENT_OF[owner.op.kind] != typ:
            out.append(f"event rv {rv} is {typ} {name!r}, but {show(owner.op)} made it")
        elif not owner.deletes and owner.value != value:
            out.append(f"event rv {rv} {typ} {name!r}={value!r}, but {show(owner.op)} "
                       f"wrote {owner.value!r}")
    if typ != "DELETED" and not index.may_have_written(name or "", value):
        out.append(f"event rv {rv} {typ} {name!r}={value!r}: no write ever sent that value")
    return out


def _list_problems(op: Op, index: Index) -> list[str]:
    """A consistent list at rv R shows every object at least as new as its acknowledged
    writes at or below R, nothing above R, and only values that were written."""
    at = op.output["rv"]
    items: dict[str, Any] = op.output.get("items") or {}
    newest: dict[str, Write] = {}
    for acked in index.acked:
        if acked.rv is not None and acked.rv <= at:
            newest[acked.name] = acked
    out: list[str] = []
    for name in sorted(index.names):
        item = items.get(name)
        w = newest.get(name)
        if item is not None:
            value, rv = item
            if rv is not None and rv > at:
                out.append(f"list at rv {at} (#{op.id}) shows {name!r} at rv {rv}, above it")
            elif not index.may_have_written(name, value):
                out.append(f"list at rv {at} (#{op.id}) shows {name!r}={value!r}, never written")
            elif w is not None and w.rv is not None and rv is not None and (
                    rv < w.rv or (rv == w.rv and (w.deletes or value != w.value))):
                out.append(f"list at rv {at} (#{op.id}) shows {name!r}={value!r} at rv {rv}, "
                           f"older than {show(w.op)} at rv {w.rv}")
        elif w is not None and not w.deletes and not index.any_delete(name):
            out.append(f"list at rv {at} (#{op.id}) lacks {name!r}, written by {show(w.op)} "
                       f"at rv {w.rv} and never deleted")
    return out


def _view_at(seq: list[Op], final: ApiFinalState, index: Index) -> list[str]:
    """The watcher's cache (last list + later events) at the final list's rv, against it."""
    at = final.list_rv
    view: dict[str, tuple[Value, int | None]] | None = None
    reached = False
    for op in seq:
        rv = op.output.get("rv")
        if not isinstance(rv, int):
            continue
        if rv > at:
            if op.kind == "api_relist":
                return []  # relisted across ``at`` (after a 410): its view there is unknown
            reached = True
            break
        if op.kind == "api_relist":
            view = {k: (v[0], v[1]) for k, v in (op.output.get("items") or {}).items()}
        elif op.kind == "api_watch_event" and view is not None:
            if op.output.get("type") == "DELETED":
                view.pop(op.key or "", None)
            else:
                view[op.key or ""] = (op.output.get("value"), rv)
        reached = reached or rv == at
    if view is None or not reached:
        return []  # the lagging check reports a watcher that never got there
    out: list[str] = []
    for name in sorted(index.names):
        mine, truth = view.get(name), final.listed.get(name)
        if mine != truth:
            out.append(f"at rv {at} its view has {name!r} = {mine!r}; the final list "
                       f"has {truth!r}")
    return out
