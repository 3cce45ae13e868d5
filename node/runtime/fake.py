"""A runtime that starts nothing: containers live and die as scripted, on an injected clock.

For unit tests of the pod workers (every call is recorded in :attr:`FakeRuntime.calls`, with
the clock's monotonic time, so a test can assert the order preStop -> SIGTERM -> SIGKILL) and
for hollow nodes (kubemark's idea: the real agent over a runtime that costs nothing, where
every container runs until stopped and every exec succeeds).

A container's behaviour is a :class:`Script`: run forever, or exit after some seconds with a
code; fail to start; ignore SIGTERM.  ``script(name, s1, s2, ...)`` gives successive attempts
of container ``name`` their scripts (the last one repeats).  ``exit(...)`` ends a running
container now; ``exec_handler`` answers execs (probes, hooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from control.api.clock import Clock

from .api import (
    ByteSink,
    ByteSource,
    ContainerAlreadyRunning,
    ContainerConfig,
    ContainerEvent,
    ContainerNotFound,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecError,
    ExecResult,
    PodSandbox,
    PodSandboxConfig,
    Runtime,
    RuntimeError_,
    SandboxNotFound,
    StartError,
    StreamWriterLike,
    TerminalSize,
    VolumeContent,
)
from .images import ImageCatalog
from .network import PodIPAllocator

__all__ = ["FakeRuntime", "Script"]

ExecHandler = Callable[[ContainerStatus, Sequence[str]], "ExecResult | Awaitable[ExecResult]"]


@dataclass(frozen=True)
class Script:
    """One container attempt: ``exit_after`` seconds then ``exit_code`` (None: runs until
    stopped); ``start_error`` fails the start (exit 128, StartError); ``ignore_sigterm`` makes
    a stop wait the whole grace period for SIGKILL (exit 137); otherwise SIGTERM ends it with
    ``term_exit_code``."""

    exit_after: float | None = None
    exit_code: int = 0
    start_error: str | None = None
    ignore_sigterm: bool = False
    term_exit_code: int = 143


class FakeRuntime:
    name = "fake"

    def __init__(self, clock: Clock, *, catalog: ImageCatalog | None = None,
                 pod_cidr: str = "127.1.0.0/16", state_path: str | None = None,
                 any_image: bool = False, record_calls: bool = True) -> None:
        """``any_image``: every image pulls (hollow nodes run whatever a test schedules);
        otherwise only the catalog's do.  ``record_calls`` off for hollow nodes (the call log
        would grow without bound)."""
        self.clock = clock
        self.catalog = catalog or ImageCatalog()
        self.any_image = any_image
        self.record_calls = record_calls
        self.ips = PodIPAllocator(pod_cidr, state_path) if state_path else None
        self.calls: list[tuple[Any, ...]] = []
        self.sandboxes: dict[str, PodSandbox] = {}
        self.containers: dict[str, ContainerStatus] = {}
        self._by_pod: dict[str, list[str]] = {}  # many pods on a hollow node: list by index
        self._scripts: dict[str, list[Script]] = {}
        self._running_script: dict[str, Script] = {}
        self._exited: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: list[Callable[[ContainerEvent], None]] = []
        self._ids = itertools.count(1)
        self._ip_seq = itertools.count(2)
        self.exec_handler: ExecHandler | None = None

    # --- scripting (tests) ------------------------------------------------------------------

    def script(self, container_name: str, *scripts: Script) -> None:
        """Scripts for the successive attempts of every container named ``container_name``."""
        self._scripts[container_name] = list(scripts)

    def exit(self, container_id: str, exit_code: int = 0) -> None:
        """End a running container now."""
        self._finish(container_id, exit_code)

    def running(self, name: str, pod_uid: str | None = None) -> ContainerStatus | None:
        """The running instance of container ``name`` (of any pod, or of ``pod_uid``)."""
        candidates = self.containers.values() if pod_uid is None else \
            [self.containers[i] for i in self._by_pod.get(pod_uid, ())]
        for c in candidates:
            if c.name == name and c.state is ContainerState.RUNNING \
                    and pod_uid in (None, c.pod_uid):
                return c
        return None

    def instances(self, name: str) -> list[ContainerStatus]:
        return sorted((c for c in self.containers.values() if c.name == name),
                      key=lambda c: c.attempt)

    def _record(self, *call: Any) -> None:
        if self.record_calls:
            self.calls.append((*call, self.clock.monotonic()))

    def _script_for(self, name: str, attempt: int) -> Script:
        scripts = self._scripts.get(name) or [Script()]
        return scripts[min(attempt, len(scripts) - 1)]

    # --- the Runtime interface --------------------------------------------------------------

    def subscribe(self, handler: Callable[[ContainerEvent], None]) -> Callable[[], None]:
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def _publish(self, c: ContainerStatus, kind: str) -> None:
        for handler in list(self._handlers):
            handler(ContainerEvent(c.pod_uid, c.id, kind))

    async def pull_image(self, image: str) -> str:
        self._record("pull", image)
        return self._image_ref(image)

    def _image_ref(self, image: str) -> str:
        return f"fake://{image}" if self.any_image else self.catalog.image_ref(image)

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        self._record("run_sandbox", config.uid)
        existing = self.sandboxes.get(config.uid)
        if existing is not None and existing.ready:
            return existing
        n = next(self._ip_seq)
        ip = self.ips.allocate(config.uid) if self.ips else f"127.1.{n // 256}.{n % 256}"
        sb = PodSandbox(id=config.uid, uid=config.uid, name=config.name,
                        namespace=config.namespace, ip=ip, ready=True,
                        created_at=self.clock.now(),
                        volume_paths={v.name: f"/fake/{config.uid}/volumes/{v.name}"
                                      for v in config.volumes})
        self.sandboxes[config.uid] = sb
        return sb

    async def update_volumes(self, pod_uid: str, volumes: Sequence[VolumeContent]) -> None:
        self._record("update_volumes", pod_uid, tuple(v.name for v in volumes))

    async def stop_pod_sandbox(self, pod_uid: str) -> None:
        self._record("stop_sandbox", pod_uid)
        for c in await self.list_containers(pod_uid):
            if c.state is ContainerState.RUNNING:
                self._record("signal", c.name, "SIGKILL")
                self._finish(c.id, 137)
        sb = self.sandboxes.get(pod_uid)
        if sb is not None:
            self.sandboxes[pod_uid] = dataclasses.replace(sb, ready=False)

    async def remove_pod_sandbox(self, pod_uid: str) -> None:
        await self.stop_pod_sandbox(pod_uid)
        self._record("remove_sandbox", pod_uid)
        for c in await self.list_containers(pod_uid):
            await self.remove_container(c.id)
        self.sandboxes.pop(pod_uid, None)
        if self.ips:
            self.ips.release(pod_uid)

    async def pod_sandbox(self, pod_uid: str) -> PodSandbox | None:
        return self.sandboxes.get(pod_uid)

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        return list(self.sandboxes.values())

    async def create_container(self, pod_uid: str, config: ContainerConfig) -> str:
        sb = self.sandboxes.get(pod_uid)
        if sb is None or not sb.ready:
            raise SandboxNotFound(f"no sandbox for pod {pod_uid}")
        ref = self._image_ref(config.image)
        if self.running(config.name, pod_uid) is not None:
            raise ContainerAlreadyRunning(f"container {config.name!r} is running")
        cid = f"fake-{next(self._ids)}"
        self._record("create", config.name, config.attempt)
        self._by_pod.setdefault(pod_uid, []).append(cid)
        self.containers[cid] = ContainerStatus(
            id=cid, pod_uid=pod_uid, name=config.name, attempt=config.attempt,
            image=config.image, image_ref=ref, state=ContainerState.CREATED,
            created_at=self.clock.now(), log_path=f"/fake/logs/{cid}.log")
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self._get(container_id)
        if c.state is ContainerState.RUNNING:
            return
        if c.state is not ContainerState.CREATED:
            raise RuntimeError_(f"container {container_id} has already run")
        script = self._script_for(c.name, c.attempt)
        self._record("start", c.name)
        now = self.clock.now()
        if script.start_error is not None:
            self.containers[container_id] = dataclasses.replace(
                c, state=ContainerState.EXITED, started_at=now, finished_at=now,
                exit_code=128, reason="StartError", message=script.start_error)
            self._publish(c, "exited")
            raise StartError(script.start_error)
        self.containers[container_id] = dataclasses.replace(c, state=ContainerState.RUNNING,
                                                            started_at=now)
        self._running_script[container_id] = script
        self._exited[container_id] = asyncio.Event()
        self._publish(c, "started")
        if script.exit_after is not None:
            self._spawn(self._exit_later(container_id, script.exit_after, script.exit_code))

    async def _exit_later(self, container_id: str, seconds: float, code: int) -> None:
        await self.clock.sleep(seconds)
        self._finish(container_id, code)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, container_id: str, code: int) -> None:
        c = self.containers.get(container_id)
        if c is None or c.state is not ContainerState.RUNNING:
            return
        self.containers[container_id] = dataclasses.replace(
            c, state=ContainerState.EXITED, finished_at=self.clock.now(), exit_code=code,
            reason="Completed" if code == 0 else "Error")
        self._record("exited", c.name, code)
        self._exited[container_id].set()
        self._publish(c, "exited")

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        c = self._get(container_id)
        if c.state is not ContainerState.RUNNING:
            return
        script = self._running_script.get(container_id, Script())
        self._record("signal", c.name, "SIGTERM", grace_seconds)
        if not script.ignore_sigterm:
            self._finish(container_id, script.term_exit_code)
            return
        exited = self._exited[container_id]
        waiter = asyncio.ensure_future(exited.wait())
        timer = asyncio.ensure_future(self.clock.sleep(grace_seconds))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
        if not exited.is_set():
            self._record("signal", c.name, "SIGKILL")
            self._finish(container_id, 137)

    async def remove_container(self, container_id: str) -> None:
        c = self.containers.get(container_id)
        if c is None:
            return
        if c.state is ContainerState.RUNNING:
            self._finish(container_id, 137)
        self._record("remove", c.name, c.attempt)
        del self.containers[container_id]
        ids = self._by_pod.get(c.pod_uid, [])
        if container_id in ids:
            ids.remove(container_id)
        if not ids:
            self._by_pod.pop(c.pod_uid, None)
        self._publish(c, "removed")

    async def list_containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        if pod_uid is None:
            return list(self.containers.values())
        return [self.containers[i] for i in self._by_pod.get(pod_uid, ())]

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._get(container_id)

    def _get(self, container_id: str) -> ContainerStatus:
        c = self.containers.get(container_id)
        if c is None:
            raise ContainerNotFound(f"container {container_id} not found")
        return c

    async def exec_sync(self, container_id: str, command: Sequence[str], *,
                        timeout: float) -> ExecResult:
        c = self._get(container_id)
        if c.state is not ContainerState.RUNNING:
            raise ExecError(f"cannot exec in a stopped container {c.name!r}")
        self._record("exec", c.name, tuple(command))
        if self.exec_handler is None:
            return ExecResult(0, b"")
        result = self.exec_handler(c, command)
        return await result if inspect.isawaitable(result) else result

    async def exec(self, container_id: str, command: Sequence[str], *,
                   stdin: ByteSource | None = None, stdout: ByteSink | None = None,
                   stderr: ByteSink | None = None, tty: bool = False,
                   resize: AsyncIterator[TerminalSize] | None = None) -> int:
        result = await self.exec_sync(container_id, command, timeout=0)
        if stdout is not None and result.output:
            await stdout(result.output)
        return result.exit_code

    async def attach(self, container_id: str, *, stdin: ByteSource | None = None,
                     stdout: ByteSink | None = None, stderr: ByteSink | None = None,
                     resize: AsyncIterator[TerminalSize] | None = None) -> None:
        c = self._get(container_id)
        if c.state is ContainerState.RUNNING:
            await self._exited[container_id].wait()

    async def port_forward(self, pod_uid: str, port: int) -> tuple[ByteSource,
                                                                    StreamWriterLike]:
        raise RuntimeError_("the fake runtime has no network")

    def log_path(self, container_id: str) -> str:
        return self._get(container_id).log_path

    async def stats(self, container_id: str) -> ContainerStats | None:
        c = self.containers.get(container_id)
        if c is None or c.state is not ContainerState.RUNNING:
            return None
        started = c.started_at or self.clock.now()
        ns = int((self.clock.now() - started) / dt.timedelta(microseconds=1)) * 1000 // 100
        return ContainerStats(c.id, self.clock.now(), self.clock.monotonic(), ns,
                              16 << 20, 16 << 20)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _conforms(rt: FakeRuntime) -> Runtime:  # mypy holds FakeRuntime to the protocol
    return rt
