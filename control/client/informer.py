"""Informers: a local, indexed copy of one resource, kept current by list + watch, with handlers
that learn of every change (client-go's ``Reflector`` + ``SharedIndexInformer``).

The reflector lists (or, with ``watch_list``, opens a watch that sends the initial objects and
an ``initial-events-end`` bookmark), then watches from the list's resourceVersion with
bookmarks.  A stream that ends or breaks is resumed from the last resourceVersion seen — no
relist, nothing missed; a ``410 Gone/Expired`` (the resume point fell out of the server's
window) means a relist.  A relist replaces the cache in one step and then tells the handlers
the difference (adds, updates, deletes of objects that vanished meanwhile), so a handler
never sees a half-applied relist; an event at or below the version already held for its
object is dropped, so no handler sees a change twice.

Handlers run on the informer's task and must only enqueue keys (level-triggered controllers
read the cache again when they work).  A handler added after the informer has synced is told
of every current object as an add, as client-go's shared informers do.  Cached objects are
shared: never mutate one.

:class:`InformerFactory` gives one informer per (resource, namespace, selectors) to every
controller in a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from control.api.clock import Clock, RealClock
from control.api.errors import APIError, Expired, Forbidden, Gone

from .cache import IndexFunc, ObjectCache
from .ratelimit import Backoff
from .resources import Resource, object_key
from .rest import ApiClient, WatchEvent

__all__ = ["Handler", "Informer", "InformerFactory"]

log = logging.getLogger("ketch.client.informer")

Obj = dict[str, Any]
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class Handler:
    """Callbacks for one consumer; any may be None.  ``on_update(old, new)`` also fires on a
    periodic resync with ``old is new``."""

    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None


def _rv(obj: Obj | None) -> int:
    if obj is None:
        return -1
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class Informer:
    """One resource (optionally one namespace and selectors) mirrored into :attr:`cache`."""

    def __init__(self, client: ApiClient, res: Resource, *, namespace: str = "",
                 label_selector: str = "", field_selector: str = "",
                 indexers: Mapping[str, IndexFunc] | None = None, resync: float = 0.0,
                 watch_list: bool = False, page_size: int = 500,
                 clock: Clock | None = None) -> None:
        self.client = client
        self.resource = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync = resync
        self.watch_list = watch_list
        self.page_size = page_size
        self.clock = clock or client.clock
        self.cache = ObjectCache(indexers)
        self.synced = asyncio.Event()
        self.resource_version = 0  # the newest version applied (list, event or bookmark)
        self.relists = 0
        self.resumes = 0
        # True while handlers are told a relist's difference: what they hear then is the
        # object's state now, and changes in between were never seen (client-go's Replaced
        # deltas).  Observers that judge histories read it; controllers need not.
        self.replacing = False
        self._reached = False  # a watch delivered something since the last failure
        self._handlers: list[Handler] = []
        self._advanced = asyncio.Condition()

    def __repr__(self) -> str:
        return f"Informer({self.resource}, ns={self.namespace!r})"

    # --- consumers -------------------------------------------------------------------------

    def add_handler(self, handler: Handler | None = None, **callbacks: Any) -> Handler:
        """Register a handler (or build one from ``on_add=``, ``on_update=``, ``on_delete=``).
        If the cache has synced, ``on_add`` is called for every current object at once."""
        h = handler or Handler(**callbacks)
        self._handlers.append(h)
        if self.synced.is_set() and h.on_add is not None:
            for obj in self.cache:
                _call(h.on_add, obj)
        return h

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """True once the first list has been applied (False after ``timeout`` seconds)."""
        try:
            await asyncio.wait_for(self.synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def wait_for_version(self, rv: int | str, timeout: float = 10.0) -> bool:
        """Wait until the cache reflects resourceVersion ``rv`` or later (a controller waits
        for its own last write before acting on the cache again); False on timeout."""
        want = int(rv or 0)

        async def reached() -> None:
            async with self._advanced:
                await self._advanced.wait_for(lambda: self.resource_version >= want)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True

    # --- the reflector -----------------------------------------------------------------------

    async def run(self) -> None:
        """List and watch until cancelled; never raises for the server's or network's
        failures (they are logged and retried with back-off)."""
        resync = asyncio.create_task(self._resync_loop(), name=f"resync {self.resource}")
        backoff = Backoff(0.5, 30.0)
        need_list = True
        try:
            while True:
                try:
                    listing = need_list and self.watch_list
                    if need_list and not listing:
                        await self._list()
                    need_list = not await self._watch(listing=listing)
                    backoff.reset()
                except (Gone, Expired):  # our resourceVersion left the server's window
                    log.info("%r: resourceVersion %s too old; relisting", self,
                             self.resource_version)
                    need_list = True
                except APIError as e:
                    level = logging.WARNING if isinstance(e, Forbidden) else logging.INFO
                    log.log(level, "%r: %s; retrying", self, e)
                    if self._reached:
                        # a watch delivered since the last failure: this is a new outage,
                        # not the same one going on, so it is retried at once.  (Without
                        # this, every broken stream of a long life added up: after a dozen
                        # partitions a node resumed its watches 15-30 s after the heal.)
                        backoff.reset()
                    await self.clock.sleep(backoff.next())
                self._reached = False
        finally:
            resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resync

    async def _list(self) -> None:
        items, rv = await self.client.list_all(
            self.resource, self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, page_size=self.page_size)
        await self._replace(items, int(rv or 0))

    async def _watch(self, *, listing: bool) -> bool:
        """One watch stream from :attr:`resource_version`, or with ``listing`` one that starts
        with the current objects (watch-list).  False if it ended before the initial objects
        were complete (the caller must list again)."""
        pending: dict[str, Obj] = {}
        stream = self.client.watch(
            self.resource, self.namespace, resource_version="" if listing else str(
                self.resource_version), label_selector=self.label_selector,
            field_selector=self.field_selector, send_initial_events=listing,
            timeout_seconds=random.randint(300, 600))
        if not listing:
            self.resumes += 1
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for ev in stream:
                self._reached = True
                if listing:
                    if ev.type == "BOOKMARK" and (ev.object.get("metadata") or {}).get(
                            "annotations", {}).get(INITIAL_EVENTS_END) == "true":
                        await self._replace(list(pending.values()), int(ev.resource_version))
                        listing, pending = False, {}
                    elif ev.type != "BOOKMARK":
                        pending[object_key(ev.object)] = ev.object
                    continue
                await self._apply(ev)
        return not listing

    async def _apply(self, ev: WatchEvent) -> None:
        rv = _rv(ev.object)
        if ev.type == "BOOKMARK":
            await self._advance(rv)
            return
        if rv < self.resource_version:
            return  # older than what we hold: a duplicate from an overlapping stream
        key = object_key(ev.object)
        old = self.cache.get(key)
        if old is not None and _rv(old) >= rv:
            return  # already applied
        if ev.type == "DELETED":
            if old is not None:
                self.cache.pop(key)
                self._notify_delete(ev.object)
        elif ev.type in ("ADDED", "MODIFIED"):
            self.cache.put(ev.object)
            if old is None:
                self._notify_add(ev.object)
            else:
                self._notify_update(old, ev.object)
        await self._advance(rv)

    async def _replace(self, items: list[Obj], rv: int) -> None:
        """Make the cache exactly ``items`` (as of ``rv``), then tell handlers the difference."""
        before = {object_key(o): o for o in self.cache}
        fresh = {object_key(o): o for o in items}
        for key in before.keys() - fresh.keys():
            self.cache.pop(key)
        for o in items:
            self.cache.put(o)
        self.relists += 1
        self.resource_version = max(rv, 0)
        self.replacing = True
        try:
            for key, old in before.items():
                if key not in fresh:
                    self._notify_delete(old)
            for key, new in fresh.items():
                prior = before.get(key)
                if prior is None:
                    self._notify_add(new)
                elif _rv(prior) != _rv(new):
                    self._notify_update(prior, new)
        finally:
            self.replacing = False
        self.synced.set()
        async with self._advanced:
            self._advanced.notify_all()

    async def _advance(self, rv: int) -> None:
        if rv > self.resource_version:
            self.resource_version = rv
            async with self._advanced:
                self._advanced.notify_all()

    async def _resync_loop(self) -> None:
        if self.resync <= 0:
            return
        while True:
            await self.clock.sleep(self.resync * random.uniform(0.9, 1.1))
            if self.synced.is_set():
                for obj in self.cache:
                    self._notify_update(obj, obj)

    # --- dispatch ------------------------------------------------------------------------------

    def _notify_add(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                _call(h.on_add, obj)

    def _notify_update(self, old: Obj, new: Obj) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                _call(h.on_update, old, new)

    def _notify_delete(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                _call(h.on_delete, obj)


def _call(fn: Callable[..., None], *args: Obj) -> None:
    try:
        fn(*args)
    except Exception:  # a handler's bug must not stop the informer feeding everyone else
        log.exception("informer handler %r failed", fn)


class InformerFactory:
    """One informer per (resource, namespace, selectors) for a whole process: controllers ask
    for the same informer and share its cache and its one watch."""

    def __init__(self, client: ApiClient, *, resync: float = 0.0, watch_list: bool = False,
                 clock: Clock | None = None) -> None:
        self.client = client
        self.resync = resync
        self.watch_list = watch_list
        self.clock = clock or client.clock or RealClock()
        self._informers: dict[tuple[Resource, str, str, str], Informer] = {}
        self._tasks: dict[Informer, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._started = False

    def informer(self, res: Resource, *, namespace: str = "", label_selector: str = "",
                 field_selector: str = "") -> Informer:
        key = (res, namespace, label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, res, namespace=namespace, label_selector=label_selector,
                           field_selector=field_selector, resync=self.resync,
                           watch_list=self.watch_list, clock=self.clock)
            self._informers[key] = inf
            if self._started:
                self._start(inf)
        return inf

    def forget(self, res: Resource) -> None:
        """Stop and forget every informer of ``res`` (a resource no longer served: a deleted
        CustomResourceDefinition).  The informers stop feeding their handlers; whoever held one
        must ask :meth:`informer` again (a new one, starting from a fresh list) if ``res``
        comes back."""
        for key in [k for k in self._informers if k[0] == res]:
            task = self._tasks.pop(self._informers.pop(key), None)
            if task is not None:
                task.cancel()
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer (and any created later) as tasks the factory owns."""
        self._started = True
        for inf in self._informers.values():
            if inf not in self._tasks:
                self._start(inf)

    def _start(self, inf: Informer) -> None:
        self._tasks[inf] = asyncio.create_task(inf.run(), name=f"informer {inf.resource}")

    async def wait_synced(self, timeout: float | None = None) -> bool:
        results = await asyncio.gather(*(i.wait_synced(timeout)
                                         for i in self._informers.values()))
        return all(results)

    async def stop(self) -> None:
        tasks = [*self._tasks.values(), *self._stopping]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._started = False
