"""The shape every controller has (kubernetes/sample-controller ``controller.go``): informer
handlers enqueue keys, workers take keys from a rate-limited work queue and call
``reconcile(key)``, which reads current state from the informers' caches, compares it with
what the object declares, and makes idempotent, resourceVersion-guarded writes.

``reconcile`` returns None when done, or a number of seconds after which to look again (a
deadline, a minReadySeconds wait); it raises to be retried with back-off.  NotFound for the key
itself means done.  It never mutates a cached object.  A controller does nothing until
:meth:`Controller.start_term` (the process has become leader); its queue is filled from the
caches then, so a new leader reconciles from current state only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from control.api.clock import Clock, format_time
from control.api.errors import APIError, Conflict, NotFound
from control.client import (
    ApiClient,
    EventRecorder,
    Informer,
    InformerFactory,
    NotLeading,
    Resource,
    ShutDown,
    WorkQueue,
    object_key,
)

from .expectations import Expectations
from .metrics import ControllerMetrics

__all__ = ["Controller", "ControllerContext", "Settings"]

log = logging.getLogger("ketch.controllers")

Obj = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    """Tunables of the controller-manager (flags).  Defaults are Kubernetes' unless said."""

    concurrency: dict[str, int] = field(default_factory=dict)  # per controller name
    default_concurrency: int = 5
    #: Node lifecycle: a node whose Lease was not renewed for this long is Unknown (50 s).
    node_monitor_grace: float = 50.0
    node_monitor_period: float = 5.0
    node_startup_grace: float = 60.0
    node_eviction_rate: float = 0.1  # nodes per second
    unhealthy_zone_threshold: float = 0.55
    cluster_cidr: str = "127.64.0.0/10"
    node_cidr_mask: int = 24
    terminated_pod_gc_threshold: int = 12500
    deployment_resync: float = 30.0
    #: The garbage collector and resource quota controller look at discovery this often for
    #: resources come or gone (custom resources; kube's hard-coded 30 s "Sync").
    resource_discovery_period: float = 30.0
    #: The cluster CA (PEM) that root-ca-cert-publisher puts in every namespace.
    ca_pem: bytes = b""

    def workers(self, name: str) -> int:
        return self.concurrency.get(name, self.default_concurrency)


@dataclass
class ControllerContext:
    """What every controller shares in one process."""

    client: ApiClient
    informers: InformerFactory
    recorder: EventRecorder
    clock: Clock
    metrics: ControllerMetrics = field(default_factory=ControllerMetrics)
    settings: Settings = field(default_factory=Settings)

    def informer(self, res: Resource, **kw: Any) -> Informer:
        return self.informers.informer(res, **kw)

    def now(self) -> str:
        return format_time(self.clock.now())


class Controller:
    """Subclasses set :attr:`name`, watch informers in ``__init__`` and implement
    :meth:`reconcile`."""

    name: ClassVar[str] = "controller"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        # kube-controller-manager's controllers sign their events "<name>-controller"
        self.recorder = ctx.recorder.for_component(f"{self.name}-controller")
        self.queue = WorkQueue(self.name, clock=ctx.clock, metrics=ctx.metrics)
        self.expectations = Expectations(ctx.clock)
        self.workers = ctx.settings.workers(self.name)
        self._active = False

    # --- enqueueing (called from informer handlers: cheap, never blocking) -----------------

    def enqueue(self, obj: Obj | str) -> None:
        self.queue.add(obj if isinstance(obj, str) else object_key(obj))

    def enqueue_after(self, key: Hashable, delay: float) -> None:
        self.queue.add_after(key, delay)

    def watch(self, informer: Informer) -> None:
        """Enqueue the key of every object of ``informer`` that is added, changed or
        deleted (the common case: a controller's own kind)."""
        informer.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                             on_delete=self.enqueue)

    def primary(self) -> Informer | None:
        """The informer whose keys this controller reconciles (filled at a new term)."""
        return None

    # --- the work ------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        raise NotImplementedError

    def start_term(self) -> None:
        """Leadership (re)acquired: forget what a previous term expected, queue every key."""
        self.expectations.clear()
        self._active = True
        inf = self.primary()
        if inf is not None:
            for obj in inf.cache:
                self.enqueue(obj)

    async def run(self) -> None:
        """Run :attr:`workers` workers until cancelled."""
        self.start_term()
        tasks = [asyncio.create_task(self._worker(), name=f"{self.name} worker {i}")
                 for i in range(max(1, self.workers))]
        try:
            await asyncio.gather(*tasks)
        finally:
            self._active = False
            for t in tasks:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            started = time.perf_counter()
            try:
                again = await self.reconcile(str(key))
            except NotLeading:
                self.queue.done(key)
                raise
            except (Conflict, NotFound) as e:  # the world moved: look again soon
                log.debug("%s %s: %s; retrying", self.name, key, e)
                self._result("conflict")
                self.queue.add_rate_limited(key)
            except APIError as e:
                log.info("%s %s: %s; retrying", self.name, key, e)
                self._result("error")
                self.queue.add_rate_limited(key)
            except Exception:  # a bug must not kill the worker: log, back off, retry
                log.exception("%s %s: reconcile failed", self.name, key)
                self._result("error")
                self.queue.add_rate_limited(key)
            else:
                self._result("success")
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                self.queue.done(key)
                self.ctx.metrics.work.labels(self.name).observe(time.perf_counter() - started)

    def _result(self, result: str) -> None:
        self.ctx.metrics.reconciles.labels(self.name, result).inc()
