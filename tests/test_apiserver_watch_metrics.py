"""The watch fan-out's own figures on /metrics: every event written to a watcher's connection
is counted (``apiserver_watch_events_total``) with its delay since the watch cache took it
from the store (``apiserver_watch_event_delay_seconds``) — what ``ketch bench cluster``
reports as the fan-out delivered per second and its p99 delay."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from control.client import resources as R
from tests.inprocess import InProcessAPI


async def _figures(api: InProcessAPI) -> tuple[float, float]:
    async with api.client() as c:
        text = (await c.raw("GET", "/metrics")).body.decode()
    sent = delays = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "apiserver_watch_events_total":
                sent = s.value
            elif s.name == "apiserver_watch_event_delay_seconds_count":
                delays = s.value
    return sent, delays


async def test_each_event_written_to_each_watcher_is_counted_with_its_delay(
        api: InProcessAPI) -> None:
    sent0, delays0 = await _figures(api)
    async with api.client() as c:
        rv = (await c.list(R.CONFIGMAPS, "default"))["metadata"]["resourceVersion"]
        streams = [c.watch(R.CONFIGMAPS, "default", resource_version=rv, allow_bookmarks=False)
                   for _ in range(3)]
        firsts = [asyncio.ensure_future(anext(s)) for s in streams]  # type: ignore[arg-type]
        await c.create(R.CONFIGMAPS, {"metadata": {"name": "fan-out"}}, "default")
        got = await asyncio.wait_for(asyncio.gather(*firsts), 10)
        assert [e.type for e in got] == ["ADDED"] * 3
        for s in streams:
            await s.aclose()  # type: ignore[attr-defined]
    sent, delays = await _figures(api)
    assert sent - sent0 == 3 and delays - delays0 == 3
