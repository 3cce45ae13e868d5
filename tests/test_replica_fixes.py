"""Regression tests for ketch's fixes to pysyncobj's Raft (store/replica.py).

Each test drives a real patched SyncObj (real journal on disk, real bound port) by handing it
the Raft messages a leader or follower would send, in the order that triggers the bug.  Each is
run with the fix on (must hold) and off (must show the bug), so the test can fail both ways.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pysyncobj import SyncObjConf
from pysyncobj.node import TCPNode

from store.config import Member, ReplicaConfig
from store.journal import DurableJournal
from store.launch import free_ports
from store.replica import _PatchedSyncObj


@pytest.fixture
def make_node(tmp_path: Path):
    made: list[_PatchedSyncObj] = []

    def make(*, fixes: bool) -> tuple[_PatchedSyncObj, TCPNode]:
        me, peer, other = (f"127.0.0.1:{p}" for p in free_ports("127.0.0.1", 3))
        members = (
            Member("a", me, "https://127.0.0.1:1"),
            Member("b", peer, "https://127.0.0.1:2"),
            Member("c", other, "https://127.0.0.1:3"),
        )
        cfg = ReplicaConfig(
            name="a", data_dir=tmp_path, members=members, ca=tmp_path, cert=tmp_path,
            key=tmp_path, raft_secret_file=tmp_path, raft_fixes=fixes,
        )
        conf = SyncObjConf(autoTick=False, password="test-secret-0123456789",
                           appendEntriesUseBatch=False)
        journal = DurableJournal(tmp_path / f"j{len(made)}", fsync=False)
        node = _PatchedSyncObj(cfg, conf, journal, lambda payload: None)
        made.append(node)
        leader = next(n for n in node.otherNodes if n.address == peer)
        return node, leader

    yield make
    for n in made:
        n.destroy()


def _entries(first: int, last: int, term: int) -> list[tuple[bytes, int, int]]:
    return [(b"\x4bx", i, term) for i in range(first, last + 1)]


def _append(node, leader, prev_idx, prev_term, entries, commit=1) -> None:
    node._SyncObj__onMessageReceived(leader, {
        "type": "append_entries", "term": 1, "commit_index": commit,
        "prevLogIdx": prev_idx, "prevLogTerm": prev_term, "entries": entries,
    })


def _last_index(node) -> int:
    return node._SyncObj__raftLog[-1][1]


@pytest.mark.parametrize("fixes, expected_last", [
    pytest.param(True, 21, id="fixed-keeps-acknowledged-entries"),
    pytest.param(False, 15, id="unfixed-truncates-acknowledged-entries"),
])
def test_follower_keeps_entries_on_overlapping_resend(make_node, fixes, expected_last):
    # The follower has acknowledged 2..21; a stale resend from 12 (capped at 15 by the batch
    # size) must not delete 16..21: the leader already counts them as replicated.
    node, leader = make_node(fixes=fixes)
    _append(node, leader, 1, 0, _entries(2, 21, 1))
    assert _last_index(node) == 21
    _append(node, leader, 11, 1, _entries(12, 15, 1))
    assert _last_index(node) == expected_last


@pytest.mark.parametrize("fixes, expected_last", [
    pytest.param(True, 21, id="fixed"),
    pytest.param(False, 11, id="unfixed"),
])
def test_follower_keeps_entries_on_stale_heartbeat(make_node, fixes, expected_last):
    node, leader = make_node(fixes=fixes)
    _append(node, leader, 1, 0, _entries(2, 21, 1))
    _append(node, leader, 11, 1, [])
    assert _last_index(node) == expected_last


def test_follower_still_truncates_on_a_real_conflict(make_node):
    # Raft §5.3: an entry whose term differs replaces the follower's entry and all after it.
    node, leader = make_node(fixes=True)
    _append(node, leader, 1, 0, _entries(2, 21, 1))
    _append(node, leader, 11, 1, [(b"\x4by", 12, 2)])
    assert _last_index(node) == 12
    assert node._SyncObj__raftLog[-1][2] == 2


def test_kept_tail_is_not_committed_beyond_what_the_leader_vouched_for(make_node):
    node, leader = make_node(fixes=True)
    _append(node, leader, 1, 0, _entries(2, 21, 1))
    _append(node, leader, 11, 1, [], commit=30)
    assert _last_index(node) == 21
    assert node.raftCommitIndex == 11


@pytest.mark.parametrize("fixes, expected_next", [
    pytest.param(True, 31, id="fixed-never-rewinds"),
    pytest.param(False, 11, id="unfixed-rewinds-to-ack"),
])
def test_leader_success_ack_never_rewinds_next_index(make_node, fixes, expected_next):
    node, follower = make_node(fixes=fixes)
    node._SyncObj__raftState = 2  # _RAFT_STATE.LEADER
    node._SyncObj__raftNextIndex[follower] = 31  # entries up to 30 are already on the wire
    node._SyncObj__raftMatchIndex[follower] = 0
    node._SyncObj__onMessageReceived(follower, {
        "type": "next_node_idx", "next_node_idx": 11, "reset": False, "success": True,
    })
    assert node._SyncObj__raftMatchIndex[follower] == 10
    assert node._SyncObj__raftNextIndex[follower] == expected_next
