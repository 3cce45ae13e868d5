"""Starting one container of a pod, as the kubelet's ``startContainer`` does: the image (with
its own back-off: ErrImagePull, then ImagePullBackOff), the environment (a missing ConfigMap or
Secret: CreateContainerConfigError), create, start (a command that cannot start:
RunContainerError, and the instance is listed as exited with code 128), the postStart hook
(a failure kills the container: PostStartHookError), and the events of each step.  Also the
:mod:`~node.pods.plan` inputs that depend on the worker's state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from node.runtime.api import (
    ContainerAlreadyRunning,
    ContainerState,
    ContainerStatus,
    ImageNotFound,
    RuntimeError_,
    SandboxNotFound,
    StartError,
)
from node.runtime.downward import PodFacts as DownwardFacts

from .backoff import Backoff
from .containers import container_config, pod_grace_seconds
from .env import ContainerConfigError, container_env
from .plan import Plan, finished_at, plan_pod
from .sink import PodSources

if TYPE_CHECKING:
    from .worker import PodWorker

__all__ = ["Starter", "spec_hash"]


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A container spec's identity: any change to it restarts the container (the kubelet
    hashes the container spec the same way)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


class Starter:
    def __init__(self, worker: PodWorker, sources: PodSources) -> None:
        self.w = worker
        self.sources = sources
        cfg = worker.config
        self.image_backoff = Backoff(initial=cfg.backoff_initial, cap=cfg.backoff_cap,
                                     reset_after=cfg.backoff_reset)
        self.pull_failures: dict[str, tuple[dt.datetime, str]] = {}
        self.pulled: set[str] = set()
        self.wakeup: float | None = None

    def specs(self) -> dict[str, Mapping[str, Any]]:
        spec = self.w.pod.get("spec") or {}
        return {c.get("name", ""): c for c in [*(spec.get("initContainers") or []),
                                                *(spec.get("containers") or [])]}

    def plan(self, instances: Mapping[str, Sequence[ContainerStatus]]) -> Plan:
        now = self.w.clock.now()

        def started(c: ContainerStatus) -> bool:
            state = self.w.probes.state(c.id)
            if state is not None:
                return state.started
            return self.specs().get(c.name, {}).get("startupProbe") is None

        return plan_pod(
            self.w.pod, instances, started=started,
            backoff_left=lambda name, latest: self.w.backoff.remaining(
                name, finished_at(latest), now),
            backoff_window=self.w.backoff.current)

    async def start(self, spec: Mapping[str, Any], is_init: bool,
                    previous: Sequence[ContainerStatus]) -> None:
        """Start a new instance of ``spec``; failures are recorded as the reason it waits
        (``worker.reasons``) and as events, never raised."""
        w = self.w
        name = spec.get("name", "")
        latest = previous[0] if previous else None
        now = w.clock.now()
        if latest is not None and latest.state is ContainerState.EXITED:
            w.backoff.next(name, finished_at(latest), now)
        if not await self._image(name, spec.get("image", "")):
            return
        sandbox = w.sandbox
        if sandbox is None:
            return
        facts = DownwardFacts(pod_ip=sandbox.ip, host_ip=w.config.host_ip,
                              node_allocatable=w.config.node_allocatable)
        try:
            env = await container_env(w.pod, spec, lookup=self.sources,
                                      services=self.sources.services(), facts=facts)
            config = container_config(w.pod, spec, attempt=latest.attempt + 1 if latest else 0,
                                      env=env, sandbox=sandbox)
        except ContainerConfigError as e:
            w.reasons[name] = ("CreateContainerConfigError", str(e))
            w.event("Warning", "Failed", f"Error: {e}")
            return
        try:
            cid = await w.runtime.create_container(w.uid, config)
        except ImageNotFound as e:
            self._pull_failed(name, spec.get("image", ""), str(e))
            return
        except (ContainerAlreadyRunning, SandboxNotFound) as e:
            w.event("Warning", "Failed", f"Error: {e}")
            return
        w.event("Normal", "Created", f"Created container: {name}")
        try:
            await w.runtime.start_container(cid)
        except (StartError, RuntimeError_) as e:
            w.reasons[name] = ("RunContainerError", str(e))
            w.event("Warning", "Failed", f"Error: {e}")
            return
        w.event("Normal", "Started", f"Started container {name}")
        w.spec_hash[cid] = spec_hash(spec)
        w.reasons.pop(name, None)
        await self._post_start(spec, cid)
        await self._forget_old(previous, config.attempt)

    async def _image(self, name: str, image: str) -> bool:
        w = self.w
        now = w.clock.now()
        failure = self.pull_failures.get(name)
        if failure is not None:
            left = self.image_backoff.remaining(name, failure[0], now)
            if left > 0:
                message = f'Back-off pulling image "{image}": ErrImagePull: {failure[1]}'
                w.reasons[name] = ("ImagePullBackOff", message)
                w.event("Normal", "BackOff", f'Back-off pulling image "{image}"')
                self._wake_in(left)
                return False
        try:
            await w.runtime.pull_image(image)
        except ImageNotFound as e:
            self._pull_failed(name, image, str(e))
            return False
        if failure is not None:
            self.image_backoff.reset(name)
            del self.pull_failures[name]
        if image not in self.pulled:
            self.pulled.add(image)
            w.event("Normal", "Pulled", f'Container image "{image}" already present on machine')
        return True

    def _pull_failed(self, name: str, image: str, message: str) -> None:
        w = self.w
        now = w.clock.now()
        self.image_backoff.next(name, now, now)
        self.pull_failures[name] = (now, message)
        w.reasons[name] = ("ErrImagePull", message)
        w.event("Normal", "Pulling", f'Pulling image "{image}"')
        w.event("Warning", "Failed", f'Failed to pull image "{image}": {message}')
        w.event("Warning", "Failed", "Error: ErrImagePull")
        # look again soon, to show ImagePullBackOff while the back-off runs
        self._wake_in(min(1.0, self.image_backoff.current(name)))

    def _wake_in(self, seconds: float) -> None:
        self.wakeup = seconds if self.wakeup is None else min(self.wakeup, seconds)

    async def _post_start(self, spec: Mapping[str, Any], cid: str) -> None:
        w = self.w
        hook = (spec.get("lifecycle") or {}).get("postStart")
        if hook is None:
            return
        grace = float(pod_grace_seconds(w.pod))
        result = await w.actions.run(hook, w.context(spec, cid), grace)
        if result.ok:
            return
        name = spec.get("name", "")
        message = f"PostStartHook failed: {result.message}".rstrip()
        w.event("Warning", "FailedPostStartHook", message)
        status = await w.runtime.container_status(cid)
        await w.kill(status, spec, w.clock.monotonic() + grace,
                     f"FailedPostStartHook: container {name}")
        w.reasons[name] = ("PostStartHookError", message)

    async def _forget_old(self, previous: Sequence[ContainerStatus], attempt: int) -> None:
        """Keep the new instance and the one before it (``logs --previous``)."""
        for old in previous:
            if old.attempt < attempt - 1 and old.state is not ContainerState.RUNNING:
                await self.w.runtime.remove_container(old.id)
