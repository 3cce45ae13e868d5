"""CrashLoopBackOff and ImagePullBackOff: the kubelet's per-container restart back-off
(client-go ``flowcontrol.Backoff`` as ``kuberuntime`` uses it).

A container that exits is restarted at once the first time; each later restart waits
``initial`` (10 s), then twice as long each time (20, 40, ...), up to ``cap`` (300 s by
default, configurable: KEP-4603).  The wait counts from when the container *finished*, and a
container that ran for ``reset_after`` (10 minutes) since its last restart starts over: its next
restart is immediate again.  Times are wall-clock datetimes, as the runtime reports finish
times; the caller passes ``now`` from its clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass
class _Entry:
    backoff: float
    last_update: dt.datetime


class Backoff:
    """Back-off state per key (``<pod uid>/<container name>``, or an image)."""

    def __init__(self, *, initial: float = 10.0, cap: float = 300.0,
                 reset_after: float = 600.0) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError("back-off needs 0 < initial <= cap")
        self.initial, self.cap, self.reset_after = initial, cap, reset_after
        self._entries: dict[str, _Entry] = {}

    def remaining(self, key: str, event_time: dt.datetime, now: dt.datetime) -> float:
        """Seconds still to wait before acting again on ``key`` after an event (a container's
        finish) at ``event_time``; 0 when not in back-off."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            return 0.0
        left = entry.backoff - (now - event_time).total_seconds()
        return max(left, 0.0)

    def next(self, key: str, event_time: dt.datetime, now: dt.datetime) -> None:
        """Record that we act now (restart, retry a pull): the next wait doubles."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            self._entries[key] = _Entry(self.initial, now)
        else:
            entry.backoff = min(entry.backoff * 2, self.cap)
            entry.last_update = now

    def current(self, key: str) -> float:
        """The wait the next back-off of ``key`` will impose (0 if none recorded)."""
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget(self, prefix: str) -> None:
        """Drop every key starting with ``prefix`` (a removed pod's)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def _expired(self, event_time: dt.datetime, entry: _Entry) -> bool:
        return (event_time - entry.last_update).total_seconds() > self.reset_after
