"""SPDY/3.1 framing, as kubectl's port-forward speaks it inside a WebSocket
(``SPDY/3.1+portforward.k8s.io``): frames in, frames out, header blocks compressed with zlib
and the SPDY/3 dictionary, one compression context per direction for the whole session.

Pure and incremental: :class:`FrameDecoder` takes the byte stream in whatever pieces it
arrives (kubectl writes each frame field as its own WebSocket message) and returns whole
frames; :class:`FrameEncoder` turns frames into bytes.  The zlib work is the stdlib's; only the
framing is written here.  No stream state: the sessions (the agent's port-forward server, test
clients) keep that.

Wire format (draft-mbelshe-httpbis-spdy-00, SPDY/3; 3.1 adds only flow control, unused here)::

    control: 1 | version:15 (3) | type:16 | flags:8 | length:24 | payload
    data:    0 | stream-id:31          | flags:8 | length:24 | bytes
    header block (zlib): count:32 { len:32 name len:32 value }*
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from .spdy_dictionary import DICTIONARY

__all__ = [
    "DICTIONARY",
    "FLAG_FIN",
    "FLAG_UNIDIRECTIONAL",
    "RST_CANCEL",
    "RST_PROTOCOL_ERROR",
    "RST_REFUSED_STREAM",
    "VERSION",
    "DataFrame",
    "Frame",
    "FrameDecoder",
    "FrameEncoder",
    "GoAway",
    "Headers",
    "Ping",
    "RstStream",
    "Settings",
    "SpdyError",
    "SynReply",
    "SynStream",
    "UnknownControl",
    "WindowUpdate",
]

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
RST_PROTOCOL_ERROR, RST_REFUSED_STREAM, RST_CANCEL = 1, 3, 5

_SYN_STREAM, _SYN_REPLY, _RST_STREAM, _SETTINGS = 1, 2, 3, 4
_PING, _GOAWAY, _HEADERS, _WINDOW_UPDATE = 6, 7, 8, 9
_HEADER = struct.Struct(">II")
_MAX_LENGTH = 0xFFFFFF
_STREAM_MASK = 0x7FFFFFFF
#: Decompressed header blocks larger than this are refused (a zlib bomb is one frame away).
MAX_HEADER_BLOCK = 256 * 1024


class SpdyError(ValueError):
    """The byte stream is not SPDY/3: the session cannot go on (send GOAWAY, close)."""


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Mapping[str, str] = field(default_factory=dict)
    associated_id: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Mapping[str, str] = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class Headers:
    stream_id: int
    headers: Mapping[str, str] = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    #: (flags, id, value) per entry
    entries: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class UnknownControl:
    """A control frame type this codec does not know (SPDY says: ignore it)."""

    frame_type: int
    flags: int
    payload: bytes


Frame: TypeAlias = (DataFrame | SynStream | SynReply | Headers | RstStream | Settings | Ping
                    | GoAway | WindowUpdate | UnknownControl)


# --- header blocks -------------------------------------------------------------------------


def _pack_headers(headers: Mapping[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def _unpack_headers(raw: bytes) -> dict[str, str]:
    def take(pos: int) -> tuple[bytes, int]:
        if pos + 4 > len(raw):
            raise SpdyError("header block ends inside a length")
        (n,) = struct.unpack_from(">I", raw, pos)
        if pos + 4 + n > len(raw):
            raise SpdyError("header block ends inside a name or value")
        return raw[pos + 4:pos + 4 + n], pos + 4 + n

    if len(raw) < 4:
        raise SpdyError("header block has no pair count")
    (count,) = struct.unpack_from(">I", raw, 0)
    pos, out = 4, {}
    for _ in range(count):
        name, pos = take(pos)
        value, pos = take(pos)
        if not name:
            raise SpdyError("a header name is empty")
        try:
            out[name.decode()] = value.decode()
        except UnicodeDecodeError:
            raise SpdyError("header names and values are UTF-8") from None
    if pos != len(raw):
        raise SpdyError("bytes after the last header pair")
    return out


# --- encoding ------------------------------------------------------------------------------


class FrameEncoder:
    """Frames to bytes, with this direction's header compression context.

    The context is shared by every header block of the session, so frames must be encoded in
    the order they are sent.
    """

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY,
                                      DICTIONARY)

    def _block(self, headers: Mapping[str, str]) -> bytes:
        return self._zlib.compress(_pack_headers(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
        if len(payload) > _MAX_LENGTH:
            raise SpdyError(f"a frame payload of {len(payload)} bytes does not fit 24 bits")
        return _HEADER.pack(0x80000000 | VERSION << 16 | frame_type,
                            flags << 24 | len(payload)) + payload

    def encode(self, frame: Frame) -> bytes:
        """The wire bytes of ``frame``; SpdyError for a payload over 16 MiB."""
        match frame:
            case DataFrame(stream_id, data, fin):
                if len(data) > _MAX_LENGTH:
                    raise SpdyError("a data frame holds at most 16 MiB - 1")
                return _HEADER.pack(stream_id & _STREAM_MASK,
                                    (FLAG_FIN if fin else 0) << 24 | len(data)) + data
            case SynStream(sid, headers, assoc, priority, fin, uni):
                flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if uni else 0)
                body = struct.pack(">IIBB", sid & _STREAM_MASK, assoc & _STREAM_MASK,
                                   (priority & 7) << 5, 0)
                return self._control(_SYN_STREAM, flags, body + self._block(headers))
            case SynReply(sid, headers, fin):
                return self._control(_SYN_REPLY, FLAG_FIN if fin else 0,
                                     struct.pack(">I", sid & _STREAM_MASK) + self._block(headers))
            case Headers(sid, headers, fin):
                return self._control(_HEADERS, FLAG_FIN if fin else 0,
                                     struct.pack(">I", sid & _STREAM_MASK) + self._block(headers))
            case RstStream(sid, status):
                return self._control(_RST_STREAM, 0, struct.pack(">II", sid & _STREAM_MASK, status))
            case Settings(entries):
                body = struct.pack(">I", len(entries)) + b"".join(
                    struct.pack(">II", (f & 0xFF) << 24 | (i & 0xFFFFFF), v)
                    for f, i, v in entries)
                return self._control(_SETTINGS, 0, body)
            case Ping(ping_id):
                return self._control(_PING, 0, struct.pack(">I", ping_id))
            case GoAway(last, status):
                return self._control(_GOAWAY, 0, struct.pack(">II", last & _STREAM_MASK, status))
            case WindowUpdate(sid, delta):
                return self._control(_WINDOW_UPDATE, 0,
                                     struct.pack(">II", sid & _STREAM_MASK, delta & _STREAM_MASK))
            case UnknownControl(frame_type, flags, payload):
                return self._control(frame_type, flags, payload)
        raise TypeError(f"not a SPDY frame: {frame!r}")


# --- decoding ------------------------------------------------------------------------------


class FrameDecoder:
    """Bytes to frames, with the peer's header decompression context.

    ``feed(data)`` accepts any slice of the stream and returns the frames it completed, in
    order; the rest waits in the buffer.  Raises SpdyError (and must not be fed again) on a
    control frame of another version, a malformed frame or header block, or a header block
    that decompresses to more than :data:`MAX_HEADER_BLOCK` bytes.
    """

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            word, rest = _HEADER.unpack_from(self._buffer, 0)
            length = rest & _MAX_LENGTH
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = rest >> 24
            if word & 0x80000000:
                version = (word >> 16) & 0x7FFF
                if version != VERSION:
                    raise SpdyError(f"SPDY version {version}, not {VERSION}")
                frames.append(self._control(word & 0xFFFF, flags, payload))
            else:
                frames.append(DataFrame(word & _STREAM_MASK, payload, bool(flags & FLAG_FIN)))
        return frames

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._zlib.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise SpdyError(f"header block does not decompress: {e}") from None
        if self._zlib.unconsumed_tail:
            raise SpdyError(f"a header block larger than {MAX_HEADER_BLOCK} bytes")
        return _unpack_headers(raw)

    @staticmethod
    def _need(payload: bytes, size: int, what: str) -> None:
        if len(payload) < size:
            raise SpdyError(f"{what} frame of {len(payload)} bytes; at least {size} needed")

    def _control(self, frame_type: int, flags: int, payload: bytes) -> Frame:
        fin = bool(flags & FLAG_FIN)
        if frame_type == _SYN_STREAM:
            self._need(payload, 10, "SYN_STREAM")
            sid, assoc, pri, _slot = struct.unpack_from(">IIBB", payload)
            return SynStream(sid & _STREAM_MASK, self._headers(payload[10:]),
                             assoc & _STREAM_MASK, pri >> 5, fin,
                             bool(flags & FLAG_UNIDIRECTIONAL))
        if frame_type in (_SYN_REPLY, _HEADERS):
            self._need(payload, 4, "SYN_REPLY/HEADERS")
            (sid,) = struct.unpack_from(">I", payload)
            cls = SynReply if frame_type == _SYN_REPLY else Headers
            return cls(sid & _STREAM_MASK, self._headers(payload[4:]), fin)
        if frame_type == _RST_STREAM:
            self._need(payload, 8, "RST_STREAM")
            sid, status = struct.unpack_from(">II", payload)
            return RstStream(sid & _STREAM_MASK, status)
        if frame_type == _SETTINGS:
            self._need(payload, 4, "SETTINGS")
            (count,) = struct.unpack_from(">I", payload)
            self._need(payload, 4 + 8 * count, "SETTINGS")
            entries = tuple((w >> 24, w & 0xFFFFFF, v) for w, v in
                            (struct.unpack_from(">II", payload, 4 + 8 * i) for i in range(count)))
            return Settings(entries)
        if frame_type == _PING:
            self._need(payload, 4, "PING")
            return Ping(struct.unpack_from(">I", payload)[0])
        if frame_type == _GOAWAY:
            self._need(payload, 4, "GOAWAY")
            last = struct.unpack_from(">I", payload)[0] & _STREAM_MASK
            status = struct.unpack_from(">I", payload, 4)[0] if len(payload) >= 8 else 0
            return GoAway(last, status)
        if frame_type == _WINDOW_UPDATE:
            self._need(payload, 8, "WINDOW_UPDATE")
            sid, delta = struct.unpack_from(">II", payload)
            return WindowUpdate(sid & _STREAM_MASK, delta & _STREAM_MASK)
        return UnknownControl(frame_type, flags, payload)
