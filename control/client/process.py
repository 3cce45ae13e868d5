"""What every component process does the same way: logging, uvloop, a stop event set by
SIGTERM/SIGINT, and a unique identity for its leader-election Lease."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import uuid
from collections.abc import Coroutine
from typing import Any

from control.api.gctune import tune_gc

__all__ = ["configure_logging", "lease_identity", "run_main", "stop_event"]


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
