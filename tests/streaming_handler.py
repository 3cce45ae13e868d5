"""A small real :class:`~node.streaming.StreamHandler` for tests: exec and attach run real
host processes (under a pty for a TTY), port-forward connects to a real local TCP port, logs
are lines a test adds, stats are counters that grow with real time.

``pods`` maps a pod UID to what the handler "runs": which containers have started, their log
lines per instance, whether they still run.  A pod not in the map is not on this node.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import struct
import termios
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from control.api.streamproto.summary import ContainerStats, PodStats, Usage
from node.streaming import (
    ContainerNotRunning,
    LogOptions,
    LogRecord,
    LogsUnavailable,
    PodNotFound,
    PodRef,
    Sample,
    Streams,
    TerminalSize,
)

CPU_RATE = 0.25  # cores every container "uses"
MEMORY = 20 * 1024 * 1024  # bytes every container "uses"


@dataclass
class Container:
    """``logs[i]`` is instance i's lines (the last is the current one); no instance: it never
    ran (``waiting`` is its reason).  ``running`` False: exited, its log complete."""

    logs: list[list[LogRecord]] = field(default_factory=list)
    running: bool = True
    waiting: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, text: str) -> None:
        if not self.logs:
            self.logs.append([])
        for line in text.splitlines(keepends=True):
            self.logs[-1].append(LogRecord(time.time_ns(), line.encode()))
        self.changed.set()

    def exit(self) -> None:
        self.running = False
        self.changed.set()


@dataclass
class FakePod:
    namespace: str
    name: str
    containers: dict[str, Container]


class LocalHandler:
    """Runs everything on this host; ``processes`` counts live exec/attach processes."""

    def __init__(self, *, cwd: str | None = None) -> None:
        self.pods: dict[str, FakePod] = {}
        self.cwd = cwd
        self.processes = 0
        self.started = time.monotonic()
        self.resizes: list[TerminalSize] = []

    # --- lookup ------------------------------------------------------------------------

    def _pod(self, ref: PodRef) -> FakePod:
        if ref.uid:
            pod = self.pods.get(ref.uid)
        else:
            pod = next((p for p in self.pods.values()
                        if (p.namespace, p.name) == (ref.namespace, ref.name)), None)
        if pod is None or (pod.namespace, pod.name) != (ref.namespace, ref.name):
            raise PodNotFound(ref)
        return pod

    def _running(self, ref: PodRef, container: str) -> None:
        c = self._pod(ref).containers.get(container)
        if c is None or not c.logs or not c.running:
            raise ContainerNotRunning(container)

    # --- exec and attach ----------------------------------------------------------------

    async def exec(self, pod: PodRef, container: str, command: Sequence[str],
                   streams: Streams) -> int:
        self._running(pod, container)
        if streams.tty:
            return await self._run_tty(list(command), streams)
        return await self._run_pipes(list(command), streams)

    async def attach(self, pod: PodRef, container: str, streams: Streams) -> None:
        """The "main process" of the test container is a ``cat`` started per attach."""
        self._running(pod, container)
        if streams.tty:
            await self._run_tty(["cat"], streams)
        else:
            await self._run_pipes(["cat"], streams)

    async def _run_pipes(self, argv: list[str], streams: Streams) -> int:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=self.cwd,
                stdin=asyncio.subprocess.PIPE if streams.stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as e:
            return 127 if isinstance(e, FileNotFoundError) else 126
        self.processes += 1
        try:
            async def copy(src: asyncio.StreamReader | None, out: object) -> None:
                assert src is not None
                while chunk := await src.read(65536):
                    if out is not None:
                        await out(chunk)  # type: ignore[operator]

            async def feed() -> None:
                assert proc.stdin is not None and streams.stdin is not None
                with contextlib.suppress(ConnectionError):
                    while data := await streams.stdin.read():
                        proc.stdin.write(data)
                        await proc.stdin.drain()
                proc.stdin.close()

            tasks = [asyncio.create_task(copy(proc.stdout, streams.stdout)),
                     asyncio.create_task(copy(proc.stderr, streams.stderr))]
            feeder = asyncio.create_task(feed()) if streams.stdin else None
            try:
                await asyncio.gather(*tasks)
                return await proc.wait()
            finally:
                if feeder is not None:
                    feeder.cancel()
                for t in tasks:
                    t.cancel()
        finally:
            self.processes -= 1
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def _run_tty(self, argv: list[str], streams: Streams) -> int:
        master, slave = pty.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=self.cwd, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True)
        finally:
            os.close(slave)
        self.processes += 1
        loop = asyncio.get_running_loop()
        output: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process and every holder of the slave are gone
                data = b""
            if not data:
                loop.remove_reader(master)
            output.put_nowait(data)

        loop.add_reader(master, readable)

        async def feed() -> None:
            assert streams.stdin is not None
            while data := await streams.stdin.read():
                os.write(master, data)

        async def resize() -> None:
            assert streams.resize is not None
            async for size in streams.resize:
                self.resizes.append(size)
                fcntl.ioctl(master, termios.TIOCSWINSZ,
                            struct.pack("HHHH", size.height, size.width, 0, 0))

        helpers = [asyncio.create_task(feed())] if streams.stdin else []
        if streams.resize is not None:
            helpers.append(asyncio.create_task(resize()))
        try:
            while data := await output.get():
                if streams.stdout is not None:
                    await streams.stdout(data)
            return await proc.wait()
        finally:
            for t in helpers:
                t.cancel()
            loop.remove_reader(master)
            os.close(master)
            self.processes -= 1
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    # --- port-forward, logs, stats -----------------------------------------------------------

    async def port_forward(self, pod: PodRef,
                           port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._pod(pod)
        return await asyncio.open_connection("127.0.0.1", port)

    async def logs(self, pod: PodRef, container: str,
                   options: LogOptions) -> AsyncIterator[LogRecord]:
        p = self._pod(pod)
        c = p.containers.get(container)
        if c is None or not c.logs:
            raise LogsUnavailable.waiting(container, p.name, c.waiting if c else "")
        if options.previous:
            if len(c.logs) < 2:
                raise LogsUnavailable.previous_not_found(container, p.name)
            return self._lines(c, c.logs[-2], options, follow=False)
        return self._lines(c, c.logs[-1], options, follow=options.follow)

    async def _lines(self, c: Container, lines: list[LogRecord], options: LogOptions, *,
                     follow: bool) -> AsyncIterator[LogRecord]:
        since = options.since_time.timestamp() * 1e9 if options.since_time else 0
        start = 0 if options.tail_lines is None else max(0, len(lines) - options.tail_lines)
        i = start
        while True:
            while i < len(lines):
                if lines[i].time_ns >= since:
                    yield lines[i]
                i += 1
            if not follow or not c.running:
                return
            c.changed.clear()
            await c.changed.wait()

    async def stats(self) -> Sample:
        elapsed = time.monotonic() - self.started
        cpu = int(elapsed * CPU_RATE * 1e9)
        pods = tuple(
            PodStats(p.namespace, p.name, uid, tuple(
                ContainerStats(name, Usage(cpu, MEMORY))
                for name, c in p.containers.items() if c.logs and c.running))
            for uid, p in self.pods.items())
        total = sum(len(p.containers) for p in pods)
        return Sample(Usage(cpu * max(1, total), MEMORY * max(1, total) + 512 * 1024 * 1024),
                      tuple(p for p in pods if p.containers))
