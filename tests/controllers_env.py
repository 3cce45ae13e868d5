"""Controllers in the fast tier: a real apiserver in process (tests/inprocess.py), the
controllers built on the controller-manager's own identity (so RBAC is exercised too), their
informers synced.  A test seeds objects through the API, waits for the caches (:meth:`settle`),
calls ``reconcile(key)`` and asserts what was written; or runs the controllers' workers
(:meth:`running`) for end-to-end behaviour."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from control.api.clock import Clock, RealClock
from control.client import ApiClient, EventRecorder, InformerFactory
from control.controllers import Controller, ControllerContext, Settings
from control.controllers.registry import load
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]


@dataclass
class Env:
    api: InProcessAPI
    ctx: ControllerContext
    admin: ApiClient
    controllers: dict[str, Controller] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Controller:
        return self.controllers[name]

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until every informer has caught up with the store's current revision."""
        rev = self.api.store.machine.revision
        for inf in self.ctx.informers.informers:
            assert await inf.wait_for_version(rev, timeout), f"{inf} behind {rev}"

    async def reconcile(self, name: str, key: str) -> float | None:
        await self.settle()
        result = await self.controllers[name].reconcile(key)
        await self.ctx.recorder.flush()
        return result

    @contextlib.asynccontextmanager
    async def running(self, *names: str) -> AsyncIterator[None]:
        """Run the named controllers' workers (all of this env's by default)."""
        ctrls = [self.controllers[n] for n in (names or self.controllers)]
        tasks = [asyncio.create_task(c.run()) for c in ctrls]
        recorder = asyncio.create_task(self.ctx.recorder.run())
        try:
            yield
        finally:
            for t in [*tasks, recorder]:
                t.cancel()
            await asyncio.gather(*tasks, recorder, return_exceptions=True)

    async def until(self, probe: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Await ``probe()`` (sync or async) until it is truthy; TimeoutError otherwise."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        last: Any = None
        while True:
            try:
                last = probe()
                if asyncio.iscoroutine(last):
                    last = await last
                if last:
                    return last
            except AssertionError as e:
                last = e
            if loop.time() > end:
                raise TimeoutError(f"condition not met in {timeout}s; last: {last!r}")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def controller_env(api: InProcessAPI, *names: str, clock: Clock | None = None,
                         settings: Settings | None = None) -> AsyncIterator[Env]:
    clock = clock or RealClock()
    async with api.controller_manager() as client, api.client() as admin:
        factory = InformerFactory(client)
        ctx = ControllerContext(client, factory, EventRecorder(
            client, component="controller-manager", clock=clock), clock,
            settings=settings or Settings())
        env = Env(api, ctx, admin, {n: load(n)(ctx) for n in names})
        factory.start()
        try:
            assert await factory.wait_synced(10)
            yield env
        finally:
            await factory.stop()
