"""The event recorder against a real apiserver in process: events land, repeats become counts,
many different messages are combined, and a hot loop is throttled."""

from __future__ import annotations

from control.api.clock import FakeClock
from control.client import EventRecorder
from control.client import resources as R
from tests.inprocess import InProcessAPI

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "default", "uid": "u-1"}}


async def events(api: InProcessAPI) -> list[dict]:  # type: ignore[type-arg]
    async with api.client() as c:
        items, _ = await c.list_all(R.EVENTS, "default")
    return [e for e in items if e["involvedObject"].get("uid") == "u-1"]


async def test_an_event_is_written_with_its_reference(api: InProcessAPI) -> None:
    async with api.client() as c:
        rec = EventRecorder(c, component="test-controller")
        rec.event(POD, "Normal", "Scheduled", "placed on n1")
        await rec.flush()
    [ev] = await events(api)
    assert ev["reason"] == "Scheduled" and ev["message"] == "placed on n1"
    assert ev["involvedObject"]["kind"] == "Pod" and ev["involvedObject"]["name"] == "web-1"
    assert ev["source"] == {"component": "test-controller"} and ev["count"] == 1
    assert ev["type"] == "Normal" and ev["firstTimestamp"] == ev["lastTimestamp"]


async def test_repeats_are_counted_on_one_event(api: InProcessAPI) -> None:
    clock = FakeClock()
    async with api.client() as c:
        rec = EventRecorder(c, component="kubelet", host="n1", clock=clock)
        for _ in range(5):
            rec.event(POD, "Warning", "BackOff", "Back-off restarting failed container")
            clock.advance(1)
        await rec.flush()
    [ev] = await events(api)
    assert ev["count"] == 5 and ev["lastTimestamp"] > ev["firstTimestamp"]
    assert ev["source"] == {"component": "kubelet", "host": "n1"}


async def test_many_different_messages_are_combined(api: InProcessAPI) -> None:
    clock = FakeClock()
    async with api.client() as c:
        rec = EventRecorder(c, component="c", clock=clock)
        for i in range(15):
            rec.event(POD, "Warning", "FailedCreate", f"error number {i}")
        await rec.flush()
    evs = await events(api)
    combined = [e for e in evs if e["message"].startswith("(combined from similar events): ")]
    assert len(evs) == 11 and len(combined) == 1 and combined[0]["count"] == 5


async def test_a_hot_loop_is_throttled(api: InProcessAPI) -> None:
    clock = FakeClock()
    async with api.client() as c:
        rec = EventRecorder(c, component="c", clock=clock, burst=25, refill_seconds=300)
        for _ in range(100):
            rec.event(POD, "Normal", "Same", "same")
        await rec.flush()
        assert rec.dropped == 75
    [ev] = await events(api)
    assert ev["count"] == 25
