"""The node's record of what really ran: one JSON line per container process start and end,
appended by the shim that runs it to a file the agent names (``python -m node --run-record``).

Chaos runs read these lines as the truth of what ran, where and when — not what the API
says.  Off unless the agent is given a path.  Standard library only: the shim imports it.

Line format (``"event"`` ``"start"`` or ``"exit"``; every line also carries the tags the
runtime put in the container's spec: node, pod uid, namespace, name, container, container id,
attempt, labels and the Job completion index)::

    {"event": "start", "mono": 1234.5, "wall": 1760000000.1, "pid": 4242, ...tags}
    {"event": "exit", "mono": 1240.1, "wall": 1760000005.7, "pid": 4242, "code": 0, ...tags}

``mono`` is CLOCK_MONOTONIC, one clock for every process of the machine, so a chaos run orders
these lines with its own history.  The start line carries the time taken just before the fork
(the program cannot have run earlier) and the exit line is written after the shim reaped the
process and killed whatever it left (nothing of it runs later), and before ``exit.json`` tells
the agent: an interval may only over-state a run, and an exit line always precedes anything
the agent does because of that exit.  Each line is one ``write`` on an ``O_APPEND``
descriptor, so lines from the node's shims never interleave.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

__all__ = ["append", "read"]


def append(path: str, event: str, mono: float, tags: dict[str, Any], **fields: Any) -> None:
    """Append one line; never raises (recording must not break a container)."""
    line = json.dumps({"event": event, "mono": round(mono, 6), "wall": round(time.time(), 6),
                       **tags, **fields}, separators=(",", ":")) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def read(path: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete lines from byte ``offset`` on, and the offset after the last of them (a
    line still being written is left for the next call)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    out = []
    for raw in data[:end].splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out, offset + end
