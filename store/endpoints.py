"""Which replica the client asks next: the known leader first, then the others in turn.

Pure bookkeeping for :class:`store.client.StoreClient` (no I/O, no clock): the client reports
what it learned (a leader URL from a status or a ``not_leader`` answer, a replica that failed)
and asks where to send the next attempt.  Also the retry backoff schedule.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["BACKOFF_CAP", "BACKOFF_START", "Endpoints", "backoff_delay"]

BACKOFF_START = 0.025
BACKOFF_CAP = 0.5


def backoff_delay(retry: int, *, jitter: float | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (0-based): 25 ms doubling, capped at
    500 ms, scaled by a jitter factor in [0.5, 1] (random unless given) so that many clients
    do not retry in step."""
    base = min(BACKOFF_CAP, BACKOFF_START * (2 ** min(max(retry, 0), 16)))
    j = random.random() if jitter is None else jitter  # jitter, not a secret
    return base * (0.5 + j / 2)


class Endpoints:
    """The client URLs of a cluster and the last known leader among them.

    ``first()`` is the leader when one is known, else the current endpoint of a cursor that
    moves on whenever its endpoint fails, so concurrent calls stop trying a dead replica
    first.  A leader URL learned from the cluster need not be in the list (a replica may
    advertise another name for itself); it is tried first all the same.
    """

    def __init__(self, urls: Sequence[str]) -> None:
        if not urls:
            raise ValueError("at least one endpoint URL is needed")
        self.urls: list[str] = [u.rstrip("/") for u in urls]
        self.leader: str | None = None
        self._cursor = 0

    def first(self) -> str:
        """Where a new call goes first."""
        return self.leader or self.urls[self._cursor]

    def learn(self, leader: object) -> None:
        """The cluster named ``leader`` (a client URL) as its leader; None or '' is ignored."""
        if isinstance(leader, str) and leader:
            self.leader = leader.rstrip("/")

    def failed(self, url: str) -> None:
        """``url`` did not serve (down, not the leader, no quorum): stop preferring it."""
        if self.leader == url:
            self.leader = None
        if self.urls[self._cursor] == url:
            self._cursor = (self._cursor + 1) % len(self.urls)

    def after(self, url: str) -> str:
        """The endpoint to try after ``url`` failed: the next one in the list (a leader the
        cluster named and which has not failed yet comes first)."""
        if self.leader is not None and self.leader != url:
            return self.leader
        try:
            i = self.urls.index(url)
        except ValueError:
            return self.urls[self._cursor]
        return self.urls[(i + 1) % len(self.urls)]
