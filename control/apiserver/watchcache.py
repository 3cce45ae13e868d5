"""The watch cache: every API object in memory, fed by one store watch, serving lists and watches.

One :class:`WatchCache` per apiserver.  It lists ``/registry/`` from the store once, then
follows a single store watch from the revision after that list; the store client resumes the
watch across leader changes and broken streams without losing or repeating an event, so the
cache applies each revision exactly once, in order.  If the store compacted past the point the
cache needs (it was cut off for long), the cache relists and ends every open watcher, whose
client then re-watches and gets 410 Expired if its resourceVersion fell out of the window —
what kube-apiserver's cacher does on reinitialisation.

Reads see a consistent state: :meth:`snapshot` returns the objects under a prefix at the
cache's revision.  A "consistent" list (no resourceVersion) first learns the store's current
revision and waits until the cache has caught up (:meth:`wait_for`), as kube-apiserver's
consistent reads from cache do.  The event window (``window`` events) bounds how far back a
watch may start.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedDict

from control.api.errors import Expired, InternalError
from control.apiserver.storage import decode_object
from store.client import KeyValueStore, prefix_end
from store.errors import Compacted, StoreError

__all__ = ["CacheEvent", "WatchCache", "Watcher"]

log = logging.getLogger("ketch.apiserver.cache")

PREFIX = b"/registry/"


@dataclass(frozen=True)
class CacheEvent:
    """One change at ``revision``: ``type`` ADDED/MODIFIED/DELETED, the key, the object after
    (for DELETED: the last state, resourceVersion = the delete's revision) and before."""

    revision: int
    type: str
    key: bytes
    obj: dict[str, Any]
    prev: dict[str, Any] | None
    #: Encoded watch lines by event type, shared by every watcher that sends this event
    #: (with 1,000 watchers an event is encoded once, not 1,000 times).
    lines: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)


class Watcher:
    """One client's view: events under ``prefix`` after its start revision, in order.

    The cache pushes into an unbounded queue; ``closed`` is set when the cache ends the watch
    (reinitialisation or shutdown), after which the iterator stops.  A progress marker is a
    ``CacheEvent`` with type ``BOOKMARK`` (key empty)."""

    def __init__(self, prefix: bytes, after: int) -> None:
        self.prefix = prefix
        self.after = after
        self.queue: asyncio.Queue[CacheEvent | None] = asyncio.Queue()
        #: When set, events go straight to this callable (called on the cache's feed; it
        #: must not block or raise) instead of the queue.
        self.sink: Callable[[CacheEvent | None], None] | None = None

    def push(self, ev: CacheEvent | None) -> None:
        if ev is not None and (ev.revision < self.after or (
                ev.revision == self.after and ev.type != "BOOKMARK")):
            return  # at or before the start (a future one included): not this watch's
        if self.sink is not None:
            self.sink(ev)
        else:
            self.queue.put_nowait(ev)

    async def events(self) -> AsyncIterator[CacheEvent]:
        while True:
            ev = await self.queue.get()
            if ev is None:
                return
            yield ev


class WatchCache:
    """All objects under ``/registry/`` and the last ``window`` events."""

    def __init__(self, client: KeyValueStore, *, window: int = 20_000,
                 bookmark_interval: float = 5.0) -> None:
        self._client = client
        self._objects: SortedDict = SortedDict()  # key -> object (with resourceVersion)
        self._events: collections.deque[CacheEvent] = collections.deque(maxlen=window)
        self._watchers: set[Watcher] = set()
        self._by_prefix: dict[bytes, set[Watcher]] = {}
        self.revision = 0  # the revision the cache reflects
        self._oldest = 0  # watches may start at any revision >= this one
        self._advanced = asyncio.Condition()
        self.bookmark_interval = bookmark_interval
        self._last_bookmark = 0.0
        self.ready = asyncio.Event()
        self.listeners: list[Callable[[CacheEvent], None]] = []

    # --- feeding -------------------------------------------------------------------------

    async def run(self) -> None:
        """List, then follow the store forever; relist after a compaction gap. Cancel to stop."""
        while True:
            try:
                await self._relist()
                await self._follow()
            except Compacted:
                log.warning("watch cache fell behind the store's compaction; relisting")
            except StoreError as e:
                log.warning("watch cache lost the store (%s); retrying", e)
                await asyncio.sleep(0.5)

    async def _relist(self) -> None:
        ans = await self._client.get(PREFIX, range_end=prefix_end(PREFIX))
        rev = ans["header"]["revision"]
        objects = SortedDict()
        for kv in ans["kvs"]:
            objects[kv["key"]] = decode_object(kv["value"], kv["mod_revision"])
        if self.ready.is_set():
            self._end_watchers()
        self._objects = objects
        self._events.clear()
        self._oldest = rev
        await self._advance(rev)
        self.ready.set()

    async def _follow(self) -> None:
        frames = self._client.watch(PREFIX, range_end=prefix_end(PREFIX),
                                    start_revision=self.revision + 1, prev_kv=True)
        async with contextlib.aclosing(frames):  # type: ignore[type-var]
            async for frame in frames:
                for ev in frame.get("events", ()):
                    self._apply(ev)
                await self._advance(frame["header"]["revision"],
                                    bookmark=bool(frame.get("progress")))

    def _apply(self, ev: dict[str, Any]) -> None:
        kv = ev["kv"]
        key, rev = kv["key"], kv["mod_revision"]
        prev = self._objects.get(key)
        if ev["type"] == "put":
            obj = decode_object(kv["value"], rev)
            self._objects[key] = obj
            typ = "ADDED" if prev is None else "MODIFIED"
        else:
            last = ev.get("prev_kv")
            if last is None and prev is None:
                return  # deleting what was never there: nothing anybody saw
            obj = decode_object(last["value"], rev) if last else dict(prev or {})
            obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
            self._objects.pop(key, None)
            typ = "DELETED"
        event = CacheEvent(rev, typ, key, obj, prev)
        self._events.append(event)
        if len(self._events) == self._events.maxlen:
            self._oldest = self._events[0].revision - 1
        # Watchers are indexed by prefix; a key's possible prefixes end at each of its "/".
        slash = key.find(b"/", 1)
        while slash != -1:
            for w in self._by_prefix.get(key[:slash + 1], ()):
                w.push(event)
            slash = key.find(b"/", slash + 1)
        for listener in self.listeners:
            listener(event)

    async def _advance(self, rev: int, *, bookmark: bool = False) -> None:
        if rev <= self.revision and not bookmark:
            return
        self.revision = max(self.revision, rev)
        now = time.monotonic()
        if not bookmark and now - self._last_bookmark >= self.bookmark_interval:
            # The store only reports progress when it is idle; on a busy cluster (leases renew
            # every second) watchers of quiet resources would never hear of the revision
            # moving on and would fall out of the window.  Tell them every few seconds.
            bookmark = True
        if bookmark:
            self._last_bookmark = now
            marker = CacheEvent(self.revision, "BOOKMARK", b"", {}, None)
            for w in list(self._watchers):
                w.push(marker)
        async with self._advanced:
            self._advanced.notify_all()

    def _end_watchers(self) -> None:
        for w in list(self._watchers):
            w.push(None)
        self._watchers.clear()
        self._by_prefix.clear()

    def close(self) -> None:
        self._end_watchers()

    # --- reading -------------------------------------------------------------------------

    async def wait_for(self, revision: int, timeout: float) -> bool:
        """Wait until the cache reflects ``revision``; False on timeout."""
        if self.revision >= revision:
            return True
        try:
            async with asyncio.timeout(timeout):
                async with self._advanced:
                    await self._advanced.wait_for(lambda: self.revision >= revision)
        except TimeoutError:
            return False
        return True

    async def sync(self, timeout: float = 3.0) -> bool:
        """Catch up with the store's current revision (a linearizable read); False if the
        cache did not get there within ``timeout`` (the caller then reads the store)."""
        await asyncio.wait_for(self.ready.wait(), timeout)
        # A linearizable read of one key (no object is ever stored at the bare prefix): its
        # header carries the store's current revision without counting the keyspace.
        try:
            ans = await self._client.get(PREFIX)
        except StoreError:
            return False  # the caller reads the store itself and reports its error
        return await self.wait_for(ans["header"]["revision"], timeout)

    def snapshot(self, prefix: bytes) -> tuple[list[tuple[bytes, dict[str, Any]]], int]:
        """``(key, object)`` under ``prefix`` in key order, and the revision they reflect.
        The objects are the cache's own: callers must not change them."""
        end = prefix_end(prefix)
        keys = self._objects.irange(prefix, end, inclusive=(True, False))
        return [(k, self._objects[k]) for k in keys], self.revision

    def get(self, key: bytes) -> dict[str, Any] | None:
        return self._objects.get(key)

    def watch(self, prefix: bytes, after: int) -> Watcher:
        """A watcher of every event under ``prefix`` with revision > ``after`` (0: from the
        cache's current revision).  410 Expired if ``after`` is older than the window."""
        if not self.ready.is_set():
            raise InternalError("watch cache is not ready")
        if after and after < self._oldest:
            raise Expired(f"too old resource version: {after} ({self._oldest + 1})")
        w = Watcher(prefix, after or self.revision)
        if after:
            revs = [e.revision for e in self._events]
            for ev in list(self._events)[bisect.bisect_right(revs, after):]:
                if ev.key.startswith(prefix):
                    w.push(ev)
        self._watchers.add(w)
        self._by_prefix.setdefault(prefix, set()).add(w)
        return w

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    def stop(self, w: Watcher) -> None:
        self._watchers.discard(w)
        group = self._by_prefix.get(w.prefix)
        if group is not None:
            group.discard(w)
            if not group:
                del self._by_prefix[w.prefix]
