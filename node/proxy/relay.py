"""The data path: one listener per frontend, relaying each TCP connection or UDP flow to a
backend chosen at connect time.

Listeners bind with SO_REUSEPORT, so every node agent on one machine can serve the same
ClusterIP:port (the kernel spreads connections between them, and a dead agent's sockets simply
stop receiving).  Backends are read from a shared :class:`Choice` on every new connection, so a
changed endpoint set takes effect for the next connection without rebinding anything.  A
backend that refuses the connection is skipped and the next one tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from .table import Backend, Frontend

__all__ = ["Choice", "TcpRelay", "UdpRelay"]

log = logging.getLogger("ketch.node.proxy")

_BUFFER = 64 * 1024
_UDP_IDLE = 60.0


class Choice:
    """The backends of one frontend, round-robin, with ClientIP session affinity."""

    def __init__(self, affinity_seconds: int = 0) -> None:
        self.backends: list[Backend] = []
        self.affinity = affinity_seconds
        self._rr = itertools.count()
        self._sticky: dict[str, tuple[Backend, float]] = {}

    def update(self, backends: list[Backend], affinity_seconds: int) -> None:
        self.backends = list(backends)
        self.affinity = affinity_seconds
        alive = set(self.backends)
        self._sticky = {c: v for c, v in self._sticky.items() if v[0] in alive}

    def order(self, client_ip: str) -> list[Backend]:
        """Backends to try for a new connection from ``client_ip``, best first."""
        if not self.backends:
            return []
        now = time.monotonic()
        if self.affinity:
            stuck = self._sticky.get(client_ip)
            if stuck is not None and stuck[1] > now and stuck[0] in self.backends:
                first = stuck[0]
                return [first, *(b for b in self.backends if b != first)]
        start = next(self._rr) % len(self.backends)
        return self.backends[start:] + self.backends[:start]

    def chose(self, client_ip: str, backend: Backend) -> None:
        if self.affinity:
            self._sticky[client_ip] = (backend, time.monotonic() + self.affinity)


def _reuse_socket(ip: str, port: int, kind: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((ip, port))
    s.setblocking(False)
    return s


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_BUFFER):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


class TcpRelay:
    def __init__(self, fe: Frontend, choice: Choice, port_of: Callable[[int], int]) -> None:
        self.fe, self.choice, self.port_of = fe, choice, port_of
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        sock = _reuse_socket(self.fe.ip, self.fe.port, socket.SOCK_STREAM)
        self._server = await asyncio.start_server(self._handle, sock=sock, backlog=1024)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            for b in self.choice.order(str(peer[0])):
                try:
                    up_r, up_w = await asyncio.wait_for(
                        asyncio.open_connection(b.ip, self.port_of(b.port)), 3.0)
                except (OSError, TimeoutError):
                    continue
                self.choice.chose(str(peer[0]), b)
                try:
                    await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
                finally:
                    up_w.close()
                return
        finally:
            writer.close()
            self._conns.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)


class _Flow(asyncio.DatagramProtocol):
    """Replies from one backend to one client, through the frontend's socket."""

    def __init__(self, reply: Callable[[bytes], None]) -> None:
        self.reply = reply
        self.transport: asyncio.DatagramTransport | None = None
        self.last = time.monotonic()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.last = time.monotonic()
        self.reply(data)


class _Front(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.relay.forward(data, addr)


class UdpRelay:
    def __init__(self, fe: Frontend, choice: Choice, port_of: Callable[[int], int]) -> None:
        self.fe, self.choice, self.port_of = fe, choice, port_of
        self._front: _Front | None = None
        self._flows: dict[Any, _Flow] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = _reuse_socket(self.fe.ip, self.fe.port, socket.SOCK_DGRAM)
        _, self._front = await loop.create_datagram_endpoint(lambda: _Front(self), sock=sock)
        self._sweeper = asyncio.create_task(self._sweep())

    def forward(self, data: bytes, client: Any) -> None:
        flow = self._flows.get(client)
        if flow is not None and flow.transport is not None:
            flow.last = time.monotonic()
            flow.transport.sendto(data)
            return
        task = asyncio.ensure_future(self._open(data, client))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _open(self, data: bytes, client: Any) -> None:
        loop = asyncio.get_running_loop()
        front = self._front
        def reply(payload: bytes) -> None:
            if front is not None and front.transport is not None:
                front.transport.sendto(payload, client)

        for b in self.choice.order(str(client[0])):
            try:
                _, flow = await loop.create_datagram_endpoint(
                    lambda: _Flow(reply), remote_addr=(b.ip, self.port_of(b.port)))
            except OSError:
                continue
            self.choice.chose(str(client[0]), b)
            self._flows[client] = flow
            if flow.transport is not None:
                flow.transport.sendto(data)
            return

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_UDP_IDLE / 4)
            now = time.monotonic()
            for client, flow in list(self._flows.items()):
                if now - flow.last > _UDP_IDLE and flow.transport is not None:
                    flow.transport.close()
                    del self._flows[client]

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for t in list(self._pending):
            t.cancel()
        for flow in self._flows.values():
            if flow.transport is not None:
                flow.transport.close()
        self._flows.clear()
        if self._front is not None and self._front.transport is not None:
            self._front.transport.close()
