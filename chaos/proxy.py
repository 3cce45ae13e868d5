"""A fault-injecting TCP proxy for one link, in the spirit of etcd's test proxy.

Each Raft peer link and each client link of a chaos cluster goes through a :class:`LinkProxy`.
Its two directions are set independently: ``PASS`` forwards bytes, ``DROP`` reads and discards
them (a black hole: the sender's writes succeed, the receiver hears nothing, exactly like a
network that drops packets; TCP timeouts then do the rest), ``Delay(s)`` forwards them ``s``
seconds late, in order.  ``LagStreams(s)`` delays only what streams: bytes that answer no
recent request of that connection (a watch's events, long after its GET) go ``s`` seconds
late, while a request's answer passes at once — an informer whose cache lags its own writes,
as behind a lagging watch cache.  ``cut()`` resets every open connection.  Nothing here needs
root.

Asymmetric partitions are one direction dropped: "A hears B, B does not hear A".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

__all__ = ["DROP", "PASS", "Delay", "LagStreams", "LinkProxy", "Mode"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class LagStreams:
    """Delay by ``seconds`` the chunks of one direction that come more than ``quiet`` seconds
    after the other direction of the connection last sent anything (use on ``backward``)."""

    seconds: float
    quiet: float = 0.5


PASS = "pass"
DROP = "drop"
Mode = str | Delay | LagStreams


class _Conn:
    """What both directions of one connection share: when each last carried bytes."""

    def __init__(self) -> None:
        self.last = {True: float("-inf"), False: float("-inf")}


class _Pipe:
    """One direction of one connection: read, then forward / discard / delay by the mode the
    proxy has for that direction *now* (a mode change applies to the next chunk)."""

    def __init__(self, proxy: LinkProxy, forward: bool, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, conn: _Conn | None = None) -> None:
        self._proxy = proxy
        self._conn = conn or _Conn()
        self._forward = forward
        self._reader = reader
        self._writer = writer
        self._queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        self._dropped = False

    async def run(self) -> None:
        sender = asyncio.create_task(self._send())
        try:
            while data := await self._reader.read(65536):
                mode = self._proxy.mode(self._forward)
                if mode == DROP:
                    self._proxy.dropped_bytes += len(data)
                    self._dropped = True
                    continue
                if self._dropped:
                    # Bytes went missing mid-stream: like a connection that died during the
                    # partition, this one cannot carry on; the peers reconnect after the heal.
                    raise ConnectionResetError("stream lost bytes during a partition")
                now = time.monotonic()
                self._conn.last[self._forward] = now
                streaming = now - self._conn.last[not self._forward] > getattr(mode, "quiet", 0)
                lag = mode.seconds if isinstance(mode, Delay) or (
                    isinstance(mode, LagStreams) and streaming) else 0.0
                due = now + lag
                self._queue.put_nowait((due, data))
        except (ConnectionError, OSError):
            pass
        finally:
            if self._dropped:
                self._writer.transport.abort()
            self._queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await sender

    async def _send(self) -> None:
        try:
            while (item := await self._queue.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                self._writer.write(data)
                await self._writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                self._writer.close()


class LinkProxy:
    """Listens on ``listen_port`` (0: pick one; see ``port``) and forwards to ``target``.

    ``forward`` is client→target, ``backward`` target→client."""

    def __init__(self, name: str, target: tuple[str, int], *, host: str = "127.0.0.1",
                 listen_port: int = 0) -> None:
        self.name = name
        self.target = target
        self.host = host
        self.port = listen_port
        self.forward: Mode = PASS
        self.backward: Mode = PASS
        self.dropped_bytes = 0
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def mode(self, forward: bool) -> Mode:
        return self.forward if forward else self.backward

    def set(self, *, forward: Mode | None = None, backward: Mode | None = None) -> None:
        if forward is not None:
            self.forward = forward
        if backward is not None:
            self.backward = backward

    def heal(self) -> None:
        self.forward = self.backward = PASS

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut()
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    def cut(self) -> None:
        """Reset every open connection (new ones are still accepted)."""
        for w in list(self._writers):
            transport = w.transport
            if transport is not None:
                transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.connections += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()
                return
            self._writers.update((writer, up_writer))
            conn = _Conn()
            try:
                await asyncio.gather(
                    _Pipe(self, True, reader, up_writer, conn).run(),
                    _Pipe(self, False, up_reader, writer, conn).run(),
                )
            finally:
                self._writers.difference_update((writer, up_writer))
                for w in (writer, up_writer):
                    with contextlib.suppress(Exception):
                        w.close()
        finally:
            self._conns.discard(task)
