"""Resource metrics on the agent: a collector samples the handler's cumulative CPU time and
memory every ``interval`` seconds and turns the last two samples into CPU rates (cadvisor's
job), and ``GET /stats/summary`` serves the latest as :mod:`control.api.streamproto.summary`.

A rate needs two samples of the same container: a container seen once (just started), or whose
counter went backwards (restarted), has no rate until the next sample.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from control.api.clock import Clock
from control.api.streamproto.summary import ContainerStats, PodStats, Summary, Usage, to_json

from .handler import Sample, StreamHandler

__all__ = ["StatsCollector"]

log = logging.getLogger("ketch.node.streaming")

_Key = tuple[str, str, str, str]  # namespace, pod, uid, container


def _rate(now: int, before: int | None, seconds: float) -> int | None:
    if before is None or now < before or seconds <= 0:
        return None
    return round((now - before) / seconds)  # core-nanoseconds per second = nanocores


class StatsCollector:
    """Owns the sampling loop (:meth:`run`, cancelled by its owner) and the latest summary."""

    def __init__(self, handler: StreamHandler, node_name: str, *, clock: Clock,
                 interval: float = 10.0) -> None:
        self._handler, self._node, self._clock, self.interval = handler, node_name, clock, interval
        self._previous: tuple[float, Sample] | None = None
        self._latest: Summary | None = None
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Sample now and every ``interval`` seconds until cancelled; a failing handler is
        logged and tried again next time."""
        while True:
            try:
                await self.sample()
            except Exception:
                log.exception("stats sampling failed")
            await self._clock.sleep(self.interval)

    async def sample(self) -> Summary:
        """Take one sample now and make it the latest summary."""
        async with self._lock:
            sample = await self._handler.stats()
            mono, now = self._clock.monotonic(), self._clock.now()
            before: dict[_Key, int] = {}
            node_before: int | None = None
            window = 0.0
            if self._previous is not None:
                then, old = self._previous
                window = mono - then
                node_before = old.node.cpu_core_nanoseconds
                before = {(p.namespace, p.name, p.uid, c.name): c.usage.cpu_core_nanoseconds
                          for p in old.pods for c in p.containers}
            pods = tuple(
                PodStats(p.namespace, p.name, p.uid, tuple(
                    ContainerStats(c.name, Usage(
                        c.usage.cpu_core_nanoseconds, c.usage.memory_working_set_bytes,
                        _rate(c.usage.cpu_core_nanoseconds,
                              before.get((p.namespace, p.name, p.uid, c.name)), window)))
                    for c in p.containers))
                for p in sample.pods)
            node = Usage(sample.node.cpu_core_nanoseconds, sample.node.memory_working_set_bytes,
                         _rate(sample.node.cpu_core_nanoseconds, node_before, window))
            self._previous = (mono, sample)
            self._latest = Summary(self._node, now, round(window, 3), node, pods)
            return self._latest

    async def serve(self, request: web.Request) -> web.Response:
        summary = self._latest or await self.sample()
        return web.json_response(to_json(summary))
