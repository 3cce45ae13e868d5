"""``GET …?watch=true``: a chunked stream of JSON events, one per line, from the watch cache.

Start (apiserver ``watch`` semantics):

* no resourceVersion or ``0``: synthetic ``ADDED`` for every current object, then changes;
* ``N``: every change after N (410 ``Expired`` as an ERROR event if N left the window);
* ``sendInitialEvents=true`` (watch-list; needs ``resourceVersionMatch=NotOlderThan`` and
  ``allowWatchBookmarks=true``): ``ADDED`` for a consistent snapshot, then one ``BOOKMARK``
  annotated ``k8s.io/initial-events-end: "true"``, then changes.

Selectors filter events; an object that starts or stops matching arrives as ADDED or DELETED.
Bookmarks (store progress) only with ``allowWatchBookmarks``.  The stream ends after
``timeoutSeconds`` (default: a random 30–60 min, like kube-apiserver) or when the client goes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

from aiohttp import web

from control.api.catalog import ResourceDef
from control.api.errors import APIError, Cause, Invalid
from control.apiserver.requestinfo import RequestInfo
from control.apiserver.storage import parse_resource_version
from control.apiserver.tables import table_for

from .crd.printing import custom_table
from .crd.resource import CustomResourceDef, present
from .crd.selection import filter_for
from .reads import Filter, selection
from .state import APIState
from .watchcache import CacheEvent

__all__ = ["serve_watch"]

log = logging.getLogger("ketch.apiserver.watch")

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def _check(info: RequestInfo) -> None:
    """apimachinery ``validateWatchOptions``: 422 Invalid ``ListOptions.meta.k8s.io``, one
    cause per problem (cause messages carry the ``Forbidden: `` prefix as kube's do)."""
    o = info.options
    causes = []
    match = o.resource_version_match
    if o.send_initial_events is not None:
        if match != "NotOlderThan":
            causes.append(Cause("FieldValueForbidden", "Forbidden: sendInitialEvents requires "
                                "setting resourceVersionMatch to NotOlderThan",
                                "resourceVersionMatch"))
        if o.send_initial_events and not o.allow_watch_bookmarks:
            causes.append(Cause("FieldValueForbidden", "Forbidden: sendInitialEvents requires "
                                "setting allowWatchBookmarks=true", "allowWatchBookmarks"))
    if match:
        if o.send_initial_events is None:
            causes.append(Cause("FieldValueForbidden", "Forbidden: resourceVersionMatch is "
                                "forbidden for watch unless sendInitialEvents is provided",
                                "resourceVersionMatch"))
        if match != "NotOlderThan":
            causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{match}": '
                                'supported values: "NotOlderThan"', "resourceVersionMatch"))
        if o.continue_token:
            causes.append(Cause("FieldValueForbidden", "Forbidden: resourceVersionMatch is "
                                "forbidden when continue is provided", "resourceVersionMatch"))
    if causes:
        raise Invalid("ListOptions", "", causes, group="meta.k8s.io")


class _Stream:
    """Writes events to one response, as Tables when kubectl asked for them."""

    def __init__(self, resp: web.StreamResponse, rd: ResourceDef, table: bool,
                 api: APIState) -> None:
        self.resp, self.rd, self.table, self.api = resp, rd, table, api

    def _obj(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        if self.table and isinstance(self.rd, CustomResourceDef):
            return custom_table(self.rd.columns, [present(self.rd, obj)], list_meta=meta,
                                include_object="Metadata", now=self.api.inputs.now())
        if self.table:
            return table_for(self.rd.kind, [obj], list_meta=meta, now=self.api.inputs.now())
        out = dict(present(self.rd, obj))
        out.setdefault("kind", self.rd.kind)
        out.setdefault("apiVersion", self.rd.api_version)
        return out

    def _line(self, typ: str, obj: dict[str, Any]) -> bytes:
        return json.dumps({"type": typ, "object": self._obj(obj)}, separators=(",", ":"),
                          ensure_ascii=False).encode() + b"\n"

    async def send(self, typ: str, obj: dict[str, Any]) -> None:
        await self.resp.write(self._line(typ, obj))

    def event_line(self, typ: str, ev: CacheEvent) -> bytes:
        """The line for ``ev`` sent as ``typ``; plain-JSON lines are encoded once per
        (event, type) and shared by every watcher."""
        if self.table:
            return self._line(typ, ev.obj)
        # a custom object's line depends on the version watched (its apiVersion, defaults)
        key = f"{typ} {self.rd.api_version}" if isinstance(self.rd, CustomResourceDef) else typ
        line = ev.lines.get(key)
        if line is None:
            line = ev.lines[key] = self._line(typ, ev.obj)
        return line

    def bookmark_line(self, rv: int, *, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self.rd.kind, "apiVersion": self.rd.api_version, "metadata": meta}
        return json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() \
            + b"\n"

    async def bookmark(self, rv: int, *, initial_end: bool = False) -> None:
        await self.resp.write(self.bookmark_line(rv, initial_end=initial_end))

    async def error(self, e: APIError) -> None:
        line = json.dumps({"type": "ERROR", "object": e.to_status()}, separators=(",", ":"))
        await self.resp.write(line.encode() + b"\n")


def _translate(ev: CacheEvent, flt: Filter) -> tuple[str, dict[str, Any]] | None:
    now = ev.type != "DELETED" and flt.matches(ev.obj)
    before = ev.prev is not None and flt.matches(ev.prev)
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if flt.matches(ev.obj) else None
    if now and before:
        return "MODIFIED", ev.obj
    if now:
        return "ADDED", ev.obj
    if before:
        return "DELETED", ev.obj
    return None


async def serve_watch(request: web.Request, api: APIState, rd: ResourceDef,
                      info: RequestInfo, table: bool) -> web.StreamResponse:
    _check(info)
    o = info.options
    flt = filter_for(rd, o)
    namespace = info.namespace if rd.namespaced else ""
    prefix, _, index = selection(rd, namespace, flt)
    rv_text = o.resource_version
    rv = parse_resource_version(rv_text)
    initial = o.send_initial_events if o.send_initial_events is not None else rv == 0
    if initial and (o.send_initial_events or not rv_text):
        if not await api.cache.sync():
            raise APIError(503, "ServiceUnavailable", "the watch cache is catching up; retry")
    elif rv:
        await api.reader.at_least(rv)
    resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                       "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    stream = _Stream(resp, rd, table, api)
    try:
        if initial:
            objects, start = api.reader.select(rd, namespace, flt)
            watcher = api.cache.watch(prefix, start, index)
        else:
            watcher = api.cache.watch(prefix, rv, index)
    except APIError as e:  # 410 Expired: told in-band, as kube-apiserver does
        await stream.error(e)
        return resp
    try:
        if initial:
            for _, obj in objects:
                if flt.matches(obj):
                    await stream.send("ADDED", obj)
            if o.send_initial_events:
                await stream.bookmark(start, initial_end=True)
        limit = o.timeout_seconds if o.timeout_seconds else random.uniform(1800, 3600)
        if table or request.transport is None:
            await _pump(stream, watcher, flt, o.allow_watch_bookmarks, limit)
        else:
            await _direct(stream, watcher, flt, o.allow_watch_bookmarks, limit,
                          request.transport)
    except ConnectionResetError:
        pass
    finally:
        api.cache.stop(watcher)
    return resp


def _line_for(stream: _Stream, flt: Filter, bookmarks: bool, ev: CacheEvent) -> bytes | None:
    """What one watch sends for ``ev``: its event line, a bookmark (if asked for) or nothing."""
    if ev.type == "BOOKMARK":
        return stream.bookmark_line(ev.revision) if bookmarks else None
    out = _translate(ev, flt)
    return None if out is None else stream.event_line(out[0], ev)


async def _pump(stream: _Stream, watcher: Any, flt: Filter, bookmarks: bool,
                limit: float) -> None:
    """Forward the watcher's events until the timeout or the cache ends the watch.  Events
    that queued up while the last write was in flight go out in one write (one TLS record
    for many events when a thousand watchers share a busy loop).  A client that goes away
    cancels this handler (the server runs with handler cancellation)."""
    try:
        async with asyncio.timeout(limit):
            while True:
                batch = [await watcher.queue.get()]
                while not watcher.queue.empty():
                    batch.append(watcher.queue.get_nowait())
                lines, sent, ended = [], [], False
                for ev in batch:
                    if ev is None:
                        ended = True  # the cache reinitialised: the client re-watches
                        break
                    line = _line_for(stream, flt, bookmarks, ev)
                    if line is not None:
                        lines.append(line)
                        sent.append(ev)
                if lines:
                    await stream.resp.write(b"".join(lines))
                    for ev in sent:
                        _delivered(stream, ev)
                if ended:
                    return
    except TimeoutError:
        return


_SLOW_CLIENT_BYTES = 8 * 1024 * 1024


def _delivered(stream: _Stream, ev: CacheEvent | None) -> None:
    """Count an event (not a bookmark) written to a watcher, with its delay since the cache
    took it from the store."""
    hook = stream.api.watch_delivered
    if hook is not None and ev is not None and ev.type != "BOOKMARK" and ev.received:
        hook(ev.received)


class _Sink:
    """Delivers one plain-JSON watch's events from the cache's fan-out straight into its
    connection: one chunk per event, no task wake-up per watcher (with 1,000 watches that
    was most of the fan-out's cost).  A client that stops reading until 8 MiB wait unsent is
    dropped, as kube-apiserver drops a watcher that falls behind; it re-watches from its
    last resourceVersion."""

    def __init__(self, stream: _Stream, flt: Filter, bookmarks: bool,
                 transport: asyncio.BaseTransport) -> None:
        self.stream, self.flt, self.bookmarks = stream, flt, bookmarks
        self.transport = transport
        self.ended = asyncio.Event()

    def __call__(self, ev: CacheEvent | None) -> None:
        if self.ended.is_set():
            return
        try:
            line = self._line(ev)
            if line is None:
                return
            t = self.transport
            if t.is_closing():
                self.ended.set()
                return
            t.write(b"%x\r\n%b\r\n" % (len(line), line))  # type: ignore[attr-defined]
            _delivered(self.stream, ev)
            if t.get_write_buffer_size() > _SLOW_CLIENT_BYTES:  # type: ignore[attr-defined]
                self.ended.set()
        except Exception:  # never into the cache's feed: end this watch, keep the others
            log.exception("watch delivery failed; ending the watch")
            self.ended.set()

    def _line(self, ev: CacheEvent | None) -> bytes | None:
        if ev is None:
            self.ended.set()  # the cache reinitialised: the client re-watches
            return None
        return _line_for(self.stream, self.flt, self.bookmarks, ev)


async def _direct(stream: _Stream, watcher: Any, flt: Filter, bookmarks: bool, limit: float,
                  transport: asyncio.BaseTransport) -> None:
    """Hand the watcher to a :class:`_Sink` (after what queued up meanwhile, in order) and
    wait until the watch ends: timeout, cache reinitialisation or a slow client.  A client
    that goes away cancels this handler."""
    sink = _Sink(stream, flt, bookmarks, transport)
    while not watcher.queue.empty():  # no await from here to the switch: order is kept
        sink(watcher.queue.get_nowait())
    watcher.sink = sink
    try:
        async with asyncio.timeout(limit):
            await sink.ended.wait()
    except TimeoutError:
        return
