"""An in-process store: the real state machine (:class:`~store.machine.Machine`) behind the
async methods of :class:`~store.client.StoreClient`, with no Raft, no network and no disk.

It exists for the fast test tier: the apiserver runs over it in the test's own event loop, so
a controller's or client's behaviour against a real apiserver is tested in milliseconds.  The
answers, errors and watch frames are the machine's own, in the same shapes the network client
returns (the replica serves the same machine over HTTPS), so nothing above the store can tell.

Watches replay the machine's history from their start revision and then follow every commit;
a watcher that asks for a compacted revision gets :class:`~store.errors.Compacted`, as from the
real store.  :meth:`MemoryStore.compact` and :meth:`MemoryStore.break_watches` let tests drive
the two things a real store does to a watch: forget history, and drop the stream.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self

from .client_wire import prefix_end
from .kv import Event
from .machine import Machine

__all__ = ["MemoryStore", "prefix_end"]

_END = object()


class _Watch:
    __slots__ = ("key", "prev_kv", "queue", "range_end")

    def __init__(self, key: bytes, range_end: bytes | None, prev_kv: bool) -> None:
        self.key = key
        self.range_end = range_end
        self.prev_kv = prev_kv
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def matches(self, key: bytes) -> bool:
        end = self.range_end
        if end is None:
            return key == self.key
        if end == b"\0":
            return key >= self.key
        return self.key <= key < end


def _frame(revision: int, events: list[Event], prev_kv: bool) -> dict[str, Any]:
    wire = []
    for e in events:
        w = e.to_wire()
        if not prev_kv:
            w.pop("prev_kv", None)
        wire.append(w)
    return {"header": {"revision": revision}, "events": wire}


class MemoryStore:
    """One in-memory store and its client API (``txn``, ``put``, ``get``, ``delete``,
    ``watch``, ``compact``, ``status``).  Every call completes at once, in commit order."""

    def __init__(self, *, progress_interval: float = 0.0) -> None:
        self.machine = Machine()
        self._watches: set[_Watch] = set()
        self._ids = itertools.count(1)
        self._progress = progress_interval

    @property
    def client_id(self) -> str:
        return "memory"

    async def close(self) -> None:
        self.break_watches()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # --- writes and reads ------------------------------------------------------------------

    def _apply(self, cmd: dict[str, Any]) -> Any:
        result, events = self.machine.apply(cmd)
        if events:
            rev = events[-1].revision
            for w in list(self._watches):
                mine = [e for e in events if w.matches(e.kv.key)]
                if mine:
                    w.queue.put_nowait(_frame(rev, mine, w.prev_kv))
        return result

    async def txn(self, compare: Sequence[dict[str, Any]], success: Sequence[dict[str, Any]],
                  failure: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        req = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        return self._apply({"t": "txn", "req": req, "rid": ["memory", next(self._ids)]})

    async def put(self, key: bytes, value: bytes, *, lease: int = 0,
                  prev_kv: bool = False) -> dict[str, Any]:
        op: dict[str, Any] = {"key": key, "value": value}
        if lease:
            op["lease"] = lease
        if prev_kv:
            op["prev_kv"] = True
        ans = await self.txn([], [{"put": op}])
        return {"header": ans["header"], "prev_kv": ans["responses"][0]["put"].get("prev_kv")}

    async def get(self, key: bytes, *, range_end: bytes | None = None, revision: int = 0,
                  limit: int = 0, keys_only: bool = False, count_only: bool = False,
                  serializable: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"key": key}
        for name, v in (("range_end", range_end), ("revision", revision), ("limit", limit),
                        ("keys_only", keys_only), ("count_only", count_only)):
            if v:
                body[name] = v
        return self.machine.range(body)

    async def delete(self, key: bytes, *, range_end: bytes | None = None,
                     prev_kv: bool = False) -> dict[str, Any]:
        op: dict[str, Any] = {"key": key}
        if range_end is not None:
            op["range_end"] = range_end
        if prev_kv:
            op["prev_kv"] = True
        ans = await self.txn([], [{"delete_range": op}])
        resp = ans["responses"][0]["delete_range"]
        return {"header": ans["header"], "deleted": resp["deleted"],
                "prev_kvs": resp.get("prev_kvs", [])}

    async def compact(self, revision: int) -> dict[str, Any]:
        return self._apply({"t": "compact", "revision": revision,
                            "rid": ["memory", next(self._ids)]})

    async def status(self, endpoint: str | None = None) -> dict[str, Any]:
        m = self.machine
        return {"revision": m.revision, "compact_revision": m.compact_revision,
                "is_leader": True, "leader": "memory", "term": 1}

    # --- watch -----------------------------------------------------------------------------

    def break_watches(self) -> None:
        """End every open watch stream, as a replica going away does (clients resume)."""
        for w in list(self._watches):
            w.queue.put_nowait(_END)
        self._watches.clear()

    async def watch(self, key: bytes, *, range_end: bytes | None = None,
                    start_revision: int = 0, prev_kv: bool = False,
                    progress_notify: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Every change to the key or range from ``start_revision`` (0: from now), as
        ``{"header", "events"}`` frames, plus ``{"header", "progress": True}`` every
        ``progress_interval`` seconds when that is set.  Ends when :meth:`break_watches`
        is called (the network client would resume; callers here see the end)."""
        w = _Watch(key, range_end, prev_kv)
        start = start_revision if start_revision > 0 else self.machine.revision + 1
        backlog = [e for e in self.machine.events_since(start) if w.matches(e.kv.key)]
        self._watches.add(w)
        try:
            for _, group in itertools.groupby(backlog, key=lambda e: e.revision):
                evs = list(group)
                yield _frame(evs[-1].revision, evs, prev_kv)
            while True:
                if self._progress and progress_notify:
                    try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                        async with asyncio.timeout(self._progress):
                            item = await w.queue.get()
                    except TimeoutError:
                        # The timeout may fire just as a frame is queued: deliver that first,
                        # a progress revision promises every event up to it was sent.
                        if w.queue.empty():
                            yield {"header": {"revision": self.machine.revision},
                                   "progress": True}
                        continue
                else:
                    item = await w.queue.get()
                if item is _END:
                    return
                yield item
        finally:
            self._watches.discard(w)
