"""Rate limits and back-off, one implementation for the REST client's QPS/burst, the work
queue's overall limit and every retry loop (client-go ``flowcontrol`` and ``workqueue``'s
rate limiters).

* :class:`TokenBucket` — ``qps`` tokens a second, at most ``burst`` saved up.
* :class:`Backoff` — exponential back-off with full jitter between ``base`` and ``cap``.
* :class:`ItemBackoff` — per-key exponential delays (``base · 2^failures`` up to ``cap``),
  forgotten on success: the work queue's per-item limiter.
"""

from __future__ import annotations

import random

from control.api.clock import Clock, RealClock

__all__ = ["Backoff", "ItemBackoff", "TokenBucket"]


class TokenBucket:
    """``qps`` ≤ 0 means unlimited.  ``reserve()`` takes a token now and says how long the
    caller must wait before using it (0 when one was saved up); :meth:`wait` sleeps that long."""

    def __init__(self, qps: float, burst: int, *, clock: Clock | None = None) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self.clock = clock or RealClock()
        self._tokens = float(self.burst)
        self._last = self.clock.monotonic()

    def reserve(self) -> float:
        if self.qps <= 0:
            return 0.0
        now = self.clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def try_take(self) -> bool:
        """Take a token only if one is available now."""
        if self.qps <= 0:
            return True
        if self.reserve() > 0:
            self._tokens += 1.0  # give it back: the caller does not wait
            return False
        return True

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await self.clock.sleep(delay)


class Backoff:
    """``next()`` gives the next delay: uniformly random in [0, min(cap, base·2^n)] after the
    n-th failure ("full jitter"), so clients that failed together do not retry together."""

    def __init__(self, base: float = 0.2, cap: float = 10.0, *,
                 rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.failures, 32)))
        self.failures += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


class ItemBackoff:
    """Per-key delays ``base · 2^(failures)`` capped at ``cap``; :meth:`forget` resets a key."""

    def __init__(self, base: float = 0.005, cap: float = 60.0) -> None:
        self.base, self.cap = base, cap
        self._failures: dict[object, int] = {}

    def when(self, key: object) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return min(self.cap, self.base * (2 ** min(n, 40)))

    def failures(self, key: object) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: object) -> None:
        self._failures.pop(key, None)
