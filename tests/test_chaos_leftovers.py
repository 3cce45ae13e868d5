"""After a cluster chaos run stops its agents, container processes still alive are killed —
identified by their state file, or by the run record's fork time when an agent lost track of
one and its pod directory is gone (the orphan the uvloop double close left behind)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from chaos.cluster_observer import _forked_at, kill_leftovers


def _sleeper() -> tuple[subprocess.Popen[bytes], float]:
    mono = time.monotonic()  # as the shim records it: just before the fork
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]), mono


def test_the_fork_time_identifies_the_process_not_a_reused_pid() -> None:
    proc, mono = _sleeper()
    try:
        assert _forked_at(proc.pid, mono)
        assert not _forked_at(proc.pid, mono - 30)  # a run recorded long before: another process
    finally:
        proc.kill()
        proc.wait()
    assert not _forked_at(proc.pid, mono)


def test_a_process_whose_pod_directory_is_gone_is_killed(tmp_path: Path) -> None:
    proc, mono = _sleeper()
    run = {"node": "node-1", "uid": "u1", "id": "c1", "pid": proc.pid, "mono": mono,
           "namespace": "ns", "pod": "p", "container": "c"}
    tracker: Any = SimpleNamespace(live=lambda: [run])
    components: Any = SimpleNamespace(get=lambda name: SimpleNamespace(dir=tmp_path / name))
    try:
        notes = kill_leftovers(tracker, components)
        assert proc.wait(timeout=10) == -9
        want = f"container process {proc.pid} (ns/p c on node-1) outlived its agent; killed"
        assert notes == [want]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
