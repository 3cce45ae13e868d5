"""Hypothesis stateful test: the Machine against a plain reference model.

The model keeps, per key, its whole history as a list of versions (tombstones included) in a
dict, plus the leases and the event list, and never forgets anything; it only knows from the
compact revision and the event cap which reads must now fail.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from store.errors import Compacted, LeaseNotFound
from store.machine import Machine

KEYS = [b"a", b"ab", b"abc", b"b", b"c"]
RANGES = [(k, None) for k in KEYS] + [
    (b"a", b"b"),
    (b"ab", b"\0"),
    (b"\0", b"\0"),
    (b"b", b"a"),
    (b"abc", b"c"),
]
EVENT_CAP = 12

keys = st.sampled_from(KEYS)
ranges = st.sampled_from(RANGES)
values = st.binary(max_size=3)


def _in(key: bytes, start: bytes, end: bytes | None) -> bool:
    if end is None:
        return key == start
    return start <= key and (end == b"\0" or key < end)


def _kv(key: bytes, value: bytes, create: int, mod: int, version: int, lease: int) -> dict:
    return {
        "key": key,
        "value": value,
        "create_revision": create,
        "mod_revision": mod,
        "version": version,
        "lease": lease,
    }


class Model:
    """key -> list of versions (wire dicts; a tombstone has version 0), oldest first."""

    def __init__(self) -> None:
        self.hist: dict[bytes, list[dict]] = {}
        self.revision = 1
        self.compact = 0
        self.floor = 0
        self.events: list[tuple[str, dict, dict | None]] = []
        self.leases: dict[int, set[bytes]] = {}
        self.deadlines: dict[int, tuple[int, float]] = {}  # id -> (ttl, deadline)
        self.next_lease = 1

    def at(self, key: bytes, revision: int) -> dict | None:
        live = [v for v in self.hist.get(key, []) if v["mod_revision"] <= revision]
        return live[-1] if live and live[-1]["version"] else None

    def read(self, start: bytes, end: bytes | None, revision: int) -> list[dict]:
        hits = [self.at(k, revision) for k in sorted(self.hist) if _in(k, start, end)]
        return [kv for kv in hits if kv is not None]

    def write(self, puts: list[tuple[bytes, bytes, int]], deletes: list[bytes]) -> None:
        """One revision: the puts, then deletes of the listed keys that are live."""
        rev = self.revision + 1
        wrote = bool(puts)
        for key, value, lease in puts:
            prev = self.at(key, self.revision)
            create, version = (prev["create_revision"], prev["version"] + 1) if prev else (rev, 1)
            kv = _kv(key, value, create, rev, version, lease)
            self.hist.setdefault(key, []).append(kv)
            self.events.append(("put", kv, prev))
            for attached in self.leases.values():
                attached.discard(key)
            if lease:
                self.leases[lease].add(key)
        for key in deletes:
            prev = self.at(key, self.revision)
            if prev is None:
                continue
            wrote = True
            tomb = _kv(key, b"", 0, rev, 0, 0)
            self.hist[key].append(tomb)
            self.events.append(("delete", tomb, prev))
            for attached in self.leases.values():
                attached.discard(key)
        if wrote:
            self.revision = rev
            self.floor = max(self.floor, rev - EVENT_CAP + 1)

    def live_in(self, start: bytes, end: bytes | None) -> list[bytes]:
        return [kv["key"] for kv in self.read(start, end, self.revision)]


class MachineVsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = Machine(event_history=EVENT_CAP)
        self.model = Model()
        self.replies: list[tuple[dict, Any]] = []
        self.seq = 0

    def _rid(self) -> list[Any]:
        self.seq += 1
        return ["client", self.seq]

    def _txn(self, req: dict) -> dict:
        cmd = {"t": "txn", "req": req, "rid": self._rid()}
        result, _ = self.m.apply(cmd)
        self.replies.append((cmd, result))
        return result

    @rule(key=keys, value=values, with_lease=st.booleans())
    def put(self, key: bytes, value: bytes, with_lease: bool) -> None:
        lease = min(self.model.leases) if with_lease and self.model.leases else 0
        self._txn({"success": [{"put": {"key": key, "value": value, "lease": lease}}]})
        self.model.write([(key, value, lease)], [])

    @rule(span=ranges)
    def delete(self, span: tuple[bytes, bytes | None]) -> None:
        victims = self.model.live_in(*span)
        result = self._txn({"success": [{"delete_range": {"key": span[0], "range_end": span[1]}}]})
        assert result["responses"][0]["delete_range"]["deleted"] == len(victims)
        self.model.write([], victims)

    @rule(key=keys, version=st.integers(0, 3), value=values, other=keys)
    def compare_and_swap(self, key: bytes, version: int, value: bytes, other: bytes) -> None:
        current = self.model.at(key, self.model.revision)
        holds = (current["version"] if current else 0) == version
        compare = [{"key": key, "target": "version", "result": "==", "value": version}]
        failure = [] if other == key else [{"delete_range": {"key": other}}]
        result = self._txn(
            {
                "compare": compare,
                "success": [{"put": {"key": key, "value": value}}],
                "failure": failure,
            }
        )
        assert result["succeeded"] is holds
        if holds:
            self.model.write([(key, value, 0)], [])
        else:
            self.model.write([], self.model.live_in(other, None) if failure else [])

    @rule(ttl=st.integers(1, 100))
    def grant(self, ttl: int) -> None:
        result, _ = self.m.apply({"t": "lease_grant", "id": 0, "ttl": ttl, "now": 0.0})
        assert result["id"] == self.model.next_lease
        self.model.leases[result["id"]] = set()
        self.model.deadlines[result["id"]] = (ttl, float(ttl))
        self.model.next_lease += 1

    @precondition(lambda self: self.model.leases)
    @rule(data=st.data(), now=st.integers(0, 150))
    def keepalive(self, data: st.DataObject, now: int) -> None:
        lease = data.draw(st.sampled_from(sorted(self.model.leases)))
        ttl, _ = self.model.deadlines[lease]
        self.m.apply({"t": "lease_keepalive", "id": lease, "now": float(now)})
        self.model.deadlines[lease] = (ttl, float(now + ttl))

    @rule(now=st.integers(0, 250))
    def expire(self, now: int) -> None:
        model = self.model
        due = sorted(i for i, (_, deadline) in model.deadlines.items() if deadline <= now)
        assert self.m.leases_due(float(now)) == due
        result, events = self.m.apply({"t": "lease_expire", "now": float(now)})
        assert result["expired"] == due
        doomed = sorted(k for i in due for k in model.leases[i])
        assert [e.kv.key for e in events] == doomed
        for i in due:
            del model.leases[i], model.deadlines[i]
        model.write([], doomed)

    @precondition(lambda self: self.model.leases)
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(sorted(self.model.leases)))
        keys_attached = sorted(self.model.leases[lease])
        assert self.m.time_to_live(lease, 0.0, True)["keys"] == keys_attached
        _, events = self.m.apply({"t": "lease_revoke", "id": lease})
        assert [e.kv.key for e in events] == keys_attached
        del self.model.leases[lease], self.model.deadlines[lease]
        self.model.write([], keys_attached)
        with pytest.raises(LeaseNotFound):
            self.m.apply({"t": "lease_keepalive", "id": lease, "now": 1.0})

    @precondition(lambda self: self.model.revision > self.model.compact + 1)
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        revision = data.draw(st.integers(self.model.compact + 1, self.model.revision))
        self.m.apply({"t": "compact", "revision": revision})
        self.model.compact = revision
        self.model.floor = max(self.model.floor, revision)

    @precondition(lambda self: self.replies)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        cmd, first = data.draw(st.sampled_from(self.replies))
        revision = self.m.revision
        assert self.m.apply(cmd) == (first, [])
        assert self.m.revision == revision

    @rule()
    def snapshot_and_restore(self) -> None:
        dump = self.m.dump()
        restored = Machine.load(cbor2.loads(cbor2.dumps(dump)))
        assert restored.dump() == dump
        self.m = restored

    @rule(span=ranges, data=st.data(), limit=st.integers(0, 3))
    def read(self, span: tuple[bytes, bytes | None], data: st.DataObject, limit: int) -> None:
        model = self.model
        revision = data.draw(st.integers(0, model.revision))
        req = {"key": span[0], "range_end": span[1], "revision": revision, "limit": limit}
        if 0 < revision < model.compact:
            with pytest.raises(Compacted):
                self.m.range(req)
            return
        expected = model.read(*span, revision or model.revision)
        answer = self.m.range(req)
        assert answer["count"] == len(expected)
        assert answer["kvs"] == (expected[:limit] if limit else expected)
        assert answer["more"] is (0 < limit < len(expected))
        assert answer["header"] == {"revision": model.revision}

    @rule(data=st.data())
    def events(self, data: st.DataObject) -> None:
        model = self.model
        start = data.draw(st.integers(0, model.revision + 1))
        if start < model.floor:
            with pytest.raises(Compacted):
                self.m.events_since(start)
            return
        got = [
            (e.type, e.kv.to_wire(), None if e.prev_kv is None else e.prev_kv.to_wire())
            for e in self.m.events_since(start)
        ]
        assert got == [e for e in model.events if e[1]["mod_revision"] >= start]

    @invariant()
    def same_revision_and_leases(self) -> None:
        assert self.m.revision == self.model.revision
        assert self.m.compact_revision == self.model.compact
        assert [x["id"] for x in self.m.leases()["leases"]] == sorted(self.model.leases)


MachineVsModel.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMachineVsModel = MachineVsModel.TestCase
