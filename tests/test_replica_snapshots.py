"""Raft snapshots are written by a forked child: the replica keeps committing meanwhile, the
log is compacted only once the file is in place, and a restart recovers from it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest

from store.config import Member, ReplicaConfig
from store.launch import free_ports
from store.replica import RESULT_OK, Replica

SNAPSHOT_ENTRIES = 20
DEADLINE = 20.0


def _config(tmp_path: Path, raft: str) -> ReplicaConfig:
    return ReplicaConfig(
        name="a", data_dir=tmp_path / "data", members=(Member("a", raft, "https://127.0.0.1:1"),),
        ca=tmp_path, cert=tmp_path, key=tmp_path, raft_secret_file=tmp_path, fsync=False,
        snapshot_entries=SNAPSHOT_ENTRIES, snapshot_seconds=2.0,
    )


def _put(i: int) -> bytes:
    op = {"key": b"k%03d" % i, "value": b"v%d" % i, "lease": 0, "prev_kv": False}
    return cbor2.dumps({"t": "txn", "req": {"compare": [], "success": [{"put": op}],
                                            "failure": []}})


async def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"not within {DEADLINE:.0f} s: {what}"
        await asyncio.sleep(0.02)


async def _commit(replica: Replica, payload: bytes) -> None:
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    replica.propose(payload, lambda outcome, _result: done.set_result(outcome))
    assert await asyncio.wait_for(done, DEADLINE) == RESULT_OK


async def _started(tmp_path: Path, raft: str) -> Replica:
    replica = Replica(_config(tmp_path, raft), secret="test-secret-0123456789",
                      loop=asyncio.get_running_loop())
    replica.start()
    await _until(lambda: replica.is_leader, "the single replica leads")
    return replica


Writer = Callable[[Replica, str, Any], None]


async def _filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  wrap: Callable[[Writer], Writer]) -> tuple[Replica, str]:
    """A single replica, its snapshot writer ``wrap(the real one)``, past its threshold."""
    monkeypatch.setattr(Replica, "_write_snapshot", wrap(Replica._write_snapshot))
    (port,) = free_ports("127.0.0.1", 1)
    raft = f"127.0.0.1:{port}"
    replica = await _started(tmp_path, raft)
    try:
        for i in range(SNAPSHOT_ENTRIES + 5):
            await _commit(replica, _put(i))
    except BaseException:
        replica.stop()
        raise
    return replica, raft


async def test_a_snapshot_is_written_by_a_child_while_the_replica_keeps_committing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    started, release, writer = tmp_path / "started", tmp_path / "release", tmp_path / "writer"

    def gated(write: Writer) -> Writer:
        def slow(self: Replica, tmp_file: str, raft_data: Any) -> None:
            # Stands for a dump that takes long: it holds until the test releases it.
            writer.write_text(str(os.getpid()))
            started.touch()
            until = time.monotonic() + DEADLINE
            while not release.exists() and time.monotonic() < until:
                time.sleep(0.01)
            write(self, tmp_file, raft_data)
        return slow

    replica, raft = await _filled(tmp_path, monkeypatch, gated)
    try:
        await _until(started.exists, "a snapshot begins")
        for i in range(SNAPSHOT_ENTRIES + 5, SNAPSHOT_ENTRIES + 15):
            await _commit(replica, _put(i))  # an inline dump would hold the loop right here
        assert not replica.snapshot_file.exists(), "the snapshot finished before its release"
        assert len(replica.journal) > SNAPSHOT_ENTRIES, "the log was compacted too early"
        assert int(writer.read_text()) != os.getpid()
        release.touch()
        await _until(replica.snapshot_file.exists, "the snapshot file is in place")
        await _until(lambda: len(replica.journal) < SNAPSHOT_ENTRIES, "the log is compacted")
    finally:
        release.touch()
        replica.stop()

    again = await _started(tmp_path, raft)
    try:
        await _commit(again, _put(999))
        got = again.machine.range({"key": b"k", "range_end": b"l"})
        assert [kv["key"] for kv in got["kvs"]] == [
            b"k%03d" % i for i in [*range(SNAPSHOT_ENTRIES + 15), 999]]
    finally:
        again.stop()


async def test_a_failed_snapshot_keeps_the_log_and_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fail = tmp_path / "fail-once"
    fail.touch()

    def failing_once(write: Writer) -> Writer:
        def once(self: Replica, tmp_file: str, raft_data: Any) -> None:
            if fail.exists():
                fail.unlink()
                raise OSError("disk full")
            write(self, tmp_file, raft_data)
        return once

    replica, _ = await _filled(tmp_path, monkeypatch, failing_once)
    try:
        await _until(lambda: not fail.exists(), "the first snapshot fails")
        await _until(replica.snapshot_file.exists, "a later snapshot is in place")
        await _until(lambda: len(replica.journal) < SNAPSHOT_ENTRIES, "the log is compacted")
        doc = cbor2.loads(replica.snapshot_file.read_bytes())
        assert doc["format"] == 1 and doc["last"][1] >= SNAPSHOT_ENTRIES
    finally:
        replica.stop()


def test_a_large_snapshot_is_synced_as_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # So a dump of hundreds of MB never leaves it all dirty for the journal's fsync to wait on.
    from store import snapshot_file

    synced: list[int] = []
    monkeypatch.setattr(snapshot_file, "SYNC_BYTES", 8000)
    monkeypatch.setattr(snapshot_file.os, "fdatasync", lambda fd: synced.append(fd))
    doc = {"kv": [b"x" * 500 for _ in range(40)]}
    snapshot_file.write(str(tmp_path / "snap"), doc)
    assert len(synced) >= 2  # ~20 KB in cbor2's ~4-KB writes: a sync after each 8,000
    assert snapshot_file.read(str(tmp_path / "snap")) == {"format": 1, **doc}
