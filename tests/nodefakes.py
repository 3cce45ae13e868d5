"""Shared doubles for the node agent's tests: a status sink, an event sink, the cluster
objects a pod refers to, pod builders, and loop-driving helpers for a FakeClock."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from control.api.clock import FakeClock


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
