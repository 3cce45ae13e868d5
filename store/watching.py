"""Client side of ``/v1/watch``: reading frames, and resuming a stream without duplicates.

The server's stream is a sequence of frames, each a 4-byte big-endian length and one CBOR map
(``{"header", "events"}``, ``{"header", "progress": True}`` or ``{"error"}``).  A
:class:`WatchCursor` is the pure part of resuming: it remembers the last revision delivered
to the caller, says where a new stream must start, and filters out of each frame whatever was
already delivered, so a watch that reconnects (to the same or another replica) never yields an
event twice and never skips one.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import cbor2

from store.errors import StoreError

__all__ = ["WatchCursor", "read_frame", "MAX_FRAME_BYTES"]

MAX_FRAME_BYTES = 64 * 1024 * 1024


class _Reader(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


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
        since the server promises every event up to it was sent.  Error frames are not for
        the cursor (the caller handles them first)."""
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


async def read_frame(content: _Reader) -> dict[str, Any] | None:
    """Read one length-prefixed CBOR frame; None at a clean end of stream (between frames).

    A stream cut inside a frame raises asyncio.IncompleteReadError; a frame that is not a
    CBOR map, or is implausibly large, raises StoreError."""
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
