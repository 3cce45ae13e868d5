"""The lease table of the state machine: ids, TTLs, deadlines and the keys attached to each.

Time is an input: every method that needs "now" takes it (the leader's clock, carried in the
command), so replicas agree.  The table does not touch the key space; the machine deletes the
keys `revoke` / `expire` hand back, and keeps attachments in step with puts and deletes.
"""

from __future__ import annotations

from typing import Any

from store.errors import InvalidRequest, LeaseNotFound

__all__ = ["Lease", "LeaseTable"]


class Lease:
    """One lease; ``keys`` is an insertion-ordered set of the attached keys."""

    __slots__ = ("deadline", "id", "keys", "ttl")

    def __init__(self, id: int, ttl: int, deadline: float) -> None:
        self.id = id
        self.ttl = ttl
        self.deadline = deadline
        self.keys: dict[bytes, None] = {}

    def __repr__(self) -> str:
        return (
            f"Lease(id={self.id}, ttl={self.ttl}, deadline={self.deadline}, keys={len(self.keys)})"
        )


class LeaseTable:
    """Leases by id.  Ids the table picks come from a counter (deterministic, never reused
    while the counter moves on); every method is deterministic in its arguments."""

    __slots__ = ("_leases", "_next_id")

    def __init__(self) -> None:
        self._leases: dict[int, Lease] = {}
        self._next_id = 1

    def __contains__(self, id: object) -> bool:
        return id in self._leases

    def __len__(self) -> int:
        return len(self._leases)

    def get(self, id: int) -> Lease | None:
        return self._leases.get(id)

    def require(self, id: int) -> Lease:
        """The lease, or LeaseNotFound."""
        lease = self._leases.get(id)
        if lease is None:
            raise LeaseNotFound(f"lease {id} not found", id=id)
        return lease

    def grant(self, id: int, ttl: int, now: float) -> Lease:
        """A new lease expiring at ``now + ttl``; id 0 picks the next free id.  Raises
        InvalidRequest (and changes nothing) if ``id`` is taken."""
        if id == 0:
            while self._next_id in self._leases:
                self._next_id += 1
            id = self._next_id
            self._next_id += 1
        elif id in self._leases:
            raise InvalidRequest(f"lease {id} already exists", id=id)
        lease = self._leases[id] = Lease(id, ttl, now + ttl)
        return lease

    def revoke(self, id: int) -> list[bytes]:
        """Remove the lease; returns its keys, sorted, for the caller to delete.  Raises
        LeaseNotFound (changing nothing) if it does not exist."""
        self.require(id)
        return sorted(self._leases.pop(id).keys)

    def keepalive(self, id: int, now: float) -> Lease:
        """Renew: the deadline becomes ``now + ttl``.  Raises LeaseNotFound."""
        lease = self.require(id)
        lease.deadline = now + lease.ttl
        return lease

    def attach(self, id: int, key: bytes) -> None:
        """Attach ``key`` to an existing lease (the caller checked it exists)."""
        self._leases[id].keys[key] = None

    def detach(self, id: int, key: bytes) -> None:
        lease = self._leases.get(id)
        if lease is not None:
            lease.keys.pop(key, None)

    def due(self, now: float) -> list[int]:
        """Ids, ascending, of the leases whose deadline is ≤ ``now`` (read-only)."""
        return sorted(i for i, lease in self._leases.items() if lease.deadline <= now)

    def expire(self, now: float) -> tuple[list[int], list[bytes]]:
        """Remove every lease due at ``now``; returns (their ids ascending, their keys
        sorted) for the caller to delete."""
        ids = self.due(now)
        keys: list[bytes] = []
        for id in ids:
            keys.extend(self._leases.pop(id).keys)
        keys.sort()
        return ids, keys

    def promote(self, now: float, extend: float) -> None:
        """A new leader's grace: every deadline becomes ≥ ``now + ttl + extend``."""
        for lease in self._leases.values():
            lease.deadline = max(lease.deadline, now + lease.ttl + extend)

    def time_to_live(self, id: int, now: float, keys: bool) -> dict[str, Any]:
        """etcd's LeaseTimeToLive without the header: remaining whole seconds (truncated, ≥ 0;
        -1 with granted_ttl 0 when the lease is gone) and, if asked, the sorted keys."""
        lease = self._leases.get(id)
        if lease is None:
            return {"id": id, "ttl": -1, "granted_ttl": 0, "keys": []}
        return {
            "id": id,
            "ttl": max(0, int(lease.deadline - now)),
            "granted_ttl": lease.ttl,
            "keys": sorted(lease.keys) if keys else [],
        }

    def ids(self) -> list[int]:
        """Every lease id, ascending."""
        return sorted(self._leases)

    def dump(self) -> dict[str, Any]:
        return {
            "next_id": self._next_id,
            "leases": [
                [lease.id, lease.ttl, lease.deadline, list(lease.keys)]
                for lease in self._leases.values()
            ],
        }

    @classmethod
    def load(cls, d: dict[str, Any]) -> LeaseTable:
        table = cls()
        table._next_id = d["next_id"]
        for id, ttl, deadline, keys in d["leases"]:
            lease = table._leases[id] = Lease(id, ttl, deadline)
            lease.keys = dict.fromkeys(keys)
        return table
