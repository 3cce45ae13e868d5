"""Leader election against a real apiserver in process: one leader at a time, fast takeover on
release, and a paused leader that never acts after another took over (fenced)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from control.api.clock import FakeClock
from control.client import LeaderElector, LeaseConfig, NotLeading
from control.client import resources as R
from tests.inprocess import InProcessAPI


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        if loop.time() > end:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)


def config(identity: str, **kw: float) -> LeaseConfig:
    return LeaseConfig("kube-system", "test-lock", identity, **kw)


def test_the_timings_must_leave_room() -> None:
    with pytest.raises(ValueError):
        LeaseConfig("ns", "n", "me", lease_duration=5, renew_deadline=5, retry_period=1)


async def test_one_leader_and_release_hands_over_at_once(api: InProcessAPI) -> None:
    async with api.client() as ca, api.client() as cb:
        a = LeaderElector(ca, config("a", lease_duration=30, renew_deadline=20,
                                     retry_period=0.05))
        b = LeaderElector(cb, config("b", lease_duration=30, renew_deadline=20,
                                     retry_period=0.05))
        both: list[bool] = []

        async def lead() -> None:
            while True:
                both.append(a.is_leading() and b.is_leading())
                await asyncio.sleep(0.01)

        ta = asyncio.create_task(a.run(lead))
        await until(a.is_leading)
        tb = asyncio.create_task(b.run(lead))
        await asyncio.sleep(0.3)
        assert a.is_leading() and not b.is_leading()
        ta.cancel()  # a clean shutdown releases the lease
        await asyncio.gather(ta, return_exceptions=True)
        # b takes over well before the 30 s lease would have gone stale
        await until(b.is_leading, timeout=10)
        lease = await ca.get(R.LEASES, "test-lock", "kube-system")
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] >= 1
        tb.cancel()
        await asyncio.gather(tb, return_exceptions=True)
        assert not any(both)


async def test_a_paused_leader_is_fenced_before_the_standby_takes_over(
        api: InProcessAPI) -> None:
    """Each candidate has its own clock.  The leader 'pauses' (its clock stops and it does
    nothing); the standby's clock runs past the lease; when the leader wakes, its fence has
    already shut: no write goes out, and the two are never both leading."""
    clock_a, clock_b = FakeClock(), FakeClock()
    cfg = {"lease_duration": 8.0, "renew_deadline": 5.0, "retry_period": 1.0}
    async with api.client(clock=clock_a) as ca, api.client(clock=clock_b) as cb:
        a = LeaderElector(ca, config("a", **cfg), clock=clock_a)
        b = LeaderElector(cb, config("b", **cfg), clock=clock_b)
        ca.fence = a.is_leading
        overlaps: list[float] = []
        paused = False  # while a is paused it runs nothing, so it cannot act as a leader

        async def watch_overlap() -> None:
            while True:
                if not paused and a.is_leading() and b.is_leading():
                    overlaps.append(clock_b.monotonic())
                await asyncio.sleep(0)

        async def lead_a() -> None:
            await asyncio.Event().wait()

        spy = asyncio.create_task(watch_overlap())
        ta = asyncio.create_task(a.run(lead_a))
        await until(a.is_leading)
        tb = asyncio.create_task(b.run(lead_a))
        for _ in range(20):  # b keeps trying while a renews
            clock_a.advance(0.5)
            clock_b.advance(0.5)
            await asyncio.sleep(0.02)
        assert a.is_leading() and not b.is_leading()
        # a pauses: only b's time passes.  b must wait a whole lease duration of its own.
        paused = True
        for _ in range(30):
            clock_b.advance(0.5)
            await asyncio.sleep(0.01)
            if b.is_leading():
                break
        assert b.is_leading()
        # a wakes up: its monotonic clock jumped far past its renew deadline.
        clock_a.advance(60)
        paused = False
        assert not a.is_leading()
        with pytest.raises(NotLeading):
            await ca.create(R.CONFIGMAPS, {"metadata": {"name": "zombie"}}, "default")
        await until(lambda: not a._leading)
        lease = await cb.get(R.LEASES, "test-lock", "kube-system")
        assert lease["spec"]["holderIdentity"] == "b"
        for t in (ta, tb, spy):
            t.cancel()
        await asyncio.gather(ta, tb, spy, return_exceptions=True)
        assert overlaps == []


async def test_a_lease_held_by_another_is_respected_until_stale(api: InProcessAPI) -> None:
    clock = FakeClock()
    async with api.client(clock=clock) as c:
        held = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "test-lock", "namespace": "kube-system"},
                "spec": {"holderIdentity": "other", "leaseDurationSeconds": 8,
                         "renewTime": "2020-01-01T00:00:00.000000Z"}}  # ancient wall time
        await c.create(R.LEASES, held, "kube-system")
        me = LeaderElector(c, config("me"), clock=clock)
        task = asyncio.create_task(me.run(lambda: asyncio.Event().wait()))
        # An old renewTime by someone else's wall clock means nothing: we time it ourselves.
        for _ in range(14):
            clock.advance(0.5)
            await asyncio.sleep(0.02)
        assert not me.is_leading()
        for _ in range(10):
            clock.advance(0.5)
            await asyncio.sleep(0.02)
        await until(me.is_leading)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_work_stopped_by_the_fence_is_a_step_down_not_a_failure(
        api: InProcessAPI) -> None:
    """The fence shuts at the renew deadline; a write that hits it first ends the leading
    work with NotLeading before the elector's own loop notices.  The candidate must step
    down and campaign again, not fail (the chaos run's controller-manager exited 1 after a
    partition, leaving the cluster without a standby)."""
    clock = FakeClock()
    async with api.client(clock=clock) as c, api.client() as admin:
        me = LeaderElector(c, config("me", lease_duration=8.0, renew_deadline=5.0,
                                     retry_period=1.0), clock=clock)
        c.fence = me.is_leading
        leading = asyncio.Event()

        async def lead() -> None:
            leading.set()
            while True:  # a controller writing as long as the fence lets it
                await c.create(R.CONFIGMAPS, {"metadata": {"generateName": "w-"}}, "default")
                await asyncio.sleep(0.01)

        task = asyncio.create_task(me.run(lead))
        await asyncio.wait_for(leading.wait(), 5)
        lease = await admin.get(R.LEASES, "test-lock", "kube-system")
        lease["spec"]["holderIdentity"] = "thief"
        await admin.update(R.LEASES, lease)
        me._renewed_at -= 10  # the renew deadline passed: the fence is shut, the loop unaware
        await until(lambda: not me._leading)
        await asyncio.sleep(0.05)
        assert not task.done()  # still campaigning, as a standby
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_release_frees_the_lease_even_when_the_last_renewal_lost_its_answer(
        api: InProcessAPI) -> None:
    """A renewal cancelled mid-flight may be applied without its answer reaching the elector,
    whose copy of the Lease is then one resourceVersion behind: the release must still free
    it (the standby waited out the whole lease duration when the release hit a 409)."""
    async with api.client() as ca, api.client() as admin:
        a = LeaderElector(ca, config("a", lease_duration=30, renew_deadline=20,
                                     retry_period=5))

        async def lead() -> None:
            await asyncio.Event().wait()

        ta = asyncio.create_task(a.run(lead))
        await until(a.is_leading)
        lease = await admin.get(R.LEASES, "test-lock", "kube-system")
        lease["spec"]["renewTime"] = "2026-12-05T00:00:00.000000Z"  # the renewal "a" never heard
        await admin.update(R.LEASES, lease)
        ta.cancel()
        await asyncio.gather(ta, return_exceptions=True)
        freed = await admin.get(R.LEASES, "test-lock", "kube-system")
        assert freed["spec"].get("holderIdentity") is None
