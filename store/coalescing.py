"""Client-side coalescing: kv operations issued in the same event-loop iteration travel together.

Many concurrent callers of :class:`store.client.StoreClient` (a benchmark's workers, an
apiserver's handlers) would each pay a whole HTTPS request per put or get.  A :class:`Coalescer`
collects the operations submitted while the loop is busy and, one iteration later, sends them as
one ``/v1/kv/batch`` request (``{"ops": [{"txn": ...} | {"range": ...}]}``), whose answer has
one ``{"ok": answer}`` or ``{"error": {...}}`` per operation, in order.  Nothing waits for a
batch to fill: a lone operation leaves one iteration later, as a batch of one.

The coalescer only carries operations; it never retries.  When the batch request as a whole
fails, every caller gets :class:`BatchFailed` and retries its own operation alone (each write
already carries its own request id, so that is safe).  Batch tasks belong to the coalescer and
are cancelled by :meth:`Coalescer.close`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_OPS", "BatchFailed", "Coalescer"]

MAX_BATCH_OPS = 256
MAX_BATCH_BYTES = 1024 * 1024  # the server takes 2 MiB per request

Op = dict[str, Any]
SendBatch = Callable[[list[Op]], Awaitable[list[dict[str, Any]]]]


class BatchFailed(Exception):
    """The batch request failed as a whole.  ``sent``: it may have reached the store, so a
    write in it may have been applied (its retry must keep its request id)."""

    def __init__(self, reason: str, *, sent: bool) -> None:
        super().__init__(reason)
        self.sent = sent


class Coalescer:
    """Batches of at most ``max_ops`` operations and about ``max_bytes`` bytes, sent by
    ``send`` (which returns one result map per op, in order, or raises BatchFailed)."""

    def __init__(
        self, send: SendBatch, *, max_ops: int = MAX_BATCH_OPS, max_bytes: int = MAX_BATCH_BYTES
    ) -> None:
        self._send = send
        self._max_ops = max_ops
        self._max_bytes = max_bytes
        self._pending: list[tuple[Op, asyncio.Future[dict[str, Any]]]] = []
        self._bytes = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, op: Op, size: int) -> dict[str, Any]:
        """Send ``op`` (``{"txn": body}`` or ``{"range": body}``, about ``size`` bytes) with
        whatever else is submitted in this loop iteration; its ``{"ok"}``/``{"error"}`` map.
        Raises BatchFailed when the batch request failed as a whole."""
        loop = asyncio.get_running_loop()
        if self._pending and (len(self._pending) >= self._max_ops
                              or self._bytes + size > self._max_bytes):
            self._flush()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending.append((op, fut))
        self._bytes += size
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending, self._bytes = self._pending, [], 0
        if batch:
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Op, asyncio.Future[dict[str, Any]]]]) -> None:
        try:
            results = await self._send([op for op, _ in batch])
            if len(results) != len(batch):
                raise BatchFailed(f"{len(results)} results for {len(batch)} ops", sent=True)
        except BaseException as e:  # every caller must hear of it, whatever it is
            failed = e if isinstance(e, BatchFailed) else BatchFailed(repr(e), sent=True)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(failed)
            if not isinstance(e, Exception):
                raise  # cancelled (close) or exiting
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():  # a caller that gave up (cancelled) needs no answer
                fut.set_result(result)

    async def close(self) -> None:
        """Cancel the batches in flight; their callers get BatchFailed(sent=True)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
