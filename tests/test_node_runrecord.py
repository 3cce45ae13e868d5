"""The node's run record (``--run-record``): every container process start and exit, written
by its shim with the pod's identity — also for a process killed while no agent watches, and
never for a container that could not start."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from node.runtime import runrecord
from node.runtime.api import ContainerConfig, ContainerState, PodSandboxConfig, StartError
from node.runtime.process import ProcessRuntime
from tests.nodefakes import poll, process_runtimes


async def _exited(rt: ProcessRuntime, cid: str) -> None:
    async def check() -> bool:
        return (await rt.container_status(cid)).state is ContainerState.EXITED

    await poll(check)


async def test_starts_and_exits_are_recorded_with_the_pods_identity(tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    async with process_runtimes(tmp_path / "rt") as make:
        first = await make()
        first.run_record, first.run_record_tags = str(record), {"node": "n1"}
        uid = str(uuid.uuid4())
        await first.run_pod_sandbox(PodSandboxConfig(
            uid=uid, name="job-1-abc", namespace="ns", labels={"app": "a"},
            annotations={"batch.kubernetes.io/job-completion-index": "1", "other": "x"}))
        before = time.monotonic()
        quick = await first.create_container(uid, ContainerConfig(
            name="quick", image="busybox", command=("sh", "-c", "exit 3")))
        await first.start_container(quick)
        slow = await first.create_container(uid, ContainerConfig(
            name="slow", image="busybox", command=("sleep", "30")))
        await first.start_container(slow)
        bad = await first.create_container(uid, ContainerConfig(
            name="bad", image="busybox", command=("no-such-command",)))
        with pytest.raises(StartError):
            await first.start_container(bad)
        await _exited(first, quick)
        await first.close()  # the agent goes away; its shims record on
        state = json.loads((Path(first.root) / "pods" / uid / "containers" / slow /
                            "state.json").read_text())
        os.kill(state["pid"], signal.SIGKILL)
        second = await make()
        await _exited(second, slow)
    lines, end = runrecord.read(str(record))
    assert end == record.stat().st_size
    by = {(r["container"], r["event"]): r for r in lines}
    assert set(by) == {("quick", "start"), ("quick", "exit"), ("slow", "start"),
                       ("slow", "exit")}  # the start error never ran
    assert by["quick", "exit"]["code"] == 3 and by["slow", "exit"]["code"] == 137
    start = by["quick", "start"]
    assert {k: start[k] for k in ("node", "uid", "namespace", "pod", "id", "attempt")} == {
        "node": "n1", "uid": uid, "namespace": "ns", "pod": "job-1-abc", "id": quick,
        "attempt": 0}
    assert start["labels"] == {"app": "a", "batch.kubernetes.io/job-completion-index": "1"}
    assert before <= start["mono"] < by["quick", "exit"]["mono"] <= time.monotonic()
    assert by["slow", "start"]["pid"] == by["slow", "exit"]["pid"] == state["pid"]


def test_a_partial_line_waits_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    runrecord.append(str(path), "start", 1.0, {"pod": "p"}, pid=1)
    with path.open("a") as f:
        f.write('{"event": "exi')
    lines, offset = runrecord.read(str(path))
    assert [r["event"] for r in lines] == ["start"]
    with path.open("a") as f:
        f.write('t", "mono": 2}\n')
    more, _ = runrecord.read(str(path), offset)
    assert [r["event"] for r in more] == ["exit"]
