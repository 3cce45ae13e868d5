"""port-forward on the agent: a SPDY/3.1 session carried in a WebSocket
(``SPDY/3.1+portforward.k8s.io``), one TCP connection into the pod per stream pair.

kubectl opens, per local connection, an ``error`` stream (which it half-closes at once) and a
``data`` stream with the same ``requestid`` and ``port``; each SYN_STREAM gets a SYN_REPLY.
Bytes go both ways as DATA frames on the data stream.  The client's FIN half-closes the pod
connection; the pod's EOF ends the pair: FIN on the data stream and on the error stream
(kubectl waits for the latter).  A connection that cannot be made is reported as text on the
error stream, kubelet's words, which makes kubectl end the whole session.  PINGs are echoed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from control.api.streamproto import spdy

from .handler import PodRef, StreamHandler, StreamingError
from .replies import status_response

__all__ = ["PORT_FORWARD_PROTOCOL", "PortForwardSession", "serve_port_forward"]

log = logging.getLogger("ketch.node.streaming")

PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHUNK = 32 * 1024
_INBOUND_QUEUE = 16


@dataclass(eq=False)
class _Pair:
    """The error and data streams of one forwarded connection."""

    request_id: str
    port_text: str = ""
    error_id: int = 0
    data_id: int = 0
    inbound: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(_INBOUND_QUEUE))
    data_reset: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def complete(self) -> bool:
        return bool(self.error_id and self.data_id)


class PortForwardSession:
    """One port-forward WebSocket: reads frames, answers streams, forwards pairs.

    ``run()`` returns when the client closes the WebSocket or sends GOAWAY, or the stream is
    not SPDY/3; every connection into the pod it opened is closed by then.
    """

    def __init__(self, ws: web.WebSocketResponse, handler: StreamHandler, pod: PodRef) -> None:
        self._ws, self._handler, self._pod = ws, handler, pod
        self._encoder, self._decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
        self._lock = asyncio.Lock()
        self._pairs: dict[str, _Pair] = {}
        self._by_stream: dict[int, _Pair] = {}
        self._last_stream = 0

    async def send(self, *frames: spdy.Frame) -> None:
        """Encode and send in one message; the lock keeps header compression in send order."""
        async with self._lock:
            if self._ws.closed:
                return
            wire = b"".join(self._encoder.encode(f) for f in frames)
            with contextlib.suppress(ConnectionError):
                await self._ws.send_bytes(wire)

    async def run(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                try:
                    frames = self._decoder.feed(msg.data)
                except spdy.SpdyError as e:
                    log.info("port-forward to %s: %s; ending the session", self._pod.name, e)
                    await self.send(spdy.GoAway(self._last_stream, spdy.RST_PROTOCOL_ERROR))
                    return
                for frame in frames:
                    if not await self._on_frame(frame):
                        return
        finally:
            tasks = [p.task for p in self._pairs.values() if p.task is not None]
            for t in tasks:
                t.cancel()
            if tasks:  # wait, not gather: our own cancellation must not cut their cleanup
                await asyncio.wait(tasks)

    async def _on_frame(self, frame: spdy.Frame) -> bool:
        """Handle one frame; False ends the session."""
        match frame:
            case spdy.SynStream(sid, headers):
                self._last_stream = max(self._last_stream, sid)
                await self._open(sid, headers)
            case spdy.DataFrame(sid, data, fin):
                pair = self._by_stream.get(sid)
                if pair is not None and sid == pair.data_id and not pair.data_reset:
                    if data:
                        await pair.inbound.put(data)
                    if fin:
                        await pair.inbound.put(None)
            case spdy.RstStream(sid, _):
                pair = self._by_stream.get(sid)
                if pair is not None and sid == pair.data_id:
                    pair.data_reset = True
                    if pair.task is not None:
                        pair.task.cancel()
            case spdy.Ping(ping_id):
                await self.send(spdy.Ping(ping_id))
            case spdy.GoAway():
                return False
        return True  # SETTINGS, WINDOW_UPDATE, HEADERS and unknown frames need nothing

    async def _open(self, sid: int, h: Mapping[str, str]) -> None:
        kind = h.get("streamtype", "")
        if kind not in ("error", "data"):
            await self.send(spdy.RstStream(sid, spdy.RST_PROTOCOL_ERROR))
            return
        # without a requestid (the oldest clients) the error stream is the data stream - 2
        request_id = h.get("requestid") or str(sid if kind == "error" else sid - 2)
        pair = self._pairs.setdefault(request_id, _Pair(request_id))
        pair.port_text = pair.port_text or h.get("port", "")
        if kind == "error":
            pair.error_id = sid
        else:
            pair.data_id = sid
        self._by_stream[sid] = pair
        await self.send(spdy.SynReply(sid, {}))
        if pair.complete and pair.task is None:
            pair.task = asyncio.create_task(self._forward(pair),
                                            name=f"port-forward-{request_id}")

    async def _forward(self, pair: _Pair) -> None:
        """Connect into the pod and copy until the pod's EOF or the client's reset; always
        ends with FIN on both streams."""
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                port = int(pair.port_text)
                if not 0 < port < 65536:
                    raise ValueError
            except ValueError:
                await self._fail(pair, f'invalid port "{pair.port_text}"')
                return
            try:
                reader, writer = await self._handler.port_forward(self._pod, port)
            except (OSError, StreamingError) as e:
                cause = e.message if isinstance(e, StreamingError) else str(e)
                await self._fail(pair, f"error forwarding port {port} to pod {self._pod.name}, "
                                       f"uid {self._pod.uid}: {cause}")
                return
            up = asyncio.create_task(self._upstream(pair, writer))
            try:
                while chunk := await reader.read(CHUNK):
                    await self.send(spdy.DataFrame(pair.data_id, chunk))
            except ConnectionError:
                pass
            finally:
                up.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await up
            await self._finish(pair)
        except asyncio.CancelledError:
            if pair.data_reset:  # kubectl is done with this connection: let it go cleanly
                await self._finish(pair)
            else:
                raise
        finally:
            if writer is not None:
                writer.close()

    async def _upstream(self, pair: _Pair, writer: asyncio.StreamWriter) -> None:
        try:
            while (data := await pair.inbound.get()) is not None:
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    async def _fail(self, pair: _Pair, message: str) -> None:
        log.info("port-forward: %s", message)
        await self.send(spdy.DataFrame(pair.error_id, message.encode()))
        await self._finish(pair)

    async def _finish(self, pair: _Pair) -> None:
        frames: list[spdy.Frame] = [spdy.DataFrame(pair.error_id, b"", fin=True)]
        if not pair.data_reset:
            frames.insert(0, spdy.DataFrame(pair.data_id, b"", fin=True))
        await self.send(*frames)


async def serve_port_forward(request: web.Request, handler: StreamHandler,
                             pod: PodRef) -> web.StreamResponse:
    """Upgrade to the port-forward WebSocket and run its session to the end."""
    ws = web.WebSocketResponse(protocols=(PORT_FORWARD_PROTOCOL,), max_msg_size=4 * 1024 * 1024)
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol != PORT_FORWARD_PROTOCOL:
        return status_response(400, "BadRequest", "Upgrade request required: expected a "
                               f"WebSocket with {PORT_FORWARD_PROTOCOL}")
    await ws.prepare(request)
    try:
        await PortForwardSession(ws, handler, pod).run()
    finally:
        await ws.close()
    return ws
