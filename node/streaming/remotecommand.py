"""exec and attach on the agent: one WebSocket per call, speaking the channel protocol
(``v5.channel.k8s.io`` or ``v4.channel.k8s.io``) between the client and the handler.

The order is kubelet's: validate the options (an HTTP error before the upgrade), upgrade, send
an empty message on the lowest output channel (the client's "connected" signal), run the
handler with the streams while a reader task feeds stdin and terminal sizes, then write the one
Status on the error channel and close with 1000.  A client that leaves cancels the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from aiohttp import WSMsgType, web

from control.api.streamproto import channels
from control.api.streamproto.options import OptionError, RemoteCommandOptions

from .handler import Output, PodRef, StreamHandler, StreamingError, Streams, TerminalSize
from .replies import status_response

__all__ = ["serve_remote_command"]

log = logging.getLogger("ketch.node.streaming")

#: Output is sent in pieces of at most this many bytes (one WebSocket message each).
CHUNK = 32 * 1024
#: stdin chunks buffered before the reader stops reading the socket (backpressure).
STDIN_QUEUE = 16


class _Pipe:
    """The client's stdin as a :class:`ByteSource`: a bounded queue, ``b""`` at EOF."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(STDIN_QUEUE)
        self._closed = False

    async def feed(self, data: bytes) -> None:
        if data and not self._closed:
            await self._queue.put(data)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(b"")

    async def read(self) -> bytes:
        if self._closed and self._queue.empty():
            return b""
        data = await self._queue.get()
        if not data:
            self._queue.put_nowait(b"")  # EOF stays EOF for every later read
        return data


class _Sizes:
    """Terminal sizes as the async iterator a handler reads; ends when the client does."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[TerminalSize | None] = asyncio.Queue()

    def put(self, size: TerminalSize | None) -> None:
        self._queue.put_nowait(size)

    def __aiter__(self) -> AsyncIterator[TerminalSize]:
        return self

    async def __anext__(self) -> TerminalSize:
        size = await self._queue.get()
        if size is None:
            self._queue.put_nowait(None)  # ended stays ended
            raise StopAsyncIteration
        return size


def _writer(ws: web.WebSocketResponse, channel: int) -> Output:
    async def write(data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            if ws.closed:
                return
            with contextlib.suppress(ConnectionError):
                await ws.send_bytes(channels.encode(channel, data[i:i + CHUNK]))

    return write


async def _read(ws: web.WebSocketResponse, stdin: _Pipe | None, sizes: _Sizes | None,
                v5: bool) -> None:
    """Demultiplex the client's messages until it closes; then stdin is at EOF."""
    resize = channels.ResizeDecoder()
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue  # the channel protocols are binary; anything else is ignored
            m = channels.decode(msg.data)
            if m.channel == channels.STDIN and stdin is not None:
                await stdin.feed(m.payload)
            elif m.channel == channels.RESIZE and sizes is not None:
                try:
                    for size in resize.feed(m.payload):
                        sizes.put(size)
                except channels.ChannelError as e:
                    log.info("ignoring a bad resize message: %s", e)
            elif m.channel == channels.CLOSE and v5 and m.payload[:1] == bytes((
                    channels.STDIN,)) and stdin is not None:
                stdin.close()
    finally:
        if stdin is not None:
            stdin.close()
        if sizes is not None:
            sizes.put(None)


async def serve_remote_command(request: web.Request, handler: StreamHandler, pod: PodRef,
                               container: str, *, attach: bool) -> web.StreamResponse:
    """Serve one exec (``attach=False``) or attach request to its end."""
    query = {k: request.query.getall(k) for k in request.query}
    try:
        opts = RemoteCommandOptions.from_query(query, exec_=not attach)
    except OptionError as e:
        return status_response(400, "BadRequest", e.why)
    ws = web.WebSocketResponse(protocols=channels.PROTOCOLS, max_msg_size=4 * 1024 * 1024)
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol not in channels.PROTOCOLS:
        return status_response(400, "BadRequest", "Upgrade request required: expected a "
                               f"WebSocket with one of {', '.join(channels.PROTOCOLS)}")
    await ws.prepare(request)
    v5 = ws.ws_protocol == channels.V5
    stdin = _Pipe() if opts.stdin else None
    sizes = _Sizes() if opts.tty else None
    streams = Streams(stdin, _writer(ws, channels.STDOUT) if opts.stdout else None,
                      _writer(ws, channels.STDERR) if opts.stderr else None, opts.tty, sizes)
    first = channels.STDOUT if opts.stdout else channels.STDERR if opts.stderr \
        else channels.ERROR
    await ws.send_bytes(channels.encode(first))
    reader = asyncio.create_task(_read(ws, stdin, sizes, v5), name="remotecommand-reader")
    try:
        status = await _run(handler, pod, container, opts.command, streams, attach, reader)
        if status is not None and not ws.closed:
            with contextlib.suppress(ConnectionError):
                await ws.send_bytes(channels.encode(channels.ERROR, status))
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


async def _run(handler: StreamHandler, pod: PodRef, container: str, command: Sequence[str],
               streams: Streams, attach: bool, reader: asyncio.Task[None]) -> bytes | None:
    """The Status for the error channel, or None when the client left (the call is then
    cancelled)."""
    async def invoke() -> int:
        if attach:
            await handler.attach(pod, container, streams)
            return 0
        return await handler.exec(pod, container, command, streams)

    call = asyncio.create_task(invoke(), name="remotecommand-call")
    try:
        await asyncio.wait({call, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not call.done():  # the client went away first, or this handler is cancelled
            call.cancel()
            # asyncio.wait, not await: a second cancellation of ours must not interrupt the
            # handler's cleanup (killing its process) halfway
            await asyncio.wait({call})
    if call.cancelled():
        return None
    try:
        code = call.result()
    except StreamingError as e:
        return channels.failure_status(e.message, reason=e.reason, code=e.code)
    except Exception as e:  # a handler bug: the client still gets a status, the log the trace
        log.exception("%s in %s/%s failed", "attach" if attach else "exec", pod.name, container)
        return channels.failure_status(f"internal error: {e}")
    if not code:
        return channels.success_status()
    return channels.exit_status(code, command)
