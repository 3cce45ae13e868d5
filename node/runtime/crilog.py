"""Writing container logs in the CRI format (containerd's, which the kubelet reads).

One record per line::

    2026-07-30T10:00:03.123456789Z stdout F hello world
    <RFC 3339, nanoseconds, UTC> <stdout|stderr> <F full line | P partial> <content>

A line longer than :data:`MAX_RECORD` bytes, or one that stays unfinished for
:data:`PARTIAL_FLUSH_SECONDS` (a prompt, a progress bar), is written as ``P`` records; the record
that ends it is ``F``.  Files rotate by size: ``0.log`` is current, ``0.log.1`` the newest
rotated, up to ``max_files`` files in all (kubelet's containerLogMaxSize 10 Mi x
containerLogMaxFiles 5 by default).

The writer runs inside each container's shim (``node.runtime.shim``), which keeps writing while
the agent is down: it is synchronous and imports only ``os`` and ``time``, to keep the shim
small.  Reading is ``node.runtime.logs``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

__all__ = ["DEFAULT_MAX_FILES", "DEFAULT_MAX_SIZE", "MAX_RECORD", "PARTIAL_FLUSH_SECONDS",
           "LogWriter", "format_timestamp"]

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 5
MAX_RECORD = 16 * 1024
PARTIAL_FLUSH_SECONDS = 0.5


def format_timestamp(ns: int) -> str:
    """RFC 3339 with nine fractional digits, UTC (the kubelet's ``RFC3339NanoFixed``)."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"



class LogWriter:
    """Appends CRI records to ``path``, rotating at ``max_size`` bytes and keeping
    ``max_files`` files (at least 2: the current one and one rotated).  Not thread-safe; the
    shim owns one per container."""

    def __init__(self, path: str, *, max_size: int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.path = path
        self.max_size = max(max_size, 1024)
        self.max_files = max(max_files, 2)
        self._clock_ns = clock_ns
        self._partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._partial_since: dict[str, float] = {}
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """Record ``data`` from ``stream``: complete lines at once, an unfinished tail later
        (on the next newline, :meth:`flush_idle`, or :meth:`close`)."""
        buf = self._partial[stream]
        buf += data
        while buf:
            nl = buf.find(b"\n", 0, MAX_RECORD + 1)
            if nl >= 0:
                self._emit(stream, True, bytes(buf[:nl]))
                del buf[:nl + 1]
            elif len(buf) >= MAX_RECORD:
                self._emit(stream, False, bytes(buf[:MAX_RECORD]))
                del buf[:MAX_RECORD]
            else:
                break
        if buf:
            self._partial_since.setdefault(stream, time.monotonic())
        else:
            self._partial_since.pop(stream, None)

    def flush_idle(self, now: float | None = None) -> float | None:
        """Write unfinished lines older than :data:`PARTIAL_FLUSH_SECONDS` as ``P`` records;
        returns when the next one will be due (monotonic), or None."""
        now = time.monotonic() if now is None else now
        due: float | None = None
        for stream, since in list(self._partial_since.items()):
            if now - since >= PARTIAL_FLUSH_SECONDS:
                buf = self._partial[stream]
                self._emit(stream, False, bytes(buf))
                buf.clear()
                del self._partial_since[stream]
            else:
                at = since + PARTIAL_FLUSH_SECONDS
                due = at if due is None else min(due, at)
        return due

    def close(self) -> None:
        """Write what is left as full lines (the process has ended) and close the file."""
        for stream, buf in self._partial.items():
            if buf:
                self._emit(stream, True, bytes(buf))
                buf.clear()
        self._partial_since.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _emit(self, stream: str, full: bool, content: bytes) -> None:
        record = (f"{format_timestamp(self._clock_ns())} {stream} {'F' if full else 'P'} "
                  .encode() + content + b"\n")
        if self._size and self._size + len(record) > self.max_size:
            self._rotate()
        os.write(self._fd, record)
        self._size += len(record)

    def _rotate(self) -> None:
        os.close(self._fd)
        oldest = f"{self.path}.{self.max_files - 1}"
        if os.path.exists(oldest):
            os.unlink(oldest)
        for i in range(self.max_files - 2, 0, -1):
            if os.path.exists(f"{self.path}.{i}"):
                os.rename(f"{self.path}.{i}", f"{self.path}.{i + 1}")
        os.rename(self.path, f"{self.path}.1")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                           0o640)
        self._size = 0
