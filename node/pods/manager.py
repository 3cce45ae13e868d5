"""All the pod workers of a node: one per pod bound here, created on the first sight of the
pod, told of every change, removed when the pod leaves the API (the kubelet's ``podWorkers``
and ``HandlePodCleanups``).

:meth:`PodWorkers.run` is the supervisor task: it owns every worker's task, restarts a worker
that crashed (a bug must not stop the node), and stops them all when cancelled — the containers
keep running, a new agent re-adopts them.  :meth:`PodWorkers.cleanup` removes sandboxes the
runtime has for pods that no longer exist (after the agent's first complete list of its pods).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from control.api.clock import Clock
from node.runtime.api import Runtime

from .handlers import Actions
from .sink import EventSink, PodSources, StatusSink
from .worker import PodWorker, WorkerConfig

__all__ = ["PodWorkers"]

log = logging.getLogger("ketch.node.pods")


class PodWorkers:
    def __init__(self, *, runtime: Runtime, clock: Clock, sink: StatusSink, events: EventSink,
                 sources: PodSources, config: WorkerConfig | None = None,
                 actions: Actions | None = None, restart_delay: float = 1.0) -> None:
        self.runtime = runtime
        self.clock = clock
        self.sink = sink
        self.events = events
        self.sources = sources
        self.config = config or WorkerConfig()
        self.actions = actions
        self.restart_delay = restart_delay
        self.workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False

    def update(self, pod: Mapping[str, Any]) -> None:
        """The pod as the API has it now (added or modified)."""
        uid = (pod.get("metadata") or {}).get("uid", "")
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        worker = PodWorker(pod, runtime=self.runtime, clock=self.clock, sink=self.sink,
                           events=self.events, sources=self.sources, config=self.config,
                           actions=self.actions)
        self.workers[uid] = worker
        if self._running:
            self._start(uid, worker)

    def find(self, namespace: str, name: str, uid: str = "") -> PodWorker | None:
        """The worker of the pod ``namespace/name`` (and ``uid``, when given): for the
        streaming server's lookups (its ``last_status`` with :mod:`node.pods.lookup`)."""
        if uid:
            worker = self.workers.get(uid)
            meta = (worker.pod.get("metadata") or {}) if worker else {}
            return worker if (meta.get("namespace"), meta.get("name")) == (namespace, name) \
                else None
        for worker in self.workers.values():
            meta = worker.pod.get("metadata") or {}
            if (meta.get("namespace"), meta.get("name")) == (namespace, name) \
                    and not worker.removed:
                return worker
        return None

    def delete(self, uid: str) -> None:
        """The pod is gone from the API: its worker stops it and removes its sandbox."""
        worker = self.workers.get(uid)
        if worker is not None:
            worker.remove()

    async def cleanup(self, desired: Iterable[str]) -> None:
        """Remove the sandboxes of pods not in ``desired`` that no worker owns (leftovers of
        pods deleted while the agent was down)."""
        keep = set(desired) | set(self.workers)
        for sandbox in await self.runtime.list_pod_sandboxes():
            if sandbox.uid not in keep:
                log.info("removing the sandbox of departed pod %s/%s (%s)", sandbox.namespace,
                         sandbox.name, sandbox.uid)
                await self.runtime.remove_pod_sandbox(sandbox.uid)

    async def stop_all(self, grace: float) -> list[PodWorker]:
        """Graceful node shutdown: stop every pod not finished yet, all at once, each within
        its grace period capped at ``grace``; the workers stopped.  Only after :meth:`run`
        was cancelled."""
        active = [w for w in self.workers.values() if not w.done and not w.removed]
        results = await asyncio.gather(*(w.stop_for_shutdown(grace) for w in active),
                                       return_exceptions=True)
        for w, r in zip(active, results, strict=True):
            if isinstance(r, BaseException):
                log.error("stopping pod %s at shutdown failed: %r", w.uid, r)
        return active

    async def run(self) -> None:
        """Run every worker until cancelled."""
        self._running = True
        for uid, worker in self.workers.items():
            if uid not in self._tasks:
                self._start(uid, worker)
        try:
            await asyncio.Event().wait()
        finally:
            self._running = False
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _start(self, uid: str, worker: PodWorker) -> None:
        self._tasks[uid] = asyncio.get_running_loop().create_task(self._supervise(uid, worker))

    async def _supervise(self, uid: str, worker: PodWorker) -> None:
        try:
            while True:
                try:
                    await worker.run()
                    return
                except Exception:
                    log.exception("the worker of pod %s failed; restarting it", uid)
                    await self.clock.sleep(self.restart_delay)
        finally:
            self._tasks.pop(uid, None)
            if self.workers.get(uid) is worker and worker.removed:
                del self.workers[uid]
