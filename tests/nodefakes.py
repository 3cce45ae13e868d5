"""Shared doubles for the node agent's tests: a status sink, an event sink, the cluster
objects a pod refers to, pod builders, and loop-driving helpers for a FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from control.api.clock import FakeClock
from node.runtime import procfs
from node.runtime.process import ProcessRuntime
from node.runtime.reaper import set_child_subreaper

Factory = Callable[[], Awaitable[ProcessRuntime]]


class Sink:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.terminated: list[str] = []

    def set_status(self, pod: Mapping[str, Any], status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def pod_terminated(self, pod: Mapping[str, Any]) -> None:
        self.terminated.append(pod["metadata"]["uid"])

    @property
    def last(self) -> dict[str, Any]:
        return self.statuses[-1] if self.statuses else {}

    def phases(self) -> list[str]:
        out: list[str] = []
        for s in self.statuses:
            if not out or out[-1] != s["phase"]:
                out.append(s["phase"])
        return out

    def container(self, name: str, *, init: bool = False) -> dict[str, Any]:
        key = "initContainerStatuses" if init else "containerStatuses"
        return next(c for c in self.last.get(key, []) if c["name"] == name)

    def condition(self, kind: str) -> dict[str, Any]:
        return next(c for c in self.last["conditions"] if c["type"] == kind)


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def event(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        assert obj["kind"] == "Pod"
        self.items.append((type, reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.items]


class Sources:
    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.service_list: list[dict[str, Any]] = []

    async def configmap(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.configmaps.get((namespace, name))

    async def secret(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.secrets.get((namespace, name))

    async def service_account_token(self, pod: Mapping[str, Any], *, audience: str,
                                    expiration_seconds: int) -> str | None:
        return "token-for-" + pod["metadata"]["name"]

    def services(self) -> Sequence[Mapping[str, Any]]:
        return self.service_list


def container(name: str, image: str = "busybox", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **extra}


def pod(name: str = "p", *, containers: Sequence[dict[str, Any]] = (),
        init: Sequence[dict[str, Any]] = (), restart: str = "Always", namespace: str = "default",
        **spec: Any) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                         "resourceVersion": "1"},
            "spec": {"containers": list(containers) or [container("c")],
                     **({"initContainers": list(init)} if init else {}),
                     "restartPolicy": restart, "terminationGracePeriodSeconds": 30,
                     "nodeName": "n1", **spec},
            "status": {"phase": "Pending"}}


async def settle(rounds: int = 100) -> None:
    """Let every ready task run (the fakes never block on anything but the clock)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(cond: Callable[[], object], *, timeout: float = 5.0) -> None:
    """Yield to the loop until ``cond()`` holds (real-time deadline)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0)


async def advance_until(clock: FakeClock, cond: Callable[[], object], *, step: float = 1.0,
                        limit: int = 5000) -> float:
    """Move the clock ``step`` at a time, letting the loop settle, until ``cond()`` holds;
    returns how far the clock moved."""
    moved = 0.0
    for _ in range(limit):
        await settle()
        if cond():
            return moved
        clock.advance(step)
        moved += step
    raise AssertionError(f"condition not reached after {moved}s of fake time")


async def poll(cond: Callable[[], Awaitable[Any]], *, timeout: float = 10.0) -> Any:
    """Await ``cond()`` until it is truthy (a real-time deadline, a short real interval)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def _kill_everything_under(root: Path) -> None:
    """Kill, by pid, every shim and container process whose state file is under ``root``
    (os.walk skips directories a still-running cleanup removes under it)."""
    states = [Path(d) / "state.json" for d, _, files in os.walk(root) if "state.json" in files]
    for state in states:
        with contextlib.suppress(Exception):
            info = json.loads(state.read_text())
            if procfs.is_same_process(info.get("pid"), info.get("pid_start")):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(info["pid"], signal.SIGKILL)
            if procfs.is_same_process(info.get("shim_pid"), info.get("shim_start")):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info["shim_pid"], signal.SIGKILL)


@contextlib.asynccontextmanager
async def process_runtimes(root: Path) -> AsyncIterator[Factory]:
    """A factory of ProcessRuntime instances over ``root`` (a second one is a restarted
    agent), each on its own loopback /24; at exit every pod is removed and every process
    left is killed by pid, and this process stops being a subreaper."""
    n = uuid.uuid4().int
    cidr = f"127.{200 + n % 50}.{n // 50 % 256}.0/24"
    made: list[ProcessRuntime] = []

    async def make() -> ProcessRuntime:
        rt = ProcessRuntime(str(root), pod_cidr=cidr, orphan_scan_seconds=0.05)
        await rt.start()
        made.append(rt)
        return rt

    try:
        yield make
    finally:
        if made:
            with contextlib.suppress(Exception):
                for sb in await made[-1].list_pod_sandboxes():
                    await asyncio.wait_for(made[-1].remove_pod_sandbox(sb.uid), 20)
        _kill_everything_under(root)
        for rt in made:
            await rt.close()
        set_child_subreaper(False)
