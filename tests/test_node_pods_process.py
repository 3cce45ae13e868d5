"""Pod workers over the real process runtime and the real clock: a web pod becomes Ready by
its HTTP readiness probe and terminates gracefully on deletion; a crashing container loops
through back-off; a missing image never crashes the worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from control.api.clock import RealClock
from node.pods.manager import PodWorkers
from node.pods.worker import WorkerConfig
from node.runtime.logs import read_log
from node.runtime.process import ProcessRuntime
from tests.nodefakes import Events, Sink, Sources, container, pod, poll, process_runtimes


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[ProcessRuntime, PodWorkers, Sink,
                                                      Events]]:
    async with process_runtimes(tmp_path / "rt") as make:
        async for parts in _node(await make()):
            yield parts


async def _node(rt: ProcessRuntime) -> AsyncIterator[tuple[ProcessRuntime, PodWorkers, Sink,
                                                           Events]]:
    sink, events = Sink(), Events()
    workers = PodWorkers(runtime=rt, clock=RealClock(), sink=sink, events=events,
                         sources=Sources(), config=WorkerConfig(
                             host_ip="127.0.0.1", backoff_initial=0.2, backoff_cap=0.4,
                             resync_seconds=0.5))
    task = asyncio.get_running_loop().create_task(workers.run())
    try:
        yield rt, workers, sink, events
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_web_pod_becomes_ready_and_terminates_gracefully(node: Any) -> None:
    rt, workers, sink, events = node
    spec = pod("web", containers=[container(
        "nginx", image="nginx:1.27", ports=[{"containerPort": 80, "name": "http"}],
        readinessProbe={"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo bye"]}}})])
    workers.update(spec)

    async def ready() -> bool:
        return bool(sink.statuses) and sink.condition("Ready")["status"] == "True"

    await poll(ready)
    assert sink.last["phase"] == "Running" and sink.last["podIP"].startswith("127.")
    cid = sink.container("nginx")["containerID"].partition("://")[2]
    deleted = {**spec, "metadata": {**spec["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z",
                                    "deletionGracePeriodSeconds": 5}}
    workers.update(deleted)

    async def terminated() -> bool:
        return bool(sink.terminated)

    await poll(terminated)
    state = sink.container("nginx")["state"]["terminated"]
    assert (state["exitCode"], state["reason"]) == (0, "Completed")  # it handles SIGTERM
    assert sink.last["phase"] == "Succeeded"
    assert [r for r in events.reasons() if r in ("Killing", "FailedPreStopHook")] == ["Killing"]
    assert b"GET /healthz" in b"".join([c async for c in read_log(rt.log_path(cid))])
    workers.delete(spec["metadata"]["uid"])

    async def removed() -> bool:
        return not await rt.list_pod_sandboxes()

    await poll(removed)


async def test_a_crashing_container_loops_and_keeps_its_previous_log(node: Any) -> None:
    rt, workers, sink, _ = node
    spec = pod("crash", containers=[container("c", command=["sh", "-c",
                                                            "echo run; exit 3"])])
    workers.update(spec)

    async def restarted_twice() -> bool:
        return bool(sink.statuses) and sink.container("c")["restartCount"] >= 2

    await poll(restarted_twice)
    c = sink.container("c")
    assert c["lastState"]["terminated"]["exitCode"] == 3
    previous = c["lastState"]["terminated"]["containerID"].partition("://")[2]
    assert b"".join([x async for x in read_log(rt.log_path(previous))]) == b"run\n"
    assert len(await rt.list_containers(spec["metadata"]["uid"])) <= 2


async def test_bad_input_becomes_status_not_a_crash(node: Any, tmp_path: Path) -> None:
    _, workers, sink, events = node
    workers.update(pod("bad", containers=[
        container("img", image="example.com/nothing:1"),
        container("cmd", command=["definitely-not-a-command"])], restart="Never"))

    async def settled() -> bool:
        if not sink.statuses:
            return False
        return "waiting" in sink.container("img")["state"] and \
            "terminated" in sink.container("cmd")["state"]

    await poll(settled)
    assert sink.container("img")["state"]["waiting"]["reason"] in ("ErrImagePull",
                                                                  "ImagePullBackOff")
    term = sink.container("cmd")["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (128, "StartError")
    assert "executable file not found" in term["message"]
    assert "Failed" in events.reasons()
