"""Raft snapshots are written by a forked child: the replica keeps committing meanwhile, the
log is compacted only once the file is in place, and a restart recovers from it."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest

from store import snapshot_file
from store.config import Member, ReplicaConfig
from store.launch import free_ports, process_state
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


Writer = Callable[[str, dict[str, Any]], None]
Patch = Callable[[Any, str, Any], None]


def _gated(tmp_path: Path) -> Callable[[Writer], Writer]:
    """A snapshot writer that stands for a dump that takes long: in the child, it notes its
    pid in ``writer``, touches ``started`` and holds until ``release`` exists."""
    def wrap(write: Writer) -> Writer:
        def slow(path: str, doc: dict[str, Any]) -> None:
            (tmp_path / "writer").write_text(str(os.getpid()))
            (tmp_path / "started").touch()
            until = time.monotonic() + DEADLINE
            while not (tmp_path / "release").exists() and time.monotonic() < until:
                time.sleep(0.01)
            write(path, doc)
        return slow
    return wrap


async def _filled(tmp_path: Path, patch: Patch,
                  wrap: Callable[[Writer], Writer]) -> tuple[Replica, str]:
    """A single replica, its snapshot file writer ``wrap(the real one)`` (installed with
    ``patch``), past its threshold."""
    patch(snapshot_file, "write", wrap(snapshot_file.write))
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
    replica, raft = await _filled(tmp_path, monkeypatch.setattr, _gated(tmp_path))
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
        def once(path: str, doc: dict[str, Any]) -> None:
            if fail.exists():
                fail.unlink()
                raise OSError("disk full")
            write(path, doc)
        return once

    replica, _ = await _filled(tmp_path, monkeypatch.setattr, failing_once)
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
    synced: list[int] = []
    monkeypatch.setattr(snapshot_file, "SYNC_BYTES", 8000)
    monkeypatch.setattr(snapshot_file.os, "fdatasync", lambda fd: synced.append(fd))
    doc = {"kv": [b"x" * 500 for _ in range(40)]}
    snapshot_file.write(str(tmp_path / "snap"), doc)
    assert len(synced) >= 2  # ~20 KB in cbor2's ~4-KB writes: a sync after each 8,000
    assert snapshot_file.read(str(tmp_path / "snap")) == {"format": 1, **doc}


_ORPHAN = """
import asyncio, sys
from pathlib import Path
from tests import test_replica_snapshots as t

async def main(tmp: Path) -> None:
    await t._filled(tmp, setattr, t._gated(tmp))
    await asyncio.Event().wait()  # until killed

asyncio.run(main(Path(sys.argv[1])))
"""


async def test_the_snapshot_writer_dies_with_its_replica(tmp_path: Path) -> None:
    # Left running, it could rename an older snapshot over the one a restarted replica wrote
    # after compacting its log: the next start would miss the entries in between.
    root = Path(__file__).resolve().parent.parent
    replica = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ORPHAN, str(tmp_path), cwd=root)
    try:
        await _until(lambda: (tmp_path / "started").exists(), "a snapshot begins")
    finally:
        replica.kill()
        await replica.wait()
    child = int((tmp_path / "writer").read_text())
    await _until(lambda: process_state(child) in (None, "Z", "X"), "the writer is gone")
    assert not (tmp_path / "data" / "snapshot.cbor").exists()
