"""The durable Raft log and meta of one replica: the journal pysyncobj writes through.

`DurableJournal` replaces pysyncobj's ``FileJournal`` (same duck-typed interface). Entries
``(command, idx, term)`` are kept in a list and every read comes from it. Its locked directory
holds ``raft.log`` (a header ``KETCHLOG`` + u32 version, then append-only records ``u32 len |
u64 idx | u64 term | payload | u32 crc32(idx, term, payload)``, little-endian) and ``raft.meta``
(CBOR ``{v, term, vote, commit}``, replaced atomically: temp file, fsync, rename, fsync dir).

* ``add()`` only buffers. ``flush()`` writes the buffer with one write and one fdatasync (group
  commit); the replica must flush before it acknowledges or replicates entries.
* kill -9: everything flushed survives, with fsync on or off. Unflushed adds never happened.
* Power loss, with ``fsync=True``: flushed entries and every returned ``setCurrentTerm``,
  ``deleteEntriesFrom``/``To`` and ``clear`` survive. With ``fsync=False`` nothing is promised.
* The commit index is persisted by ``onOneSecondTimer`` after a log flush, clamped to the last
  entry, so the commit index on disk never passes the durable log end.
* Compaction (``deleteEntriesTo``, ``clear``) writes a new file and renames it into place, so a
  crash leaves either the whole old log or the whole new one.
* On open, a torn or CRC-failing tail (a crash mid-append) is cut off with a warning. A bad
  record followed by a valid one (this test assumes consecutive Raft indexes) raises
  `JournalCorrupt`. That also happens if a power loss kept a later page of an unsynced batch
  but not an earlier one; it fails closed, and the fix is to wipe the replica and let it rejoin.
* After any I/O error, all later writes raise `JournalError`, because a failed fsync cannot be
  retried safely. Restart from disk.

Not thread-safe: pysyncobj's tick thread owns it. The counters may be read from any thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, overload

import cbor2

__all__ = ["LOG_FILE", "META_FILE", "DurableJournal", "Entry", "JournalCorrupt", "JournalError"]

Entry = tuple[bytes, int, int]

LOG_FILE = "raft.log"
META_FILE = "raft.meta"
_MAGIC = b"KETCHLOG"
_VERSION = 1
_HEADER = _MAGIC + struct.pack("<I", _VERSION)
_REC_HEAD = struct.Struct("<IQQ")
_CRC = struct.Struct("<I")
_OVERHEAD = _REC_HEAD.size + _CRC.size  # 24 bytes around each payload

log = logging.getLogger(__name__)


class JournalError(Exception):
    """The journal cannot be used: an I/O error happened, or the directory is locked."""


class JournalCorrupt(JournalError):
    """The on-disk journal is damaged somewhere other than a torn tail. ``offset`` gives where."""

    def __init__(self, message: str, *, path: str, offset: int) -> None:
        super().__init__(f"{path} at offset {offset}: {message}")
        self.path, self.offset = path, offset


def _encode(command: bytes, idx: int, term: int) -> bytes:
    head = _REC_HEAD.pack(len(command), idx, term)
    crc = zlib.crc32(command, zlib.crc32(memoryview(head)[4:]))
    return b"".join((head, command, _CRC.pack(crc)))


def _decode_at(data: bytes, pos: int) -> tuple[Entry, int] | None:
    """The record at ``pos`` and the offset after it, or None if the record is short or bad."""
    if pos + _OVERHEAD > len(data):
        return None
    length, idx, term = _REC_HEAD.unpack_from(data, pos)
    end = pos + _REC_HEAD.size + length
    if end + _CRC.size > len(data):
        return None
    if zlib.crc32(memoryview(data)[pos + 4 : end]) != _CRC.unpack_from(data, end)[0]:
        return None
    return (data[pos + _REC_HEAD.size : end], idx, term), end + _CRC.size


def _valid_record_after(data: bytes, bad: int, prev_idx: int | None) -> int | None:
    """Offset of a valid record anywhere after the bad one at ``bad``, or None. Cheap filters
    run before the CRC: the length fits, and the idx is one a record that far on could have."""
    for p in range(bad + 1, len(data) - _OVERHEAD + 1):
        length, idx, _ = _REC_HEAD.unpack_from(data, p)
        if p + _OVERHEAD + length > len(data):
            continue
        if prev_idx is not None and not prev_idx < idx <= prev_idx + 1 + (p - bad) // _OVERHEAD:
            continue
        if _decode_at(data, p) is not None:
            return p
    return None


class DurableJournal:
    """The Raft log and meta of one replica, in ``directory`` (created if missing, locked)."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self._dir = Path(directory)
        self._fsync_enabled = fsync
        self.fsync_count = 0  # every fsync issued: log, meta and directory
        self.fsync_seconds_total = 0.0
        self.bytes_written = 0  # log bytes written: flushes and compaction rewrites
        self._failed: BaseException | None = None
        if not self._dir.is_dir():
            self._dir.mkdir(parents=True)
            parent = os.open(self._dir.parent, os.O_RDONLY | os.O_DIRECTORY)
            self._sync(parent, directory=True)  # the new directory entry must survive too
            os.close(parent)
        self._dirfd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._dirfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._dirfd)
            raise JournalError(f"{self._dir} is in use by another journal") from None
        self._entries: list[Entry] = []
        self._offsets: list[int] = []  # file offset of each entry's record, durable or pending
        self._pending = bytearray()  # encoded records after _file_end, not yet written
        self._file_end = len(_HEADER)
        self._fd = -1
        try:
            for leftover in (LOG_FILE + ".tmp", META_FILE + ".tmp"):
                (self._dir / leftover).unlink(missing_ok=True)
            self._meta = self._read_meta()
            self._persisted_commit: int = self._meta["commit"]
            if (self._dir / LOG_FILE).exists():
                self._load()
            else:
                self._rewrite(b"")
        except BaseException:
            self.close(flush=False)
            raise

    @overload
    def __getitem__(self, item: int) -> Entry: ...
    @overload
    def __getitem__(self, item: slice) -> list[Entry]: ...
    def __getitem__(self, item: int | slice) -> Entry | list[Entry]:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def dirty(self) -> bool:
        """True while added entries are buffered and not written: ``flush()`` has work to do."""
        return bool(self._pending)

    def add(self, command: bytes, idx: int, term: int) -> None:
        """Append an entry in memory and buffer its record. Nothing touches the disk."""
        if type(command) is not bytes:
            command = bytes(command)
        self._offsets.append(self._file_end + len(self._pending))
        self._pending += _encode(command, idx, term)
        self._entries.append((command, idx, term))

    def flush(self) -> None:
        """Write all buffered records with one write and one fdatasync. Free when clean."""
        if not self._pending:
            return
        with self._io():
            data, self._pending = self._pending, bytearray()
            view = memoryview(data)
            while view:
                view = view[os.pwrite(self._fd, view, self._file_end + len(data) - len(view)) :]
            self._sync(self._fd)
        self._file_end += len(data)
        self.bytes_written += len(data)

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        """Drop entries ``[entryFrom:]`` (a list offset). Durable on return if any were on disk."""
        i = slice(entryFrom).indices(len(self._entries))[1]
        if i == len(self._entries):
            return
        offset = self._offsets[i]
        del self._entries[i:], self._offsets[i:]
        if offset >= self._file_end:
            del self._pending[offset - self._file_end :]
            return
        with self._io():
            self._pending.clear()  # every buffered record lies after ``offset``
            os.ftruncate(self._fd, offset)
            self._sync(self._fd)
        self._file_end = offset
        if self._entries and self._persisted_commit > self._entries[-1][1]:
            self._store_meta(with_commit=True)  # never persist a commit index past the log end

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Drop entries ``[:entryTo]`` (a list offset) by an atomic rewrite. Durable on return."""
        i = slice(entryTo).indices(len(self._entries))[1]
        if i == 0:
            return
        self._check()
        start = self._offsets[i] if i < len(self._entries) else self._file_end + len(self._pending)
        if start < self._file_end:
            tail = os.pread(self._fd, self._file_end - start, start) + self._pending
        else:
            tail = bytes(self._pending[start - self._file_end :])
        shift = start - len(_HEADER)
        offsets = [o - shift for o in self._offsets[i:]]
        self._rewrite(tail)
        del self._entries[:i]
        self._offsets = offsets

    def clear(self) -> None:
        """Drop every entry by an atomic rewrite. Durable on return."""
        self._check()
        self._rewrite(b"")
        self._entries.clear()
        self._offsets.clear()

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        """Remember the commit index. ``onOneSecondTimer`` (or close) persists it."""
        self._meta["commit"] = raftCommitIndex

    def getRaftCommitIndex(self) -> int:
        return int(self._meta["commit"])

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:
        """Persist term and vote before returning. The log is not flushed (see module doc)."""
        if votedForNodeId is not None and not isinstance(votedForNodeId, str):
            raise TypeError(f"votedForNodeId must be a node id string, got {votedForNodeId!r}")
        self._meta["term"], self._meta["vote"] = term, votedForNodeId
        self._store_meta(with_commit=False)

    def getCurrentTerm(self) -> int:
        return int(self._meta["term"])

    def getVotedForNodeId(self) -> str | None:
        vote: str | None = self._meta["vote"]
        return vote

    def onOneSecondTimer(self) -> None:
        if self._commit_to_persist() != self._persisted_commit:
            self._store_meta(with_commit=True)

    def close(self, *, flush: bool = True) -> None:
        """Release the directory. ``flush=False`` drops buffered entries, like a crash does."""
        if self._dirfd < 0:
            return
        try:
            if flush and self._failed is None:
                self.flush()
                self.onOneSecondTimer()
        finally:
            if self._fd >= 0:
                os.close(self._fd)
            os.close(self._dirfd)  # also releases the lock
            self._fd = self._dirfd = -1

    def _destroy(self) -> None:
        self.close()

    def _check(self) -> None:
        if self._failed is not None:
            raise JournalError(f"journal in {self._dir} failed earlier") from self._failed
        if self._dirfd < 0:
            raise JournalError(f"journal in {self._dir} is closed")

    @contextmanager
    def _io(self) -> Iterator[None]:
        """Run disk writes; any error poisons the journal (the disk state is now unknown)."""
        self._check()
        try:
            yield
        except BaseException as e:
            self._failed = e
            raise

    def _sync(self, fd: int, *, directory: bool = False) -> None:
        if self._fsync_enabled:
            t0 = time.perf_counter()
            (os.fsync if directory else os.fdatasync)(fd)
            self.fsync_seconds_total += time.perf_counter() - t0
            self.fsync_count += 1

    def _atomic_write(self, name: str, data: bytes) -> int:
        """Write ``data`` as file ``name`` atomically. Returns an open read-write fd on it."""
        tmp = self._dir / (name + ".tmp")
        with self._io():
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                self._sync(fd)
                os.replace(tmp, self._dir / name)
                self._sync(self._dirfd, directory=True)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _rewrite(self, records: bytes) -> None:
        """Atomically replace the log by one holding just ``records``; drops the buffer."""
        fd = self._atomic_write(LOG_FILE, _HEADER + records)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._file_end = fd, len(_HEADER) + len(records)
        self._pending.clear()
        self.bytes_written += self._file_end

    def _store_meta(self, *, with_commit: bool) -> None:
        self._check()
        commit = self._persisted_commit
        if with_commit:
            self.flush()  # the commit index must not run ahead of the durable log
            commit = self._commit_to_persist()
        meta = {"v": _VERSION, "term": self._meta["term"], "vote": self._meta["vote"]}
        os.close(self._atomic_write(META_FILE, cbor2.dumps({**meta, "commit": commit})))
        self._persisted_commit = commit

    def _commit_to_persist(self) -> int:
        commit: int = self._meta["commit"]
        return min(commit, self._entries[-1][1]) if self._entries else commit

    def _read_meta(self) -> dict[str, Any]:
        try:
            raw = (self._dir / META_FILE).read_bytes()
        except FileNotFoundError:
            return {"term": 0, "vote": None, "commit": 1}
        try:
            meta = cbor2.loads(raw)
            if not isinstance(meta, dict) or meta.get("v") != _VERSION:
                raise ValueError(f"unexpected meta {meta!r}")
            if not isinstance(meta["vote"], str | None):
                raise TypeError(f"bad vote {meta['vote']!r}")
            return {"term": int(meta["term"]), "vote": meta["vote"], "commit": int(meta["commit"])}
        except Exception as e:
            raise JournalCorrupt(str(e), path=str(self._dir / META_FILE), offset=0) from e

    def _load(self) -> None:
        path = self._dir / LOG_FILE
        data = path.read_bytes()
        if data[: len(_HEADER)] != _HEADER:
            raise JournalCorrupt(f"bad header {data[:12]!r}", path=str(path), offset=0)
        pos = len(_HEADER)
        while (rec := _decode_at(data, pos)) is not None:
            self._entries.append(rec[0])
            self._offsets.append(pos)
            pos = rec[1]
        self._fd = os.open(path, os.O_RDWR)
        self._file_end = pos
        if pos == len(data):
            return
        prev_idx = self._entries[-1][1] if self._entries else None
        later = _valid_record_after(data, pos, prev_idx)
        if later is not None:
            msg = f"bad record followed by a valid one at offset {later}"
            raise JournalCorrupt(msg, path=str(path), offset=pos)
        log.warning("%s: cutting off a torn tail (%d bytes) at %d", path, len(data) - pos, pos)
        os.ftruncate(self._fd, pos)
        self._sync(self._fd)
