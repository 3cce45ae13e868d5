"""What every component process does the same way: logging, uvloop, a stop event set by
SIGTERM/SIGINT, and a unique identity for its leader-election Lease."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from control.api.gctune import tune_gc

__all__ = ["Terminated", "configure_logging", "lease_identity", "run_main",
           "run_until_signalled", "stop_event"]

T = TypeVar("T")


def configure_logging(level: str = "INFO") -> None:
    """Structured enough to grep: time, level, logger, message."""
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def lease_identity() -> str:
    """``host_<uuid>`` as client-go's leader election uses: unique per process start."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def stop_event() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT (call inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_main(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop (asyncio if uvloop cannot be imported), with the collector
    tuned for a long-running process (:func:`control.api.gctune.tune_gc`); its exit code."""
    tune_gc()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(main)
    return uvloop.run(main)


class Terminated(Exception):
    """A :func:`run_until_signalled` run was stopped by SIGTERM or SIGINT; its cleanup ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_until_signalled(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop and return its result.  The first SIGTERM or SIGINT cancels it,
    so its ``finally`` blocks stop whatever it started (a CLI that launched processes must
    never leave them behind, whether stopped by Ctrl-C or by ``kill``); further signals are
    ignored while it unwinds.  Then :class:`Terminated` is raised."""
    try:
        import uvloop
        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        factory = None
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    got: list[int] = []
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            loop = runner.get_loop()
            task = loop.create_task(main)

            def stop(signum: int) -> None:
                if not got:
                    got.append(signum)
                    task.cancel()

            for sig in before:
                loop.add_signal_handler(sig, stop, sig)
            try:
                return runner.run(_awaited(task))
            except asyncio.CancelledError:
                if got:
                    raise Terminated(got[0]) from None
                raise
    finally:  # uvloop leaves its own handlers behind: put the process's back
        for sig, handler in before.items():
            signal.signal(sig, handler)


async def _awaited(task: asyncio.Task[T]) -> T:
    return await task
