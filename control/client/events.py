"""The event recorder: core/v1 Events about objects, aggregated so a hot loop cannot flood the
store (client-go ``tools/record`` and its ``EventCorrelator``).

:meth:`EventRecorder.event` never blocks and never fails: it queues, and one background task
(:meth:`EventRecorder.run`) writes.  Three filters stand between a call and the store, as in
client-go:

* **spam filter** — a token bucket per (source, object): 25 events at once, then one per
  5 minutes; beyond that events are dropped (and counted);
* **aggregation** — more than 10 events with the same (object, type, reason) but different
  messages within 10 minutes collapse into one event whose message starts with
  ``(combined from similar events): ``;
* **deduplication** — an event identical to one already written (same object, type, reason,
  message, source) is not written again: the existing one gets ``count + 1`` and a new
  ``lastTimestamp`` by a merge patch.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from control.api.clock import Clock, format_time
from control.api.errors import APIError, NotFound

from .ratelimit import TokenBucket
from .resources import EVENTS
from .rest import ApiClient

__all__ = ["NORMAL", "WARNING", "ComponentRecorder", "EventRecorder", "Recorder"]

log = logging.getLogger("ketch.client.events")

NORMAL = "Normal"
WARNING = "Warning"
_AGGREGATE_MAX = 10
_AGGREGATE_WINDOW = 600.0
_CACHE_SIZE = 4096
_COMBINED = "(combined from similar events): "


@dataclass(frozen=True)
class _Pending:
    component: str
    ref: dict[str, Any]
    type: str
    reason: str
    message: str
    at: dt.datetime


def reference(obj: dict[str, Any]) -> dict[str, Any]:
    """The ObjectReference an Event's ``involvedObject`` holds for ``obj``."""
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""),
           "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
           "uid": meta.get("uid", ""), "resourceVersion": meta.get("resourceVersion", "")}
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Records events as ``component`` (on ``host``, for node agents)."""

    def __init__(self, client: ApiClient, *, component: str, host: str = "",
                 clock: Clock | None = None, burst: int = 25, refill_seconds: float = 300.0,
                 max_queue: int = 10_000) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock or client.clock
        self._burst, self._refill = burst, refill_seconds
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self._spam: collections.OrderedDict[tuple[str, ...], TokenBucket] = \
            collections.OrderedDict()
        self._similar: collections.OrderedDict[tuple[str, ...], tuple[float, set[str]]] = \
            collections.OrderedDict()
        self._written: collections.OrderedDict[tuple[str, ...], dict[str, Any]] = \
            collections.OrderedDict()
        self.dropped = 0
        self.written = 0
        self._last_name_ns = 0

    @property
    def source(self) -> dict[str, str]:
        return {"component": self.component, **({"host": self.host} if self.host else {})}

    # --- the caller's side ---------------------------------------------------------------

    def for_component(self, component: str) -> ComponentRecorder:
        """The same recorder (one queue, one writer, one set of filters) speaking as
        ``component`` — each controller of a process names itself in its events."""
        return ComponentRecorder(self, component)

    def event(self, obj: dict[str, Any], type: str, reason: str, message: str, *,
              component: str = "") -> None:
        """Record an event about ``obj`` (``type`` Normal or Warning); returns at once."""
        ref = reference(obj)
        component = component or self.component
        spam_key = (component, self.host, ref.get("kind", ""), ref.get("namespace", ""),
                    ref.get("name", ""), ref.get("uid", ""))
        bucket = self._spam.get(spam_key)
        if bucket is None:
            bucket = TokenBucket(1.0 / self._refill, self._burst, clock=self.clock)
            self._spam[spam_key] = bucket
            _trim(self._spam)
        else:
            self._spam.move_to_end(spam_key)
        if not bucket.try_take():
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(_Pending(component, ref, type, reason, message,
                                            self.clock.now()))
        except asyncio.QueueFull:
            self.dropped += 1

    def eventf(self, obj: dict[str, Any], type: str, reason: str, fmt: str,
               *args: Any) -> None:
        self.event(obj, type, reason, fmt % args if args else fmt)

    # --- the writer ------------------------------------------------------------------------

    async def run(self) -> None:
        """Write queued events until cancelled; API failures are logged, never raised."""
        while True:
            ev = await self._queue.get()
            try:
                await self._write(ev)
            except APIError as e:
                log.info("event %s %s on %s/%s not written: %s", ev.type, ev.reason,
                         ev.ref.get("namespace"), ev.ref.get("name"), e)

    async def flush(self, timeout: float = 5.0) -> None:
        """Write what is queued now (for clean shutdowns and tests)."""
        async def drain() -> None:
            while not self._queue.empty():
                ev = self._queue.get_nowait()
                try:
                    await self._write(ev)
                except APIError as e:
                    log.info("event not written: %s", e)

        await asyncio.wait_for(drain(), timeout)

    def _aggregate(self, ev: _Pending) -> str:
        """The message to write: ``ev``'s, or the combined form once the (object, type,
        reason) has had more than 10 different messages within 10 minutes."""
        key = (ev.ref.get("uid", ""), ev.ref.get("name", ""), ev.type, ev.reason)
        now = self.clock.monotonic()
        first, messages = self._similar.get(key, (now, set()))
        if now - first > _AGGREGATE_WINDOW:
            first, messages = now, set()
        messages.add(ev.message)
        self._similar[key] = (first, messages)
        self._similar.move_to_end(key)
        _trim(self._similar)
        return _COMBINED + ev.message if len(messages) > _AGGREGATE_MAX else ev.message

    async def _write(self, ev: _Pending) -> None:
        message = self._aggregate(ev)
        combined = message.startswith(_COMBINED)
        key = (ev.component, ev.ref.get("uid", ""), ev.ref.get("namespace", ""),
               ev.ref.get("name", ""), ev.type, ev.reason, "" if combined else message)
        stamp = format_time(ev.at)
        known = self._written.get(key)
        if known is not None:
            count = int(known.get("count") or 1) + 1
            patch = {"count": count, "lastTimestamp": stamp,
                     **({"message": message} if combined else {})}
            try:
                written = await self.client.patch(
                    EVENTS, known["metadata"]["name"], patch,
                    known["metadata"].get("namespace", ""))
                self._remember(key, written)
                self.written += 1
                return
            except NotFound:
                self._written.pop(key, None)  # expired or deleted: write a new one
        namespace = ev.ref.get("namespace") or "default"
        # client-go names events NAME.<unix nanoseconds in hex>; kept strictly increasing here
        # so two events in one clock tick do not collide.
        self._last_name_ns = max(int(ev.at.timestamp() * 1e9), self._last_name_ns + 1)
        name = f"{ev.ref.get('name', 'unknown')}.{self._last_name_ns:x}"
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": ev.ref, "reason": ev.reason, "message": message,
                "type": ev.type, "source": {
                    "component": ev.component, **({"host": self.host} if self.host else {})},
                "count": 1,
                "firstTimestamp": stamp, "lastTimestamp": stamp,
                "reportingComponent": ev.component, "reportingInstance": self.host}
        written = await self.client.create(EVENTS, body, namespace)
        self._remember(key, written)
        self.written += 1

    def _remember(self, key: tuple[str, ...], event: dict[str, Any]) -> None:
        self._written[key] = event
        self._written.move_to_end(key)
        _trim(self._written)


class Recorder(Protocol):
    """Anything that records events (an :class:`EventRecorder` or a component's view)."""

    def event(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None: ...

    def eventf(self, obj: dict[str, Any], type: str, reason: str, fmt: str,
               *args: Any) -> None: ...


class ComponentRecorder:
    """An :class:`EventRecorder` speaking as one component (see ``for_component``)."""

    def __init__(self, recorder: EventRecorder, component: str) -> None:
        self.recorder = recorder
        self.component = component

    def event(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        self.recorder.event(obj, type, reason, message, component=self.component)

    def eventf(self, obj: dict[str, Any], type: str, reason: str, fmt: str,
               *args: Any) -> None:
        self.event(obj, type, reason, fmt % args if args else fmt)


def _trim(d: collections.OrderedDict[Any, Any]) -> None:
    while len(d) > _CACHE_SIZE:
        d.popitem(last=False)
