"""The controller-manager: every enabled controller in one process, sharing one API client, one
set of informers and one event recorder, leader-elected on ``kube-system/kube-controller-manager``.

Caches warm up at once, leader or not, so a standby that takes over acts within moments.
Controllers' workers run only while this instance leads; each new term starts from the caches
(current state), never from what a previous term remembered.  The API client's write fence is
the elector's ``is_leading``: after losing the lease, not one more write goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from control.client import LeaderElector

from .base import Controller, ControllerContext
from .registry import CONTROLLERS, load

__all__ = ["DEFAULT_CONTROLLERS", "ControllerManager"]

log = logging.getLogger("ketch.controllers")

DEFAULT_CONTROLLERS = tuple(CONTROLLERS)


class ControllerManager:
    def __init__(self, ctx: ControllerContext, names: tuple[str, ...] | list[str] = (),
                 *, elector: LeaderElector | None = None) -> None:
        self.ctx = ctx
        self.elector = elector
        self.controllers: list[Controller] = [load(n)(ctx) for n in (names or
                                                                     DEFAULT_CONTROLLERS)]
        if elector is not None:
            ctx.client.fence = elector.is_leading
        self.leading = False

    def controller(self, name: str) -> Controller:
        return next(c for c in self.controllers if c.name == name)

    async def run(self) -> None:
        """Start the caches, then lead (or stand by) until cancelled."""
        self.ctx.informers.start()
        recorder = asyncio.create_task(self.ctx.recorder.run(), name="event recorder")
        try:
            await self.ctx.informers.wait_synced()
            log.info("caches synced: %s", ", ".join(str(i.resource)
                                                    for i in self.ctx.informers.informers))
            if self.elector is None:
                await self._lead()
            else:
                await self.elector.run(self._lead)
        finally:
            recorder.cancel()
            await self.ctx.informers.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder

    async def _lead(self) -> None:
        self.leading = True
        self.ctx.metrics.leader.labels("kube-controller-manager").set(1)
        log.info("leading: running %s", ", ".join(c.name for c in self.controllers))
        try:
            await asyncio.gather(*(c.run() for c in self.controllers))
        finally:
            self.leading = False
            self.ctx.metrics.leader.labels("kube-controller-manager").set(0)
