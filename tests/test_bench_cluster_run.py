"""`ketch bench cluster` for real, small: the whole control plane, 50 hollow nodes in two
processes and 500 saturation pods plus 25 latency pods on this machine — every pod runs,
nothing crashes, and no process of the benchmark is left afterwards.  No timing is asserted
(the figures are the benchmark's output, not a test's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parent.parent


def _ours(work: Path) -> list[str]:
    """Command lines of live processes that mention the work dir."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = (Path("/proc") / pid / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(work).encode() in a for a in argv):
            found.append(" ".join(a.decode(errors="replace") for a in argv))
    return found


def test_a_small_cluster_runs_every_pod_and_leaves_nothing_behind(tmp_path: Path) -> None:
    work = tmp_path / "bench"
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "-m", "ketch", "bench", "cluster", "--nodes", "50", "--pods", "500",
         "--per-process", "25", "--replicas", "50", "--rate", "100", "--latency-pods", "25",
         "--idle", "2", "--timeout", "300", "--dir", str(work), "--json", str(out)],
        check=False, cwd=_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    figures = json.loads(out.read_text())
    assert figures["crash"] == ""
    assert figures["running"] == {"saturation": 500, "latency": 25}
    assert figures["failed_pods"] == 0
    assert figures["startup"]["latency"]["startup"]["n"] == 25
    assert "pod startup" in proc.stdout and "API calls during saturation" in proc.stdout
    assert "load during saturation: store writes" in proc.stdout
    load = figures["traffic"]["saturation"]
    assert load["store_writes_per_s"] > 0 and load["lease_writes_per_s"] > 0
    assert load["watch_events_per_s"] > 0
    assert _ours(work) == []
