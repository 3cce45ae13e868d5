"""One running replica, assembled: Raft replica + proposer + watch hub + the leader's duties.

:class:`StoreNode` is what the HTTP server talks to.  It owns the background work only a leader
does — expiring leases on its own clock, re-arming leases after an election, compacting old
history — each as a command through the log, so every replica applies the same thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from . import errors
from .config import Member, ReplicaConfig
from .kv import Event
from .proposing import Proposer
from .replica import RESULT_OK, RESULT_UNKNOWN, Replica
from .sabotage import WATCH_SKIP_EVERY, sabotage_of
from .watching import WatchHub

__all__ = ["StoreNode"]

log = logging.getLogger(__name__)


class StoreNode:
    """Owns the replica and everything that runs beside it on the event loop.

    Reads go through :meth:`read` (under the state lock); writes through :meth:`write`.
    ``clock`` gives wall-clock seconds for lease deadlines (injected for tests)."""

    def __init__(
        self,
        cfg: ReplicaConfig,
        *,
        secret: str,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.loop = loop
        self.clock = clock
        self.replica = Replica(
            cfg,
            secret=secret,
            loop=loop,
            on_events=self._events_from_raft,
            on_state_changed=self._state_from_raft,
            on_reset=self._reset_from_raft,
        )
        self.proposer = Proposer(self.replica, loop, max_inflight=cfg.max_inflight_entries,
                                 max_entry_commands=cfg.max_entry_commands)
        self.hub = WatchHub(self._history)
        self.sabotage = sabotage_of(cfg.extra)
        if self.sabotage == "ack-before-commit":
            self.proposer.ack_before_commit = True
        elif self.sabotage == "watch-skip":
            self.hub.skip_every = WATCH_SKIP_EVERY
        self._leading = False
        self._tasks: list[asyncio.Task[None]] = []
        self._by_raft = {m.raft: m for m in cfg.members}
        self._by_raft.update({cfg.dial_address(p): p for p in cfg.peers})

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.replica.start()
        self._tasks = [
            asyncio.create_task(self._every(0.25, self._expire_leases), name="lease-expiry"),
            asyncio.create_task(self._every(10.0, self._compact_history), name="auto-compaction"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.hub.reset()
        self.replica.stop()

    # --- callbacks from the Raft layer (on the loop, in the middle of a tick) ----------------

    def _events_from_raft(self, events: list[Event]) -> None:
        self.hub.publish(events)

    def _state_from_raft(self, is_leader: bool) -> None:
        self.loop.call_soon(self._leadership_changed, is_leader)

    def _reset_from_raft(self) -> None:
        self.loop.call_soon(self.hub.reset)

    # --- reads ---------------------------------------------------------------------------------

    def read(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(machine)`` against a consistent state (holding the state lock briefly)."""
        with self.replica.state_lock:
            return fn(self.replica.machine)

    async def read_barrier(self) -> None:
        """Wait until this replica's state includes every write committed before the call
        (an entry proposed now has been applied).  Skipped by the stale-reads sabotage."""
        if self.sabotage != "stale-reads":
            await self.proposer.barrier()

    async def read_linearizable(self, fn: Callable[[Any], Any]) -> Any:
        await self.read_barrier()
        return self.read(fn)

    def _history(self, start: int) -> tuple[int, list[Event]]:
        def take(m: Any) -> tuple[int, list[Event]]:
            if start <= 0 or start > m.revision:
                # A start in the future is allowed, as in etcd: a replica that is behind (just
                # restarted, or cut off) delivers those revisions once it has applied them.
                return m.revision, []
            return m.revision, m.events_since(start)

        return self.read(take)

    # --- writes --------------------------------------------------------------------------------

    async def write(self, cmd: dict[str, Any]) -> Any:
        return await self.proposer.write(cmd)

    # --- leader duties ---------------------------------------------------------------------------

    def _leadership_changed(self, is_leader: bool) -> None:
        if is_leader and not self._leading:
            self._leading = True
            # Deadlines were set on the old leader's clock; give every lease a full TTL (plus
            # an election's worth) on ours, as etcd's lessor does when promoted.
            cmd = {"t": "lease_promote", "now": self.clock(), "extend": self.cfg.election_timeout[1]}
            self._tasks.append(asyncio.create_task(self._duty(cmd), name="lease-promote"))
        elif not is_leader:
            self._leading = False
        self._tasks = [t for t in self._tasks if not t.done()]

    async def _duty(self, cmd: dict[str, Any]) -> None:
        try:
            await self.proposer.write(cmd)
        except errors.StoreError as e:
            log.info("leader duty %s not applied: %s", cmd["t"], e)

    async def _every(self, period: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(period)
            if self.replica.is_leader:
                try:
                    await job()
                except errors.StoreError as e:
                    log.info("%s: %s", job.__name__, e)

    async def _expire_leases(self) -> None:
        now = self.clock()
        if self.read(lambda m: m.leases_due(now)):
            await self.proposer.write({"t": "lease_expire", "now": now})

    async def _compact_history(self) -> None:
        keep = self.cfg.compaction_retention
        rev, compacted = self.read(lambda m: (m.revision, m.compact_revision))
        if rev - compacted > keep + keep // 10:
            await self.proposer.write({"t": "compact", "revision": rev - keep})

    # --- membership ------------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """The members as last changed at runtime, else as this replica's config says."""
        recorded = self.read(lambda m: m.members)
        return [Member(**m) for m in recorded] if recorded else list(self.cfg.members)

    async def change_members(self, op: str, member: Member) -> list[dict[str, str]]:
        """Add or remove a member: first the Raft configuration (pysyncobj's one-at-a-time
        change, as a CBOR entry), then the replicated member list.  Leader only."""
        if not self.replica.is_leader:
            st = self.status()
            raise errors.NotLeader("membership changes go to the leader", leader=st["leader_client"])
        current = self.members()
        if op == "add":
            if any(m.name == member.name or m.raft == member.raft for m in current):
                raise errors.InvalidRequest(f"member {member.name} ({member.raft}) already exists")
            new, address = [*current, member], member.raft
        else:
            gone = next((m for m in current if m.name == member.name), None)
            if gone is None:
                raise errors.KeyNotFound(f"no member named {member.name}")
            if gone.name == self.cfg.name:
                raise errors.InvalidRequest(
                    f"{gone.name} is the leader and cannot remove itself: stop it so another "
                    "member takes over, then remove it")
            new = [m for m in current if m.name != gone.name]
            address = self.cfg.dial_address(gone) if gone in self.cfg.peers else gone.raft
        done: asyncio.Future[str] = self.loop.create_future()

        def settle(outcome: str, _result: Any) -> None:
            if not done.done():
                done.set_result(outcome)

        self.replica.change_membership("add" if op == "add" else "rem", address, settle)
        outcome = await asyncio.wait_for(done, self.proposer.timeout)
        if outcome == RESULT_UNKNOWN:
            raise errors.OutcomeUnknown("the leader changed during the membership change")
        if outcome != RESULT_OK:
            raise errors.Unavailable("membership change refused: another change may be pending")
        wire = [{"name": m.name, "raft": m.raft, "client": m.client} for m in new]
        await self.proposer.write({"t": "members", "members": wire})
        return wire

    # --- status ------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        raft = self.replica.raft_status()
        members = self.members()
        by_raft = {m.raft: m for m in members}
        by_raft.update(self._by_raft)
        leader = by_raft.get(raft["leader_raft"]) if raft["leader_raft"] else None
        if raft["is_leader"]:
            leader = self.cfg.me
        rev, compacted = self.read(lambda m: (m.revision, m.compact_revision))
        return {
            "name": self.cfg.name,
            "member_id": self.cfg.me.raft,
            "leader": leader.name if leader else None,
            "leader_client": leader.client if leader else None,
            "is_leader": raft["is_leader"],
            "term": raft["term"],
            "raft_index": raft["raft_index"],
            "commit_index": raft["commit_index"],
            "applied_index": raft["applied_index"],
            "revision": rev,
            "compact_revision": compacted,
            "members": [{"name": m.name, "raft": m.raft, "client": m.client} for m in members],
            "healthy": leader is not None,
            "watchers": self.hub.count,
            "fsync": self.cfg.fsync,
        }
