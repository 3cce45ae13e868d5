"""The Raft snapshot file: one CBOR document (never pickle), written by the forked child
pysyncobj starts for it (see :mod:`store.replica`), read back on start or after a snapshot
arrives from the leader.

The document is ``{"format": 1, "last": [...], "prev": [...], "cluster": [...],
"machine": Machine.dump()}``; :func:`write` syncs as it goes and once more at the end, and
:func:`read` refuses a file that is not one.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
from typing import IO, Any, cast

import cbor2

__all__ = ["FORMAT", "SYNC_BYTES", "SyncedWriter", "become_writer_child", "read", "write"]

FORMAT = 1
SYNC_BYTES = 64 * 2**20
_PR_SET_PDEATHSIG = 1


def become_writer_child(parent: int) -> None:
    """In the forked snapshot writer: die with the replica ``parent`` (an orphan finishing
    late could rename its older snapshot over one a restarted replica wrote after compacting
    its log), hold none of the replica's sockets and files (so a restarted replica can bind
    its ports, and peers see closed connections close), let a signal to the process group end
    it, never collect garbage (a finalizer of an inherited object could close a descriptor
    number reused since), and take only the CPU the replicas and their neighbours leave (three
    dumps at full priority held the whole 2-core benchmark machine for ten seconds)."""
    with contextlib.suppress(OSError, AttributeError):  # Linux only: prctl(PR_SET_PDEATHSIG)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)
    gc.disable()
    os.nice(19)
    with contextlib.suppress(ValueError):  # only the main thread may; the loop's usually is
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))


class SyncedWriter:
    """Writes through to ``f``, syncing every :data:`SYNC_BYTES`: a snapshot of hundreds of
    MB never leaves that much dirty data for the journal's next fsync to wait behind (ext4's
    ordered mode can commit them together)."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self._unsynced = 0

    def writable(self) -> bool:  # cbor2 asks
        return True

    def write(self, data: bytes) -> int:
        n: int = self._f.write(data)
        self._unsynced += n
        if self._unsynced >= SYNC_BYTES:
            self._f.flush()
            os.fdatasync(self._f.fileno())
            self._unsynced = 0
        return n


def write(path: str, doc: dict[str, Any]) -> None:
    """``doc`` (with ``format`` set here) to ``path``, on disk when this returns."""
    with open(path, "wb") as f:
        cbor2.dump({"format": FORMAT, **doc}, cast(IO[bytes], SyncedWriter(f)))  # only write()
        f.flush()
        os.fsync(f.fileno())


def read(path: str) -> dict[str, Any]:
    """The document in ``path``; ValueError if it is not a ketch snapshot."""
    with open(path, "rb") as f:
        doc = cbor2.load(f)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a ketch snapshot")
    return doc
