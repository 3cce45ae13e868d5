"""Processes as Linux shows them: a process's identity (pid plus start time, so a reused pid
is never taken for the process that had it), the process table and subtrees of it, from
``/proc``; and becoming a child subreaper.  Light standard-library imports only (the shim, one
per container, uses it); every function tolerates processes vanishing while it reads."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "CLOCK_TICKS",
    "PAGE_SIZE",
    "ProcInfo",
    "children",
    "is_same_process",
    "proc_info",
    "process_table",
    "set_child_subreaper",
    "start_ticks",
    "subtree",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


_PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper(on: bool = True) -> bool:
    """Make this process the subreaper of its descendants (or stop being one): an orphan below
    it is re-parented to it instead of to init.  False where the OS cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class ProcInfo(NamedTuple):
    pid: int
    ppid: int
    pgid: int
    state: str
    cpu_ticks: int  # utime + stime + cutime + cstime
    start: int  # clock ticks after boot (field 22): with the pid, the process's identity
    rss_pages: int


def proc_info(pid: int) -> ProcInfo | None:
    """The process's ``/proc/PID/stat``, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name is in parentheses and may contain anything, so split after the last ')'
    fields = raw[raw.rfind(b")") + 2:].split()
    try:
        return ProcInfo(pid=pid, ppid=int(fields[1]), pgid=int(fields[2]),
                        state=fields[0].decode(),
                        cpu_ticks=sum(int(x) for x in fields[11:15]),
                        start=int(fields[19]), rss_pages=int(fields[21]))
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    info = proc_info(pid)
    return info.start if info else None


def is_same_process(pid: int | None, ticks: int | None) -> bool:
    """Whether ``pid`` is alive (not a zombie) and is the process that started at ``ticks``."""
    if not pid or ticks is None:
        return False
    info = proc_info(pid)
    return info is not None and info.start == ticks and info.state != "Z"


def process_table() -> dict[int, ProcInfo]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = proc_info(int(entry))
            if info is not None:
                table[info.pid] = info
    return table


def children(table: dict[int, ProcInfo], pid: int) -> list[int]:
    return [p.pid for p in table.values() if p.ppid == pid]


def subtree(table: dict[int, ProcInfo], roots: Iterable[int]) -> set[int]:
    """``roots`` and all their descendants in ``table``."""
    by_parent: dict[int, list[int]] = {}
    for p in table.values():
        by_parent.setdefault(p.ppid, []).append(p.pid)
    seen: set[int] = set()
    stack = [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stack.extend(by_parent.get(pid, ()))
    return seen
