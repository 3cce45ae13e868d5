"""/readyz tells the truth: an apiserver whose watch cache feed has died stops saying ok."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tests.inprocess import InProcessAPI


async def test_readyz_fails_when_the_cache_feed_dies(api: InProcessAPI) -> None:
    async with api.client(retries=False) as c:
        ok = await c.raw("GET", "/readyz")
        assert (ok.status, ok.body) == (200, b"ok")

        async def broken(*_a: Any, **_k: Any) -> AsyncIterator[dict[str, Any]]:
            raise RuntimeError("feed bug")
            yield {}  # pragma: no cover - makes this an async generator

        api.store.watch = broken  # type: ignore[method-assign]
        api.store.break_watches()  # the feed's stream ends; its next watch fails for good
        loop = asyncio.get_running_loop()
        end = loop.time() + 5
        while (r := await c.raw("GET", "/readyz")).status == 200:
            assert loop.time() < end, "readyz still ok after the feed died"
            await asyncio.sleep(0.01)
        assert r.status == 500
        assert b"watch-cache failed: the task ended (RuntimeError('feed bug'))" in r.body
        assert (await c.raw("GET", "/livez")).status == 200
