"""The pod worker over the fake runtime and a fake clock: restart back-off, probe thresholds
and timeouts, phase transitions as the kubelet computes them, init containers, graceful
termination, and the bad inputs that must become a status, never a crash."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from control.api.clock import FakeClock
from node.pods.handlers import ActionContext, HandlerResult
from node.pods.worker import PodWorker, WorkerConfig
from node.runtime.api import ContainerStatus, ExecResult
from node.runtime.fake import FakeRuntime, Script
from tests.nodefakes import (
    Events,
    Sink,
    Sources,
    advance_until,
    container,
    pod,
    settle,
    until,
)


class Harness:
    def __init__(self, spec: dict[str, Any], config: WorkerConfig | None = None) -> None:
        self.clock = FakeClock()
        self.runtime = FakeRuntime(self.clock)
        self.sink, self.events, self.sources = Sink(), Events(), Sources()
        self.pod = spec
        self.worker = PodWorker(spec, runtime=self.runtime, clock=self.clock, sink=self.sink,
                                events=self.events, sources=self.sources, config=config)
        self.task: asyncio.Task[None] | None = None

    def starts(self, name: str) -> list[float]:
        """Fake-clock times (from 0) at which container ``name`` was started."""
        return [c[-1] - 1000.0 for c in self.runtime.calls if c[:2] == ("start", name)]

    def delete(self, grace: int = 30) -> None:
        meta = {**self.pod["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z",
                "deletionGracePeriodSeconds": grace}
        self.pod = {**self.pod, "metadata": meta}
        self.worker.update(self.pod)


@pytest.fixture
async def run() -> AsyncIterator[Any]:
    harnesses: list[Harness] = []

    async def start(spec: dict[str, Any], config: WorkerConfig | None = None) -> Harness:
        h = Harness(spec, config)
        h.task = asyncio.get_running_loop().create_task(h.worker.run())
        harnesses.append(h)
        await settle()
        return h

    yield start
    for h in harnesses:
        assert h.task is not None
        h.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await h.task
        await h.runtime.close()


# --- restart back-off ------------------------------------------------------------------------


async def test_crash_loop_back_off_doubles_to_the_cap(run: Any) -> None:
    h = await run(pod())
    h.runtime.script("c", Script(exit_after=1, exit_code=1))
    h.runtime.exit(h.runtime.running("c").id, 1)  # the first attempt crashes at once
    await advance_until(h.clock, lambda: len(h.starts("c")) >= 9)
    starts = h.starts("c")
    # each attempt runs 1 s; the kubelet restarts at once the first time, then waits 10 s,
    # doubling, capped at 300 s, counted from the exit
    waits = [round(b - a - (1 if i else 0)) for i, (a, b) in enumerate(itertools.pairwise(starts))]
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


async def test_crash_loop_status_shows_back_off_and_last_termination(run: Any) -> None:
    h = await run(pod())
    h.runtime.script("c", Script(exit_after=1, exit_code=3))
    h.runtime.exit(h.runtime.running("c").id, 3)
    await advance_until(h.clock, lambda: len(h.starts("c")) >= 2)
    await advance_until(h.clock, lambda: "waiting" in h.sink.container("c")["state"],
                        step=0.5)
    c = h.sink.container("c")
    assert c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert c["state"]["waiting"]["message"].startswith(
        "back-off 10s restarting failed container=c pod=p_default(")
    assert c["lastState"]["terminated"]["exitCode"] == 3
    assert c["lastState"]["terminated"]["reason"] == "Error"
    assert c["restartCount"] == 1 and c["ready"] is False
    assert h.sink.last["phase"] == "Running"  # restarting containers keep the pod Running
    assert h.sink.condition("Ready")["status"] == "False"
    assert "BackOff" in h.events.reasons()


async def test_back_off_cap_is_configurable(run: Any) -> None:
    h = await run(pod(), WorkerConfig(backoff_cap=40))
    h.runtime.script("c", Script(exit_after=0.5, exit_code=1))
    h.runtime.exit(h.runtime.running("c").id, 1)
    await advance_until(h.clock, lambda: len(h.starts("c")) >= 7, step=0.5)
    s = h.starts("c")
    waits = [round(b - a - (0.5 if i else 0)) for i, (a, b) in enumerate(itertools.pairwise(s))]
    assert waits == [0, 10, 20, 40, 40, 40]


# --- phases for each restartPolicy ---------------------------------------------------------


@pytest.mark.parametrize(("policy", "codes", "phase", "starts"), [
    pytest.param("Never", [0], "Succeeded", 1, id="never-success"),
    pytest.param("Never", [2], "Failed", 1, id="never-failure"),
    pytest.param("OnFailure", [1, 0], "Succeeded", 2, id="onfailure-retries-then-succeeds"),
    pytest.param("OnFailure", [0], "Succeeded", 1, id="onfailure-success"),
])
async def test_phase_transitions(run: Any, policy: str, codes: list[int], phase: str,
                                 starts: int) -> None:
    spec = pod(restart=policy)
    h = Harness(spec)
    h.runtime.script("c", *[Script(exit_after=5, exit_code=code) for code in codes])
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await advance_until(h.clock, lambda: h.sink.last.get("phase") == phase)
        assert h.sink.phases() == ["Running", phase]
        assert len(h.starts("c")) == starts
        term = h.sink.container("c")["state"]["terminated"]
        assert term["exitCode"] == codes[-1]
        assert term["reason"] == ("Completed" if codes[-1] == 0 else "Error")
        ready = h.sink.condition("Ready")
        assert ready["status"] == "False"
        assert ready["reason"] == ("PodCompleted" if phase == "Succeeded" else "PodFailed")
        assert ("stop_sandbox", spec["metadata"]["uid"]) in [c[:2] for c in h.runtime.calls]
        # finished for good: nothing starts again
        h.clock.advance(600)
        await settle()
        assert len(h.starts("c")) == starts
    finally:
        h.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await h.task


async def test_always_restarts_even_after_success(run: Any) -> None:
    h = await run(pod(restart="Always"))
    h.runtime.script("c", Script(exit_after=5, exit_code=0))
    h.runtime.exit(h.runtime.running("c").id, 0)
    await advance_until(h.clock, lambda: len(h.starts("c")) >= 3)
    assert h.sink.phases() == ["Running"]
    assert h.sink.container("c")["restartCount"] == 2


async def test_pending_until_started_then_running_and_ready(run: Any) -> None:
    h = Harness(pod())
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await until(lambda: h.sink.statuses)
        s = h.sink.last
        assert s["phase"] == "Running"
        assert [c["type"] for c in s["conditions"]] == [
            "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
            "PodScheduled"]
        assert all(c["status"] == "True" for c in s["conditions"])
        assert s["podIP"].startswith("127.") and s["podIPs"] == [{"ip": s["podIP"]}]
        assert s["startTime"] == "2026-01-01T00:00:00Z"
        assert s["qosClass"] == "BestEffort"
        c = h.sink.container("c")
        assert c["ready"] and c["started"] and c["restartCount"] == 0
        assert c["containerID"].startswith("fake://")
    finally:
        h.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await h.task


async def test_a_ready_condition_another_writer_changed_is_written_back(run: Any) -> None:
    """The node lifecycle controller marks pods Ready=False when it loses sight of the node;
    once the pod is seen again with that status the worker reports its own Ready=True again,
    although nothing changed on the node (the kubelet's needsReconcile)."""
    h = await run(pod())
    await until(lambda: h.sink.statuses and h.sink.condition("Ready")["status"] == "True")
    ours = h.sink.last
    marked = {**ours, "conditions": [{**c, "status": "False"} if c["type"] == "Ready" else c
                                     for c in ours["conditions"]]}
    count = len(h.sink.statuses)
    h.worker.update({**h.pod, "status": marked})
    await until(lambda: len(h.sink.statuses) > count)
    assert h.sink.condition("Ready")["status"] == "True"
    count = len(h.sink.statuses)
    h.worker.update({**h.pod, "status": h.sink.last})  # our write came back: nothing to do
    await settle()
    assert len(h.sink.statuses) == count


# --- init containers -----------------------------------------------------------------------


async def test_init_containers_run_in_order_before_the_app(run: Any) -> None:
    spec = pod(init=[container("i1"), container("i2")], containers=[container("app")])
    h = Harness(spec)
    h.runtime.script("i1", Script(exit_after=2))
    h.runtime.script("i2", Script(exit_after=3))
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await settle()
        assert h.sink.last["phase"] == "Pending"
        assert h.sink.condition("Initialized")["status"] == "False"
        assert h.sink.condition("Initialized")["message"] == \
            "containers with incomplete status: [i1 i2]"
        assert h.sink.container("app")["state"]["waiting"]["reason"] == "PodInitializing"
        await advance_until(h.clock, lambda: h.runtime.running("app") is not None)
        order = [c[1] for c in h.runtime.calls if c[0] == "start"]
        assert order == ["i1", "i2", "app"]
        assert h.starts("i2")[0] == 2 and h.starts("app")[0] == 5
        await settle()
        assert h.sink.last["phase"] == "Running"
        assert h.sink.condition("Initialized")["status"] == "True"
        i1 = h.sink.container("i1", init=True)
        assert i1["state"]["terminated"]["reason"] == "Completed" and i1["ready"]
    finally:
        h.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await h.task


async def test_failed_init_container_fails_the_pod_under_never(run: Any) -> None:
    spec = pod(init=[container("i1")], containers=[container("app")], restart="Never")
    h = Harness(spec)
    h.runtime.script("i1", Script(exit_after=1, exit_code=7))
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await advance_until(h.clock, lambda: h.sink.last.get("phase") == "Failed")
        assert h.runtime.instances("app") == []
        assert h.sink.container("i1", init=True)["state"]["terminated"]["exitCode"] == 7
        assert h.sink.container("app")["state"]["waiting"]["reason"] == "PodInitializing"
        h.clock.advance(100)
        await settle()
        assert len(h.starts("i1")) == 1
    finally:
        h.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await h.task


async def test_failed_init_container_restarts_with_back_off_under_always(run: Any) -> None:
    spec = pod(init=[container("i1")], containers=[container("app")])
    h = Harness(spec)
    h.runtime.script("i1", Script(exit_after=1, exit_code=1), Script(exit_after=1, exit_code=1),
                     Script(exit_after=1, exit_code=0))
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await advance_until(h.clock, lambda: "waiting" in (
            h.sink.container("i1", init=True)["state"] if h.sink.statuses else {}), step=0.5)
        assert h.sink.container("i1", init=True)["state"]["waiting"]["reason"] == \
            "CrashLoopBackOff"
        assert h.sink.last["phase"] == "Pending"
        await advance_until(h.clock, lambda: h.runtime.running("app") is not None)
        assert [round(t) for t in h.starts("i1")] == [0, 1, 12]
        assert h.sink.container("i1", init=True)["restartCount"] == 2
    finally:
        h.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await h.task


async def test_sidecar_init_container_runs_beside_the_app(run: Any) -> None:
    spec = pod(init=[container("side", restartPolicy="Always"), container("i2")],
               containers=[container("app")], restart="Never")
    h = Harness(spec)
    h.runtime.script("i2", Script(exit_after=1))
    h.runtime.script("app", Script(exit_after=4))
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await advance_until(h.clock, lambda: h.runtime.running("app") is not None)
        assert h.runtime.running("side") is not None
        await advance_until(h.clock, lambda: h.sink.last.get("phase") == "Succeeded")
        # the sidecar is stopped once the app has finished
        assert h.runtime.running("side") is None
        assert ("signal", "side", "SIGTERM") in [c[:3] for c in h.runtime.calls]
    finally:
        h.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await h.task


# --- probes --------------------------------------------------------------------------------


class ScriptedActions:
    """Probe/hook results by (container, kind): a list consumed in order (the last repeats);
    ``hang`` makes the action never answer (the timeout must end it)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.results: dict[str, list[bool | str]] = {}
        self.calls: list[tuple[str, float]] = []

    async def run(self, action: Mapping[str, Any], ctx: ActionContext,
                  timeout: float) -> HandlerResult:
        from node.pods.handlers import with_timeout

        key = str((action.get("exec") or {}).get("command", ["?"])[0])
        self.calls.append((key, self.clock.monotonic()))
        queue = self.results.get(key, [True])
        result = queue.pop(0) if len(queue) > 1 else queue[0]
        if result == "hang":
            try:
                await with_timeout(self.clock, timeout, asyncio.Event().wait())
            except TimeoutError:
                return HandlerResult(False, "timed out")
        return HandlerResult(bool(result), "" if result else "probe said no")


def probe(name: str, **extra: Any) -> dict[str, Any]:
    return {"exec": {"command": [name]}, "periodSeconds": 10, "timeoutSeconds": 1,
            "successThreshold": 1, "failureThreshold": 3, **extra}


async def start_with_actions(spec: dict[str, Any], **results: list[bool | str]
                             ) -> tuple[Harness, ScriptedActions]:
    h = Harness(spec)
    actions = ScriptedActions(h.clock)
    actions.results.update(results)
    h.worker = PodWorker(spec, runtime=h.runtime, clock=h.clock, sink=h.sink,
                         events=h.events, sources=h.sources, actions=actions)
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    await settle()
    return h, actions


async def stop(h: Harness) -> None:
    assert h.task is not None
    h.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await h.task
    await h.runtime.close()


async def test_readiness_follows_the_thresholds() -> None:
    spec = pod(containers=[container("c", readinessProbe=probe(
        "ready", initialDelaySeconds=5, successThreshold=2, failureThreshold=2))])
    h, actions = await start_with_actions(spec, ready=[True, True, False, True, False, False])
    try:
        assert h.sink.container("c")["ready"] is False  # not ready before the first success
        await advance_until(h.clock, lambda: h.sink.container("c")["ready"])
        # two successes needed: the probes at 5 s and 15 s
        assert [t - 1000 for _, t in actions.calls] == [5, 15]
        assert h.sink.condition("Ready")["status"] == "True"
        # one failure (25 s) is not enough, a success resets the count, two failures unready
        await advance_until(h.clock, lambda: not h.sink.container("c")["ready"])
        assert [t - 1000 for _, t in actions.calls] == [5, 15, 25, 35, 45, 55]
        assert h.sink.condition("Ready")["reason"] == "ContainersNotReady"
        assert h.sink.condition("Ready")["message"] == "containers with unready status: [c]"
        assert h.runtime.running("c") is not None  # readiness never restarts
        assert h.events.reasons().count("Unhealthy") == 3
    finally:
        await stop(h)


async def test_liveness_failures_restart_the_container() -> None:
    spec = pod(containers=[container("c", livenessProbe=probe("alive"))])
    h, _actions = await start_with_actions(spec, alive=[True, False, False, False, True])
    first = h.runtime.running("c")
    assert first is not None
    try:
        await advance_until(h.clock, lambda: len(h.starts("c")) == 2)
        # failures at 10, 20, 30 s: killed at the third, restarted at once (first restart)
        assert h.starts("c") == [0, 30]
        assert ("signal", "c", "SIGTERM", 30.0) in [c[:4] for c in h.runtime.calls]
        killing = [m for _, r, m in h.events.items if r == "Killing"]
        assert killing == ["Container c failed liveness probe, will be restarted"]
        await settle()
        c = h.sink.container("c")
        assert c["restartCount"] == 1 and c["lastState"]["terminated"]["exitCode"] == 143
    finally:
        await stop(h)


async def test_a_hanging_probe_times_out_as_a_failure() -> None:
    spec = pod(containers=[container("c", livenessProbe=probe(
        "hang", timeoutSeconds=2, failureThreshold=1))])
    h, _actions = await start_with_actions(spec, hang=["hang"])
    try:
        await advance_until(h.clock, lambda: len(h.starts("c")) == 2, step=0.5)
        # probed at 0 s, gave up at 2 s: one failure is the threshold
        assert h.starts("c") == [0, 2]
        assert any("Liveness probe failed: timed out" in m for _, _, m in h.events.items)
    finally:
        await stop(h)


async def test_startup_probe_holds_liveness_and_readiness() -> None:
    spec = pod(containers=[container(
        "c", startupProbe=probe("boot", periodSeconds=1, failureThreshold=30),
        livenessProbe=probe("alive"), readinessProbe=probe("ready"))])
    h, actions = await start_with_actions(spec, boot=[False, False, True])
    try:
        await settle()
        c = h.sink.container("c")
        assert c["started"] is False and c["ready"] is False
        await advance_until(h.clock, lambda: h.sink.container("c")["started"], step=0.5)
        await settle()
        # liveness and readiness begin only once the startup probe has passed (at 2 s)
        assert min(t for k, t in actions.calls if k != "boot") == 1002
        await advance_until(h.clock, lambda: h.sink.container("c")["ready"], step=0.5)
        assert {k for k, _ in actions.calls} == {"boot", "alive", "ready"}
        assert [t - 1000 for k, t in actions.calls if k == "boot"] == [0, 1, 2]
    finally:
        await stop(h)


async def test_startup_probe_failure_kills_the_container() -> None:
    spec = pod(containers=[container("c", startupProbe=probe(
        "boot", periodSeconds=2, failureThreshold=2))], restart="Never")
    h, _actions = await start_with_actions(spec, boot=[False])
    try:
        await advance_until(h.clock, lambda: h.sink.last.get("phase") == "Failed")
        assert h.starts("c") == [0]  # Never: killed, not restarted
        assert any("failed startup probe" in m for _, _, m in h.events.items)
    finally:
        await stop(h)


# --- termination ---------------------------------------------------------------------------


async def test_graceful_termination_runs_prestop_then_sigterm_then_sigkill() -> None:
    spec = pod(containers=[container("c", lifecycle={"preStop": {"exec": {
        "command": ["drain"]}}})])
    h = Harness(spec)

    async def exec_handler(c: ContainerStatus, command: Any) -> ExecResult:
        await h.clock.sleep(4)  # the hook takes 4 s of the grace period
        return ExecResult(0, b"")

    h.runtime.exec_handler = exec_handler
    h.runtime.script("c", Script(ignore_sigterm=True))
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await settle()
        h.delete(grace=10)
        await advance_until(h.clock, lambda: h.sink.terminated, step=0.5)
        calls = [c for c in h.runtime.calls if c[0] in ("exec", "signal")]
        assert [c[:3] for c in calls] == [("exec", "c", ("drain",)), ("signal", "c", "SIGTERM"),
                                          ("signal", "c", "SIGKILL")]
        # preStop at 0 s, SIGTERM with the 6 s left at 4 s, SIGKILL at the deadline (10 s)
        assert calls[1][3] == 6 and calls[1][-1] - 1000 == 4 and calls[2][-1] - 1000 == 10
        assert h.sink.terminated == [spec["metadata"]["uid"]]
        c = h.sink.container("c")
        assert c["state"]["terminated"]["exitCode"] == 137
        assert h.sink.last["phase"] == "Failed"
        assert h.sink.condition("Ready")["status"] == "False"
        # removal (the API object is gone) removes the sandbox and ends the worker
        h.worker.remove()
        await until(lambda: h.task is not None and h.task.done())
        assert h.runtime.sandboxes == {}
    finally:
        if not h.task.done():
            h.task.cancel()
        await h.runtime.close()


async def test_termination_gives_at_least_two_seconds_after_a_slow_prestop() -> None:
    spec = pod(containers=[container("c", lifecycle={"preStop": {"exec": {
        "command": ["slow"]}}})])
    h = Harness(spec)

    async def exec_handler(c: ContainerStatus, command: Any) -> ExecResult:
        await asyncio.Event().wait()  # never returns: the grace period ends it
        raise AssertionError

    h.runtime.exec_handler = exec_handler
    h.runtime.script("c", Script(ignore_sigterm=True))
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await settle()
        h.delete(grace=5)
        await advance_until(h.clock, lambda: h.sink.terminated, step=0.5)
        signals = [c for c in h.runtime.calls if c[0] == "signal"]
        assert signals[0][2:4] == ("SIGTERM", 2.0) and signals[0][-1] - 1000 == 5
        assert signals[1][2] == "SIGKILL" and signals[1][-1] - 1000 == 7
        assert "FailedPreStopHook" in h.events.reasons()
    finally:
        h.task.cancel()
        await h.runtime.close()


async def test_deletion_while_pending_stops_cleanly(run: Any) -> None:
    spec = pod(containers=[container("c", image="no/such-image")])
    h = await run(spec)
    h.delete(grace=30)
    await until(lambda: h.sink.terminated)
    assert h.runtime.instances("c") == []


# --- bad input -----------------------------------------------------------------------------


async def test_unknown_image_is_err_image_pull_then_back_off(run: Any) -> None:
    h = await run(pod(containers=[container("c", image="example.com/nope:1")]))
    c = h.sink.container("c")
    assert c["state"]["waiting"]["reason"] == "ErrImagePull"
    assert "not found" in c["state"]["waiting"]["message"]
    assert h.sink.last["phase"] == "Pending"
    await advance_until(h.clock, lambda: h.sink.container("c")["state"]["waiting"]["reason"]
                        == "ImagePullBackOff", step=0.5)
    assert 'Back-off pulling image "example.com/nope:1"' in \
        h.sink.container("c")["state"]["waiting"]["message"]
    assert "Failed" in h.events.reasons() and "BackOff" in h.events.reasons()
    pulls = [c[-1] - 1000 for c in h.runtime.calls if c[0] == "pull"]
    await advance_until(h.clock, lambda: len([c for c in h.runtime.calls
                                              if c[0] == "pull"]) >= 3, step=0.5)
    pulls = [c[-1] - 1000 for c in h.runtime.calls if c[0] == "pull"]
    assert pulls == [0, 10, 30]


async def test_missing_configmap_volume_keeps_the_pod_creating(run: Any) -> None:
    spec = pod(containers=[container("c", volumeMounts=[{"name": "cfg",
                                                         "mountPath": "/etc/cfg"}])],
               volumes=[{"name": "cfg", "configMap": {"name": "settings"}}])
    h = Harness(spec)
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await settle()
        assert h.sink.last["phase"] == "Pending"
        assert h.sink.container("c")["state"]["waiting"]["reason"] == "ContainerCreating"
        assert h.events.items == [("Warning", "FailedMount",
                                   ('MountVolume.SetUp failed for volume "cfg" : configmap '
                                   '"settings" not found'))]
        assert h.runtime.sandboxes == {}
        h.sources.configmaps[("default", "settings")] = {"data": {"k": "v"}}
        await advance_until(h.clock, lambda: h.runtime.running("c") is not None)
        assert h.sink.last["phase"] == "Running"
    finally:
        h.task.cancel()
        await h.runtime.close()


async def test_missing_env_configmap_is_create_container_config_error(run: Any) -> None:
    h = await run(pod(containers=[container("c", env=[{"name": "X", "valueFrom": {
        "configMapKeyRef": {"name": "cm", "key": "x"}}}])]))
    waiting = h.sink.container("c")["state"]["waiting"]
    assert waiting == {"reason": "CreateContainerConfigError",
                       "message": 'configmap "cm" not found'}
    h.sources.configmaps[("default", "cm")] = {"data": {"y": "1"}}
    h.worker.wake()
    await settle()
    assert h.sink.container("c")["state"]["waiting"]["message"] == \
        "couldn't find key x in ConfigMap default/cm"
    h.sources.configmaps[("default", "cm")] = {"data": {"x": "1"}}
    h.worker.wake()
    await until(lambda: h.runtime.running("c") is not None)


async def test_a_command_that_cannot_start_is_run_container_error(run: Any) -> None:
    spec = pod(containers=[container("c")], restart="Never")
    h = Harness(spec)
    h.runtime.script("c", Script(start_error='exec: "nope": executable file not found in $PATH'))
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await settle()
        c = h.sink.container("c")
        assert c["state"]["terminated"]["reason"] == "StartError"
        assert c["state"]["terminated"]["exitCode"] == 128
        assert h.sink.last["phase"] == "Failed"
    finally:
        h.task.cancel()
        await h.runtime.close()


async def test_never_two_instances_of_one_container(run: Any) -> None:
    h = await run(pod())
    for _ in range(5):
        h.worker.wake()
        h.worker.update(h.pod)
        await settle()
    running = [c for c in h.runtime.containers.values() if c.state.value == "running"]
    assert len(running) == 1


async def test_a_restarted_worker_adopts_running_containers_and_counts_restarts() -> None:
    spec = pod()
    h = Harness(spec)
    h.runtime.script("c", Script(exit_after=2, exit_code=1), Script())
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    await advance_until(h.clock, lambda: len(h.starts("c")) == 2)
    h.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await h.task
    # a new worker (an agent restart) over the same runtime: nothing new starts
    sink = Sink()
    again = PodWorker(spec, runtime=h.runtime, clock=h.clock, sink=sink, events=Events(),
                      sources=h.sources)
    task = asyncio.get_running_loop().create_task(again.run())
    try:
        await settle()
        assert len(h.starts("c")) == 2
        assert sink.container("c")["restartCount"] == 1
        assert sink.last["phase"] == "Running"
    finally:
        task.cancel()
        await h.runtime.close()


async def test_old_instances_are_removed_keeping_the_previous_one(run: Any) -> None:
    h = await run(pod())
    h.runtime.script("c", Script(exit_after=1, exit_code=1))
    h.runtime.exit(h.runtime.running("c").id, 1)
    await advance_until(h.clock, lambda: len(h.starts("c")) >= 4)
    await settle()
    assert [c.attempt for c in h.runtime.instances("c")] == [2, 3]


async def test_a_failing_post_start_hook_kills_the_container(run: Any) -> None:
    spec = pod(containers=[container("c", lifecycle={"postStart": {"exec": {
        "command": ["setup"]}}})], restart="OnFailure")
    h = Harness(spec)
    answers = [ExecResult(1, b"setup failed"), ExecResult(0, b"")]

    async def exec_handler(c: ContainerStatus, command: Any) -> ExecResult:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    h.runtime.exec_handler = exec_handler
    h.task = asyncio.get_running_loop().create_task(h.worker.run())
    try:
        await advance_until(h.clock, lambda: len(h.starts("c")) == 2)
        assert "FailedPostStartHook" in h.events.reasons()
        assert next(c[:3] for c in h.runtime.calls if c[0] == "signal") == ("signal", "c",
                                                                            "SIGTERM")
        await settle()
        c = h.sink.container("c")
        assert "running" in c["state"] and c["restartCount"] == 1
    finally:
        h.task.cancel()
        await h.runtime.close()


async def test_an_adopted_container_keeps_started_and_ready() -> None:
    spec = pod(containers=[container("c", startupProbe=probe("boot"),
                                     readinessProbe=probe("ready"))])
    h, actions = await start_with_actions(spec, boot=[True], ready=[True])
    await advance_until(h.clock, lambda: h.sink.container("c")["ready"])
    reported = h.sink.last
    assert h.task is not None
    h.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await h.task
    # the agent restarts: the API has the old status; the probes now fail at first
    actions.results = {"boot": [False], "ready": [False]}
    again = PodWorker({**spec, "status": reported}, runtime=h.runtime, clock=h.clock,
                      sink=(sink := Sink()), events=Events(), sources=h.sources,
                      actions=actions)
    task = asyncio.get_running_loop().create_task(again.run())
    try:
        await settle()
        c = sink.container("c")
        assert c["started"] and c["ready"]  # not reset by the restart
        calls = len(actions.calls)
        await advance_until(h.clock, lambda: not sink.container("c")["ready"])
        assert {k for k, _ in actions.calls[calls:]} == {"ready"}  # startup is not re-run
    finally:
        task.cancel()
        await h.runtime.close()


async def test_manager_runs_removes_and_cleans_up() -> None:
    from node.pods.manager import PodWorkers

    clock = FakeClock()
    rt = FakeRuntime(clock)
    sink = Sink()
    workers = PodWorkers(runtime=rt, clock=clock, sink=sink, events=Events(),
                         sources=Sources())
    a, b = pod("a"), pod("b")
    workers.update(a)  # before run: started when it runs
    task = asyncio.get_running_loop().create_task(workers.run())
    try:
        workers.update(b)
        await until(lambda: rt.running("c", b["metadata"]["uid"]) is not None
                    and rt.running("c", a["metadata"]["uid"]) is not None)
        assert workers.find("default", "a") is workers.workers[a["metadata"]["uid"]]
        assert workers.find("default", "a", uid=b["metadata"]["uid"]) is None
        # a leftover sandbox of a pod deleted while the agent was down
        from node.runtime.api import PodSandboxConfig

        await rt.run_pod_sandbox(PodSandboxConfig(uid="gone", name="gone", namespace="x"))
        await workers.cleanup([a["metadata"]["uid"], b["metadata"]["uid"]])
        assert set(rt.sandboxes) == {a["metadata"]["uid"], b["metadata"]["uid"]}
        workers.delete(a["metadata"]["uid"])  # force-deleted: stopped and removed
        await advance_until(clock, lambda: a["metadata"]["uid"] not in workers.workers)
        assert set(rt.sandboxes) == {b["metadata"]["uid"]}
        assert rt.running("c", b["metadata"]["uid"]) is not None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await rt.close()
    assert rt.running("c", b["metadata"]["uid"]) is not None  # the agent stops, pods run on
