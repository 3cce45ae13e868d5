"""Clients that record histories while faults happen.

Every operation is recorded at invoke and at completion on this process's monotonic clock,
with its input and result.  An operation whose outcome the client cannot know (timeout, a
connection cut after sending, ``OutcomeUnknown``) is recorded as ``unknown`` — never as failed;
only a definite error answer (``Unavailable`` before sending, a typed refusal) is ``fail``.

Workers: key-value clients (put, compare-and-swap, delete, linearizable and serializable reads
over a small key set, so they contend), watchers on the whole key range (every event and every
reconnect recorded), a lease client (grant, attach a key, let it expire, watch it go) and a
leader observer (every replica's term and leadership, polled).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from store import errors
from store.client import StoreClient

from .cluster import ChaosCluster
from .history import History, LeaderObservation, LeaseRecord, RevisionObservation, WatchRecord

__all__ = [
    "FLOOD_PREFIX",
    "FLOOD_RANGE_END",
    "KEY_PREFIX",
    "KEY_RANGE_END",
    "LeaseTrace",
    "Workload",
]

KEY_PREFIX = "k/"
KEY_RANGE_END = "k0"  # [k/, k0) is every workload key
FLOOD_PREFIX = "f/"
FLOOD_RANGE_END = "f0"
LEASE_PREFIX = "lease/"


def _now() -> float:
    return time.monotonic()


@dataclass
class LeaseTrace:
    """One lease: granted with ``ttl`` at ``grant_invoke``; its key seen gone at ``gone_at``."""

    lease_id: int
    ttl: int
    grant_invoke: float
    keepalive_invokes: list[float] = field(default_factory=list)
    gone_at: float | None = None


class Workload:
    """Runs until ``stop`` is set; everything it learns goes into ``history`` and the lists."""

    def __init__(self, cluster: ChaosCluster, history: History, *, seed: int,
                 clients: int = 6, keys: int = 8, think: float = 0.0, flood: int = 0) -> None:
        self._cluster = cluster
        self.history = history
        self._rng = random.Random(seed)
        self._clients = clients
        self._keys = [f"{KEY_PREFIX}{i}" for i in range(keys)]
        self._think = think  # seconds each client waits between operations
        self._flood = flood  # extra writers of unique 1 KiB keys (deep Raft pipelines)
        self.leases: list[LeaseTrace] = []
        self.watch_errors: list[str] = []
        self.ops_done = 0
        self._incarnations: dict[str, tuple[int, int]] = {}  # member -> (applied, restarts)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            for c in range(self._clients):
                tg.create_task(self._kv_client(c, stop))
            for w in range(2):
                tg.create_task(self._watcher(w, stop))
            tg.create_task(self._lease_client(stop))
            tg.create_task(self._observer(stop))
            if self._flood:
                tg.create_task(self._flood_writers(stop))

    # --- key-value clients ---------------------------------------------------------------------

    async def _kv_client(self, c: int, stop: asyncio.Event) -> None:
        rng = random.Random(self._rng.random())
        seen: dict[str, str | None] = {}
        n = 0
        member = self._cluster.names[c % len(self._cluster.names)]
        async with self._cluster.proxied_client(timeout=3.0, coalesce=False) as client, \
                self._cluster.proxied_client(only=member, timeout=3.0, coalesce=False) as pinned:
            while not stop.is_set():
                key = rng.choice(self._keys)
                r = rng.random()
                n += 1
                if r < 0.35:
                    await self._put(client, c, key, f"{c}-{n}", seen)
                elif r < 0.5:
                    await self._cas(client, c, key, seen.get(key), f"{c}-{n}", seen)
                elif r < 0.58:
                    await self._delete(client, c, key, seen)
                elif r < 0.74:
                    await self._get(client, c, key, seen, serializable=False)
                elif r < 0.9:  # through one fixed member, often a follower: still linearizable
                    await self._get(pinned, c, key, seen, serializable=False)
                else:
                    await self._get(client, c, key, seen, serializable=True)
                self.ops_done += 1
                if self._think:
                    await asyncio.sleep(self._think)

    async def _record(self, c: int, kind: str, key: str, input: dict[str, Any], call: Any,
                      *, write: bool) -> dict[str, Any] | None:
        op_id = self.history.record_invoke(client=c, kind=kind, key=key, input=input, at=_now())
        try:
            out = await call
        except (TimeoutError, errors.OutcomeUnknown) as e:
            self.history.record_complete(op_id, "unknown", {"error": str(e)[:200]}, at=_now())
            return None
        except errors.StoreError as e:
            self.history.record_complete(op_id, "fail", {"error": e.code}, at=_now())
            return None
        except (OSError, asyncio.CancelledError) as e:
            status: Literal["unknown", "fail"] = "unknown" if write else "fail"
            self.history.record_complete(op_id, status, {"error": repr(e)[:200]}, at=_now())
            if isinstance(e, asyncio.CancelledError):
                raise
            return None
        self.history.record_complete(op_id, "ok", out, at=_now())
        return out

    async def _put(self, client: StoreClient, c: int, key: str, value: str,
                   seen: dict[str, str | None]) -> None:
        async def call() -> dict[str, Any]:
            r = await client.put(key.encode(), value.encode())
            return {"revision": r["header"]["revision"]}

        if await self._record(c, "put", key, {"value": value}, call(), write=True) is not None:
            seen[key] = value

    async def _cas(self, client: StoreClient, c: int, key: str, expected: str | None,
                   new: str, seen: dict[str, str | None]) -> None:
        if expected is None:
            compare = [{"key": key.encode(), "target": "version", "result": "==", "value": 0}]
        else:
            compare = [{"key": key.encode(), "target": "value", "result": "==",
                        "value": expected.encode()}]

        async def call() -> dict[str, Any]:
            r = await client.txn(compare, [{"put": {"key": key.encode(), "value": new.encode()}}])
            return {"succeeded": r["succeeded"], "revision": r["header"]["revision"]}

        out = await self._record(c, "cas", key, {"expected": expected, "value": new}, call(),
                                 write=True)
        if out is not None and out["succeeded"]:
            seen[key] = new

    async def _delete(self, client: StoreClient, c: int, key: str,
                      seen: dict[str, str | None]) -> None:
        async def call() -> dict[str, Any]:
            r = await client.delete(key.encode())
            return {"deleted": r["deleted"], "revision": r["header"]["revision"]}

        if await self._record(c, "delete", key, {}, call(), write=True) is not None:
            seen[key] = None

    async def _get(self, client: StoreClient, c: int, key: str, seen: dict[str, str | None],
                   *, serializable: bool) -> None:
        async def call() -> dict[str, Any]:
            r = await client.get(key.encode(), serializable=serializable)
            kvs = r["kvs"]
            value = kvs[0]["value"].decode() if kvs else None
            mod = kvs[0]["mod_revision"] if kvs else 0
            return {"value": value, "revision": r["header"]["revision"], "mod_revision": mod}

        # Serializable reads may be stale by design: recorded under their own kind so the
        # linearizability checker leaves them out, flagged so the revision checker does too.
        kind = "get_serializable" if serializable else "get"
        inp = {"serializable": True} if serializable else {}
        out = await self._record(c, kind, key, inp, call(), write=False)
        if out is not None:
            seen[key] = out["value"]

    async def _flood_writers(self, stop: asyncio.Event) -> None:
        """Many writers of unique keys under FLOOD_PREFIX, one request per put: with
        pysyncobj's pipelining this keeps hundreds of entries in flight per follower."""
        value = "v" * 1000
        async with self._cluster.proxied_client(timeout=5.0, coalesce=False) as client, \
                asyncio.TaskGroup() as tg:
            for w in range(self._flood):
                tg.create_task(self._flood_one(client, 1000 + w, value, stop))

    async def _flood_one(self, client: StoreClient, c: int, value: str,
                         stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key = f"{FLOOD_PREFIX}{c}/{n}"
            await self._put(client, c, key, value, {})
            self.ops_done += 1

    # --- watchers, leases, observers ------------------------------------------------------------

    async def _watcher(self, w: int, stop: asyncio.Event) -> None:
        record = WatchRecord(client=100 + w, key=KEY_PREFIX, range_end=KEY_RANGE_END,
                             start_revision=1)
        self.history.watches.append(record)
        async with self._cluster.proxied_client(timeout=3.0, watch_retry_deadline=600.0,
                                                 watch_idle_timeout=10.0) as client:

            async def consume() -> None:
                async for frame in client.watch(KEY_PREFIX.encode(),
                                                range_end=KEY_RANGE_END.encode(),
                                                start_revision=1):
                    for e in frame.get("events", ()):
                        kv = e["kv"]
                        value = kv["value"].decode() if e["type"] == "put" else None
                        record.record_event(kv["mod_revision"], e["type"], kv["key"].decode(),
                                            value)

            task = asyncio.create_task(consume())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if task.done() and task.exception() is not None:
                e = task.exception()
                self.watch_errors.append(f"watch {record.client}: {type(e).__name__}: {e}")
            task.cancel()
            await asyncio.gather(task, stopped, return_exceptions=True)

    async def _lease_client(self, stop: asyncio.Event) -> None:
        """Grant a short lease every second, attach a key, keep some alive once, and watch
        (by reading) for the key to go; each lease is followed by its own task."""
        async with self._cluster.proxied_client(timeout=3.0) as client, \
                asyncio.TaskGroup() as tg:
            n = 0
            while not stop.is_set():
                n += 1
                tg.create_task(self._one_lease(client, stop, keepalive=n % 2 == 0))
                await asyncio.sleep(1.0)

    async def _one_lease(self, client: StoreClient, stop: asyncio.Event, *,
                         keepalive: bool) -> None:
        ttl = 2
        t0 = _now()
        try:
            lease = await client.lease_grant(ttl)
            key = f"{LEASE_PREFIX}{lease['id']}".encode()
            await client.put(key, b"x", lease=lease["id"])
        except errors.StoreError:
            return
        trace = LeaseTrace(lease["id"], ttl, t0)
        self.leases.append(trace)
        kept = not keepalive
        while not stop.is_set() and _now() < t0 + 60:
            if not kept and _now() > t0 + 1.0:
                kept = True
                t = _now()
                try:
                    await client.lease_keepalive(lease["id"])
                    trace.keepalive_invokes.append(t)  # only acknowledged keepalives count
                except errors.StoreError:
                    pass
            try:
                got = await client.get(key)
            except errors.StoreError:
                await asyncio.sleep(0.2)
                continue
            if not got["kvs"]:
                trace.gone_at = _now()
                return
            await asyncio.sleep(0.1)

    async def _observer(self, stop: asyncio.Event) -> None:
        async with self._cluster.direct_client(timeout=1.0) as client:
            while not stop.is_set():
                for st in (await client.member_status()).values():
                    if st is None:
                        continue
                    at = _now()
                    self.history.leaders.append(LeaderObservation(
                        observed_at=at, member=st["name"], term=st["term"],
                        is_leader=st["is_leader"]))
                    self.history.revisions.append(RevisionObservation(
                        observed_at=at, member=st["name"], revision=st["revision"],
                        incarnation=self._incarnation(st)))
                await asyncio.sleep(0.25)

    def _incarnation(self, st: dict[str, Any]) -> int:
        """Count restarts of a member: its applied index drops when it restarts and replays."""
        last_applied, count = self._incarnations.get(st["name"], (0, 0))
        if st["applied_index"] < last_applied:
            count += 1
        self._incarnations[st["name"]] = (st["applied_index"], count)
        return count

    def lease_records(self) -> list[LeaseRecord]:
        return [LeaseRecord(t.lease_id, float(t.ttl), t.grant_invoke, tuple(t.keepalive_invokes),
                            t.gone_at) for t in self.leases]
