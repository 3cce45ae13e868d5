"""Closed-loop load: N workers call one async op back to back and the latencies become figures.

The benchmark's measuring core. `run_closed_loop` drives any ``op(i)`` (a put or a get against
some target) and returns a frozen `LoadResult`; `GapRecorder` / `longest_gap` turn the
timestamps of successful writes into the longest outage around a leader kill. Everything here
is independent of the system under test; the pure parts (`percentile`, `summarize`,
`longest_gap`) take plain numbers so they can be tested without a cluster.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Gap",
    "GapRecorder",
    "LoadResult",
    "Op",
    "longest_gap",
    "percentile",
    "run_closed_loop",
    "summarize",
]

Op = Callable[[int], Awaitable[object]]
"""One operation: called with a sequence number unique within the run (0, 1, 2, ...)."""

_MAX_ERROR_SAMPLES = 5


@dataclass(frozen=True)
class LoadResult:
    """Figures of one closed-loop run.

    ``ops_per_s`` counts successful ops completed in the measured window divided by its length;
    latencies (seconds) are of successful ops only.  ``errors`` counts ops that raised or timed
    out in the window; ``error_samples`` keeps the first few distinct error texts so a failing run
    says why.
    """

    concurrency: int
    seconds: float
    ok: int
    errors: int
    ops_per_s: float
    p50: float
    p99: float
    max: float
    error_samples: tuple[str, ...] = ()
    error_kinds: tuple[tuple[str, int], ...] = ()
    """(exception class name, count), most frequent first."""


@dataclass(frozen=True)
class Gap:
    """The longest stretch without a successful write: from ``start`` to ``end`` (seconds)."""

    start: float
    end: float
    recovered: bool
    """False when no write succeeded after the fault: ``end`` is then the window's end."""

    @property
    def length(self) -> float:
        return self.end - self.start


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0 < q <= 100) of ascending ``sorted_values``.

    The nearest-rank value is always one of the samples (never interpolated), so p99 of 100
    samples is the 99th smallest and p100 the largest.  Empty input gives NaN; a ``q`` outside
    (0, 100] raises ValueError.
    """
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    if not sorted_values:
        return math.nan
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def summarize(
    latencies: Sequence[float],
    *,
    concurrency: int,
    seconds: float,
    errors: int,
    error_samples: Sequence[str] = (),
    error_kinds: Mapping[str, int] | None = None,
) -> LoadResult:
    """Turn raw successful-op latencies over a window of ``seconds`` into a `LoadResult`.

    ``latencies`` need not be sorted; ``seconds`` must be > 0 (ValueError otherwise).
    """
    if seconds <= 0:
        raise ValueError(f"window must be positive, got {seconds}")
    ordered = sorted(latencies)
    return LoadResult(
        concurrency=concurrency,
        seconds=seconds,
        ok=len(ordered),
        errors=errors,
        ops_per_s=len(ordered) / seconds,
        p50=percentile(ordered, 50),
        p99=percentile(ordered, 99),
        max=ordered[-1] if ordered else math.nan,
        error_samples=tuple(error_samples),
        error_kinds=tuple(sorted((error_kinds or {}).items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def longest_gap(successes: Sequence[float], *, start: float, end: float) -> Gap:
    """The longest interval between consecutive successful completions that overlaps [start, end].

    ``successes`` are completion timestamps in ascending order (one clock).  The gap anchored at
    the last success at or before ``start`` counts (that is the outage a fault at ``start``
    causes); if nothing succeeded before ``start``, ``start`` itself is the anchor.  If nothing
    succeeded after the anchor up to ``end``, the result runs to ``end`` with ``recovered``
    False.  Requires ``start <= end`` (ValueError otherwise).
    """
    if start > end:
        raise ValueError(f"window start {start} after end {end}")
    anchor = start
    inside: list[float] = []
    for t in successes:
        if t <= start:
            anchor = t
        elif t <= end:
            inside.append(t)
    if not inside:
        return Gap(start=anchor, end=end, recovered=False)
    best = Gap(start=anchor, end=inside[0], recovered=True)
    for a, b in itertools.pairwise(inside):
        if b - a > best.length:
            best = Gap(start=a, end=b, recovered=True)
    return best


class GapRecorder:
    """Collects completion timestamps of successful writes, on the ``clock`` given.

    Owned by one event loop: `record` is called from op callables, `gap` after a fault.  Memory
    grows with the number of successes (a float each), which a failover run bounds.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._times: list[float] = []

    def now(self) -> float:
        return self._clock()

    def record(self) -> None:
        """Note one successful completion now."""
        self._times.append(self._clock())

    def successes_since(self, t: float) -> int:
        """How many completions were recorded strictly after ``t``."""
        n = 0
        for stamp in reversed(self._times):
            if stamp <= t:
                break
            n += 1
        return n

    def gap(self, *, start: float, end: float) -> Gap:
        """`longest_gap` over everything recorded so far."""
        return longest_gap(self._times, start=start, end=end)


async def run_closed_loop(
    op: Op,
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 0.0,
    op_timeout: float = 10.0,
    stop: asyncio.Event | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> LoadResult:
    """Run ``concurrency`` workers calling ``op`` back to back for ``warmup + seconds``.

    Each worker starts a new op only while the deadline has not passed, so the run ends at most
    one op (bounded by ``op_timeout``) after the deadline.  Ops that *start* before the warm-up
    ends are not counted.  An op that raises any Exception, or exceeds ``op_timeout``, counts as an
    error and the worker goes on; cancellation of the caller cancels every worker (TaskGroup).
    The measured window runs from the end of warm-up to the moment the last worker stops, so
    ops/s is not inflated by a truncated tail.  Setting ``stop`` ends the run early the same way
    (workers finish their current op), which lets ``seconds`` be ``math.inf`` for a load that runs
    until told.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0
    samples: list[str] = []
    kinds: dict[str, int] = {}
    began = clock()
    measured_from = began + warmup
    deadline = measured_from + seconds

    async def worker() -> None:
        nonlocal errors
        while (t0 := clock()) < deadline and not (stop is not None and stop.is_set()):
            counted = t0 >= measured_from
            try:
                async with asyncio.timeout(op_timeout):
                    await op(next(counter))
            except Exception as exc:  # noqa: BLE001 - any failure of the op is a data point
                if counted:
                    errors += 1
                    kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
                    text = f"{type(exc).__name__}: {exc}"[:200]
                    if len(samples) < _MAX_ERROR_SAMPLES and text not in samples:
                        samples.append(text)
                continue
            if counted:
                latencies.append(clock() - t0)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    window = max(clock() - measured_from, 1e-9)
    return summarize(
        latencies,
        concurrency=concurrency,
        seconds=window,
        errors=errors,
        error_samples=samples,
        error_kinds=kinds,
    )
