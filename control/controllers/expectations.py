"""Expectations: what a controller has asked for and not yet seen come back through its
informer (client-go ``controller_utils.ControllerExpectations``).

A ReplicaSet that creates 3 pods must not create 3 more because its cache has not yet shown
the first 3.  Before it writes, the controller records how many creations and deletions it
expects for the owner's key; informer handlers lower the counts as the pods appear or vanish;
the controller acts on the owner again only when its expectations are *satisfied* (counts at
or below zero) or have *expired* (5 minutes, so a lost watch event cannot wedge an owner
forever).  A write that fails lowers the expectation at once (nothing will be observed).
Deletions are tracked by pod key, so a deletion observed twice is counted once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from control.api.clock import Clock

__all__ = ["EXPECTATIONS_TIMEOUT", "Expectations"]

EXPECTATIONS_TIMEOUT = 300.0

# SABOTAGE (chaos proofs only: --sabotage skip-expectations, refused unless
# KETCH_ALLOW_SABOTAGE=1; see control.api.sabotage): every expectation counts as met.
SKIP_FOR_SABOTAGE = False


@dataclass
class _Record:
    adds: int
    dels: set[str] = field(default_factory=set)
    at: float = 0.0


class Expectations:
    def __init__(self, clock: Clock, *, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.clock = clock
        self.timeout = timeout
        self._records: dict[str, _Record] = {}

    def satisfied(self, key: str) -> bool:
        """True when the controller may act on ``key`` from its cache: nothing outstanding,
        no record at all, or a record older than the timeout."""
        if SKIP_FOR_SABOTAGE:  # SABOTAGE: act on a cache that may lag our own writes
            return True
        r = self._records.get(key)
        if r is None:
            return True
        if r.adds <= 0 and not r.dels:
            return True
        return self.clock.monotonic() - r.at > self.timeout

    def expect(self, key: str, *, adds: int = 0, deletes: list[str] | None = None) -> None:
        """Record ``adds`` creations and the keys of the objects about to be deleted."""
        self._records[key] = _Record(adds, set(deletes or ()), self.clock.monotonic())

    def creation_observed(self, key: str) -> None:
        r = self._records.get(key)
        if r is not None:
            r.adds -= 1

    def creation_failed(self, key: str) -> None:
        self.creation_observed(key)

    def deletion_observed(self, key: str, obj_key: str) -> None:
        r = self._records.get(key)
        if r is not None:
            r.dels.discard(obj_key)

    def deletion_failed(self, key: str, obj_key: str) -> None:
        self.deletion_observed(key, obj_key)

    def forget(self, key: str) -> None:
        self._records.pop(key, None)

    def clear(self) -> None:
        self._records.clear()
