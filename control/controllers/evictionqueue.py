"""The rate-limited queue of nodes waiting for their NoExecute taint, one per zone (kubernetes
``pkg/controller/nodelifecycle/scheduler/rate_limited_queue.go``).

Tainting a node with ``unreachable``/``not-ready`` NoExecute is what evicts its pods, so it is
rate-limited per zone: a token bucket of ``qps`` tokens a second, at most one saved up; a zone
in partial disruption swaps in a slower bucket or one that never gives a token (qps 0).  Time
is the injected clock's monotonic time.
"""

from __future__ import annotations

from dataclasses import dataclass

from control.api.clock import Clock

__all__ = ["Limiter", "TimedQueue"]


class Limiter:
    """A token bucket with burst 1; ``qps`` ≤ 0 never gives a token."""

    def __init__(self, qps: float, clock: Clock) -> None:
        self.qps = qps
        self.clock = clock
        self._tokens = 1.0
        self._last = clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        if self.qps > 0:
            self._tokens = min(1.0, self._tokens + (now - self._last) * self.qps)
        self._last = now

    def try_accept(self) -> bool:
        if self.qps <= 0:
            return False
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait(self) -> float | None:
        """Seconds until a token is available (None: never)."""
        if self.qps <= 0:
            return None
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.qps)


@dataclass
class _Item:
    value: str
    uid: str
    process_at: float


class TimedQueue:
    """Unique node names in the order they are due, behind a :class:`Limiter`: :meth:`take`
    the head when a token allows, then :meth:`done` or :meth:`retry` it."""

    def __init__(self, qps: float, clock: Clock) -> None:
        self.clock = clock
        self.limiter = Limiter(qps, clock)
        self._items: dict[str, _Item] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, value: object) -> bool:
        return value in self._items

    def add(self, value: str, uid: str) -> bool:
        """Queue ``value`` (False if it is queued already)."""
        if value in self._items:
            return False
        self._items[value] = _Item(value, uid, self.clock.monotonic())
        return True

    def remove(self, value: str) -> bool:
        return self._items.pop(value, None) is not None

    def swap_limiter(self, qps: float) -> None:
        """A new rate; a bucket that was empty stays empty (``SwapLimiter``)."""
        if qps == self.limiter.qps:
            return
        new = Limiter(qps, self.clock)
        if qps > 0 and not self.limiter.try_accept():
            new.try_accept()
        self.limiter = new

    def take(self) -> tuple[str, str] | None:
        """The head value if it is due and a token is available (the token is spent); it stays
        queued until :meth:`done` or :meth:`retry`."""
        head = next(iter(self._items.values()), None)
        if head is None or self.clock.monotonic() < head.process_at:
            return None
        if not self.limiter.try_accept():
            return None
        return head.value, head.uid

    def done(self, value: str) -> None:
        self._items.pop(value, None)

    def retry(self, value: str, wait: float) -> None:
        item = self._items.pop(value, None)
        if item is not None:
            item.process_at = self.clock.monotonic() + wait + 1.0
            self._items[value] = item

    def next_due(self) -> float | None:
        """Seconds until :meth:`take` could give something (None: nothing queued, or a
        limiter that never gives a token)."""
        head = next(iter(self._items.values()), None)
        if head is None:
            return None
        wait = self.limiter.wait()
        if wait is None:
            return None
        return max(wait, head.process_at - self.clock.monotonic(), 0.0)
