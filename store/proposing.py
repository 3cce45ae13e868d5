"""Group commit: many concurrent requests become one Raft entry.

The server hands each write command to :meth:`Proposer.write` and each linearizable read to
:meth:`Proposer.barrier`.  Commands that arrive while earlier entries are in flight wait and go
out together as one ``{"t": "batch", "cmds": [...]}`` entry, so the Raft thread and the disk see
a few large entries instead of thousands of small ones.  A read waits for the next entry to be
applied: its commit proves this replica's view is current (read-index through the log), and a
batch that carries writes anyway needs no extra barrier command.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Any

import cbor2

from . import errors
from .replica import RESULT_OK, RESULT_UNKNOWN, Replica
from .sabotage import fake_txn_success

__all__ = ["Proposer"]

_BATCH_HEAD = cbor2.dumps("t") + cbor2.dumps("batch") + cbor2.dumps("cmds")
_BARRIER = cbor2.dumps({"t": "barrier"})


def _array_head(n: int) -> bytes:
    if n < 24:
        return bytes([0x80 + n])
    if n < 256:
        return bytes([0x98, n])
    if n < 65536:
        return b"\x99" + struct.pack(">H", n)
    return b"\x9a" + struct.pack(">I", n)


def _encode_batch(encoded: list[bytes]) -> bytes:
    return b"\xa2" + _BATCH_HEAD + _array_head(len(encoded)) + b"".join(encoded)


class Proposer:
    """Owns the queue of commands waiting for a Raft entry.  Lives on the event loop; the
    replica's callbacks arrive on the loop in the middle of a Raft tick and are handed to the
    next loop iteration (``call_soon``), so futures never resolve inside pysyncobj's code.

    ``write`` returns the machine's result or raises the command's StoreError; it raises
    OutcomeUnknown when the entry may or may not commit (leader change, timeout) and
    Unavailable when it certainly did not (no leader)."""

    def __init__(
        self,
        replica: Replica,
        loop: asyncio.AbstractEventLoop,
        *,
        max_inflight: int = 1,
        max_entry_bytes: int = 4 * 2**20,
        max_entry_commands: int = 0,
        timeout: float = 5.0,
    ) -> None:
        self._replica = replica
        self._loop = loop
        self._max_inflight = max_inflight
        self._max_bytes = max_entry_bytes
        self._max_commands = max_entry_commands or 1 << 30
        self.timeout = timeout
        self._pending: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._readers: list[asyncio.Future[None]] = []
        self._inflight = 0
        self._scheduled = False
        self.entries_proposed = 0
        self.commands_proposed = 0
        self.on_committed: Callable[[float, int], None] | None = None  # (seconds, commands)
        self.ack_before_commit = False  # sabotage (store/sabotage.py): answer txns early

    async def write(self, cmd: dict[str, Any], timeout: float | None = None) -> Any:
        fut: asyncio.Future[Any] = self._loop.create_future()
        enc = cbor2.dumps(cmd)
        self._pending.append((enc, fut))
        self._schedule()
        if self.ack_before_commit and cmd.get("t") == "txn":
            return fake_txn_success(cmd)
        try:
            return await asyncio.wait_for(fut, timeout or self.timeout)
        except TimeoutError:
            raise errors.OutcomeUnknown("timed out waiting for the write to commit") from None

    async def write_many(
        self, cmds: list[dict[str, Any]], timeout: float | None = None
    ) -> list[Any]:
        """Propose several commands together; a list with, per command, its result or the
        StoreError it raised (OutcomeUnknown for those still pending at the timeout)."""
        futures: list[asyncio.Future[Any]] = []
        for cmd in cmds:
            fut: asyncio.Future[Any] = self._loop.create_future()
            enc = cbor2.dumps(cmd)
            self._pending.append((enc, fut))
            futures.append(fut)
        self._schedule()
        if self.ack_before_commit:
            return [fake_txn_success(cmd) if cmd.get("t") == "txn" else errors.Unavailable("")
                    for cmd in cmds]
        await asyncio.wait(futures, timeout=timeout or self.timeout)
        out: list[Any] = []
        for fut in futures:
            if not fut.done():
                fut.cancel()
                out.append(errors.OutcomeUnknown("timed out waiting for the write to commit"))
            elif fut.exception() is not None:
                out.append(fut.exception())
            else:
                out.append(fut.result())
        return out

    async def barrier(self, timeout: float | None = None) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._readers.append(fut)
        self._schedule()
        try:
            await asyncio.wait_for(fut, timeout or self.timeout)
        except TimeoutError:
            raise errors.Unavailable("could not confirm leadership for a linearizable read") from None

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while (self._pending or self._readers) and self._inflight < self._max_inflight:
            self._send_one()

    def _send_one(self) -> None:
        take, size = 0, 0
        for enc, _ in self._pending:
            if take and (size + len(enc) > self._max_bytes or take >= self._max_commands):
                break
            take += 1
            size += len(enc)
        batch = self._pending[:take]
        del self._pending[:take]
        readers, self._readers = self._readers, []
        encoded = [enc for enc, _ in batch] or [_BARRIER]
        futures = [fut for _, fut in batch]
        self._inflight += 1
        self.entries_proposed += 1
        self.commands_proposed += len(batch)
        loop = self._loop
        started = time.perf_counter()

        def done(outcome: str, result: Any) -> None:  # inside a Raft tick, on the loop
            loop.call_soon(self._complete, futures, readers, outcome, result)
            if self.on_committed is not None and outcome == RESULT_OK:
                self.on_committed(time.perf_counter() - started, len(futures))

        self._replica.propose(_encode_batch(encoded), done)

    def _complete(
        self,
        futures: list[asyncio.Future[Any]],
        readers: list[asyncio.Future[None]],
        outcome: str,
        result: Any,
    ) -> None:
        self._inflight -= 1
        if outcome == RESULT_OK and isinstance(result, list):
            for fut, item in zip(futures, result):
                if fut.done():
                    continue
                if "ok" in item:
                    fut.set_result(item["ok"])
                else:
                    fut.set_exception(errors.from_wire(item.get("err")))
            for r in readers:
                if not r.done():
                    r.set_result(None)
        else:
            if outcome == RESULT_OK and isinstance(result, dict) and "err" in result:
                exc: errors.StoreError = errors.from_wire(result["err"])  # whole entry refused
            elif outcome == RESULT_OK:  # applied, but not as a batch: a bug; say so
                exc = errors.StoreError(f"unexpected apply result {result!r}")
            elif outcome == RESULT_UNKNOWN:
                exc = errors.OutcomeUnknown("the leader changed before the write was known to commit")
            else:
                exc = errors.Unavailable("no leader: the write was not applied")
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
            for r in readers:
                if not r.done():
                    r.set_exception(errors.Unavailable("no leader to confirm the read"))
        if self._pending or self._readers:
            self._schedule()

    @property
    def queued(self) -> int:
        return len(self._pending)
