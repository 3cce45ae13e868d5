"""Reading a shim's one-line report from its pipe: the line, EOF, the timeout — and the pipe's
fd closed exactly once, on uvloop too (whose pipe transports close it twice,
MagicStack/uvloop#763, and so can close a file another thread has just opened)."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

import pytest
import uvloop

from node.runtime.supervision import read_line


def _pipe(data: bytes, *, close: bool = True) -> tuple[int, int]:
    r, w = os.pipe()
    os.write(w, data)
    if close:
        os.close(w)
    return r, w


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


async def test_the_first_line_then_the_fd_is_closed() -> None:
    r, _ = _pipe(b'{"ok": true}\nmore\n')
    assert await read_line(r, 1.0) == b'{"ok": true}'
    assert _closed(r)


async def test_what_came_before_eof_and_nothing_on_timeout() -> None:
    r, _ = _pipe(b"partial")
    assert await read_line(r, 1.0) == b"partial"
    r, _ = _pipe(b"")
    assert await read_line(r, 1.0) == b""
    r, w = _pipe(b"no newline yet", close=False)
    assert await read_line(r, 0.05) == b""
    assert _closed(r)
    os.close(w)


def test_on_uvloop_a_file_opened_after_it_keeps_its_fd(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_bytes(b"alive")

    async def main() -> int:
        stolen = 0
        for _ in range(100):
            r, _ = _pipe(b"line\n")
            assert await read_line(r, 1.0) == b"line"
            with open(canary, "rb") as f:  # noqa: ASYNC230 - takes the lowest free number: r
                for _ in range(3):
                    await asyncio.sleep(0)
                gc.collect()
                await asyncio.sleep(0)
                try:
                    assert f.read() == b"alive"
                except OSError:
                    stolen += 1
        return stolen

    assert uvloop.run(main()) == 0


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
