"""The client's wire layer: answers to typed errors, watch frames, and resuming a watch.

Used by :class:`store.client.StoreClient`.  The server's watch stream is a sequence of frames,
each a 4-byte big-endian length and one CBOR map (``{"header", "created": True}``,
``{"header", "events"}``, ``{"header", "progress": True}`` or ``{"error"}``, after which the
stream ends).  A :class:`WatchCursor` is the pure part of resuming: it remembers the last
revision delivered to the caller, says where a new stream must start, and drops from each frame
whatever was already delivered, so a watch that reconnects (to the same or another replica)
never yields an event twice and never skips one.  :func:`resuming_watch` is the loop around it.
:func:`status_sync` is ``/v1/status`` for code without an event loop (the launcher).
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import cbor2

from store.endpoints import Endpoints, backoff_delay
from store.errors import NotLeader, OutcomeUnknown, StoreError, Unavailable, from_wire

__all__ = [
    "BROKEN",
    "HEADERS",
    "MAX_FRAME_BYTES",
    "NOT_SENT",
    "WatchCursor",
    "error_of",
    "prefix_end",
    "read_frame",
    "resuming_watch",
    "status_sync",
]

HEADERS = {"Content-Type": "application/cbor", "Accept": "application/cbor"}
MAX_FRAME_BYTES = 64 * 1024 * 1024
# aiohttp raises these when the request never left this process: safe for any retry.
NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# These may come after the request was sent: a write's outcome is then unknown.
BROKEN = (aiohttp.ClientError, asyncio.IncompleteReadError, TimeoutError, OSError)
_FALLBACK_BY_STATUS: dict[int, type[StoreError]] = {
    421: NotLeader, 503: Unavailable, 504: OutcomeUnknown,
}


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix`` (etcd's rule):
    the prefix with its last byte below 0xff incremented; ``b"\\0"`` (every key) if none is."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


def error_of(status: int, payload: bytes) -> StoreError:
    """The typed error an error answer stands for; a body that is not ours falls back on the
    HTTP status (a proxy's 503 is still ``Unavailable``)."""
    try:
        return from_wire(cbor2.loads(payload)["error"])
    except Exception:  # noqa: BLE001 - any undecodable body
        cls = _FALLBACK_BY_STATUS.get(status, StoreError)
        return cls(f"HTTP {status}: {payload[:200]!r}")


class _Reader(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


async def read_frame(content: _Reader) -> dict[str, Any] | None:
    """Read one length-prefixed CBOR frame; None at a clean end of stream (between frames).

    A stream cut inside a frame raises asyncio.IncompleteReadError; a frame that is not a
    CBOR map with a header or an error, or is implausibly large, raises StoreError."""
    try:
        head = await content.readexactly(4)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    size = int.from_bytes(head, "big")
    if size > MAX_FRAME_BYTES:
        raise StoreError(f"watch frame of {size} bytes is over {MAX_FRAME_BYTES}")
    try:
        frame = cbor2.loads(await content.readexactly(size))
    except (ValueError, cbor2.CBORDecodeError) as e:
        raise StoreError(f"malformed watch frame: {e}") from e
    if not isinstance(frame, dict) or not ("error" in frame or "header" in frame):
        raise StoreError(f"malformed watch frame: {frame!r:.200}")
    return frame


class WatchCursor:
    """Resume point of one watch.  ``last``: every event at or below it was delivered.

    Relies on the store sending all events of one revision in one frame (a txn's events are
    never split), so "everything up to revision R" is a complete statement.
    """

    def __init__(self, start_revision: int) -> None:
        if start_revision < 1:
            raise ValueError("a watch cursor starts at a revision >= 1")
        self.last = start_revision - 1

    @property
    def next_start(self) -> int:
        """The ``start_revision`` of the next stream."""
        return self.last + 1

    def accept(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        """The part of ``frame`` the caller has not seen, or None if there is none.

        Event frames lose every event at or below ``last``; a progress frame passes when it
        does not go back (``header.revision >= last``) and moves ``last`` up to its revision,
        since the server promises every event up to it was sent.  Other frames (``created``)
        are not for the caller.  Error frames must be handled before."""
        rev = frame["header"]["revision"]
        if frame.get("progress"):
            if rev < self.last:
                return None
            self.last = rev
            return frame
        events = [e for e in frame.get("events", ()) if e["kv"]["mod_revision"] > self.last]
        if not events:
            return None
        self.last = max(e["kv"]["mod_revision"] for e in events)
        return {**frame, "events": events}


async def resuming_watch(
    session: Callable[[], aiohttp.ClientSession],
    ends: Endpoints,
    request: dict[str, Any],
    cursor: WatchCursor,
    *,
    timeout: aiohttp.ClientTimeout,
    retry_deadline: float,
) -> AsyncGenerator[dict[str, Any], None]:
    """Stream ``request`` (a /v1/watch body without ``start_revision``) from ``ends``,
    reconnecting at ``cursor.next_start`` after a broken or ended stream, a 503, a 504 or a
    421 (to the leader it names, else the next endpoint), with backoff.  Yields what the
    cursor accepts.  Raises Unavailable after ``retry_deadline`` seconds without news, and
    any other StoreError (Compacted, InvalidRequest, ...) as it comes."""
    loop = asyncio.get_running_loop()
    url, retry, give_up = ends.first(), 0, loop.time() + retry_deadline
    while True:
        body = cbor2.dumps({**request, "start_revision": cursor.next_start})
        try:
            async with session().post(url + "/v1/watch", data=body, headers=HEADERS,
                                      timeout=timeout) as r:
                if r.status != 200:
                    raise error_of(r.status, await r.read())
                while (frame := await read_frame(r.content)) is not None:
                    if "error" in frame:
                        raise from_wire(frame["error"])
                    retry = 0
                    if (fresh := cursor.accept(frame)) is not None:
                        give_up = loop.time() + retry_deadline
                        yield fresh
            reason = f"{url}: the stream ended"
        except NotLeader as e:
            reason = f"{url}: {e.message}"
            ends.failed(url)
            ends.learn(e.details.get("leader"))
        except (Unavailable, OutcomeUnknown) as e:
            reason = f"{url}: {e.message}"
            ends.failed(url)
        except BROKEN as e:
            reason = f"{url}: {type(e).__name__} {e}".rstrip()
            ends.failed(url)
        if loop.time() >= give_up:
            raise Unavailable(f"watch cannot resume at revision {cursor.next_start}: {reason}")
        await asyncio.sleep(backoff_delay(retry))
        retry += 1
        url = ends.after(url)


def status_sync(url: str, ctx: ssl.SSLContext, timeout: float) -> dict[str, Any] | None:
    """``GET url/v1/status`` without an event loop (launchers, scripts); None on any failure."""
    u = urlsplit(url)
    conn = http.client.HTTPSConnection(u.hostname or "", u.port, context=ctx, timeout=timeout)
    try:
        conn.request("GET", "/v1/status", headers={"Accept": "application/cbor"})
        r = conn.getresponse()
        body = r.read()
        st = cbor2.loads(body) if r.status == 200 else None
        return st if isinstance(st, dict) else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
