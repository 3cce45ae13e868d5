"""Container logs in the CRI format, read for ``kubectl logs`` (written by each container's
shim with :class:`~node.runtime.crilog.LogWriter`, re-exported here).

One record per line, as containerd writes them and the kubelet reads them::

    2026-07-30T10:00:03.123456789Z stdout F hello world
    <RFC 3339, nanoseconds, UTC> <stdout|stderr> <F full line | P partial> <content>

A line longer than :data:`MAX_RECORD` bytes, or one that stays unfinished for
:data:`PARTIAL_FLUSH_SECONDS` (a prompt, a progress bar), is written as ``P`` records; the record
that ends it is ``F``.  Files rotate by size: ``0.log`` is current, ``0.log.1`` the newest
rotated, up to ``max_files`` files in all (kubelet's containerLogMaxSize 10 Mi x
containerLogMaxFiles 5 by default).

The reader (:func:`read_log`) is async and follows across rotation, so ``kubectl logs -f`` does
not stop when a file rotates (kubernetes/kubernetes#28369).
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from .crilog import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, LogWriter, format_timestamp

__all__ = [
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_SIZE",
    "LogLine",
    "LogOptions",
    "LogWriter",
    "format_timestamp",
    "log_files",
    "parse_record",
    "parse_timestamp",
    "parse_timestamp_ns",
    "read_lines",
    "read_log",
]

def parse_timestamp(text: bytes | str) -> dt.datetime | None:
    """A record's timestamp as an aware datetime (microsecond precision); None if malformed."""
    s = text.decode() if isinstance(text, bytes) else text
    if not s.endswith("Z") or "." not in s:
        return None
    head, _, frac = s[:-1].partition(".")
    try:
        base = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return base + dt.timedelta(microseconds=int((frac + "000000")[:6]))


def parse_timestamp_ns(text: bytes | str) -> int | None:
    """A record's timestamp in nanoseconds since the epoch; None if malformed."""
    s = text.decode() if isinstance(text, bytes) else text
    if not s.endswith("Z") or "." not in s:
        return None
    head, _, frac = s[:-1].partition(".")
    try:
        secs = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    if not frac.isdigit():
        return None
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


def parse_record(line: bytes) -> tuple[bytes, str, bool, bytes] | None:
    """``(timestamp, stream, full, content)`` of one record (without its newline)."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    return parts[0], parts[1].decode(), parts[2] == b"F", parts[3] if len(parts) == 4 else b""


def log_files(path: str) -> list[str]:
    """The files of one log, oldest first: ``path.N`` ... ``path.1``, ``path``."""
    rotated = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        rotated.append(f"{path}.{i}")
        i += 1
    rotated.reverse()
    return [*rotated, path] if os.path.exists(path) else rotated


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogOptions:
    """``PodLogOptions`` as the reader needs them (``sinceSeconds`` is turned into ``since``
    by the caller, on its clock)."""

    follow: bool = False
    tail_lines: int | None = None
    since: dt.datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


@dataclass(frozen=True)
class LogLine:
    """One record: when it was written (ns since the epoch), its stream, and its content —
    ending with a newline unless it is a partial (``P``) record."""

    time_ns: int
    stream: str
    data: bytes

    def timestamp(self) -> str:
        return format_timestamp(self.time_ns)


async def read_log(path: str, options: LogOptions = LogOptions(), *,
                   running: Callable[[], Awaitable[bool]] | None = None,
                   poll_seconds: float = 0.1) -> AsyncIterator[bytes]:
    """The log at ``path`` as ``kubectl logs`` prints it: :func:`read_lines`, with the
    timestamp before each record when asked and cut at ``limit_bytes``."""
    left = options.limit_bytes
    lines = read_lines(path, tail_lines=options.tail_lines, since=options.since,
                       follow=options.follow, running=running, poll_seconds=poll_seconds)
    try:
        async for line in lines:
            text = (line.timestamp().encode() + b" " if options.timestamps else b"") + line.data
            if left is not None:
                if len(text) >= left:
                    if left:
                        yield text[:left]
                    return
                left -= len(text)
            yield text
    finally:
        await lines.aclose()


async def read_lines(path: str, *, tail_lines: int | None = None,
                     since: dt.datetime | None = None, follow: bool = False,
                     running: Callable[[], Awaitable[bool]] | None = None,
                     poll_seconds: float = 0.1) -> AsyncGenerator[LogLine, None]:
    """The records of the log at ``path``, oldest first: the last ``tail_lines`` lines
    (a line is its ``P`` records and the ``F`` that ends it), none written before ``since``.

    Without ``follow`` it ends at the end of the newest file.  With ``follow`` it waits for
    more, switching to the new file when the current one is rotated away, and ends once
    ``running()`` says the container has exited and everything written has been read.  A
    missing log is an empty one.  File reads run in a worker thread."""
    files = await asyncio.to_thread(log_files, path)
    start_file, start_off = 0, 0
    if tail_lines is not None and files:
        start_file, start_off = await asyncio.to_thread(_tail_start, files, tail_lines)
    parser = _Parser(since)
    fd: int | None = None
    ino: int | None = None
    for idx in range(start_file, len(files)):
        off = start_off if idx == start_file else 0
        if files[idx] != path:
            for line in parser.feed(await asyncio.to_thread(_read_from, files[idx], off)):
                yield line
        else:
            fd, ino = await asyncio.to_thread(_open, path)
            if fd is not None:
                os.lseek(fd, off, os.SEEK_SET)
    follower = _follow(path, fd, ino, parser, follow, running, poll_seconds)
    try:
        async for line in follower:
            yield line
    finally:
        await follower.aclose()


async def _follow(path: str, fd: int | None, ino: int | None, parser: _Parser, follow: bool,
                  running: Callable[[], Awaitable[bool]] | None,
                  poll_seconds: float) -> AsyncGenerator[LogLine, None]:
    """Read the current file from ``fd`` to its end, then (``follow``) wait for more,
    switching files when the current one is rotated away.  Closes the fds it holds."""
    try:
        while True:
            data = await asyncio.to_thread(_read_fd, fd) if fd is not None else b""
            if data:
                for line in parser.feed(data):
                    yield line
                continue
            if not follow:
                return
            new_fd, new_ino = await asyncio.to_thread(_open, path)
            if new_fd is not None and new_ino != ino:
                # rotated: finish the old file (its fd still reads it), then follow the new one
                if fd is not None:
                    for line in parser.feed(await asyncio.to_thread(_read_fd, fd)):
                        yield line
                    os.close(fd)
                fd, ino = new_fd, new_ino
                continue
            if new_fd is not None:
                os.close(new_fd)
            if running is not None and not await running():
                rest = await asyncio.to_thread(_read_fd, fd) if fd is not None else b""
                for line in parser.feed(rest):
                    yield line
                return
            await asyncio.sleep(poll_seconds)
    finally:
        if fd is not None:
            os.close(fd)


class _Parser:
    """Raw file bytes to records (a record cut by the end of a read waits for the rest)."""

    def __init__(self, since: dt.datetime | None) -> None:
        self._buf = b""
        self._since_ns = None if since is None else \
            int(since.timestamp()) * 1_000_000_000 + since.microsecond * 1000

    def feed(self, data: bytes) -> list[LogLine]:
        self._buf += data
        raw = self._buf.split(b"\n")
        self._buf = raw.pop()
        out = []
        for line in raw:
            rec = parse_record(line)
            if rec is None:
                continue
            ts, stream, full, content = rec
            ns = parse_timestamp_ns(ts)
            if ns is None or (self._since_ns is not None and ns < self._since_ns):
                continue
            out.append(LogLine(ns, stream, content + b"\n" if full else content))
        return out


def _open(path: str) -> tuple[int | None, int | None]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    return fd, os.fstat(fd).st_ino


def _read_fd(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        if sum(map(len, chunks)) >= 1 << 20:
            return b"".join(chunks)


def _read_from(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _tail_start(files: list[str], n: int) -> tuple[int, int]:
    """Where the last ``n`` lines begin: (index into ``files``, byte offset).  A line is a
    run of ``P`` records ended by an ``F`` record."""
    if n <= 0:
        return (max(len(files) - 1, 0), _size(files[-1]) if files else 0)
    seen = 0
    for i in range(len(files) - 1, -1, -1):
        try:
            with open(files[i], "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        ends = [j for j, line in _record_offsets(data) if (rec := parse_record(line)) and rec[2]]
        if seen + len(ends) >= n:
            # the line we want starts just after the (n - seen + 1)-th last full record
            k = len(ends) - (n - seen)
            if k <= 0:
                return i, 0
            return i, _end_of_record(data, ends[k - 1])
        seen += len(ends)
    return 0, 0


def _record_offsets(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        out.append((pos, data[pos:nl]))
        pos = nl + 1
    return out


def _end_of_record(data: bytes, start: int) -> int:
    return data.index(b"\n", start) + 1


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
