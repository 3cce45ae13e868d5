"""The agent as a child subreaper: no zombies, whoever's child they were.

With ``PR_SET_CHILD_SUBREAPER`` every process orphaned below the agent (a container's shim that
lost its container, the background jobs of an ``exec``) is re-parented to the agent instead of
to init, and must be reaped by it (kubernetes/kubernetes#50865, containerd#9979).

Two kinds of children, two ways:

* processes the runtime watches (its shims, adopted containers): :meth:`Reaper.watch` opens a
  pidfd and wakes on its exit, then reaps it if it is our child (a re-adopted shim of a
  previous agent is not, and is only observed).  No ``SIGCHLD`` handler is installed, so the
  asyncio child watcher and anyone else's ``waitpid`` keep working.
* orphans: :meth:`Reaper.run` scans for zombie children nobody watches, and reaps one only when
  it is still a zombie on the next scan — a child that asyncio (or ``subprocess``) is waiting
  for is reaped by its owner at once, so it is never taken from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from . import procfs
from .procfs import set_child_subreaper

__all__ = ["Reaper", "set_child_subreaper"]

log = logging.getLogger("ketch.node.reaper")

class Reaper:
    """Exit notification for watched processes and reaping of orphans (one per runtime).

    ``on_orphan(pid, exit_code)`` is called for every orphan reaped (a re-parented container
    whose shim died: the runtime recognises its pid)."""

    def __init__(self, *, scan_seconds: float = 2.0,
                 on_orphan: Callable[[int, int], None] | None = None) -> None:
        self.scan_seconds = scan_seconds
        self.on_orphan = on_orphan
        self._watched: dict[int, asyncio.Future[int | None]] = {}
        self._fds: dict[int, int] = {}
        self._suspects: set[int] = set()
        self.reaped_orphans = 0

    def watch(self, pid: int) -> asyncio.Future[int | None]:
        """A future resolved when ``pid`` exits: its exit code (128+N for signal N) if it was
        our child and we reaped it, else None.  Watching a pid twice gives the same future."""
        if pid in self._watched:
            return self._watched[pid]
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int | None] = loop.create_future()
        self._watched[pid] = fut
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._finish(pid)
            return fut
        except OSError:  # no pidfd: the scan below notices the exit
            return fut
        self._fds[pid] = fd
        loop.add_reader(fd, self._finish, pid)
        return fut

    def _finish(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
        code = _try_reap(pid)
        fut = self._watched.pop(pid, None)
        if fut is not None and not fut.done():
            fut.set_result(code)

    async def run(self) -> None:
        """Scan for orphans until cancelled (the runtime owns this task)."""
        try:
            while True:
                await asyncio.sleep(self.scan_seconds)
                self.scan(await asyncio.to_thread(procfs.process_table))
        finally:
            self.close()

    def scan(self, table: dict[int, procfs.ProcInfo] | None = None) -> None:
        """One pass (on the event loop): reap zombie children that were zombies last time
        too; finish watched pids that have no pidfd and are gone."""
        table = procfs.process_table() if table is None else table
        me = os.getpid()
        zombies = {p.pid for p in table.values() if p.ppid == me and p.state == "Z"}
        for pid in zombies & self._suspects:
            if pid in self._watched:
                continue
            code = _try_reap(pid)
            if code is not None:
                self.reaped_orphans += 1
                if self.on_orphan is not None:
                    self.on_orphan(pid, code)
        self._suspects = zombies
        for pid in [p for p in self._watched if p not in self._fds]:
            info = table.get(pid)
            if info is None or info.state == "Z":
                self._finish(pid)

    def close(self) -> None:
        for pid, fd in list(self._fds.items()):
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
            del self._fds[pid]
        for fut in self._watched.values():
            if not fut.done():
                fut.cancel()
        self._watched.clear()


def _try_reap(pid: int) -> int | None:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if done == 0:
        # a pidfd fires at exit, a moment before the zombie can be waited for
        try:
            done, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return None
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
