"""Time, injected: every component that waits, times out, backs off or judges staleness takes a
:class:`Clock` instead of reading ``time`` or ``datetime`` itself (client-go's ``clock.Clock``).

``now()`` is wall time (for timestamps written into objects: creationTimestamp, Lease
renewTime, Event lastTimestamp); ``monotonic()`` is for every duration and every "has this
gone stale" decision — a remote heartbeat is stale by when *this* process last saw it change,
on its own monotonic clock, never by comparing a remote timestamp with the local wall clock.

:class:`FakeClock` drives tests: time stands still until :meth:`FakeClock.advance`, which wakes
every sleeper whose deadline has passed, in deadline order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "RealClock", "format_time", "parse_time"]


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The wall time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations, deadlines, staleness)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock."""
        ...


class RealClock:
    """The process's own clocks."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told: ``advance(s)`` moves both the wall and monotonic
    time forward and releases the sleepers it passes."""

    def __init__(self, start: dt.datetime | None = None, *, monotonic: float = 1000.0) -> None:
        self._now = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware start time")
        self._mono = monotonic
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (tests wait for a component to reach its sleep)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper due by then."""
        if seconds < 0:
            raise ValueError("time does not go back")
        self._mono += seconds
        self._now += dt.timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


def format_time(t: dt.datetime, *, micro: bool = False) -> str:
    """RFC 3339 as Kubernetes writes it: ``2026-01-01T00:00:00Z`` (``metav1.Time``), or with
    microseconds for ``metav1.MicroTime`` (Lease renewTime, Event eventTime)."""
    t = t.astimezone(dt.UTC)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> dt.datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None for None, "" or anything unparsable
    (callers treat a missing or malformed time as absent, never as now)."""
    if not text or not isinstance(text, str):
        return None
    try:
        t = dt.datetime.fromisoformat(text)  # 3.11 reads a trailing Z
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)
