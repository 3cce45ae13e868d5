"""The node agent (kubelet + kube-proxy's job): one object wiring registration, heartbeat,
node status, the pod workers over a runtime, the pod status writer, the streaming server and
the service proxy, over ``control.client`` only.

Start-up, in order (:meth:`NodeAgent.run`):

1. the streaming server (its port goes into the Node's ``daemonEndpoints``);
2. the Node is registered (retried until the apiserver answers) and the Lease heartbeat starts
   on its own client, so nothing below can delay it; the node status loop starts (NotReady
   until the runtime is up);
3. the pod CIDR (from the controller-manager, or the configured fallback), then the runtime —
   which re-adopts the containers a previous agent left running — and the pod workers;
4. the pods informer (``spec.nodeName=NAME``) feeds the workers; after its first list the
   sandboxes of pods deleted meanwhile are removed; the service proxy starts.

While the apiserver is unreachable nothing stops: containers run, workers restart what
crashes, statuses wait in the writer, the informers retry, and everything reconciles when it
returns.  On stop (SIGTERM), with ``keep_pods_on_exit`` the pods are left running for the next
agent; otherwise the Node is reported NotReady ("node is shutting down"), every pod is stopped
within its grace period (capped by ``shutdown_grace``) and reported Failed with a
DisruptionTarget condition, as the kubelet's graceful node shutdown does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from control.api.clock import Clock, RealClock, format_time
from control.api.objects import node_lease_renew_seconds
from control.client import ApiClient, EventRecorder, Informer, InformerFactory
from control.client import resources as R
from node.pods.manager import PodWorkers
from node.pods.worker import PodWorker, WorkerConfig
from node.proxy import ServiceProxy
from node.runtime.api import Runtime
from node.runtime.images import ImageCatalog
from node.runtime.network import pod_port
from node.runtime.process import ProcessRuntime
from node.streaming import StreamingConfig, StreamingServer

from .conditions import allocatable, capacity
from .config import AgentConfig
from .heartbeat import LeaseHeartbeat
from .machine import MachineFacts, Readings, machine_facts, read_pressure
from .nodestatus import NodeStatusUpdater
from .podconfig import PodFeed
from .registration import register, wait_pod_cidr
from .sources import ClusterSources
from .status_sink import PodStatusWriter
from .streaming_adapter import RuntimeStreams

__all__ = ["NodeAgent", "RuntimeFactory", "process_runtime"]

log = logging.getLogger("ketch.node")

RuntimeFactory = Callable[[str], Awaitable[Runtime]]

SHUTDOWN_REASON = "Terminated"
SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."
_NO_CIDR = ("container runtime network not ready: NetworkReady=false "
            "reason:NetworkPluginNotReady message:no pod CIDR assigned to this node yet")


def process_runtime(config: AgentConfig) -> RuntimeFactory:
    """The process runtime under the agent's directory, started (containers re-adopted)."""
    async def make(pod_cidr: str) -> Runtime:
        rt = ProcessRuntime(config.runtime_dir, pod_cidr=pod_cidr,
                            catalog=ImageCatalog(extra=dict(config.images)),
                            log_max_size=config.log_max_size, log_max_files=config.log_max_files,
                            run_record=config.run_record, run_record_tags={"node": config.name})
        await rt.start()
        return rt
    return make


class NodeAgent:
    """``client`` does the pod work; ``heartbeat_client`` (default: ``client``; the process
    gives it its own) registers, renews the Lease and posts node status.  ``serving_tls``:
    the streaming server's TLS context (None: no streaming server, as in hollow nodes)."""

    def __init__(self, config: AgentConfig, client: ApiClient, *,
                 heartbeat_client: ApiClient | None = None, clock: Clock | None = None,
                 runtime_factory: RuntimeFactory | None = None,
                 serving_tls: ssl.SSLContext | None = None, facts: MachineFacts | None = None,
                 readings: Callable[[], Readings] | None = None,
                 worker_config: WorkerConfig | None = None) -> None:
        os.makedirs(config.dir, exist_ok=True)
        self.config = config
        self.client = client
        self.hb_client = heartbeat_client or client
        self.clock = clock or RealClock()
        self.runtime_factory = runtime_factory or process_runtime(config)
        self.serving_tls = serving_tls
        self.facts = facts or machine_facts(config.dir)
        self.readings = readings or (lambda: read_pressure(config.dir))
        self.worker_config = worker_config
        self.streams = RuntimeStreams()
        self.port = 0
        self.node_uid = ""
        self.pod_cidr = ""
        self.runtime: Runtime | None = None
        self.workers: PodWorkers | None = None
        self.writer: PodStatusWriter | None = None
        self.sources: ClusterSources | None = None
        self.feed: PodFeed | None = None
        self.proxy: ServiceProxy | None = None
        self.shutting_down = False
        self.registered = asyncio.Event()
        self.started = asyncio.Event()  # every part is running
        self.events = EventRecorder(client, component="kubelet", host=config.name,
                                    clock=self.clock)
        self.informers = InformerFactory(client)
        self.nodes: Informer = self.informers.informer(
            R.NODES, field_selector=f"metadata.name={config.name}")
        self.pods: Informer = self.informers.informer(
            R.PODS, field_selector=f"spec.nodeName={config.name}")
        self.services: Informer = self.informers.informer(R.SERVICES)
        self.heartbeat = LeaseHeartbeat(
            self.hb_client, config.name, clock=self.clock, duration=config.lease_duration,
            renew_seconds=config.lease_renew_seconds, retry_initial=config.lease_retry_initial,
            retry_cap=config.lease_retry_cap, node_uid=lambda: self.node_uid,
            renew_floor=lambda: node_lease_renew_seconds(self.nodes.cache.get(config.name)))
        self.status = NodeStatusUpdater(
            self.hb_client, self.nodes, config, self.facts, clock=self.clock, events=self.events,
            port=lambda: config.streaming_advertise_port or self.port, not_ready=self.not_ready, readings=self.readings,
            reregister=self._register)
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._failed: BaseException | None = None
        self._stop = asyncio.Event()

    # --- health ----------------------------------------------------------------------------

    def not_ready(self) -> list[str]:
        """Why the Node is not Ready (the Ready condition's message)."""
        if self.shutting_down:
            return ["node is shutting down"]
        if not self.pod_cidr:
            return [_NO_CIDR]
        if self.runtime is None:
            return ["container runtime status check may not have completed yet"]
        return []

    def problems(self) -> list[str]:
        """For ``/readyz``: what is not working yet (empty: the agent is ready)."""
        out = []
        if not self.registered.is_set():
            out.append("node not registered")
        out += self.not_ready()
        if self.feed is None or not self.feed.synced.is_set():
            out.append("pods not listed yet")
        return out

    # --- the parts ---------------------------------------------------------------------------

    def _spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.config.name} {name}")
        self._tasks[name] = task
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self._stop.is_set():
            return
        e = task.exception()
        if e is not None:
            log.error("node %s: %s failed: %r", self.config.name, task.get_name(), e,
                      exc_info=e)
            self._failed = self._failed or e
            self._stop.set()

    async def _register(self, node: dict[str, Any]) -> dict[str, Any]:
        registered = await register(self.hb_client, node, clock=self.clock,
                                    backoff_cap=self.config.lease_retry_cap)
        self.node_uid = (registered.get("metadata") or {}).get("uid", "")
        return registered

    async def _start(self) -> None:
        cfg = self.config
        self._spawn("events", self.events.run())
        self.events.event(self.status.ref, "Normal", "Starting", "Starting kubelet.")
        await self._register(self.status.initial_node())
        self.registered.set()
        self._spawn("heartbeat", self.heartbeat.run())
        self.informers.start()
        self._spawn("node-status", self.status.run())
        self.pod_cidr = await wait_pod_cidr(self.hb_client, self.nodes, cfg, clock=self.clock)
        self.runtime = await self.runtime_factory(self.pod_cidr)
        self.writer = PodStatusWriter(self.client, self.pods, clock=self.clock,
                                      writers=cfg.status_writers)
        self.sources = ClusterSources(self.client, self.services, clock=self.clock,
                                      node=lambda: self.nodes.cache.get(cfg.name))
        wc = self.worker_config or WorkerConfig(
            host_ip=cfg.address, backoff_cap=cfg.backoff_cap, resync_seconds=cfg.sync_seconds,
            node_allocatable=allocatable(capacity(self.facts, cfg)))
        self.workers = PodWorkers(runtime=self.runtime, clock=self.clock, sink=self.writer,
                                  events=self.events, sources=self.sources, config=wc)
        self.streams.bind(self.runtime, self.workers)
        self._spawn("status-writer", self.writer.run())
        self._spawn("pod-workers", self.workers.run())
        self.feed = PodFeed(self.pods, self.workers, cfg.name, on_gone=self._pod_gone)
        self._spawn("pods", self.feed.run())
        if cfg.service_proxy:
            self.proxy = ServiceProxy(self.informers, cfg.address, port_of=pod_port)
            self._spawn("service-proxy", self.proxy.run())
        with contextlib.suppress(Exception):
            await self.status.sync()  # Ready now, not at the next tick
        self.started.set()
        log.info("node %s is up: %s, pod CIDR %s, streaming port %d", cfg.name, cfg.address,
                 self.pod_cidr, self.port)

    def _pod_gone(self, uid: str) -> None:
        if self.writer is not None:
            self.writer.forget(uid)
        if self.sources is not None:
            self.sources.forget_pod(uid)

    # --- the whole life -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to shut down (what SIGTERM does)."""
        self._stop.set()

    async def run(self) -> None:
        """Run until :meth:`stop`; then shut down as configured.  Raises what made a part of
        the agent fail (and :class:`~node.registration.RegistrationError`)."""
        async with contextlib.AsyncExitStack() as stack:
            if self.serving_tls is not None:
                server = StreamingServer(self.streams, StreamingConfig(self.config.name),
                                         tls=self.serving_tls, host=self.config.address,
                                         port=self.config.streaming_port, clock=self.clock)
                await stack.enter_async_context(server)
                self.port = server.port
            starting = asyncio.create_task(self._start(), name=f"{self.config.name} start")
            stopping = asyncio.create_task(self._stop.wait())
            try:
                await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if starting.done() and starting.exception() is not None:
                    self._failed = self._failed or starting.exception()
                else:
                    await stopping
            finally:
                starting.cancel()
                stopping.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
                await self._shutdown()
        if self._failed is not None:
            raise self._failed

    async def _cancel(self, *names: str) -> None:
        tasks = [self._tasks.pop(n) for n in names if n in self._tasks]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _shutdown(self) -> None:
        self._stop.set()
        await self._cancel("pods", "pod-workers")  # containers keep running
        if self.workers is not None and not self.config.keep_pods_on_exit \
                and self._failed is None:
            await self._stop_pods(self.workers)
        if self.writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.writer.flush(), 10.0)
        await self._cancel(*list(self._tasks.keys() - {"events"}))
        await self.informers.stop()
        with contextlib.suppress(Exception):
            await self.events.flush(2.0)
        await self._cancel("events")
        if self.runtime is not None:
            await self.runtime.close()
        log.info("node %s stopped%s", self.config.name,
                 " (its pods keep running)" if self.config.keep_pods_on_exit else "")

    async def _stop_pods(self, workers: PodWorkers) -> None:
        """Graceful node shutdown (the kubelet's shutdown manager)."""
        self.shutting_down = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.status.sync(force=True), 5.0)
        log.info("node %s shutting down: stopping its pods (grace at most %.0fs)",
                 self.config.name, self.config.shutdown_grace)
        stopped = await workers.stop_all(self.config.shutdown_grace)
        for w in stopped:
            self._report_shut_down(w)

    def _report_shut_down(self, w: PodWorker) -> None:
        if self.writer is None or w.last_status is None:
            return
        status = dict(w.last_status)
        status.update(phase="Failed", reason=SHUTDOWN_REASON, message=SHUTDOWN_MESSAGE)
        now = self.clock.now()
        status["conditions"] = [c for c in status.get("conditions") or []
                                if c.get("type") != "DisruptionTarget"] + [
            {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
             "message": SHUTDOWN_MESSAGE, "lastProbeTime": None,
             "lastTransitionTime": format_time(now)}]
        self.writer.set_status(w.pod, status, owned=("DisruptionTarget",))
