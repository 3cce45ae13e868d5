"""One pod's worker: level-triggered on the pod the API wants and what the runtime has, it
starts, restarts, probes and stops the pod's containers and reports the pod's status.

Life of a worker (the kubelet's ``podWorkers`` loop and ``SyncPod``/``SyncTerminatingPod``):

* **sync** (on every change of the pod, of its containers, of a probe result, and at least
  every ``resync_seconds``): the sandbox (IP, volumes — a missing ConfigMap or Secret keeps the
  pod ContainerCreating with a FailedMount event), then the :mod:`~node.pods.plan`: kill what
  failed its liveness/startup probe or whose spec changed, start what must start (image,
  environment, create, start, postStart), hold back what is in back-off; then the status.
* **done**: once every app container has finished for good (or an init container failed
  under Never), sidecars are stopped, the sandbox is stopped, and the pod stays Succeeded or
  Failed until it is deleted.
* **terminate** (the pod has a deletionTimestamp, or :meth:`PodWorker.remove`): every running
  container gets its preStop hook, then SIGTERM, then SIGKILL when the grace period
  (``deletionGracePeriodSeconds``, less the time the hook took, at least 2 s) is over — app
  containers together, then sidecars in reverse order; then the sandbox stops, the final status
  is reported and the sink is told the pod has terminated (the agent deletes it with grace 0).
* **removed** (the pod is gone from the API): terminate if needed, then the sandbox, its logs
  and its IP are removed, and :meth:`PodWorker.run` returns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from control.api.clock import Clock
from node.runtime.api import (
    ContainerEvent,
    ContainerState,
    ContainerStatus,
    PodSandbox,
    PodSandboxConfig,
    Runtime,
    parse_container_id,
)
from node.runtime.downward import PodFacts as DownwardFacts
from node.runtime.volumes import VolumeSourceMissing, resolve_volumes

from .backoff import Backoff
from .containers import is_sidecar, pod_grace_seconds
from .handlers import ActionContext, ActionRunner, Actions
from .plan import newest_first
from .probes import ProbeManager
from .sink import EventSink, PodSources, StatusSink
from .starting import Starter, spec_hash
from .status import ContainerView, PodFacts, needs_reconcile, pod_status

__all__ = ["PodWorker", "WorkerConfig"]

log = logging.getLogger("ketch.node.pods")

# SABOTAGE (chaos proofs only: --sabotage keep-replaced-pods, refused unless
# KETCH_ALLOW_SABOTAGE=1; see control.api.sabotage): a deleted pod is reported terminated
# but its containers are neither stopped nor removed.
KEEP_REPLACED_PODS_FOR_SABOTAGE = False


@dataclass(frozen=True)
class WorkerConfig:
    """Node-wide settings of the pod workers (kubelet flags and defaults)."""

    host_ip: str = ""
    resync_seconds: float = 10.0
    backoff_initial: float = 10.0
    backoff_cap: float = 300.0
    backoff_reset: float = 600.0
    volume_refresh_seconds: float = 60.0
    mount_retry_seconds: float = 2.0
    min_grace_seconds: float = 2.0
    node_allocatable: Mapping[str, str] = field(default_factory=dict)


class PodWorker:
    """The worker of one pod (one uid).  :meth:`run` is the owned task; :meth:`update` and
    :meth:`remove` are called by the manager, never block, and are level-triggered."""

    def __init__(self, pod: Mapping[str, Any], *, runtime: Runtime, clock: Clock,
                 sink: StatusSink, events: EventSink, sources: PodSources,
                 config: WorkerConfig | None = None, actions: Actions | None = None) -> None:
        self.pod: dict[str, Any] = dict(pod)
        self.uid: str = (pod.get("metadata") or {}).get("uid", "")
        self.runtime = runtime
        self.clock = clock
        self.sink = sink
        self.events = events
        self.config = config or WorkerConfig()
        self.actions = actions or ActionRunner(runtime, clock)
        self.backoff = Backoff(initial=self.config.backoff_initial, cap=self.config.backoff_cap,
                               reset_after=self.config.backoff_reset)
        self.probes = ProbeManager(clock=clock, actions=self.actions, on_change=self.wake,
                                   on_failure=self._unhealthy)
        self.starter = Starter(self, sources)
        self.reasons: dict[str, tuple[str, str]] = {}  # why a container waits (reasonCache)
        self.spec_hash: dict[str, str] = {}  # container id -> hash of the spec it runs
        self.sandbox: PodSandbox | None = None
        self.start_time: dt.datetime | None = None
        self.last_status: dict[str, Any] | None = None
        self.done = False  # finished for good (Succeeded/Failed): nothing more will start
        self.terminated = False  # terminated after deletion: the sink has been told
        self._removed = False
        self._wake = asyncio.Event()
        self._sync_task: asyncio.Task[float] | None = None
        self._volume_hash = ""
        self._volume_refreshed = -1e18
        self._mount_error = ""

    # --- the manager's side -----------------------------------------------------------------

    def update(self, pod: Mapping[str, Any]) -> None:
        """A newer version of the pod from the API."""
        self.pod = dict(pod)
        if self.deleting and self._sync_task is not None and not self._sync_task.done():
            self._sync_task.cancel()  # stop starting things: terminate now
        self.wake()

    def remove(self) -> None:
        """The pod is gone from the API (or no longer bound here): stop it and clean up."""
        self._removed = True
        if self._sync_task is not None and not self._sync_task.done():
            self._sync_task.cancel()
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    @property
    def removed(self) -> bool:
        return self._removed

    @property
    def deleting(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))

    def event(self, type: str, reason: str, message: str) -> None:
        # informer list items carry no kind; the event's involvedObject needs it
        self.events.event({**self.pod, "kind": "Pod", "apiVersion": "v1"}, type, reason,
                          message)

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Work until the pod is removed; then its sandbox is gone and this returns."""
        unsubscribe = self.runtime.subscribe(self._on_runtime_event)
        try:
            while True:
                self._wake.clear()
                if self._removed:
                    await self._terminate()
                    if not KEEP_REPLACED_PODS_FOR_SABOTAGE:  # SABOTAGE: leave it running
                        await self.runtime.remove_pod_sandbox(self.uid)
                    return
                if self.deleting and not self.terminated:
                    await self._terminate()
                    continue
                delay = self.config.resync_seconds
                if not self.terminated:
                    self._sync_task = asyncio.get_running_loop().create_task(self._sync())
                    try:
                        await asyncio.wait({self._sync_task})
                    finally:
                        if not self._sync_task.done():
                            self._sync_task.cancel()
                    if not self._sync_task.cancelled():
                        if self._sync_task.exception() is not None:
                            log.error("pod %s: sync failed", self.uid,
                                      exc_info=self._sync_task.exception())
                        else:
                            delay = min(delay, self._sync_task.result())
                await self._sleep(delay)
        finally:
            unsubscribe()
            await self.probes.close()

    async def _sleep(self, seconds: float) -> None:
        if self._wake.is_set():
            return
        timer = asyncio.ensure_future(self.clock.sleep(max(seconds, 0.0)))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({timer, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            waker.cancel()

    def _on_runtime_event(self, event: ContainerEvent) -> None:
        if event.pod_uid == self.uid:
            self.wake()

    def _unhealthy(self, container: str, message: str) -> None:
        self.event("Warning", "Unhealthy", message)

    # --- one pass ---------------------------------------------------------------------------

    async def _sync(self) -> float:
        """Bring the pod one step closer to its spec; returns seconds until it wants to look
        again (a back-off ending, a mount to retry)."""
        if self.start_time is None:
            self.start_time = self.clock.now()
        instances = await self._instances()
        api_phase = (self.pod.get("status") or {}).get("phase")
        if api_phase in ("Succeeded", "Failed") and not self.done:
            await self._finish()  # finished before this worker (an agent restart): keep so
            instances = await self._instances()
        if self.done:
            self._report(instances)
            return self.config.resync_seconds
        if not await self._ensure_sandbox():
            self._report(instances)
            return self.config.mount_retry_seconds
        await self._kill_unhealthy(instances)
        for found in instances.values():
            for c in found:
                if c.state is ContainerState.CREATED:  # created, never started: a leftover
                    await self.runtime.remove_container(c.id)
        instances = await self._instances()
        self.starter.wakeup = None
        plan = self.starter.plan(instances)
        for name in list(self.reasons):
            if name not in plan.restarting:
                del self.reasons[name]
        for name, why in plan.waiting.items():
            if self.reasons.get(name) != why:
                meta = self.pod.get("metadata") or {}
                self.event("Warning", "BackOff", f"Back-off restarting failed container {name} "
                           f"in pod {meta.get('name')}_{meta.get('namespace')}({self.uid})")
        self.reasons.update(plan.waiting)
        for spec, is_init in plan.start:
            await self.starter.start(spec, is_init, instances.get(spec.get("name", ""), []))
        instances = await self._instances()
        plan = self.starter.plan(instances)
        for name in [n for n in self.reasons if n not in plan.restarting]:
            del self.reasons[name]
        if plan.done or plan.init_failed:
            await self._finish()
            instances = await self._instances()
        self._sync_probes(instances)
        self._report(instances, plan.restarting)
        waits = [w for w in (plan.next_wakeup, self.starter.wakeup) if w is not None]
        return min(waits, default=self.config.resync_seconds)

    async def _instances(self) -> dict[str, list[ContainerStatus]]:
        return newest_first(await self.runtime.list_containers(self.uid))

    async def _ensure_sandbox(self) -> bool:
        """The sandbox, created (or its volumes refreshed); False while a volume cannot be
        set up (the pod stays ContainerCreating)."""
        sandbox = await self.runtime.pod_sandbox(self.uid)
        fresh = sandbox is None or not sandbox.ready
        due = self.clock.monotonic() - self._volume_refreshed >= \
            self.config.volume_refresh_seconds
        if not fresh and not due:
            self.sandbox = sandbox
            return True
        facts = DownwardFacts(pod_ip=sandbox.ip if sandbox else "",
                              host_ip=self.config.host_ip,
                              node_allocatable=self.config.node_allocatable)
        try:
            volumes = await resolve_volumes(self.pod, self.starter.sources, facts)
        except VolumeSourceMissing as e:
            if str(e) != self._mount_error:
                self.event("Warning", "FailedMount", str(e))
            self._mount_error = str(e)
            self.sandbox = sandbox if not fresh else None
            return not fresh
        self._mount_error = ""
        self._volume_refreshed = self.clock.monotonic()
        digest = hashlib.sha256(repr(volumes).encode()).hexdigest()
        if fresh:
            meta = self.pod.get("metadata") or {}
            sandbox = await self.runtime.run_pod_sandbox(PodSandboxConfig(
                uid=self.uid, name=meta.get("name", ""), namespace=meta.get("namespace", ""),
                hostname=(self.pod.get("spec") or {}).get("hostname") or meta.get("name", ""),
                host_network=bool((self.pod.get("spec") or {}).get("hostNetwork")),
                labels=dict(meta.get("labels") or {}),
                annotations=dict(meta.get("annotations") or {}), volumes=tuple(volumes)))
        elif digest != self._volume_hash:
            assert sandbox is not None
            await self.runtime.update_volumes(self.uid, [v for v in volumes if v.files])
        self._volume_hash = digest
        self.sandbox = sandbox
        return True

    async def _kill_unhealthy(self, instances: Mapping[str, list[ContainerStatus]]) -> None:
        specs = self.starter.specs()
        for name, found in instances.items():
            latest = found[0]
            spec = specs.get(name)
            if latest.state is not ContainerState.RUNNING or spec is None:
                continue
            state = self.probes.state(latest.id)
            why = None
            grace = float(pod_grace_seconds(self.pod))
            if state is not None and state.kill:
                why = f"Container {name} {state.kill}"
                grace = state.kill_grace if state.kill_grace is not None else grace
            elif latest.id in self.spec_hash and self.spec_hash[latest.id] != spec_hash(spec):
                why = f"Container {name} definition changed, will be restarted"
            if why is not None:
                await self.kill(latest, spec, self.clock.monotonic() + grace, why)

    def _sync_probes(self, instances: Mapping[str, list[ContainerStatus]]) -> None:
        specs = self.starter.specs()
        running = {}
        for name, found in instances.items():
            latest = found[0]
            if latest.state is ContainerState.RUNNING and name in specs:
                running[latest.id] = (specs[name], self.context(specs[name], latest.id))
        api = self.pod.get("status") or {}
        known = {parse_container_id(s["containerID"]): (bool(s.get("started")),
                                                       bool(s.get("ready")))
                 for s in [*(api.get("containerStatuses") or []),
                           *(api.get("initContainerStatuses") or [])]
                 if s.get("containerID") and "running" in (s.get("state") or {})}
        self.probes.sync(running, known)

    def context(self, spec: Mapping[str, Any], container_id: str) -> ActionContext:
        return ActionContext(pod=self.pod, container=spec, container_id=container_id,
                             pod_ip=self.sandbox.ip if self.sandbox else "")

    # --- stopping ---------------------------------------------------------------------------

    async def kill(self, c: ContainerStatus, spec: Mapping[str, Any], deadline: float,
                   why: str) -> None:
        """preStop (within the grace period), then SIGTERM and, at the deadline (at least
        ``min_grace_seconds`` after the hook), SIGKILL."""
        self.event("Normal", "Killing", why)
        hook = ((spec.get("lifecycle") or {}).get("preStop"))
        if hook is not None and c.state is ContainerState.RUNNING:
            left = deadline - self.clock.monotonic()
            result = await self.actions.run(hook, self.context(spec, c.id), max(left, 0.001))
            if not result.ok:
                self.event("Warning", "FailedPreStopHook",
                           f"PreStopHook failed: {result.message}".rstrip())
        grace = max(deadline - self.clock.monotonic(), self.config.min_grace_seconds)
        await self.runtime.stop_container(c.id, grace)

    async def _stop_running(self, instances: Mapping[str, list[ContainerStatus]],
                            grace: float, why: str) -> None:
        """Stop every running container: app (and regular init) containers together, then
        sidecars one by one in reverse order, all against one deadline."""
        deadline = self.clock.monotonic() + grace
        specs = self.starter.specs()
        sidecars = [c.get("name", "") for c in (self.pod.get("spec") or {}).get(
            "initContainers") or [] if is_sidecar(c)]
        running = {n: f[0] for n, f in instances.items()
                   if f[0].state is ContainerState.RUNNING}
        first = [n for n in running if n not in sidecars]
        await asyncio.gather(*(self.kill(running[n], specs.get(n, {}), deadline,
                                         why.format(name=n)) for n in first))
        for n in reversed(sidecars):
            if n in running:
                await self.kill(running[n], specs.get(n, {}), deadline, why.format(name=n))

    async def _finish(self) -> None:
        """Every app container has finished for good: stop the sidecars and the sandbox."""
        self.done = True
        instances = await self._instances()
        await self._stop_running(instances, float(pod_grace_seconds(self.pod)),
                                 "Stopping container {name}")
        await self.probes.close()
        await self.runtime.stop_pod_sandbox(self.uid)

    async def _terminate(self) -> None:
        """Graceful termination after deletion (see the module's docstring)."""
        if self.terminated:
            return
        instances = await self._instances()
        keep = KEEP_REPLACED_PODS_FOR_SABOTAGE  # SABOTAGE: report it stopped, leave it running
        if not keep:
            await self._stop_running(instances, float(pod_grace_seconds(self.pod)),
                                     "Stopping container {name}")
        await self.probes.close()
        if not keep:
            await self.runtime.stop_pod_sandbox(self.uid)
        self.done = True
        self.reasons.clear()
        self._report(await self._instances(), terminal=True)
        self.terminated = True
        if self.deleting:
            self.sink.pod_terminated(self.pod)

    async def stop_for_shutdown(self, grace: float) -> None:
        """Graceful node shutdown: stop every running container (preStop, SIGTERM, SIGKILL
        after the pod's grace period, at most ``grace``) and the sandbox, then report the
        final status.  Only once :meth:`run` has returned or been cancelled."""
        instances = await self._instances()
        grace = min(float(pod_grace_seconds(self.pod)), grace)
        await self._stop_running(instances, grace, "Stopping container {name}")
        await self.probes.close()
        await self.runtime.stop_pod_sandbox(self.uid)
        self.done = True
        self.reasons.clear()
        self._report(await self._instances(), terminal=True)

    # --- status -----------------------------------------------------------------------------

    def _report(self, instances: Mapping[str, list[ContainerStatus]],
                restarting: set[str] | None = None, *, terminal: bool | None = None) -> None:
        restarting = restarting if restarting is not None else set(self.reasons)
        views = {}
        for name in self.starter.specs():
            found = tuple(instances.get(name, ()))
            state = self.probes.state(found[0].id) if found else None
            views[name] = ContainerView(
                instances=found, waiting=self.reasons.get(name),
                restarting=name in restarting or name in self.reasons,
                ready=state.ready if state else False,
                started=state.started if state else False)
        init_names = {c.get("name", "") for c in (self.pod.get("spec") or {}).get(
            "initContainers") or []}
        facts = PodFacts(runtime=self.runtime.name,
                         pod_ip=self.sandbox.ip if self.sandbox else "",
                         host_ip=self.config.host_ip,
                         sandbox_ready=bool(self.sandbox and self.sandbox.ready
                                            and not self.done),
                         start_time=self.start_time,
                         terminal=self.done if terminal is None else terminal)
        status = pod_status(self._base_pod(),
                            init={n: v for n, v in views.items() if n in init_names},
                            app={n: v for n, v in views.items() if n not in init_names},
                            facts=facts, now=self.clock.now())
        if status != self.last_status or needs_reconcile(self.pod.get("status") or {}, status):
            self.last_status = status
            self.sink.set_status(self.pod, status)

    def _base_pod(self) -> dict[str, Any]:
        """The pod with the status to build on: the API's, with this worker's last status
        (the kubelet prefers its status manager's copy) for everything the kubelet owns."""
        api = dict(self.pod.get("status") or {})
        if self.last_status is None:
            return self.pod
        merged = {**api, **{k: v for k, v in self.last_status.items() if k != "conditions"}}
        ours = {c.get("type") for c in self.last_status.get("conditions") or []}
        merged["conditions"] = [c for c in api.get("conditions") or []
                                if c.get("type") not in ours] + \
            list(self.last_status.get("conditions") or [])
        if api.get("phase") in ("Succeeded", "Failed"):
            merged["phase"] = api["phase"]
        return {**self.pod, "status": merged}

