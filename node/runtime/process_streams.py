"""Streams into the process runtime's containers: exec (with or without a terminal), attach
(through the shim's socket) and port-forward (a TCP connection to the pod's address).

An exec'd command joins the container as well as a process can without namespaces: the
container's environment, working directory, cgroup and limits (the shim's ``--exec`` helper
applies them before ``execv``), in a session of its own.  Its orphans are re-parented to the
agent (a subreaper) and reaped there.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import termios
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .api import ByteSink, ByteSource, ExecError, ExecResult, StreamWriterLike, TerminalSize
from .images import DEFAULT_PATH, python_program
from .network import pod_port
from .process_state import ContainerRecord, translate
from .shim import frame, read_frames

__all__ = ["connect", "not_running", "run_attach", "run_exec", "run_exec_sync"]

_PROBE_OUTPUT_LIMIT = 10 * 1024
_IO_DRAIN_SECONDS = 1.0


def not_running(rec: ContainerRecord) -> ExecError:
    return ExecError(f"cannot exec in a stopped container: container {rec.name!r} "
                     f"({rec.id}) is not running")


async def run_exec(rec: ContainerRecord, spec: dict[str, Any], command: Sequence[str], *,
                   stdin: ByteSource | None, stdout: ByteSink | None, stderr: ByteSink | None,
                   tty: bool, resize: AsyncIterator[TerminalSize] | None) -> int:
    """Run ``command`` in ``rec``'s context; see ``Runtime.exec``."""
    if not command:
        raise ExecError("no command given")
    argv = [translate(c, rec.mounts) for c in command]
    path = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=rec.env.get("PATH",
                                                                                 DEFAULT_PATH))
    if path is None or not os.access(path, os.X_OK):
        raise ExecError(f'failed to start container process: exec: "{argv[0]}": '
                        "executable file not found in $PATH")
    helper = python_program("shim", "--exec", json.dumps({**spec, "tty": tty}), path, *argv)
    if tty:
        return await _exec_tty(rec, helper, stdin, stdout, resize)
    proc = await asyncio.create_subprocess_exec(
        *helper, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=rec.env,
        cwd=rec.cwd or None, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    async with asyncio.TaskGroup() as tg:
        if stdin is not None and proc.stdin is not None:
            feeder = tg.create_task(_feed(stdin, proc.stdin))
        outs = [tg.create_task(_copy(proc.stdout, stdout)),
                tg.create_task(_copy(proc.stderr, stderr))]
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            await proc.wait()
            raise
        finally:
            if stdin is not None and proc.stdin is not None:
                feeder.cancel()
        _, pending = await asyncio.wait(outs, timeout=_IO_DRAIN_SECONDS)
        for t in pending:  # a background child still holds the output: stop listening
            t.cancel()
    return 128 - code if code < 0 else code


async def run_exec_sync(rec: ContainerRecord, spec: dict[str, Any], command: Sequence[str], *,
                        timeout: float) -> ExecResult:
    """Run to completion or ``timeout`` (then the command's group is killed)."""
    buf = bytearray()

    async def collect(data: bytes) -> None:
        if len(buf) < _PROBE_OUTPUT_LIMIT:
            buf.extend(data[:_PROBE_OUTPUT_LIMIT - len(buf)])

    try:
        code = await asyncio.wait_for(run_exec(rec, spec, command, stdin=None, stdout=collect,
                                               stderr=collect, tty=False, resize=None),
                                      timeout)
    except TimeoutError:
        return ExecResult(exit_code=137, output=bytes(buf), timed_out=True)
    return ExecResult(exit_code=code, output=bytes(buf))


async def _exec_tty(rec: ContainerRecord, helper: Sequence[str], stdin: ByteSource | None,
                    stdout: ByteSink | None, resize: AsyncIterator[TerminalSize] | None) -> int:
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *helper, stdin=slave, stdout=slave, stderr=slave, env={**rec.env, "TERM": "xterm"},
            cwd=rec.cwd or None, start_new_session=True)
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 1 << 16)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            loop.remove_reader(master)
        queue.put_nowait(data)

    async def pump_out() -> None:
        while data := await queue.get():
            if stdout is not None:
                await stdout(data)

    async def pump_in() -> None:
        assert stdin is not None
        while data := await stdin.read(1 << 16):
            await asyncio.to_thread(os.write, master, data)

    async def pump_resize() -> None:
        assert resize is not None
        async for size in resize:
            _set_size(master, size)

    loop.add_reader(master, readable)
    try:
        async with asyncio.TaskGroup() as tg:
            side = [tg.create_task(pump_in())] if stdin is not None else []
            if resize is not None:
                side.append(tg.create_task(pump_resize()))
            out = tg.create_task(pump_out())
            try:
                code = await proc.wait()
            except asyncio.CancelledError:
                _kill_group(proc.pid)
                await proc.wait()
                raise
            for t in side:
                t.cancel()
            _, pending = await asyncio.wait([out], timeout=_IO_DRAIN_SECONDS)
            for t in pending:
                t.cancel()
    finally:
        loop.remove_reader(master)
        os.close(master)
    return 128 - code if code < 0 else code


async def run_attach(rec: ContainerRecord, *, stdin: ByteSource | None,
                     stdout: ByteSink | None, stderr: ByteSink | None,
                     resize: AsyncIterator[TerminalSize] | None) -> None:
    """Relay between the caller and the shim's attach socket until the container exits
    (the shim closes the socket) or the call is cancelled."""
    # through /proc/self/fd: a socket path is limited to 107 bytes, the directory's is not
    try:
        dirfd = os.open(rec.dir, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise not_running(rec) from e
    try:
        reader, writer = await asyncio.open_unix_connection(
            f"/proc/self/fd/{dirfd}/attach.sock")
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise not_running(rec) from e
    finally:
        os.close(dirfd)
    writer.write(frame(254, json.dumps({"stdin": stdin is not None}).encode()))

    async def pump_in() -> None:
        assert stdin is not None
        while data := await stdin.read(1 << 16):
            writer.write(frame(0, data))
            await writer.drain()
        writer.write(frame(255, b""))
        await writer.drain()

    async def pump_resize() -> None:
        assert resize is not None
        async for size in resize:
            writer.write(frame(4, json.dumps({"Width": size.width,
                                              "Height": size.height}).encode()))
            await writer.drain()

    try:
        async with asyncio.TaskGroup() as tg:
            side = [tg.create_task(pump_in())] if stdin is not None else []
            if resize is not None:
                side.append(tg.create_task(pump_resize()))
            buf = bytearray()
            while data := await reader.read(1 << 16):
                buf += data
                for channel, payload in read_frames(buf):
                    sink = stdout if channel == 1 else stderr if channel == 2 else None
                    if sink is not None:
                        await sink(payload)
            for t in side:
                t.cancel()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def connect(ip: str, port: int) -> tuple[ByteSource, StreamWriterLike]:
    """A connection to ``port`` of the pod at ``ip`` (served at :func:`pod_port` of it); a
    process that bound only 127.0.0.1 is reached there, as a pod's localhost would be."""
    real = pod_port(port)
    try:
        return await asyncio.open_connection(ip, real)
    except ConnectionRefusedError:
        if ip == "127.0.0.1":
            raise
        return await asyncio.open_connection("127.0.0.1", real)


async def _feed(source: ByteSource, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(1 << 16):
            sink.write(data)
            await sink.drain()
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        with contextlib.suppress(Exception):
            sink.close()


async def _copy(source: asyncio.StreamReader, sink: ByteSink | None) -> None:
    while data := await source.read(1 << 16):
        if sink is not None:
            await sink(data)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _set_size(fd: int, size: TerminalSize) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))
