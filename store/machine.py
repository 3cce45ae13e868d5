"""The store's replicated state machine: Raft log commands in, results and events out.

`Machine.apply(cmd)` is the only way state changes.  It is pure: no I/O, no clock, no
randomness; every non-deterministic value (the leader's ``now``) arrives in the command, so
every replica that applies the same log holds the same state and returns the same results.
A command that fails raises a `StoreError` and changes nothing (everything is checked before
the first mutation).  Results are plain CBOR-able dicts owned by the machine (they may be
remembered for exactly-once replies): callers must not mutate them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from store.errors import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    RequestExpired,
    StoreError,
    from_wire,
)
from store.kv import DELETE, PUT, Event
from store.leases import LeaseTable
from store.mvcc import EventLog, Keyspace
from store.requests import validate_command, validate_range

__all__ = ["DUMP_FORMAT", "Machine"]

DUMP_FORMAT = 1

Outcome = tuple[bool, Any]  # (True, result) or (False, error wire map)


class _Client:
    __slots__ = ("floor", "seqs")

    def __init__(self, floor: int = -1) -> None:
        self.seqs: OrderedDict[int, Outcome] = OrderedDict()
        self.floor = floor  # the highest evicted seq: anything ≤ it and unknown is expired


class _Dedup:
    """Exactly-once memory: per client the outcomes of its last ``max_seqs`` seqs, for the
    ``max_clients`` clients that wrote most recently; oldest evicted first."""

    __slots__ = ("_clients", "max_clients", "max_seqs")

    def __init__(self, max_seqs: int, max_clients: int) -> None:
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self.max_seqs = max_seqs
        self.max_clients = max_clients

    def lookup(self, client: str, seq: int) -> Outcome | None:
        """The stored outcome, None if (client, seq) is new; RequestExpired if it is below
        the remembered window."""
        c = self._clients.get(client)
        if c is None:
            return None
        outcome = c.seqs.get(seq)
        if outcome is None and seq <= c.floor:
            raise RequestExpired(
                f"request {seq} of {client!r} is older than the remembered window",
                client=client,
                seq=seq,
            )
        return outcome

    def record(self, client: str, seq: int, outcome: Outcome) -> None:
        clients = self._clients
        c = clients.get(client)
        if c is None:
            c = clients[client] = _Client()
            if len(clients) > self.max_clients:
                clients.popitem(last=False)
        else:
            clients.move_to_end(client)
        c.seqs[seq] = outcome
        if len(c.seqs) > self.max_seqs:
            old, _ = c.seqs.popitem(last=False)
            c.floor = max(c.floor, old)

    def dump(self) -> list[Any]:
        return [
            [client, c.floor, [[seq, ok, payload] for seq, (ok, payload) in c.seqs.items()]]
            for client, c in self._clients.items()
        ]

    def load(self, rows: list[Any]) -> None:
        for client, floor, seqs in rows:
            c = self._clients[client] = _Client(floor)
            for seq, ok, payload in seqs:
                c.seqs[seq] = (ok, payload)


def _header(revision: int) -> dict[str, int]:
    return {"revision": revision}


class Machine:
    """Key space + leases + event history + exactly-once table.

    ``event_history`` caps how many revisions of events `events_since` can serve;
    ``dedup_seqs`` / ``dedup_clients`` size the exactly-once window (docs/store-api.md).
    """

    __slots__ = ("_dedup", "_events", "_kv", "_leases", "members")

    def __init__(
        self,
        *,
        event_history: int = 100_000,
        dedup_seqs: int = 1024,
        dedup_clients: int = 10_000,
    ) -> None:
        self._kv = Keyspace()
        self._leases = LeaseTable()
        self._events = EventLog(event_history)
        self._dedup = _Dedup(dedup_seqs, dedup_clients)
        # The member list as last changed at runtime (None: as the replicas' config says).
        self.members: list[dict[str, str]] | None = None

    @property
    def revision(self) -> int:
        """The store revision: the number of the last write (1 for an empty store)."""
        return self._kv.revision

    @property
    def compact_revision(self) -> int:
        """Reads below this revision raise Compacted (0: nothing compacted yet)."""
        return self._kv.compact_revision

    # -- writes --------------------------------------------------------------------------

    def apply(self, cmd: Any) -> tuple[Any, list[Event]]:
        """Apply one committed command; returns (result, events of the writes it made).

        Raises StoreError (InvalidRequest, TooLarge, LeaseNotFound, Compacted,
        FutureRevision, RequestExpired) having changed nothing, except that a command with a
        ``rid`` that fails after validation has its error remembered like a result.  A repeated
        ``rid`` returns the first result (or raises the first error) and no events.  A batch
        returns a list of ``{"ok": result}`` / ``{"err": error wire map}``.
        """
        c = validate_command(cmd)
        apply_one = _APPLY[c["t"]]
        rid = c.get("rid")
        if rid is None:
            return apply_one(self, c)
        client, seq = rid
        stored = self._dedup.lookup(client, seq)
        if stored is not None:
            ok, payload = stored
            if ok:
                return payload, []
            raise from_wire(payload)
        try:
            result, events = apply_one(self, c)
        except StoreError as exc:
            self._dedup.record(client, seq, (False, exc.to_wire()))
            raise
        self._dedup.record(client, seq, (True, result))
        return result, events

    def _batch(self, c: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Event]]:
        results: list[dict[str, Any]] = []
        events: list[Event] = []
        for sub in c["cmds"]:
            try:
                if type(sub) is dict and sub.get("t") == "batch":
                    raise InvalidRequest("a batch may not contain a batch")
                result, evs = self.apply(sub)
            except StoreError as exc:
                results.append({"err": exc.to_wire()})
            else:
                results.append({"ok": result})
                events.extend(evs)
        return results, events

    def _txn(self, c: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        req = c["req"]
        kv = self._kv
        succeeded = all(kv.compare(x) for x in req["compare"])
        ops = req["success"] if succeeded else req["failure"]
        self._check_ops(ops)
        rev = kv.revision + 1
        responses: list[dict[str, Any]] = []
        ranges: list[dict[str, Any]] = []
        events: list[Event] = []
        for op in ops:
            body = op.get("put")
            if body is not None:
                responses.append(self._put(body, rev, events))
                continue
            body = op.get("delete_range")
            if body is not None:
                responses.append(self._delete(body, rev, events))
                continue
            answer = self._range(op["range"])
            ranges.append(answer)
            responses.append({"range": answer})
        if events:
            self._commit(events, rev)
        for answer in ranges:
            answer["header"] = _header(kv.revision)
        return {
            "header": _header(kv.revision),
            "succeeded": succeeded,
            "responses": responses,
        }, events

    def _check_ops(self, ops: list[dict[str, Any]]) -> None:
        """What can fail in a branch, checked before its first write."""
        for op in ops:
            put = op.get("put")
            if put is not None:
                if put["lease"]:
                    self._leases.require(put["lease"])
            elif "range" in op:
                self._kv.check_revision(op["range"]["revision"])

    def _put(self, body: dict[str, Any], rev: int, events: list[Event]) -> dict[str, Any]:
        key, lease = body["key"], body["lease"]
        kv, prev = self._kv.put(key, body["value"], lease, rev)
        if prev is not None and prev.lease and prev.lease != lease:
            self._leases.detach(prev.lease, key)
        if lease:
            self._leases.attach(lease, key)
        events.append(Event(PUT, kv, prev))
        return {"put": {"prev_kv": prev.to_wire() if body["prev_kv"] and prev else None}}

    def _delete(self, body: dict[str, Any], rev: int, events: list[Event]) -> dict[str, Any]:
        pairs = self._kv.delete(body["key"], body["range_end"], rev)
        for tomb, prev in pairs:
            if prev.lease:
                self._leases.detach(prev.lease, prev.key)
            events.append(Event(DELETE, tomb, prev))
        prev_kvs = [prev.to_wire() for _, prev in pairs] if body["prev_kv"] else []
        return {"delete_range": {"deleted": len(pairs), "prev_kvs": prev_kvs}}

    def _delete_keys(self, keys: list[bytes]) -> list[Event]:
        """Delete keys of dropped leases, all in one new revision (none if no keys)."""
        if not keys:
            return []
        rev = self._kv.revision + 1
        events = [
            Event(DELETE, tomb, prev)
            for key in keys
            for tomb, prev in self._kv.delete(key, None, rev)
        ]
        if events:
            self._commit(events, rev)
        return events

    def _commit(self, events: list[Event], rev: int) -> None:
        self._kv.revision = rev
        self._events.append(events, rev)

    def _lease_grant(self, c: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        lease = self._leases.grant(c["id"], c["ttl"], c["now"])
        return {"header": _header(self.revision), "id": lease.id, "ttl": lease.ttl}, []

    def _lease_revoke(self, c: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        events = self._delete_keys(self._leases.revoke(c["id"]))
        return {"header": _header(self.revision)}, events

    def _lease_keepalive(self, c: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        lease = self._leases.keepalive(c["id"], c["now"])
        return {"header": _header(self.revision), "id": lease.id, "ttl": lease.ttl}, []

    def _lease_expire(self, c: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        ids, keys = self._leases.expire(c["now"])
        events = self._delete_keys(keys)
        return {"header": _header(self.revision), "expired": ids}, events

    def _lease_promote(self, c: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        self._leases.promote(c["now"], c["extend"])
        return {"header": _header(self.revision)}, []

    def _compact(self, c: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        rev, kv = c["revision"], self._kv
        if rev > kv.revision:
            raise FutureRevision(
                f"cannot compact at future revision {rev}",
                revision=rev,
                current_revision=kv.revision,
            )
        if rev <= kv.compact_revision:
            raise Compacted(
                f"revision {rev} has already been compacted", compact_revision=kv.compact_revision
            )
        kv.compact(rev)
        self._events.trim(rev)
        return {"header": _header(self.revision)}, []

    def _members(self, c: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        self.members = c["members"]
        return {"header": _header(self.revision), "members": self.members}, []

    def _barrier(self, c: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        return {"header": _header(self.revision)}, []

    # -- reads ---------------------------------------------------------------------------

    def range(self, req: Any) -> dict[str, Any]:
        """Answer a RangeRequest (validated here); raises InvalidRequest, TooLarge,
        Compacted or FutureRevision."""
        return {"header": _header(self.revision), **self._range(validate_range(req))}

    def _range(self, req: dict[str, Any]) -> dict[str, Any]:
        kvs, count, more = self._kv.range(
            req["key"],
            req["range_end"],
            revision=req["revision"],
            limit=req["limit"],
            count_only=req["count_only"],
        )
        keys_only = req["keys_only"]
        return {
            "kvs": [kv.to_wire(keys_only=keys_only) for kv in kvs],
            "count": count,
            "more": more,
        }

    def time_to_live(self, id: int, now: float, keys: bool = False) -> dict[str, Any]:
        """LeaseTimeToLive at the caller's ``now``; ttl -1 when the lease is gone."""
        if type(id) is not int or type(keys) is not bool or type(now) not in (int, float):
            raise InvalidRequest("time_to_live needs an integer id, a number now, a boolean keys")
        return {"header": _header(self.revision), **self._leases.time_to_live(id, now, keys)}

    def leases(self) -> dict[str, Any]:
        """Every lease id, ascending."""
        return {"header": _header(self.revision), "leases": [{"id": i} for i in self._leases.ids()]}

    def leases_due(self, now: float) -> list[int]:
        """Ids of leases a ``lease_expire`` at ``now`` would revoke (for the leader to decide
        whether to propose one)."""
        return self._leases.due(now)

    def events_since(self, start_revision: int) -> list[Event]:
        """Every event of revision ≥ ``start_revision``, in order, in a new list.  Raises Compacted (``compact_revision`` = the oldest revision
        still served) when older events were dropped by compaction or the history cap."""
        return self._events.since(start_revision)

    # -- snapshots -----------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The whole state as plain CBOR-able data (dict/list/str/int/float/bytes/bool/None).
        The dump shares result objects with the machine: encode it, don't mutate it."""
        return {
            "format": DUMP_FORMAT,
            "kv": self._kv.dump(),
            "leases": self._leases.dump(),
            "events": self._events.dump(),
            "members": self.members,
            "dedup": {
                "max_seqs": self._dedup.max_seqs,
                "max_clients": self._dedup.max_clients,
                "clients": self._dedup.dump(),
            },
        }

    @classmethod
    def load(cls, d: dict[str, Any]) -> Machine:
        """Rebuild a machine from `dump` output: it answers every read and every later
        command exactly as the dumped one would.  Raises InvalidRequest on another format."""
        if type(d) is not dict or d.get("format") != DUMP_FORMAT:
            raise InvalidRequest("not a ketch store dump of a known format")
        dd = d["dedup"]
        m = cls(dedup_seqs=dd["max_seqs"], dedup_clients=dd["max_clients"])
        m._kv = Keyspace.load(d["kv"])
        m._leases = LeaseTable.load(d["leases"])
        m._events = EventLog.load(d["events"])
        m._dedup.load(dd["clients"])
        m.members = d.get("members")
        return m


_APPLY: dict[str, Callable[[Machine, dict[str, Any]], tuple[Any, list[Event]]]] = {
    "txn": Machine._txn,
    "lease_grant": Machine._lease_grant,
    "lease_revoke": Machine._lease_revoke,
    "lease_keepalive": Machine._lease_keepalive,
    "lease_expire": Machine._lease_expire,
    "lease_promote": Machine._lease_promote,
    "compact": Machine._compact,
    "barrier": Machine._barrier,
    "batch": Machine._batch,
    "members": Machine._members,
}
