"""The watch cache: every API object in memory, fed by one store watch, serving lists and watches.

One :class:`WatchCache` per apiserver.  It lists ``/registry/`` from the store once, then
follows a single store watch from the revision after that list; the store client resumes the
watch across leader changes and broken streams without losing or repeating an event, so the
cache applies each revision exactly once, in order.  If the store compacted past the point the
cache needs (it was cut off for long), the cache relists and ends every open watcher, whose
client then re-watches and gets 410 Expired if its resourceVersion fell out of the window —
what kube-apiserver's cacher does on reinitialisation.

Watchers are indexed so that an event costs only the watchers it may concern, not every open
watch (kube-apiserver's cacher does the same with its watcher indexes): by key prefix (a
collection, or one namespace of it), and, for a watch whose field selector pins one field the
cache indexes (:class:`FieldIndex`: ``spec.nodeName`` of pods — each node agent's watch — and
``metadata.name`` of anything), by that field's value in the object and in its previous state.
With 1,000 node agents watching pods, a pod event reaches the one or two agents concerned.

Reads see a consistent state: :meth:`snapshot` returns the objects under a prefix at the
cache's revision (pods by ``spec.nodeName`` from an index, not a scan of every pod).  A "consistent" list (no resourceVersion) first learns the store's current
revision and waits until the cache has caught up (:meth:`wait_for`), as kube-apiserver's
consistent reads from cache do.  The event window (``window`` events) bounds how far back a
watch may start.
"""

from __future__ import annotations

import asyncio
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

__all__ = ["LIST_INDEXES", "CacheEvent", "FieldIndex", "WatchCache", "Watcher"]

log = logging.getLogger("ketch.apiserver.cache")

PREFIX = b"/registry/"

#: Collections whose objects the cache also indexes by one field, for lists and initial watch
#: events with that field pinned (kube-apiserver's pod ``spec.nodeName`` indexer).
LIST_INDEXES: dict[bytes, tuple[str, ...]] = {b"/registry/core/pods/": ("spec", "nodeName")}

Path = tuple[str, ...]


@dataclass(frozen=True)
class FieldIndex:
    """An exact field match (``spec.nodeName=node-7``) by which a watcher is indexed: ``path``
    into the object, and the ``value`` it must have (a missing field is ``""``).  A pre-filter
    only: the watch still applies its whole selector to what the index hands it."""

    path: Path
    value: str


def field_value(obj: dict[str, Any] | None, path: Path) -> str:
    """The string at ``path`` in ``obj`` ("" when absent), as indexes compare it."""
    node: Any = obj
    for step in path:
        if not isinstance(node, dict):
            return ""
        node = node.get(step)
    return node if isinstance(node, str) else "" if node is None else str(node)


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
    #: When the cache took the event from the store (monotonic): a delivery's delay is
    #: measured from here (``apiserver_watch_event_delay_seconds``).
    received: float = field(default=0.0, compare=False, repr=False)


class Watcher:
    """One client's view: events under ``prefix`` after its start revision, in order.

    The cache pushes into an unbounded queue; ``closed`` is set when the cache ends the watch
    (reinitialisation or shutdown), after which the iterator stops.  A progress marker is a
    ``CacheEvent`` with type ``BOOKMARK`` (key empty)."""

    def __init__(self, prefix: bytes, after: int, index: FieldIndex | None = None) -> None:
        self.prefix = prefix
        self.after = after
        self.index = index
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
        self._by_prefix: dict[bytes, set[Watcher]] = {}  # watchers without a field index
        # prefix -> field path -> value -> watchers indexed by that field
        self._by_field: dict[bytes, dict[Path, dict[str, set[Watcher]]]] = {}
        # collection prefix -> value of its LIST_INDEXES field -> keys of the objects
        self._key_index: dict[bytes, dict[str, set[bytes]]] = {p: {} for p in LIST_INDEXES}
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
        self._key_index = {p: {} for p in LIST_INDEXES}
        for key, obj in objects.items():
            self._index_key(key, None, obj)
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
        event = CacheEvent(rev, typ, key, obj, prev, received=time.monotonic())
        self._index_key(key, prev, None if typ == "DELETED" else obj)
        self._events.append(event)
        if len(self._events) == self._events.maxlen:
            self._oldest = self._events[0].revision - 1
        self._fan_out(event)
        for listener in self.listeners:
            listener(event)

    def _fan_out(self, event: CacheEvent) -> None:
        """Push ``event`` to the watchers it may concern and no others.  A key's possible
        prefixes end at each of its "/"; under each, the unindexed watchers, then the indexed
        ones whose value the object has now or had before (each watcher at most once: it sits
        under one value, and the two values are only both looked up when they differ)."""
        key = event.key
        slash = key.find(b"/", 1)
        while slash != -1:
            prefix = key[:slash + 1]
            for w in self._by_prefix.get(prefix, ()):
                w.push(event)
            fields = self._by_field.get(prefix)
            if fields:
                for path, by_value in fields.items():
                    now = field_value(event.obj, path)
                    for w in by_value.get(now, ()):
                        w.push(event)
                    if event.prev is not None:
                        before = field_value(event.prev, path)
                        if before != now:
                            for w in by_value.get(before, ()):
                                w.push(event)
            slash = key.find(b"/", slash + 1)

    def _index_key(self, key: bytes, old: dict[str, Any] | None,
                   new: dict[str, Any] | None) -> None:
        """Keep :data:`LIST_INDEXES` current for ``key`` going from ``old`` to ``new``."""
        for prefix, path in LIST_INDEXES.items():
            if not key.startswith(prefix):
                continue
            index = self._key_index[prefix]
            before = None if old is None else field_value(old, path)
            after = None if new is None else field_value(new, path)
            if before == after:
                return
            if before is not None and (keys := index.get(before)) is not None:
                keys.discard(key)
                if not keys:
                    del index[before]
            if after is not None:
                index.setdefault(after, set()).add(key)
            return

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
        self._by_field.clear()

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

    def snapshot(self, prefix: bytes, index: FieldIndex | None = None
                 ) -> tuple[list[tuple[bytes, dict[str, Any]]], int]:
        """``(key, object)`` under ``prefix`` in key order, and the revision they reflect.
        With ``index`` on a field of :data:`LIST_INDEXES`, only objects with that value (read
        from the index); other indexes are ignored (every object; the caller filters).  The
        objects are the cache's own: callers must not change them."""
        if index is not None:
            for collection, path in LIST_INDEXES.items():
                if prefix.startswith(collection) and index.path == path:
                    keys = sorted(k for k in self._key_index[collection].get(index.value, ())
                                  if k.startswith(prefix))
                    return [(k, self._objects[k]) for k in keys], self.revision
        end = prefix_end(prefix)
        keys = self._objects.irange(prefix, end, inclusive=(True, False))
        return [(k, self._objects[k]) for k in keys], self.revision

    def get(self, key: bytes) -> dict[str, Any] | None:
        return self._objects.get(key)

    def watch(self, prefix: bytes, after: int, index: FieldIndex | None = None) -> Watcher:
        """A watcher of every event under ``prefix`` with revision > ``after`` (0: from the
        cache's current revision).  With ``index``, only events whose object has (or had)
        that field value reach it.  410 Expired if ``after`` is older than the window."""
        if not self.ready.is_set():
            raise InternalError("watch cache is not ready")
        if after and after < self._oldest:
            raise Expired(f"too old resource version: {after} ({self._oldest + 1})")
        w = Watcher(prefix, after or self.revision, index)
        if after:
            for ev in self._since(after):
                if ev.key.startswith(prefix) and (index is None or _concerns(ev, index)):
                    w.push(ev)
        self._watchers.add(w)
        if index is None:
            self._by_prefix.setdefault(prefix, set()).add(w)
        else:
            self._by_field.setdefault(prefix, {}).setdefault(index.path, {}) \
                .setdefault(index.value, set()).add(w)
        return w

    def _since(self, after: int) -> list[CacheEvent]:
        """The window's events after revision ``after``, oldest first; walks back from the
        newest, so a watch resuming near the head costs what it missed, not the window."""
        newer: list[CacheEvent] = []
        for ev in reversed(self._events):
            if ev.revision <= after:
                break
            newer.append(ev)
        newer.reverse()
        return newer

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    def stop(self, w: Watcher) -> None:
        self._watchers.discard(w)
        if w.index is None:
            group = self._by_prefix.get(w.prefix)
            if group is not None:
                group.discard(w)
                if not group:
                    del self._by_prefix[w.prefix]
            return
        fields = self._by_field.get(w.prefix, {})
        by_value = fields.get(w.index.path, {})
        same = by_value.get(w.index.value)
        if same is not None:
            same.discard(w)
            if not same:
                del by_value[w.index.value]
                if not by_value:
                    del fields[w.index.path]
                    if not fields:
                        del self._by_field[w.prefix]


def _concerns(ev: CacheEvent, index: FieldIndex) -> bool:
    return field_value(ev.obj, index.path) == index.value or (
        ev.prev is not None and field_value(ev.prev, index.path) == index.value)
