"""The scheduler's I/O shell: informers feed the cache and queue, one loop decides, binds go
out concurrently (kube-scheduler's ``scheduleOne`` + ``bindingCycle``).

For each pod popped from the queue: decide (:class:`~control.scheduler.algorithm.Algorithm`);
on success **assume** the pod on the node in the cache at once — the next decision already
sees the capacity used — and POST ``pods/NAME/binding`` in a task of its own (at most
``bind_concurrency`` in flight).  A bind refused with 409 or 404 (someone else bound the pod,
or it was deleted) is forgotten and never retried; any other failure is forgotten and the pod
retried after its back-off.  The apiserver refuses to bind a bound pod, so a pod is never
bound twice, even after an outcome-unknown retry.

On failure: preemption may nominate a node and delete victims; the pod gets
``PodScheduled=False/Unschedulable`` with kube-scheduler's message and a ``FailedScheduling``
event, and waits in the queue for an event that could help it.

Writes go through a client fenced by the leader lease (:class:`~control.client.NotLeading`
stops them the moment the lease is lost); :meth:`run` is the leader's work and may be
cancelled at any point: binds in flight are cancelled and their pods forgotten and requeued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from control.api.clock import Clock, RealClock, format_time
from control.api.errors import APIError, Conflict, NotFound
from control.client import EventRecorder, InformerFactory, NotLeading
from control.client.resources import (
    NAMESPACES,
    NODES,
    PODDISRUPTIONBUDGETS,
    PODS,
    REPLICASETS,
    SERVICES,
    STATEFULSETS,
)
from control.client.rest import ApiClient

from .algorithm import Algorithm
from .cache import SchedulerCache
from .defaults import default_selector
from .events import EventRouter
from .messages import FitError
from .metrics import Metrics
from .podinfo import PodInfo
from .preemption import Preemption, preempt
from .queue import QueuedPod, SchedulingQueue

__all__ = ["Scheduler"]

log = logging.getLogger("ketch.scheduler")


class Scheduler:
    def __init__(self, client: ApiClient, factory: InformerFactory, *,
                 name: str = "default-scheduler", clock: Clock | None = None,
                 recorder: EventRecorder | None = None, metrics: Metrics | None = None,
                 percentage: int = 0, bind_concurrency: int = 256, seed: int | None = None) -> None:
        self.client = client
        self.clock = clock or RealClock()
        self.recorder = recorder
        self.metrics = metrics or Metrics()
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(self.clock)
        self.algorithm = Algorithm(self.cache, percentage=percentage, seed=seed,
                                   default_selector=self._default_selector)
        self._wake = asyncio.Event()
        self.router = EventRouter(self.cache, self.queue, self.algorithm, scheduler_name=name,
                                  wake=self._wake.set)
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._binds: dict[str, tuple[QueuedPod, asyncio.Task[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.decisions = 0
        self.decision_seconds = 0.0
        self.scheduled_events = True
        f = factory
        self.pods, self.nodes = f.informer(PODS), f.informer(NODES)
        self.namespaces = f.informer(NAMESPACES)
        self.services, self.replicasets = f.informer(SERVICES), f.informer(REPLICASETS)
        self.statefulsets = f.informer(STATEFULSETS)
        self.pdbs = f.informer(PODDISRUPTIONBUDGETS)
        r = self.router
        self.pods.add_handler(on_add=r.pod_added, on_update=r.pod_updated,
                              on_delete=r.pod_deleted)
        self.nodes.add_handler(on_add=r.node_added, on_update=r.node_updated,
                               on_delete=r.node_deleted)
        self.namespaces.add_handler(on_add=lambda o: r.namespace_changed(None, o),
                                    on_update=r.namespace_changed,
                                    on_delete=lambda o: r.namespace_changed(o, None))
        for inf in (self.services, self.replicasets, self.statefulsets):
            inf.add_handler(on_add=lambda o: r.selectors_changed(None, o),
                            on_update=r.selectors_changed,
                            on_delete=lambda o: r.selectors_changed(o, None))

    # --- inputs -----------------------------------------------------------------------------

    def _default_selector(self, pod: PodInfo) -> Any:
        return default_selector(pod, self.services.cache.list(pod.namespace),
                                self.replicasets.cache.get_by, self.statefulsets.cache.get_by)

    # --- the leader's work --------------------------------------------------------------------

    async def run(self) -> None:
        """Schedule until cancelled.  Waits for the pod and node informers to sync first."""
        await asyncio.gather(self.pods.wait_synced(), self.nodes.wait_synced())
        log.info("scheduling: %d nodes, %d pending pods", len(self.cache.nodes),
                 sum(self.queue.sizes().values()))
        try:
            await self._loop()
        finally:
            await self._stop_binds()

    async def _loop(self) -> None:
        while True:
            self.queue.flush()
            qp = self.queue.pop()
            if qp is None:
                self._publish_sizes()
                await self._idle()
                continue
            await self._bind_slots.acquire()
            try:
                self._schedule_one(qp)
            finally:
                if qp.info.uid not in self._binds:
                    self._bind_slots.release()
            await asyncio.sleep(0)  # let informers and binds run between decisions

    async def _idle(self) -> None:
        self._wake.clear()
        due = self.queue.next_due()
        timeout = None if due is None else max(0.0, due - self.clock.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _publish_sizes(self) -> None:
        for place, n in self.queue.sizes().items():
            self.metrics.pending.labels(place).set(n)
        self.metrics.cache_size.labels("nodes").set(len(self.cache.nodes))
        self.metrics.cache_size.labels("pods").set(self.cache.placed_count)
        self.metrics.classes.set(len(self.algorithm.classes))

    def _schedule_one(self, qp: QueuedPod) -> None:
        info = qp.info
        if self.cache.placed(info.uid) is not None:
            self.queue.done(info.uid)  # bound meanwhile (by us earlier, or someone else)
            return
        started = time.perf_counter()
        try:
            decision = self.algorithm.schedule(info)
        except FitError as err:
            self._observe_decision(started)
            self._unschedulable(qp, err)
            return
        self._observe_decision(started)
        self.cache.assume(info, decision.node)
        self.queue.done(info.uid)
        task = asyncio.create_task(self._bind(qp, decision.node), name=f"bind {info.key}")
        self._binds[info.uid] = (qp, task)

    def _observe_decision(self, started: float) -> None:
        spent = time.perf_counter() - started
        self.decisions += 1
        self.decision_seconds += spent
        self.metrics.algorithm.observe(spent)

    # --- binding ------------------------------------------------------------------------------

    async def _bind(self, qp: QueuedPod, node: str) -> None:
        info = qp.info
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": info.name, "namespace": info.namespace, "uid": info.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        started = self.clock.monotonic()
        try:
            await self.client.create(PODS, body, info.namespace, subresource="binding",
                                     name=info.name)
        except (Conflict, NotFound) as e:
            log.info("bind of %s to %s refused (%s); forgetting it", info.key, node, e)
            self.cache.forget(info.uid)
            self.metrics.attempts.labels("error").inc()
        except NotLeading:
            self.cache.forget(info.uid)
            self.queue.retry(qp)
        except APIError as e:
            log.warning("bind of %s to %s failed: %s; retrying after back-off", info.key, node, e)
            self.cache.forget(info.uid)
            self.queue.retry(qp)
            self.metrics.attempts.labels("error").inc()
            self._wake.set()
        else:
            now = self.clock.monotonic()
            self.metrics.binding.observe(now - started)
            self.metrics.e2e.observe(now - qp.first_seen)
            self.metrics.attempts.labels("scheduled").inc()
            if self.recorder is not None and self.scheduled_events:
                self.recorder.event(dict(info.obj), "Normal", "Scheduled",
                                    f"Successfully assigned {info.key} to {node}")
        finally:
            self._binds.pop(info.uid, None)
            self._bind_slots.release()

    async def _stop_binds(self) -> None:
        """Leadership lost or shutting down: cancel binds in flight, forget and requeue."""
        binds = list(self._binds.values())
        for _, task in binds:
            task.cancel()
        await asyncio.gather(*(t for _, t in binds), return_exceptions=True)
        for qp, _ in binds:
            self.cache.forget(qp.info.uid)
            self.queue.retry(qp)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- failure --------------------------------------------------------------------------------

    def _unschedulable(self, qp: QueuedPod, err: FitError) -> None:
        info = qp.info
        found: Preemption | None = None
        if not err.prefilter and err.num_all_nodes:
            self.metrics.preemption_attempts.inc()
            found = preempt(self.algorithm, info, err, list(self.pdbs.cache))
        if found is not None:
            self.cache.nominate(info, found.node)
            self.metrics.preemption_victims.inc(len(found.victims))
        message = err.message()
        self.metrics.attempts.labels("unschedulable").inc()
        self.queue.unschedulable(qp, err.plugins or {"PreFilter"})
        if self.recorder is not None:
            self.recorder.event(dict(info.obj), "Warning", "FailedScheduling", message)
        self._spawn(self._write_failure(info, message, found))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_failure(self, info: PodInfo, message: str,
                             found: Preemption | None) -> None:
        """PodScheduled=False on the pod (if not already saying this), then preemption."""
        status: dict[str, Any] = {}
        if not _says(info.obj, message):
            status["conditions"] = [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": None,
                "lastTransitionTime": format_time(self.clock.now())}]
        if found is not None:
            status["nominatedNodeName"] = found.node
        try:
            if status:
                await self.client.patch(PODS, info.name, {"status": status}, info.namespace,
                                        patch_type="strategic", subresource="status")
            if found is not None:
                await self._evict(info, found)
        except (NotFound, Conflict):
            pass
        except APIError as e:
            log.info("status of %s not updated: %s", info.key, e)

    async def _evict(self, preemptor: PodInfo, found: Preemption) -> None:
        for victim in found.victims:
            if self.recorder is not None:
                self.recorder.event(dict(victim.obj), "Normal", "Preempted",
                                    f"Preempted by pod {preemptor.uid} on node {found.node}")
            with contextlib.suppress(NotFound, Conflict):
                await self.client.delete(PODS, victim.name, victim.namespace,
                                         preconditions={"uid": victim.uid})
        log.info("preempted %d pod(s) on %s for %s", len(found.victims), found.node,
                 preemptor.key)


def _says(pod: Mapping[str, Any], message: str) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == "PodScheduled":
            return bool(c.get("status") == "False" and c.get("reason") == "Unschedulable"
                        and c.get("message") == message)
    return False
