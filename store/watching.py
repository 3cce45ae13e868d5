"""Watch fan-out: events applied by the Raft thread reach every matching watcher, once, in order.

Events arrive on the event loop through :meth:`WatchHub.publish` (handed over by the replica's
tick thread).  A new watcher first replays the machine's event history from its start revision,
then receives published events.  Replay and publication can overlap (the machine may be ahead
of what has been published); each watcher remembers the next revision it owes its client and
drops anything older, so nothing is delivered twice and nothing is skipped.

A watcher that falls too far behind, or a replica that installs a snapshot (its history jumps),
ends the stream; clients resume from the revision after the last one they saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .kv import Event

__all__ = ["END", "WatchHub", "Watcher"]

END = object()  # queue sentinel: the stream is over, the client should resume


class Watcher:
    """One client stream: a key range, the next revision owed, and a bounded queue of frames."""

    __slots__ = ("closed", "key", "limit", "next_rev", "pending", "prev_kv", "queue", "range_end")

    def __init__(
        self, key: bytes, range_end: bytes | None, next_rev: int, prev_kv: bool, limit: int
    ) -> None:
        self.key = key
        self.range_end = range_end
        self.next_rev = next_rev
        self.prev_kv = prev_kv
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.pending = 0
        self.limit = limit
        self.closed = False

    def matches(self, key: bytes) -> bool:
        end = self.range_end
        if end is None:
            return key == self.key
        if end == b"\0":
            return key >= self.key
        return self.key <= key < end

    def offer(self, events: list[Event]) -> None:
        """Queue the events this watcher has not seen yet (all of one or more revisions)."""
        fresh = [e for e in events if e.revision >= self.next_rev and self.matches(e.kv.key)]
        if not fresh or self.closed:
            return
        self.next_rev = fresh[-1].revision + 1
        if self.pending >= self.limit:
            self.close()  # too slow: the client resumes from its last revision on a new stream
            return
        self.pending += 1
        wire = [e.to_wire() if self.prev_kv else _without_prev(e) for e in fresh]
        self.queue.put_nowait({"header": {"revision": fresh[-1].revision}, "events": wire})

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(END)


def _without_prev(e: Event) -> dict[str, Any]:
    wire = e.to_wire()
    wire["prev_kv"] = None
    return wire


class WatchHub:
    """All watchers of one replica.  Single-key watchers are indexed by key, so a put only
    visits the watchers that can match it plus the range watchers."""

    def __init__(self, history: Callable[[int], tuple[int, list[Event]]], *, limit: int = 1000):
        self._history = history  # start revision -> (current revision, events since start)
        self._by_key: dict[bytes, set[Watcher]] = {}
        self._ranged: set[Watcher] = set()
        self._limit = limit
        self.revision = 0
        self.published = 0
        self.skip_every = 0  # sabotage (store/sabotage.py): drop every Nth event

    def add(self, key: bytes, range_end: bytes | None, start_revision: int, prev_kv: bool) -> Watcher:
        """Register a watcher from ``start_revision`` (0: from now).  Raises Compacted when the
        history no longer reaches back that far."""
        current, backlog = self._history(start_revision)
        next_rev = start_revision if start_revision > 0 else current + 1
        w = Watcher(key, range_end, next_rev, prev_kv, self._limit)
        if backlog:
            w.offer(backlog)
            w.pending = 0  # the replay itself is never "too slow"
        if range_end is None:
            self._by_key.setdefault(key, set()).add(w)
        else:
            self._ranged.add(w)
        self.revision = max(self.revision, current)
        return w

    def remove(self, w: Watcher) -> None:
        w.closed = True
        if w.range_end is None:
            group = self._by_key.get(w.key)
            if group is not None:
                group.discard(w)
                if not group:
                    del self._by_key[w.key]
        else:
            self._ranged.discard(w)

    def publish(self, events: list[Event]) -> None:
        """Fan out events applied by the replica (in revision order, whole revisions)."""
        if not events:
            return
        if self.skip_every:
            events = [e for i, e in enumerate(events, self.published + 1) if i % self.skip_every]
        self.published += len(events)
        if not events:
            return
        self.revision = max(self.revision, events[-1].revision)
        if self._by_key:
            touched: dict[Watcher, None] = {}
            for e in events:
                for w in self._by_key.get(e.kv.key, ()):
                    touched[w] = None
            for w in touched:
                w.offer(events)
        for w in self._ranged:
            w.offer(events)

    def reset(self) -> None:
        """The machine was replaced (snapshot install): end every stream so clients resume."""
        for group in list(self._by_key.values()):
            for w in list(group):
                w.close()
        for w in list(self._ranged):
            w.close()

    @property
    def count(self) -> int:
        return len(self._ranged) + sum(len(g) for g in self._by_key.values())
