"""The work queue's contract (client-go workqueue semantics) on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from control.api.clock import FakeClock
from control.client import ShutDown, WorkQueue
from control.client.ratelimit import TokenBucket


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_adds_are_deduplicated_and_ordered() -> None:
    q = WorkQueue(clock=FakeClock())
    for k in ("a", "b", "a", "c", "b"):
        q.add(k)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_a_key_is_never_handed_out_twice_at_once() -> None:
    q = WorkQueue(clock=FakeClock())
    q.add("k")
    assert await q.get() == "k"
    q.add("k")  # changed while processing: remembered, not handed out
    assert len(q) == 0
    waiter = asyncio.create_task(q.get())
    await settle()
    assert not waiter.done()
    q.done("k")  # finished: now it comes back once
    assert await asyncio.wait_for(waiter, 1) == "k"
    q.done("k")
    assert len(q) == 0


async def test_rate_limited_retries_back_off_per_key_and_forget_resets() -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock, base=1.0, cap=8.0, qps=0)
    delays = []
    for _ in range(5):
        q.add_rate_limited("k")
        await settle()
        waited = 0.0
        while len(q) == 0:
            clock.advance(0.5)
            waited += 0.5
            await settle()
        delays.append(waited)
        assert await q.get() == "k"
        q.done("k")
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert q.num_requeues("k") == 5
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_add_after_keeps_the_earliest_time_and_add_is_immediate() -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add_after("x", 10)
    q.add_after("x", 3)
    q.add_after("y", 5)
    await settle()
    clock.advance(3)
    await settle()
    assert await q.get() == "x"
    q.done("x")
    clock.advance(2)
    await settle()
    assert await q.get() == "y"
    q.done("y")
    clock.advance(10)  # the later time for x was superseded: nothing more
    await settle()
    assert len(q) == 0 and q.delayed == 0


async def test_shutdown_ends_waiting_workers() -> None:
    q = WorkQueue(clock=FakeClock())
    waiter = asyncio.create_task(q.get())
    await settle()
    q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1)
    q.add("late")
    assert len(q) == 0


async def test_workers_in_parallel_process_each_key_alone() -> None:
    q = WorkQueue(clock=FakeClock())
    running: set[str] = set()
    processed: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except ShutDown:
                return
            assert key not in running
            running.add(str(key))
            await asyncio.sleep(0)
            if len(processed) < 40:
                q.add(key)  # re-added while processing
            running.discard(str(key))
            processed.append(str(key))
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for k in "abcde":
        q.add(k)
    for _ in range(200):
        await asyncio.sleep(0)
        if len(processed) >= 45 and len(q) == 0 and q.processing == 0:
            break
    q.shutdown()
    await asyncio.gather(*workers)
    assert set(processed) == set("abcde")


def test_token_bucket_allows_burst_then_paces() -> None:
    clock = FakeClock()
    b = TokenBucket(2.0, 3, clock=clock)
    assert [b.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.reserve() == pytest.approx(0.5)
    clock.advance(10)
    assert b.reserve() == 0.0
    assert TokenBucket(0, 1, clock=clock).reserve() == 0.0  # unlimited
