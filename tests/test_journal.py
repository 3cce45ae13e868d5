"""Tests of store.journal: the durable Raft log and meta (reopen, torn tails, compaction, crashes).

Run as a script (``python tests/test_journal.py``) to print the flush/add micro-benchmark.
"""

from __future__ import annotations

import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.journal import LOG_FILE, META_FILE, DurableJournal, JournalCorrupt, JournalError

HEADER = 12
OVERHEAD = 24  # bytes of framing around each payload


def entries(n: int, *, first: int = 1, term: int = 1) -> list[tuple[bytes, int, int]]:
    return [(f"cmd-{i}".encode(), i, term) for i in range(first, first + n)]


def fill(j: DurableJournal, items: list[tuple[bytes, int, int]]) -> None:
    for e in items:
        j.add(*e)


def reopen(j: DurableJournal, path: Path, *, crash: bool = False) -> DurableJournal:
    """Close ``j`` (``crash``: without flushing, like kill -9) and open the directory again."""
    j.close(flush=not crash)
    return DurableJournal(path)


def record_size(e: tuple[bytes, int, int]) -> int:
    return OVERHEAD + len(e[0])


def test_round_trip_after_reopen(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path / "j")
    fill(j, [*entries(3), (b"", 4, 2), (bytes(range(256)) * 40, 5, 2)])
    expected = list(j[:])
    j.flush()
    j = reopen(j, tmp_path / "j")
    assert j[:] == expected and len(j) == 5
    assert j[-1][1] == 5 and j[0] == (b"cmd-1", 1, 1)
    j._destroy()


def test_new_journal_is_empty_with_default_meta(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path / "new" / "dir")
    assert len(j) == 0 and not j.dirty
    assert (j.getCurrentTerm(), j.getVotedForNodeId(), j.getRaftCommitIndex()) == (0, None, 1)
    assert (tmp_path / "new" / "dir" / LOG_FILE).stat().st_size == HEADER
    j._destroy()


def test_directory_is_locked_while_open(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    with pytest.raises(JournalError, match="in use"):
        DurableJournal(tmp_path)
    j.close()
    DurableJournal(tmp_path).close()


@pytest.mark.parametrize(
    ("damage", "kept"),
    [
        pytest.param(lambda data: data[:-1], 4, id="truncated-crc"),
        pytest.param(lambda data: data[:-10], 4, id="truncated-payload"),
        pytest.param(lambda data: data[: -(record_size(entries(1)[0]) - 3)], 4, id="torn-head"),
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 1]), 4, id="bad-crc"),
        pytest.param(lambda data: data + b"\xde\xad\xbe\xef" * 50, 5, id="garbage-appended"),
        pytest.param(lambda data: data + bytes(4096), 5, id="zeros-appended"),
        pytest.param(lambda data: data[:-5] + bytes(100), 4, id="torn-then-zeros"),
    ],
)
def test_torn_tail_is_cut_off(
    tmp_path: Path, damage: Callable[[bytes], bytes], kept: int, caplog: pytest.LogCaptureFixture
) -> None:
    j = DurableJournal(tmp_path)
    fill(j, entries(5))
    j.flush()
    j.close()
    log_path = tmp_path / LOG_FILE
    log_path.write_bytes(damage(log_path.read_bytes()))
    with caplog.at_level(logging.WARNING):
        j = DurableJournal(tmp_path)
    assert j[:] == entries(kept)
    assert "torn tail" in caplog.text
    good_end = HEADER + sum(map(record_size, j[:]))
    assert log_path.stat().st_size == good_end
    j.add(b"after", len(j) + 1, 1)  # appending after the repair lands in the right place
    expected = j[:]
    j = reopen(j, tmp_path)
    assert j[:] == expected
    j.close()


@pytest.mark.parametrize("victim", [0, 2, 3], ids=["first", "middle", "second-last"])
@pytest.mark.parametrize("how", ["flip-payload", "flip-length"])
def test_corrupt_middle_record_raises(tmp_path: Path, victim: int, how: str) -> None:
    j = DurableJournal(tmp_path)
    fill(j, entries(5))
    j.flush()
    j.close()
    log_path = tmp_path / LOG_FILE
    data = bytearray(log_path.read_bytes())
    offset = HEADER + sum(map(record_size, entries(5)[:victim]))
    data[offset + (OVERHEAD - 4 if how == "flip-payload" else 1)] ^= 0x40
    log_path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as info:
        DurableJournal(tmp_path)
    assert info.value.offset == offset
    assert log_path.read_bytes() == bytes(data)  # nothing was cut off
    with pytest.raises(JournalCorrupt):  # not "in use": the failed open released the lock
        DurableJournal(tmp_path)


def test_bad_header_raises(tmp_path: Path) -> None:
    DurableJournal(tmp_path).close()
    (tmp_path / LOG_FILE).write_bytes(b"PYSYNCOBJ\0\0\0")
    with pytest.raises(JournalCorrupt):
        DurableJournal(tmp_path)


@pytest.mark.parametrize("flushed", [0, 3, 6, 10], ids=lambda n: f"flushed{n}")
@pytest.mark.parametrize("cut", [0, 2, 4, 6, 8, 10])
def test_delete_entries_from(tmp_path: Path, flushed: int, cut: int) -> None:
    j = DurableJournal(tmp_path)
    fill(j, entries(flushed))
    j.flush()
    fill(j, entries(10 - flushed, first=flushed + 1))
    j.deleteEntriesFrom(cut)
    assert j[:] == entries(cut)
    j.add(b"new", cut + 1, 2)  # a conflicting suffix replaced by the new leader's entry
    j.flush()
    j = reopen(j, tmp_path)
    assert j[:] == [*entries(cut), (b"new", cut + 1, 2)]
    j.close()


@pytest.mark.parametrize("flushed", [0, 3, 6, 10], ids=lambda n: f"flushed{n}")
@pytest.mark.parametrize("cut", [0, 2, 4, 6, 8, 10])
def test_delete_entries_to_is_durable_at_once(tmp_path: Path, flushed: int, cut: int) -> None:
    j = DurableJournal(tmp_path)
    fill(j, entries(flushed))
    j.flush()
    fill(j, entries(10 - flushed, first=flushed + 1))
    j.deleteEntriesTo(cut)
    assert j[:] == entries(10)[cut:]
    j = reopen(j, tmp_path, crash=True)  # a rewrite makes even unflushed entries durable
    survivors = entries(10)[cut:] if cut else entries(flushed)  # deleteEntriesTo(0): a no-op
    assert j[:] == survivors
    last = survivors[-1][1] if survivors else 0
    fill(j, entries(2, first=last + 1))
    j.deleteEntriesFrom(len(j) - 1)  # the offsets are still right after the rewrite
    j = reopen(j, tmp_path)
    assert j[:] == [*survivors, *entries(1, first=last + 1)]
    j.close()


def test_clear_then_add(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, entries(5))
    j.flush()
    j.add(b"pending", 6, 1)
    j.clear()
    assert len(j) == 0
    j = reopen(j, tmp_path, crash=True)
    assert len(j) == 0
    fill(j, entries(2, first=100, term=3))  # what pysyncobj does after installing a snapshot
    j = reopen(j, tmp_path)
    assert j[:] == entries(2, first=100, term=3)
    assert not list(tmp_path.glob("*.tmp"))
    j.close()


def test_group_commit_one_fsync_per_flush(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    before = j.fsync_count
    fill(j, entries(500))
    assert j.dirty and j.fsync_count == before and j.bytes_written == HEADER
    j.flush()
    assert j.fsync_count == before + 1 and not j.dirty
    assert j.bytes_written == HEADER + sum(map(record_size, entries(500)))
    assert j.fsync_seconds_total > 0
    j.flush()  # clean: no syscall, no fsync
    assert j.fsync_count == before + 1
    j.close()


def test_fsync_off_still_writes(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path, fsync=False)
    fill(j, entries(3))
    j.flush()
    assert j.fsync_count == 0 and j.bytes_written > HEADER
    j = reopen(j, tmp_path, crash=True)
    assert j[:] == entries(3)
    j.close()


def test_unflushed_adds_are_lost_flushed_ones_kept(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, entries(4))
    j.flush()
    fill(j, entries(3, first=5))
    j = reopen(j, tmp_path, crash=True)
    assert j[:] == entries(4)
    j.close()


def test_meta_durability_and_commit_index(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, entries(10))
    j.flush()
    j.setCurrentTerm(7, "10.0.0.2:4321")
    j.setRaftCommitIndex(8)
    assert j.getRaftCommitIndex() == 8
    j = reopen(j, tmp_path, crash=True)  # term and vote were durable at once, commit was not
    assert (j.getCurrentTerm(), j.getVotedForNodeId(), j.getRaftCommitIndex()) == (
        7,
        "10.0.0.2:4321",
        1,
    )
    j.setRaftCommitIndex(8)
    fill(j, entries(5, first=11))
    j.onOneSecondTimer()  # persists the commit index, flushing the log first
    assert not j.dirty
    j.setCurrentTerm(8, None)
    j = reopen(j, tmp_path, crash=True)
    assert (j.getCurrentTerm(), j.getVotedForNodeId(), j.getRaftCommitIndex()) == (8, None, 8)
    assert j[-1][1] == 15
    with pytest.raises(TypeError):
        j.setCurrentTerm(9, 12345)  # type: ignore[arg-type]
    j.close()


def test_persisted_commit_never_passes_the_log_end(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, entries(10))
    j.setRaftCommitIndex(10)
    j.onOneSecondTimer()
    j.deleteEntriesFrom(6)  # a (buggy) truncation below the commit index
    j = reopen(j, tmp_path, crash=True)
    assert j[-1][1] == 6 and j.getRaftCommitIndex() == 6
    j.setRaftCommitIndex(99)  # past the end: clamped on disk
    j = reopen(j, tmp_path)
    assert j.getRaftCommitIndex() == 6
    j.close()


@pytest.mark.parametrize(
    "raw", [b"\xff\x00garbage", b"\xa1\x61x\x01", b""], ids=["not-cbor", "wrong-shape", "empty"]
)
def test_corrupt_meta_raises_on_open(tmp_path: Path, raw: bytes) -> None:
    j = DurableJournal(tmp_path)
    j.setCurrentTerm(1, None)
    j.close()
    (tmp_path / META_FILE).write_bytes(raw)
    with pytest.raises(JournalCorrupt):
        DurableJournal(tmp_path)


# --- property test against a list model --------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(st.binary(max_size=40), min_size=1, max_size=6)),
        st.tuples(st.just("flush"), st.none()),
        # where to cut, in percent of the current length (over 100: past the end)
        st.tuples(st.just("delete_from"), st.integers(0, 110)),
        st.tuples(st.just("delete_to"), st.integers(0, 110)),
        st.tuples(st.just("clear"), st.none()),
        st.tuples(st.just("crash"), st.none()),
        st.tuples(st.just("reopen"), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_random_ops_match_a_list_model(script: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d)
        j = DurableJournal(path, fsync=False)
        model: list[tuple[bytes, int, int]] = []
        durable = 0  # model[:durable] is on disk
        next_idx = 1
        for op, arg in script:
            if op == "add":
                assert isinstance(arg, list)
                for command in arg:
                    j.add(command, next_idx, 1)
                    model.append((command, next_idx, 1))
                    next_idx += 1
            elif op == "flush":
                j.flush()
                durable = len(model)
            elif op == "delete_from":
                assert isinstance(arg, int)
                arg = len(model) * arg // 100
                j.deleteEntriesFrom(arg)
                del model[arg:]
                durable = min(durable, len(model))
                next_idx = model[-1][1] + 1 if model else next_idx  # Raft reuses the indexes
            elif op == "delete_to":
                assert isinstance(arg, int)
                arg = len(model) * arg // 100
                j.deleteEntriesTo(arg)
                if arg and model:  # a rewrite, which also makes the buffered entries durable
                    del model[:arg]
                    durable = len(model)
            elif op == "clear":
                j.clear()
                model, durable = [], 0
            else:
                j = reopen(j, path, crash=op == "crash")
                model = model[:durable] if op == "crash" else model
                durable = len(model)
            assert j[:] == model and len(j) == len(model)
            assert j.dirty == (durable < len(model))
            size = (path / LOG_FILE).stat().st_size  # the file holds exactly the durable prefix
            assert size == HEADER + sum(map(record_size, model[:durable]))
        j.close()


# --- kill -9 --------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from store.journal import DurableJournal
    j = DurableJournal(sys.argv[1])
    idx = 0
    for k in range(100_000):
        for _ in range(k % 7 + 1):
            idx += 1
            j.add(b"entry-%d" % idx + bytes(idx % 300), idx, 1 + idx // 100)
        j.flush()
        print("flushed", idx, flush=True)
    """
)


def expected_child_entry(idx: int) -> tuple[bytes, int, int]:
    return (b"entry-%d" % idx + bytes(idx % 300), idx, 1 + idx // 100)


@pytest.mark.parametrize("kill_after", [1, 37, 400])
def test_kill_9_keeps_every_reported_flush(tmp_path: Path, kill_after: int) -> None:
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "j")],
        stdout=subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert child.stdout is not None
    for _ in range(kill_after):
        line = child.stdout.readline()
        assert line.startswith(b"flushed"), line
    child.send_signal(signal.SIGKILL)  # the child keeps going until the signal lands
    rest = child.stdout.read()
    assert child.wait(timeout=30) == -signal.SIGKILL
    complete = [line, *rest.split(b"\n")[:-1]]  # a line cut short by the kill does not count
    last_reported = int(complete[-1].split()[1])
    j = DurableJournal(tmp_path / "j")
    assert len(j) >= last_reported > 0
    assert j[:] == [expected_child_entry(i) for i in range(1, len(j) + 1)]
    j.close()


# --- micro-benchmark (prints figures, asserts nothing; run this file as a script) ----------


def benchmark(directory: Path, rounds: int = 200) -> dict[str, float]:
    j = DurableJournal(directory)
    payload = os.urandom(1024)
    figures: dict[str, float] = {}
    idx = 0
    for batch in (1, 100):
        costs = []
        for _ in range(rounds):
            for _ in range(batch):
                idx += 1
                j.add(payload, idx, 1)
            t0 = time.perf_counter()
            j.flush()
            costs.append(time.perf_counter() - t0)
        figures[f"flush_{batch}x1KiB_median_us"] = statistics.median(costs) * 1e6
        figures[f"flush_{batch}x1KiB_p99_us"] = statistics.quantiles(costs, n=100)[98] * 1e6
    costs = []
    for term in range(rounds // 4):
        t0 = time.perf_counter()
        j.setCurrentTerm(term, "127.0.0.1:4321")
        costs.append(time.perf_counter() - t0)
    figures["setCurrentTerm_median_us"] = statistics.median(costs) * 1e6
    n = 100_000
    t0 = time.perf_counter()
    for i in range(n):
        j.add(payload, idx + 1 + i, 1)
    figures["add_1KiB_us"] = (time.perf_counter() - t0) / n * 1e6
    j.deleteEntriesFrom(len(j) - n)
    small = b"x" * 100
    t0 = time.perf_counter()
    for i in range(n):
        j.add(small, idx + 1 + i, 1)
    figures["add_100B_us"] = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        j[-1][1]
    figures["last_index_read_us"] = (time.perf_counter() - t0) / n * 1e6
    j.close(flush=False)
    return figures


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as d:
        for name, value in benchmark(Path(d)).items():
            print(f"{name:28s} {value:10.2f}")
