"""Supervising the process runtime's containers: starting one through its shim, noticing its
end, stopping it (SIGTERM to its process group, SIGKILL at the deadline).

A container's end is noticed through its shim's pidfd (``reaper``) and read from the
``exit.json`` the shim leaves.  A shim that died without one while its container lives on
hands over: the container's own pid is watched from then on (the agent, a subreaper, is now
its parent and reaps it).  Every state change is published (``on_change``) so the pod worker
of the container looks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from control.api.clock import Clock

from . import procfs
from .api import ContainerAlreadyRunning, ContainerState, StartError
from .cgroups import CgroupManager
from .images import python_program
from .process_state import ContainerRecord, read_json, write_json
from .reaper import Reaper

__all__ = ["Supervisor"]

log = logging.getLogger("ketch.node.process")

_START_TIMEOUT = 30.0
_KILL_TIMEOUT = 10.0


class Supervisor:
    """``spawn`` runs a coroutine as a task the runtime owns; ``on_change(rec, kind)``
    publishes a container event."""

    def __init__(self, *, reaper: Reaper, clock: Clock,
                 cgroups: Callable[[], CgroupManager | None],
                 spawn: Callable[[Coroutine[Any, Any, Any]], None],
                 on_change: Callable[[ContainerRecord, str], None]) -> None:
        self.reaper = reaper
        self.clock = clock
        self._cgroups = cgroups
        self._spawn = spawn
        self._on_change = on_change

    async def start(self, rec: ContainerRecord) -> None:
        """Start a created container (see ``Runtime.start_container``).  Runs to the end even
        if the caller is cancelled, so a started container is never left unrecorded."""
        await asyncio.shield(self._start(rec))

    async def _start(self, rec: ContainerRecord) -> None:
        spec = await asyncio.to_thread(read_json, os.path.join(rec.dir, "spec.json")) or {}
        if not spec.get("argv"):
            await self.record_exit(rec, 128, "StartError",
                                    "no command specified")
            self._on_change(rec, "exited")
            raise StartError("no command specified")
        report = await self._spawn_shim(rec)
        if report.get("ok"):
            # the container runs now: whatever happens next, it must be recorded as running
            # (a start that raised here left it untracked, and the pod worker started a second
            # copy beside it)
            try:
                state = await asyncio.to_thread(read_json, os.path.join(rec.dir, "state.json"))
            except OSError as e:
                log.warning("container %s: reading its state failed (%s); using the shim's "
                            "report", rec.id, e)
                state = None
            rec.apply_running(state or _state_of(report.get("pid"), rec.shim_pid))
            self.watch(rec)
            self._on_change(rec, "started")
            return
        message = str(report.get("message") or "the shim failed")
        if message == "container is already running":
            raise ContainerAlreadyRunning(message)
        info = await asyncio.to_thread(read_json, os.path.join(rec.dir, "exit.json"))
        if info is None:
            await self.record_exit(rec, 128, "StartError", message)
        else:
            rec.apply_exit(info)
        self._on_change(rec, "exited")
        raise StartError(message)

    async def _spawn_shim(self, rec: ContainerRecord) -> dict[str, Any]:
        """Spawn the shim in a session of its own and wait for its one-line report."""
        await asyncio.to_thread(_touch, os.path.join(rec.dir, "started"))
        read_fd, write_fd = os.pipe()
        shim_log = os.path.join(rec.dir, "shim.log")
        argv = python_program("shim", rec.dir)
        try:
            pid = os.posix_spawn(  # noqa: ASYNC221 - vfork+exec: returns at once
                argv[0], list(argv), {}, setsid=True, file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, write_fd, 1),
                    (os.POSIX_SPAWN_OPEN, 2, shim_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)])
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        rec.shim_pid = pid
        exited = self.reaper.watch(pid)
        line = await read_line(read_fd, _START_TIMEOUT)
        if not line:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            await exited
            tail = await asyncio.to_thread(_tail, shim_log)
            return {"ok": False, "message": f"the container's shim failed: {tail}"}
        return dict(json.loads(line))

    def watch(self, rec: ContainerRecord) -> None:
        """Notice the end of a running container: through its shim, or (when it has none)
        through its own pid."""
        pid = rec.shim_pid or rec.pid
        if pid:
            self.reaper.watch(pid).add_done_callback(partial(self._ended, rec, pid))

    def _ended(self, rec: ContainerRecord, pid: int, fut: asyncio.Future[int | None]) -> None:
        if not fut.cancelled():
            self._spawn(self._on_end(rec, pid, fut.result()))

    async def _on_end(self, rec: ContainerRecord, pid: int, code: int | None) -> None:
        if rec.state is ContainerState.EXITED:
            return
        info = await asyncio.to_thread(read_json, os.path.join(rec.dir, "exit.json"))
        if info is not None:
            cgroups = self._cgroups()
            if int(info.get("exit_code", 0)) == 137 and rec.cgroup and cgroups is not None \
                    and await asyncio.to_thread(cgroups.oom_killed, rec.cgroup):
                info["reason"] = "OOMKilled"
            rec.apply_exit(info)
        elif pid == rec.shim_pid and procfs.is_same_process(rec.pid, rec.pid_start):
            log.warning("the shim of container %s died; watching the container itself", rec.id)
            rec.shim_pid = rec.shim_start = None
            self.watch(rec)
            return
        elif pid == rec.pid and code is not None:  # our child since its shim died
            await self.record_exit(rec, code,
                                    "Completed" if code == 0 else "Error", "")
        else:
            await self.record_exit(rec, 137, "ContainerStatusUnknown",
                                    "the container's shim exited without a status")
        self._on_change(rec, "exited")

    async def record_exit(self, rec: ContainerRecord, code: int, reason: str,
                          message: str) -> None:
        """Write ``exit.json`` for a container whose shim could not, then mark it exited (on
        the loop: its ``exited`` event has waiters)."""
        info = {"exit_code": code, "reason": reason, "message": message,
                "started_at": rec.started_at.isoformat() if rec.started_at else None,
                "finished_at": self.clock.now().isoformat()}
        await asyncio.to_thread(write_json, os.path.join(rec.dir, "exit.json"), info)
        rec.apply_exit(info)

    async def stop(self, rec: ContainerRecord, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_seconds``; returns once it has exited."""
        if rec.state is not ContainerState.RUNNING:
            return
        self._signal(rec, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rec.exited.wait(), max(grace_seconds, 0.0))
        if rec.exited.is_set():
            return
        self._signal(rec, signal.SIGKILL)
        cgroups = self._cgroups()
        if rec.cgroup and cgroups is not None:
            await asyncio.to_thread(cgroups.kill, rec.cgroup)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rec.exited.wait(), _KILL_TIMEOUT)
        if not rec.exited.is_set():  # a process that survives SIGKILL: give up on it
            log.warning("container %s did not exit after SIGKILL", rec.id)
            await self.record_exit(rec, 137, "Error",
                                    "the container did not exit after SIGKILL")
            self._on_change(rec, "exited")

    @staticmethod
    def _signal(rec: ContainerRecord, sig: int) -> None:
        """Signal the container's process group, if its leader is still the process we
        started (a reused pid is left alone)."""
        if rec.pid and procfs.is_same_process(rec.pid, rec.pid_start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(rec.pid, sig)

    def orphan_reaped(self, records: list[ContainerRecord], pid: int, code: int) -> None:
        """An orphan the reaper's scan reaped: if it was a shim-less container, it exited."""
        for rec in records:
            if rec.pid == pid and rec.shim_pid is None and rec.state is ContainerState.RUNNING:
                self._spawn(self._orphan_exit(rec, code))

    async def _orphan_exit(self, rec: ContainerRecord, code: int) -> None:
        await self.record_exit(rec, code,
                                "Completed" if code == 0 else "Error", "")
        self._on_change(rec, "exited")


def _state_of(pid: int | None, shim_pid: int | None) -> dict[str, Any]:
    """A running container's state as ``state.json`` holds it, read from ``/proc``."""
    return {"pid": pid, "pid_start": procfs.start_ticks(pid) if pid else None,
            "shim_pid": shim_pid, "shim_start": procfs.start_ticks(shim_pid) if shim_pid else None}


async def read_line(fd: int, timeout: float) -> bytes:
    """The first line written to the pipe ``fd`` (what came before EOF if no newline; b"" on
    timeout), then close ``fd``.

    Not ``loop.connect_read_pipe``: under uvloop (0.23, MagicStack/uvloop#763, still open) libuv
    and the file object both close the pipe's fd, and the second close can hit a file
    another thread opened meanwhile under the same number — it did, mid-way through reading a
    container's ``state.json``, and the started container was lost track of."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    buf = bytearray()
    done = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        buf.extend(chunk)
        if (not chunk or b"\n" in chunk) and not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(done, timeout)
    except TimeoutError:
        return b""
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return bytes(buf).partition(b"\n")[0]


def _touch(path: str) -> None:
    with open(path, "w"):
        pass


def _tail(path: str, n: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - n, 0))
            return f.read().decode(errors="replace").strip() or "no output"
    except OSError:
        return "no output"
