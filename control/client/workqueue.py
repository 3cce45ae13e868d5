"""The work queue between informers and reconcilers (client-go ``workqueue``): keys, not
objects; deduplicated; a key is never handed to two workers at once; failures come back
later, rate-limited per key and overall.

Contract, as client-go's: :meth:`WorkQueue.get` hands out a key and marks it *processing*;
the worker must call :meth:`done` when it finishes.  A key added while it is processing is
remembered (*dirty*) and handed out again after ``done`` — so a change that arrives during a
reconcile is never lost, and never reconciled concurrently with itself.  After a failure the
worker calls :meth:`add_rate_limited` (delay ``base·2^failures`` per key, capped, and an
overall token bucket); after a success, :meth:`forget` resets the key's failure count.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
from collections.abc import Hashable
from typing import Protocol

from control.api.clock import Clock, RealClock

from .ratelimit import ItemBackoff, TokenBucket

__all__ = ["QueueMetrics", "ShutDown", "WorkQueue"]


class ShutDown(Exception):
    """The queue was shut down: workers stop."""


class QueueMetrics(Protocol):
    """What a queue reports (prometheus ``workqueue_*`` families, see controllers' metrics)."""

    def added(self, name: str) -> None: ...
    def depth(self, name: str, depth: int) -> None: ...
    def retried(self, name: str) -> None: ...
    def waited(self, name: str, seconds: float) -> None: ...


class WorkQueue:
    """``name`` labels the metrics; ``base``/``cap`` the per-key back-off; ``qps``/``burst``
    the overall limit on rate-limited re-adds (client-go's default: 10/100)."""

    def __init__(self, name: str = "", *, clock: Clock | None = None, base: float = 0.005,
                 cap: float = 60.0, qps: float = 10.0, burst: int = 100,
                 metrics: QueueMetrics | None = None) -> None:
        self.name = name
        self.clock = clock or RealClock()
        self._queue: collections.deque[Hashable] = collections.deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._added_at: dict[Hashable, float] = {}
        self._ready = asyncio.Event()
        self._backoff = ItemBackoff(base, cap)
        self._bucket = TokenBucket(qps, burst, clock=self.clock)
        self._waiting: list[tuple[float, int, Hashable]] = []
        self._waiting_keys: dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._waiter: asyncio.Task[None] | None = None
        self._shutdown = False
        self.metrics = metrics

    def __len__(self) -> int:
        """Keys ready to be handed out (not counting those processing or waiting)."""
        return len(self._queue)

    @property
    def processing(self) -> int:
        return len(self._processing)

    @property
    def delayed(self) -> int:
        return len(self._waiting_keys)

    # --- adding ---------------------------------------------------------------------------

    def add(self, key: Hashable) -> None:
        """Queue ``key`` unless it is already queued (if it is being processed, it is handed
        out again once that finishes)."""
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        self._added_at.setdefault(key, self.clock.monotonic())
        if self.metrics is not None:
            self.metrics.added(self.name)
        if key in self._processing:
            return
        self._queue.append(key)
        self._report_depth()
        self._notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (at once if ≤ 0); an earlier pending time for the
        same key wins."""
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        due = self.clock.monotonic() + delay
        if key in self._waiting_keys and self._waiting_keys[key] <= due:
            return
        self._waiting_keys[key] = due
        heapq.heappush(self._waiting, (due, next(self._seq), key))
        self._ensure_waiter()
        self._wake.set()

    def add_rate_limited(self, key: Hashable) -> None:
        """Queue ``key`` again after its back-off (and the overall limit)."""
        if self.metrics is not None:
            self.metrics.retried(self.name)
        delay = max(self._backoff.when(key), self._bucket.reserve())
        self.add_after(key, delay)

    def forget(self, key: Hashable) -> None:
        """The key succeeded: its next failure starts the back-off from the beginning."""
        self._backoff.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return self._backoff.failures(key)

    # --- handing out ----------------------------------------------------------------------

    async def get(self) -> Hashable:
        """The next key (waiting for one); ShutDown once the queue is shut down and empty."""
        while not self._queue:
            if self._shutdown:
                raise ShutDown()
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        added = self._added_at.pop(key, None)
        if self.metrics is not None and added is not None:
            self.metrics.waited(self.name, self.clock.monotonic() - added)
        self._report_depth()
        return key

    def done(self, key: Hashable) -> None:
        """The worker finished ``key``; if it was added meanwhile, it is queued again."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._report_depth()
            self._notify()

    def shutdown(self) -> None:
        """Stop handing out keys: waiting workers get ShutDown, delayed keys are dropped."""
        self._shutdown = True
        self._queue.clear()
        self._waiting.clear()
        self._waiting_keys.clear()
        if self._waiter is not None:
            self._waiter.cancel()
        self._notify()

    # --- internals ------------------------------------------------------------------------

    def _notify(self) -> None:
        self._ready.set()

    def _report_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.depth(self.name, len(self._queue))

    def _ensure_waiter(self) -> None:
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_task(
                self._release_due(), name=f"workqueue {self.name} delays")

    async def _release_due(self) -> None:
        """Move delayed keys to the queue when their time comes (one task per queue)."""
        while self._waiting:
            due, _, key = self._waiting[0]
            now = self.clock.monotonic()
            if due <= now:
                heapq.heappop(self._waiting)
                if self._waiting_keys.get(key) == due:
                    del self._waiting_keys[key]
                    self.add(key)
                continue
            self._wake.clear()
            sleep = asyncio.ensure_future(self.clock.sleep(due - now))
            wake = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait((sleep, wake), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                wake.cancel()
