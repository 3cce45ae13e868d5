"""The Raft layer: pysyncobj, patched, driving the pure state machine.  The only module that
imports pysyncobj.

Data flow: the server's proposer hands CBOR-encoded command batches to :meth:`Replica.propose`
(any thread); pysyncobj replicates them as log entries of our own type byte (no pickled objects
in the log); once committed, each entry is applied to the :class:`Machine` and the result goes
back through the caller's callback, the events to the ``on_events`` listener.  pysyncobj runs
on the replica's event loop (:class:`_LoopPoller`), so all of this happens on one thread.

What this module changes in pysyncobj 0.3.17 (see ../shared/research/pysyncobj.md), each with a
regression test in tests/test_replica_fixes.py:

* **Durable journal** (:class:`store.journal.DurableJournal`) in place of the mmap journal that
  never fsyncs; the journal is flushed (group commit: one fsync for everything appended since
  the last one) before any message that replicates or acknowledges entries leaves this node.
* **Truncation bug** (``raft_fixes``): a success ack never moves the leader's nextIndex
  backwards, and a follower truncates its log only on a real term conflict (Raft §5.3), never
  because an AppendEntries overlapped what it already has.
* **Lost first election**: every member sends a small keep-alive to every other member, so the
  follower-to-follower links are up when a candidate needs them.
* **Snapshots** are CBOR (our serializer hooks), never pickle, and written by a forked child
  from a copy-on-write image of the machine, as pysyncobj does for its own pickle dumps, so a
  snapshot of a large store never stalls the event loop; the child runs at nice 19 and syncs
  as it writes, and the three replicas take turns (``logCompactionSplit``).
* Peer traffic is authenticated and encrypted with the cluster's Raft secret (pysyncobj's
  ``password``); a frame without the right MAC is dropped before it is unpickled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj import syncobj as _syncobj_module
from pysyncobj.poller import POLL_EVENT_TYPE

from . import snapshot_file
from .config import ReplicaConfig
from .errors import StoreError
from .journal import DurableJournal
from .machine import Machine

__all__ = ["KETCH_ENTRY", "RESULT_NOT_APPLIED", "RESULT_OK", "RESULT_UNKNOWN", "Replica"]

log = logging.getLogger(__name__)

KETCH_ENTRY = 0x4B  # our log entry type byte ('K'); pysyncobj's own types are 0..3
_NO_OP = 1  # pysyncobj's _COMMAND_TYPE.NO_OP
_MEMBERSHIP = 2  # pysyncobj's _COMMAND_TYPE.MEMBERSHIP (ours carry CBOR, not pickle)

RESULT_OK = "ok"
RESULT_UNKNOWN = "unknown"  # the entry may still commit (leader changed, timeout)
RESULT_NOT_APPLIED = "not_applied"  # definitely not applied (no leader, queue full, discarded)

# A follower's ack (next_node_idx) claims the entries are stored: they must be on disk first.
# The leader needs no flush before sending: it counts itself toward a commit only on a later
# tick, and the tick loop flushes at the end of every tick (so its fsync overlaps the network).
_DURABLE_BEFORE = frozenset({"next_node_idx"})
_KEEPALIVE = {"type": "ketch_keepalive"}
_POLL_READ = POLL_EVENT_TYPE.READ
_POLL_WRITE = POLL_EVENT_TYPE.WRITE
_TICK_PERIOD = 0.01  # seconds between timer ticks when no socket event or proposal comes

Callback = Callable[[str, Any], None]


def _outcome(err: int) -> str:
    if err == FAIL_REASON.SUCCESS:
        return RESULT_OK
    if err in (FAIL_REASON.LEADER_CHANGED, FAIL_REASON.UNKNOWN_OUTCOME):
        return RESULT_UNKNOWN
    return RESULT_NOT_APPLIED


class _LoopPoller:
    """pysyncobj's Poller interface on an asyncio event loop.

    pysyncobj's sockets are watched by the loop itself; each event runs pysyncobj's handler
    and then asks for a Raft tick on the same thread.  So the HTTP server, the Raft node and
    the state machine share one thread: no tick thread, no GIL handoffs, no cross-thread
    wake-ups on the commit path.  Errors surface as readiness (pysyncobj checks SO_ERROR)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_event: Callable[[], None]) -> None:
        self._loop = loop
        self._on_event = on_event
        self._watched: set[int] = set()

    def subscribe(self, descr: int, callback: Callable[[int, int], None], mask: int) -> None:
        self.unsubscribe(descr)
        if mask & _POLL_READ:
            self._loop.add_reader(descr, self._fire, descr, callback, _POLL_READ)
        if mask & _POLL_WRITE:
            self._loop.add_writer(descr, self._fire, descr, callback, _POLL_WRITE)
        self._watched.add(descr)

    def unsubscribe(self, descr: int) -> None:
        if descr in self._watched:
            self._watched.discard(descr)
            # pysyncobj may already have closed the socket; the loop forgets it either way.
            with contextlib.suppress(Exception):
                self._loop.remove_reader(descr)
            with contextlib.suppress(Exception):
                self._loop.remove_writer(descr)

    def poll(self, timeout: float) -> None:
        """Nothing to wait for: the event loop delivers socket events."""

    def _fire(self, descr: int, callback: Callable[[int, int], None], event: int) -> None:
        try:
            callback(descr, event)
        except Exception:  # a peer's bad frame must not take the loop down
            log.exception("raft socket handler failed")
        self._on_event()


class _PatchedSyncObj(SyncObj):  # type: ignore[misc]  # pysyncobj ships no types
    """pysyncobj's SyncObj with ketch's fixes.  Private pysyncobj state is reached through its
    mangled names (``_SyncObj__x``); every such access is in this class."""

    def __init__(
        self,
        cfg: ReplicaConfig,
        conf: SyncObjConf,
        journal: DurableJournal,
        apply_entry: Callable[[bytes], Any],
        poller: Any = None,
    ) -> None:
        self._ketch_fixes = cfg.raft_fixes
        self._ketch_apply = apply_entry
        self._ketch_keep_tail = False
        self._ketch_journal = journal
        self._ketch_next_keepalive = 0.0
        self._ketch_keepalive_period = conf.connectionTimeout / 5
        peers = [cfg.dial_address(p) for p in cfg.peers]
        if poller is None:
            super().__init__(cfg.me.raft, peers, conf)
        else:
            # SyncObj.__init__ builds its poller and binds its server socket in one go;
            # hand it ours for the duration of the constructor.
            made = _syncobj_module.createPoller
            _syncobj_module.createPoller = lambda _kind: poller
            try:
                super().__init__(cfg.me.raft, peers, conf)
            finally:
                _syncobj_module.createPoller = made
        self._install_journal(journal)
        self._install_durable_send(journal)
        self._install_forked_snapshots()
        # Runs at the end of every tick, just before pysyncobj waits on its sockets: the
        # leader's own copy of new entries reaches the disk while the followers work on theirs,
        # and before the next tick can count the leader toward a commit.
        self.addOnTickCallback(journal.flush)
        if cfg.extra.get("peer_keepalive", True):
            self.addOnTickCallback(self._send_keepalives)

    # --- snapshots in a child process --------------------------------------------------

    def _install_forked_snapshots(self) -> None:
        # pysyncobj forks for its own pickle dumps but calls a custom serializer inline, on
        # the Raft thread, which here is the event loop: at 16,000 pods the CBOR dump and its
        # fsync stalled every request and heartbeat of the replica for seconds, every 50,000
        # entries.  Its fork path suits ours as well: the child gets a copy-on-write image of
        # the machine as of the last applied entry, runs the serializer, renames the file into
        # place and exits; each tick polls it with waitpid and compacts the log once it
        # exited 0 (a failed child is logged and retried later, the log kept).
        if hasattr(os, "fork"):
            self._SyncObj__serializer._Serializer__useFork = True

    # --- durable journal ---------------------------------------------------------------

    def _install_journal(self, journal: DurableJournal) -> None:
        # SyncObj.__init__ made a MemoryJournal (journalFile=None); replace it before the first
        # tick and restore the persistent Raft state the way SyncObj.__init__ would have.
        if len(journal) == 0:
            journal.add(bytes([_NO_OP]), 1, 0)
            journal.flush()
        self._SyncObj__raftLog = journal
        self._SyncObj__raftCurrentTerm = max(journal.getCurrentTerm(), journal[-1][2])
        self._SyncObj__votedForNodeId = journal.getVotedForNodeId()
        self._SyncObj__raftCommitIndex = min(journal.getRaftCommitIndex(), journal[-1][1])

    def _install_durable_send(self, journal: DurableJournal) -> None:
        transport = self._SyncObj__transport
        send = transport.send

        def durable_send(node: Any, message: Any) -> bool:
            # Group commit: whatever was appended since the last flush reaches the disk before
            # a message that replicates, acknowledges or votes on it leaves this node.
            if journal.dirty and isinstance(message, dict) and message.get("type") in _DURABLE_BEFORE:
                journal.flush()
            return send(node, message)

        transport.send = durable_send

    # --- lost first election: keep every peer link warm ----------------------------------

    def _send_keepalives(self) -> None:
        now = time.monotonic()
        if now < self._ketch_next_keepalive:
            return
        self._ketch_next_keepalive = now + self._ketch_keepalive_period
        transport = self._SyncObj__transport
        for node in self.otherNodes:
            transport.send(node, _KEEPALIVE)

    # --- our own log entries --------------------------------------------------------------

    def _SyncObj__doApplyCommand(self, command: bytes) -> Any:
        if command[:1] == bytes([KETCH_ENTRY]):
            return self._ketch_apply(bytes(command[1:]))
        return SyncObj._SyncObj__doApplyCommand(self, command)

    # --- the truncation bug -----------------------------------------------------------------

    def _SyncObj__onMessageReceived(self, node: Any, message: Any) -> None:
        if not self._ketch_fixes or not isinstance(message, dict):
            return SyncObj._SyncObj__onMessageReceived(self, node, message)
        kind = message.get("type")
        if kind == "append_entries" and "prevLogIdx" in message and "transmission" not in message:
            message = self._trim_overlap(message)
        if kind == "next_node_idx" and message.get("success") and not message.get("reset"):
            before = self._SyncObj__raftNextIndex.get(node)
            SyncObj._SyncObj__onMessageReceived(self, node, message)
            after = self._SyncObj__raftNextIndex.get(node)
            if before is not None and after is not None and after < before:
                # A (possibly stale) success ack must not rewind what was already sent.
                self._SyncObj__raftNextIndex[node] = before
            return None
        conf = self._SyncObj__conf
        dynamic = conf.dynamicMembershipChange
        if self._ketch_keep_tail:
            # pysyncobj would "roll back" membership entries it is about to truncate; the
            # kept tail is not truncated, so there is nothing to roll back.
            conf.dynamicMembershipChange = False
        try:
            return SyncObj._SyncObj__onMessageReceived(self, node, message)
        finally:
            self._ketch_keep_tail = False
            conf.dynamicMembershipChange = dynamic

    def _trim_overlap(self, message: dict[str, Any]) -> dict[str, Any]:
        """Drop the leading entries this follower already has (same index and term), so the
        original handler only truncates from a real conflict.  If every entry is already here
        and the log goes further, keep the tail (Raft §5.3: truncate only on conflict)."""
        log_ = self._SyncObj__raftLog
        if len(log_) == 0:
            return message
        first, last = log_[0][1], log_[-1][1]
        prev_idx = message["prevLogIdx"]
        if prev_idx is None or prev_idx < first or prev_idx > last:
            return message  # the original handler answers with a reset
        if log_[prev_idx - first][2] != message["prevLogTerm"]:
            return message
        entries = message.get("entries") or []
        skip = 0
        for entry in entries:
            idx = entry[1]
            if idx > last or log_[idx - first][2] != entry[2]:
                break
            skip += 1
        if skip == 0 and entries:
            return message
        new_prev = entries[skip - 1] if skip else None
        trimmed = dict(message)
        if new_prev is not None:
            trimmed["prevLogIdx"], trimmed["prevLogTerm"] = new_prev[1], new_prev[2]
        trimmed["entries"] = entries[skip:]
        if not trimmed["entries"] and trimmed["prevLogIdx"] < last:
            # Keep the tail, but commit only what this message vouches for: pysyncobj commits
            # up to its own last index, which is only right after it has truncated.
            self._ketch_keep_tail = True
            trimmed["commit_index"] = min(trimmed["commit_index"], trimmed["prevLogIdx"])
        return trimmed

    # --- membership changes: CBOR entries, never pickle ------------------------------------

    def _SyncObj__parseChangeClusterRequest(self, command: bytes) -> list[str] | None:
        if command[:1] != bytes([_MEMBERSHIP]):
            return None
        try:
            request = cbor2.loads(bytes(command[1:]))
        except Exception:  # noqa: BLE001 - our own leader wrote it; an undecodable one changes nothing
            log.error("undecodable membership entry")
            return None
        ok = (isinstance(request, list) and len(request) == 2 and request[0] in ("add", "rem")
              and isinstance(request[1], str))
        return request if ok else None

    def ketch_change_membership(self, op: str, address: str,
                                callback: Callable[[Any, int], None]) -> None:
        self._applyCommand(cbor2.dumps([op, address]), callback, _MEMBERSHIP)

    def _SyncObj__deleteEntriesFrom(self, fromIDx: int) -> None:
        if self._ketch_keep_tail:
            return
        SyncObj._SyncObj__deleteEntriesFrom(self, fromIDx)

    # --- read-only views for the runtime ---------------------------------------------------

    def ketch_status(self) -> dict[str, Any]:
        leader = self._getLeader()
        return {
            "term": self._getTerm(),
            "is_leader": self._isLeader(),
            "leader_raft": leader.address if leader is not None else None,
            "raft_index": self._SyncObj__raftLog[-1][1],
            "commit_index": self.raftCommitIndex,
            "applied_index": self.raftLastApplied,
        }

    def ketch_submit(self, payload: bytes, callback: Callable[[Any, int], None]) -> None:
        self._applyCommand(payload, callback, KETCH_ENTRY)


class Replica:
    """One store replica's Raft node and its state machine, driven by the event loop.

    Thread model: pysyncobj, the machine and every callback (results, events, leader changes)
    run on ``loop``'s thread; ticks follow socket events and proposals, and a 10 ms timer
    covers heartbeats and timeouts.  ``state_lock`` guards the machine for readers on other
    threads (e.g. a snapshot taken from a worker thread)."""

    def __init__(
        self,
        cfg: ReplicaConfig,
        *,
        secret: str,
        loop: asyncio.AbstractEventLoop,
        on_events: Callable[[list[Any]], None] | None = None,
        on_state_changed: Callable[[bool], None] | None = None,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._on_reset = on_reset
        self.state_lock = threading.Lock()
        self.machine = Machine()
        self._on_events = on_events
        self._on_state_changed = on_state_changed
        data = Path(cfg.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o700)
        self.journal = DurableJournal(data / "raft", fsync=cfg.fsync)
        self.snapshot_file = data / "snapshot.cbor"
        self._pid = os.getpid()  # a snapshot written under another pid is in the forked child
        lo, hi = cfg.election_timeout
        conf = SyncObjConf(
            password=secret,
            autoTick=False,
            appendEntriesUseBatch=False,
            appendEntriesPeriod=cfg.heartbeat,
            raftMinTimeout=lo,
            raftMaxTimeout=hi,
            leaderFallbackTimeout=hi,
            connectionTimeout=max(2.0, 3 * hi),
            connectionRetryTime=0.2,
            appendEntriesBatchSizeBytes=cfg.raft_batch_bytes,
            sendBufferSize=4 * 2**20,
            recvBufferSize=4 * 2**20,
            logCompactionMinEntries=cfg.snapshot_entries,
            # Each replica snapshots in its own third of every snapshot_seconds, so the three
            # never dump (and sync hundreds of MB) at once.
            logCompactionSplit=True,
            logCompactionMinTime=cfg.snapshot_seconds,
            fullDumpFile=str(self.snapshot_file),
            serializer=self._write_snapshot,
            deserializer=self._read_snapshot,
            dynamicMembershipChange=True,
            onStateChanged=self._state_changed,
            commandsQueueSize=100_000,
        )
        self._loop = loop
        self._tick_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._raft = _PatchedSyncObj(
            cfg, conf, self.journal, self._apply_entry, poller=_LoopPoller(loop, self._tick_soon)
        )

    # --- lifecycle: pysyncobj runs on the event loop ------------------------------------------

    def start(self) -> None:
        self._periodic()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._raft.destroy()  # closes sockets and the journal (flushing it)

    def _periodic(self) -> None:
        # Timers (heartbeats, election and connection timeouts) need ticks even when quiet.
        self._tick()
        self._timer = self._loop.call_later(_TICK_PERIOD, self._periodic)

    def _tick_soon(self) -> None:
        if not self._tick_scheduled:
            self._tick_scheduled = True
            self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._tick_scheduled = False
        try:
            self._raft.doTick(0)
        except Exception:  # a tick must never kill the replica; log and keep ticking
            log.exception("raft tick failed")

    # --- proposing -----------------------------------------------------------------------------

    def propose(self, payload: bytes, callback: Callback) -> None:
        """Replicate one CBOR-encoded command (usually a batch).  ``callback(outcome, result)``
        runs on the loop with outcome RESULT_OK (result = what the machine returned),
        RESULT_UNKNOWN or RESULT_NOT_APPLIED.  Call it on the loop."""

        def done(result: Any, err: int) -> None:
            callback(_outcome(err), result)

        self._raft.ketch_submit(payload, done)
        self._tick_soon()

    def change_membership(self, op: str, address: str, callback: Callback) -> None:
        """Add (``op`` "add") or remove ("rem") a Raft member by its address; pysyncobj
        refuses while another change is pending or for the leader itself (RESULT_NOT_APPLIED).
        ``callback(outcome, None)`` runs on the loop.  Call it on the loop, on the leader."""

        def done(result: Any, err: int) -> None:
            callback(_outcome(err), result)

        self._raft.ketch_change_membership(op, address, done)
        self._tick_soon()

    def _apply_entry(self, payload: bytes) -> Any:
        try:
            cmd = cbor2.loads(payload)
        except Exception as e:  # noqa: BLE001 - our own leader wrote it; never crash the apply loop over it
            log.error("undecodable log entry (%d bytes): %s", len(payload), e)
            return {"err": {"code": "internal", "message": "undecodable log entry"}}
        try:
            with self.state_lock:
                result, events = self.machine.apply(cmd)
        except StoreError as e:  # the whole entry was refused; every replica refuses alike
            return {"err": e.to_wire()}
        except Exception:  # a bug in apply: log loudly, keep the replica alive
            log.critical("applying a log entry failed", exc_info=True)
            return {"err": {"code": "internal", "message": "apply failed"}}
        if events and self._on_events is not None:
            self._on_events(events)
        return result

    # --- snapshots (CBOR, never pickle) ---------------------------------------------------------

    def _write_snapshot(self, tmp_file: str, raft_data: Any) -> None:
        if os.getpid() != self._pid:
            snapshot_file.become_writer_child(self._pid)
        last, prev, cluster = raft_data
        snapshot_file.write(tmp_file, {
            "last": list(last),
            "prev": list(prev),
            # Real Raft addresses (a route is this replica's private way to dial a peer).
            "cluster": sorted(self._real_address(getattr(n, "address", str(n))) for n in cluster),
            "machine": self.machine.dump(),
        })

    def _read_snapshot(self, file_name: str) -> tuple[Any, Any, Any]:
        doc = snapshot_file.read(file_name)
        machine = Machine.load(doc["machine"])
        with self.state_lock:
            self.machine = machine
        if self._on_reset is not None:
            self._on_reset()  # history jumped: watchers must resume from the new state
        last, prev = doc["last"], doc["prev"]
        me = self.cfg.me.raft
        others = [self._dial_address(a) for a in doc["cluster"] if a != me]
        return (bytes(last[0]), last[1], last[2]), (bytes(prev[0]), prev[1], prev[2]), others

    def _real_address(self, address: str) -> str:
        for p in self.cfg.peers:
            if self.cfg.dial_address(p) == address:
                return p.raft
        return address

    def _dial_address(self, real: str) -> str:
        for p in self.cfg.peers:
            if p.raft == real:
                return self.cfg.dial_address(p)
        return real

    # --- state ----------------------------------------------------------------------------------

    def _state_changed(self, old: int, new: int) -> None:
        if self._on_state_changed is not None:
            self._on_state_changed(self._raft._isLeader())

    def raft_status(self) -> dict[str, Any]:
        return self._raft.ketch_status()

    @property
    def is_leader(self) -> bool:
        return self._raft._isLeader()
