"""The multi-version key space and its event history, owned by the state machine.

`Keyspace` keeps, per key, the list of its versions (`KeyValue`, tombstones included) in
revision order, and a sorted index of keys for range and prefix reads, so a read at any
revision not yet compacted is answered exactly.  `EventLog` keeps the recent puts and deletes
for watches.  Neither checks request shapes (store/requests.py does) nor bumps the revision on
its own: the machine decides what one revision is.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import Any

from sortedcontainers import SortedDict

from store.errors import Compacted, FutureRevision
from store.kv import DELETE, PUT, Event, KeyValue

__all__ = ["EventLog", "Keyspace"]

_MOD = attrgetter("mod_revision")


def _event_revision(event: Event) -> int:
    return event.kv.mod_revision


def _cmp(a: Any, op: str, b: Any) -> bool:
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    return a > b


class Keyspace:
    """Keys → version histories at revisions ≤ ``revision``, readable back to
    ``compact_revision``.

    Writes (`put`, `delete`) take the revision to write at, normally ``revision + 1``; the
    caller sets ``revision`` once the whole write transaction is done, so a transaction's
    reads at revision 0 ("latest") see its own earlier writes.  Callers must not write the
    same key twice at one revision.
    """

    __slots__ = ("_hist", "_multi", "compact_revision", "revision")

    def __init__(self) -> None:
        self._hist: SortedDict = SortedDict()  # key -> list[KeyValue], oldest first
        # Keys that compaction may shorten (several versions, or a tombstone last), as an
        # insertion-ordered set so compaction need not visit every key.
        self._multi: dict[bytes, None] = {}
        self.revision = 1  # like etcd, an empty store is at revision 1
        self.compact_revision = 0

    def __len__(self) -> int:
        """Number of keys holding a version (live or not) that reads may still need."""
        return len(self._hist)

    def check_revision(self, revision: int) -> None:
        """Raise Compacted / FutureRevision unless a read at ``revision`` (0 = latest) is
        answerable."""
        if revision == 0:
            return
        if revision < self.compact_revision:
            raise Compacted(
                f"required revision {revision} has been compacted",
                compact_revision=self.compact_revision,
            )
        if revision > self.revision:
            raise FutureRevision(
                f"required revision {revision} is a future revision",
                revision=revision,
                current_revision=self.revision,
            )

    def latest(self, key: bytes) -> KeyValue | None:
        """The live version of ``key`` now, or None."""
        hist = self._hist.get(key)
        if hist is None:
            return None
        kv = hist[-1]
        return kv if kv.version else None

    def _keys(self, key: bytes, range_end: bytes | None) -> Iterable[bytes]:
        if range_end is None:
            return (key,) if key in self._hist else ()
        if range_end == b"\0":
            return self._hist.irange(key)
        if range_end <= key:
            return ()
        return self._hist.irange(key, range_end, inclusive=(True, False))

    def iter_live(
        self, key: bytes, range_end: bytes | None, revision: int = 0
    ) -> Iterator[KeyValue]:
        """Live versions in the range at ``revision`` (0 = latest), in key order.  The
        revision must have been checked with `check_revision`."""
        hists = self._hist
        for k in self._keys(key, range_end):
            hist = hists[k]
            kv = hist[-1]
            if revision and kv.mod_revision > revision:
                i = bisect_right(hist, revision, key=_MOD)
                if i == 0:
                    continue
                kv = hist[i - 1]
            if kv.version:
                yield kv

    def range(
        self,
        key: bytes,
        range_end: bytes | None,
        *,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
    ) -> tuple[list[KeyValue], int, bool]:
        """(kvs sorted by key, count ignoring limit, more) for a range read; raises
        Compacted / FutureRevision for an unreadable revision."""
        self.check_revision(revision)
        kvs: list[KeyValue] = []
        count = 0
        for kv in self.iter_live(key, range_end, revision):
            count += 1
            if not count_only and (limit == 0 or count <= limit):
                kvs.append(kv)
        return kvs, count, (not count_only and 0 < limit < count)

    def compare(self, c: dict[str, Any]) -> bool:
        """Evaluate one validated Compare at the latest revision (etcd's rules: a missing key
        is the zero KeyValue, and a value compare against a missing key is false; over a
        range every live key must satisfy it)."""
        target, op, value = c["target"], c["result"], c["value"]
        kvs: tuple[KeyValue, ...]
        if c["range_end"] is None:
            kv = self.latest(c["key"])
            kvs = () if kv is None else (kv,)
        else:
            kvs = tuple(self.iter_live(c["key"], c["range_end"]))
        if not kvs:
            return target != "value" and _cmp(0, op, value)
        return all(_cmp(getattr(kv, target), op, value) for kv in kvs)

    def put(
        self, key: bytes, value: bytes, lease: int, revision: int
    ) -> tuple[KeyValue, KeyValue | None]:
        """Write a new version at ``revision``; returns (new, previous live version or None)."""
        hist = self._hist.get(key)
        if hist is None:
            kv = KeyValue(key, value, revision, revision, 1, lease)
            self._hist[key] = [kv]
            return kv, None
        last = hist[-1]
        if last.version:
            kv = KeyValue(key, value, last.create_revision, revision, last.version + 1, lease)
        else:
            kv = KeyValue(key, value, revision, revision, 1, lease)
            last = None
        hist.append(kv)
        self._multi[key] = None
        return kv, last

    def delete(
        self, key: bytes, range_end: bytes | None, revision: int
    ) -> list[tuple[KeyValue, KeyValue]]:
        """Delete the live keys in the range at ``revision``; returns (tombstone, previous)
        pairs in key order."""
        victims = list(self.iter_live(key, range_end))
        out = []
        hists, multi = self._hist, self._multi
        for prev in victims:
            tomb = KeyValue(prev.key, b"", 0, revision, 0, 0)
            hists[prev.key].append(tomb)
            multi[prev.key] = None
            out.append((tomb, prev))
        return out

    def compact(self, revision: int) -> None:
        """Drop every version no read at ≥ ``revision`` needs and set ``compact_revision``.
        The caller has checked compact_revision < revision ≤ self.revision (etcd's bounds)."""
        hists = self._hist
        todo, self._multi = self._multi, {}
        for key in todo:
            hist = hists[key]
            i = bisect_right(hist, revision, key=_MOD)  # hist[:i] are at or below revision
            if i:
                keep = i - 1 if hist[i - 1].version else i  # a tombstone reads as absent
                del hist[:keep]
            if not hist:
                del hists[key]
            elif len(hist) > 1 or not hist[-1].version:
                self._multi[key] = None
        self.compact_revision = revision

    def dump(self) -> dict[str, Any]:
        """Plain CBOR-able state: keys in order with [value, create, mod, version, lease]."""
        return {
            "revision": self.revision,
            "compact_revision": self.compact_revision,
            "keys": [
                [
                    key,
                    [
                        [kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease]
                        for kv in hist
                    ],
                ]
                for key, hist in self._hist.items()
            ],
        }

    @classmethod
    def load(cls, d: dict[str, Any]) -> Keyspace:
        """Inverse of `dump`."""
        ks = cls()
        ks.revision = d["revision"]
        ks.compact_revision = d["compact_revision"]
        pairs = []
        for key, versions in d["keys"]:
            hist = [KeyValue(key, *v) for v in versions]
            pairs.append((key, hist))
            if len(hist) > 1 or not hist[-1].version:
                ks._multi[key] = None
        ks._hist = SortedDict(pairs)
        return ks


class EventLog:
    """The puts and deletes of the last revisions, oldest first, for watches.

    Every event of a revision ≥ ``floor`` is kept; `trim` raises the floor (compaction does,
    and so does the cap of ``max_revisions`` revisions).  Trimming is amortised: the list is
    only shortened once the dropped prefix is large.
    """

    __slots__ = ("_events", "_start", "floor", "max_revisions")

    def __init__(self, max_revisions: int = 100_000) -> None:
        if max_revisions < 1:
            raise ValueError("max_revisions must be ≥ 1")
        self._events: list[Event] = []
        self._start = 0  # events before this index are trimmed but not yet deleted
        self.floor = 0
        self.max_revisions = max_revisions

    def append(self, events: list[Event], revision: int) -> None:
        """Record the events of ``revision`` (the newest) and apply the cap."""
        self._events.extend(events)
        self.trim(revision - self.max_revisions + 1)

    def trim(self, floor: int) -> None:
        """Forget the events of revisions below ``floor``."""
        if floor <= self.floor:
            return
        self.floor = floor
        events = self._events
        i, n = self._start, len(events)
        while i < n and events[i].kv.mod_revision < floor:  # amortised O(1) per event
            i += 1
        self._start = i
        if i > 4096 and 2 * i > n:
            del events[: self._start]
            self._start = 0

    def since(self, start: int) -> list[Event]:
        """Every kept event of a revision ≥ ``start``, in order, as a new list; Compacted (with
        ``compact_revision`` = the floor) when events below ``start`` may be missing."""
        if start < self.floor:
            raise Compacted(
                f"events from revision {start} are no longer kept",
                compact_revision=self.floor,
            )
        i = bisect_left(self._events, start, lo=self._start, key=_event_revision)
        return self._events[i:]

    def dump(self) -> dict[str, Any]:
        return {
            "floor": self.floor,
            "max_revisions": self.max_revisions,
            "events": [_event_row(e) for e in self._events[self._start :]],
        }

    @classmethod
    def load(cls, d: dict[str, Any]) -> EventLog:
        log = cls(d["max_revisions"])
        log.floor = d["floor"]
        log._events = [_event_from_row(r) for r in d["events"]]
        return log


def _kv_row(kv: KeyValue) -> list[Any]:
    return [kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease]


def _event_row(e: Event) -> list[Any]:
    return [e.type == PUT, _kv_row(e.kv), None if e.prev_kv is None else _kv_row(e.prev_kv)]


def _event_from_row(row: list[Any]) -> Event:
    is_put, kv, prev = row
    return Event(
        PUT if is_put else DELETE, KeyValue(*kv), None if prev is None else KeyValue(*prev)
    )
