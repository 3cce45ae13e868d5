"""Every watch saw every revision in its range exactly once, in order, and nothing invented.

Role in the data flow: the workload keeps `WatchRecord`s of long-lived watches (across their
reconnects) next to the op history; this checker compares the two.

Per watch, with ``lo`` = its start revision (or its first event's when it started at 0) and
``hi`` = the last revision it received:

- order: revisions never go down; events sharing a revision (one txn) are adjacent;
- exactly once: no (revision, key) twice;
- range: no event outside the watched keys, none below ``lo``;
- no gaps: each change an acknowledged write made (`writes.Effect.certain`) to a watched key
  at a revision in [lo, hi] was delivered;
- no inventions: a put event's (key, value) was written by some op that was ok or unknown;
  where an acknowledged write owns that revision, the event matches what it wrote (deletes
  are accepted as is: leases expire on their own).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from chaos.history import Op, Value, WatchEvent, WatchRecord

from .result import CheckResult, verdict_of
from .writes import Effect, effects_of, write_revision

__all__ = ["watch_checker"]

_COUNTS = ("watches", "events", "missed", "duplicates", "out_of_order", "invented", "mismatched")


@dataclass
class _Writes:
    """The writes of the history, indexed the ways the checks need."""

    written: set[tuple[str, Value]]  # every (key, value) any ok/unknown op may have put
    certain: list[tuple[int, Effect]]  # acknowledged changes with their revision, sorted
    revisions: list[int]  # the revisions of ``certain``, for bisect
    by_revision: dict[int, dict[str, Effect]]  # revision → key → what an ack'd write did

    @classmethod
    def index(cls, ops: Iterable[Op]) -> _Writes:
        written: set[tuple[str, Value]] = set()
        certain: list[tuple[int, Effect]] = []
        by_revision: dict[int, dict[str, Effect]] = {}
        for effect in effects_of(ops):
            if effect.type == "put":
                written.add((effect.key, effect.value))
            revision = write_revision(effect.op)
            if revision is None:
                continue
            by_revision.setdefault(revision, {})[effect.key] = effect
            if effect.certain:
                certain.append((revision, effect))
        certain.sort(key=lambda item: (item[0], item[1].key))
        return cls(written, certain, [r for r, _ in certain], by_revision)


def watch_checker(watches: Iterable[WatchRecord], writes: Iterable[Op]) -> CheckResult:
    """Check each watch against the acknowledged writes; "unknown" if no event was received."""
    index = _Writes.index(writes)
    counts = dict.fromkeys(_COUNTS, 0)
    violations: list[str] = []
    for number, watch in enumerate(watches):
        counts["watches"] += 1
        counts["events"] += len(watch.events)
        name = f"watch {number} (client {watch.client}, {watch.key!r}..{watch.range_end!r})"
        for kind, line in _check_watch(watch, index):
            counts[kind] += 1
            violations.append(f"{name}: {line}")
    return CheckResult("watches", verdict_of(violations, counts["events"]), violations, counts)


def _check_watch(watch: WatchRecord, index: _Writes) -> list[tuple[str, str]]:
    """(count name, line) for every problem of one watch."""
    if not watch.events:
        return []
    lo = watch.start_revision or watch.events[0].revision
    problems: list[tuple[str, str]] = []
    seen: set[tuple[int, str]] = set()
    last = 0
    for event in watch.events:
        problems += _check_event(watch, event, index, lo)
        ident = (event.revision, event.key)
        if ident in seen:
            problems.append(("duplicates", f"{_show(event)} delivered twice"))
        elif event.revision < last:
            problems.append(("out_of_order", f"{_show(event)} arrived after rev {last}"))
        seen.add(ident)
        last = max(last, event.revision)
    return problems + _gaps(watch, index, seen, lo, last)


def _check_event(
    watch: WatchRecord, event: WatchEvent, index: _Writes, lo: int
) -> list[tuple[str, str]]:
    """Range, start revision and invention checks of one event."""
    problems: list[tuple[str, str]] = []
    if not watch.covers(event.key):
        problems.append(("mismatched", f"{_show(event)} is outside the watched range"))
    if event.revision < lo:
        problems.append(("out_of_order", f"{_show(event)} is below start revision {lo}"))
    if event.type not in ("put", "delete"):
        problems.append(("mismatched", f"{_show(event)} has an unknown event type"))
    elif event.type == "put" and (event.key, event.value) not in index.written:
        problems.append(("invented", f"{_show(event)}: no op ever put that value there"))
    owners = index.by_revision.get(event.revision)
    if owners is not None:
        owner = owners.get(event.key)
        if owner is None:
            some = next(iter(owners.values()))
            problems.append(
                ("mismatched", f"{_show(event)}: rev {event.revision} is {_describe(some)}")
            )
        elif owner.certain and not _same(owner, event):
            problems.append(("mismatched", f"{_show(event)} but {_describe(owner)}"))
    return problems


def _gaps(
    watch: WatchRecord, index: _Writes, seen: set[tuple[int, str]], lo: int, hi: int
) -> list[tuple[str, str]]:
    """Acknowledged changes to watched keys in [lo, hi] that never arrived."""
    start = bisect.bisect_left(index.revisions, lo)
    stop = bisect.bisect_right(index.revisions, hi)
    return [
        ("missed", f"never saw rev {revision}: {_describe(effect)}")
        for revision, effect in index.certain[start:stop]
        if watch.covers(effect.key) and (revision, effect.key) not in seen
    ]


def _same(effect: Effect, event: WatchEvent) -> bool:
    """A delete event's value is whatever the server sends (b"" or None); only puts compare."""
    if effect.type != event.type:
        return False
    return effect.type == "delete" or effect.value == event.value


def _show(event: WatchEvent) -> str:
    return f"event rev {event.revision} {event.type} {event.key!r}={event.value!r}"


def _describe(effect: Effect) -> str:
    op = effect.op
    return f"{op.kind} #{op.id} ({effect.type} {effect.key!r}={effect.value!r})"
