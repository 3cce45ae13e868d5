"""Who wrote what, under which lease term: a leader-elected component's record of every write
request it sent (``--record-writes FILE``, for chaos runs).

The chaos checker "one active controller-manager / scheduler at a time" reads these lines:
writes attributed to (identity, lease term) must not interleave across terms.  The log hangs
on the API client's ``on_request`` hook (one call per attempt, after its answer or failure)
and learns the term from the elector: ``leaseTransitions`` as it stood when this process
acquired the Lease.  Line format::

    {"identity": "host_uuid", "term": 7, "method": "POST", "path": "/api/v1/...",
     "code": 201, "invoke": 1234.5, "complete": 1234.6}

``invoke``/``complete`` are CLOCK_MONOTONIC seconds (shared by every process of the machine);
``code`` 0 means no answer (the write's outcome is unknown).  Reads are not recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import IO

from .leaderelection import LeaderElector

__all__ = ["WriteLog"]

OnRequest = Callable[[str, str, int, float], None]


class WriteLog:
    """Appends to ``path``; ``then`` is another ``on_request`` hook to call as well."""

    def __init__(self, path: str, identity: str, *, then: OnRequest | None = None) -> None:
        self.identity = identity
        self.term: int | None = None  # None until this process first leads
        self._then = then
        self._file: IO[str] = open(path, "a", buffering=1)  # noqa: SIM115 - lives with us

    def follow(self, elector: LeaderElector) -> None:
        """Take the term from ``elector`` each time it acquires the Lease (keeping its own
        ``on_change`` hook).  After a loss the last term stays: a write that still goes out
        is attributed to the term it belonged to."""
        previous = elector.on_change

        def changed(holder: str) -> None:
            if holder:
                self.term = elector.transitions
            if previous is not None:
                previous(holder)

        elector.on_change = changed

    def __call__(self, method: str, what: str, code: int, seconds: float) -> None:
        if self._then is not None:
            self._then(method, what, code, seconds)
        if method in ("GET", "HEAD"):
            return
        now = time.monotonic()
        self._file.write(json.dumps({
            "identity": self.identity, "term": self.term, "method": method, "path": what,
            "code": code, "invoke": round(now - seconds, 6), "complete": round(now, 6)},
            separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()
