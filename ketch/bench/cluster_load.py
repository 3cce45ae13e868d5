"""The load of `ketch bench cluster` and what it observes: Deployments created at a set pod
rate (clusterloader2's saturation), single-replica latency Deployments at 5/s, and one watch of
every benchmark pod noting when it was first seen, bound and Running.

Pod startup latency is Kubernetes' SLI as clusterloader2 measures it
(``pkg/measurement/common/slos/pod_startup_latency.go``): the watch's receive time of the
pod's first sight to the watch's receive time of ``phase=Running`` with every container
started, split into create→schedule and schedule→run.  Scheduling throughput is the rate of
pods first seen bound, in 5-second windows (clusterloader2's SchedulingThroughput samples the
same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from control.api.errors import AlreadyExists, APIError, Expired, Gone, NotFound
from control.client import ApiClient
from control.client import resources as R

__all__ = ["GROUP_LABEL", "LoadPlan", "PodTimes", "PodTracker", "create_deployments",
           "deployment", "prepare_namespaces"]

log = logging.getLogger("ketch.bench.cluster")

GROUP_LABEL = "ketch-bench"
PODS_PER_NAMESPACE = 3000  # Kubernetes' scalability threshold (thresholds.md)
IMAGE = "registry.k8s.io/pause:3.9"
_WINDOW = 5.0


@dataclass(frozen=True)
class LoadPlan:
    """What to create: ``pods`` saturation pods in Deployments of ``replicas`` at ``rate``
    pods/s, then ``latency_pods`` one-replica Deployments at ``latency_rate`` per second,
    spread over ``namespaces`` (each holding at most 3,000 pods)."""

    pods: int
    replicas: int
    rate: float
    latency_pods: int
    latency_rate: float

    @property
    def namespaces(self) -> list[str]:
        n = max(1, math.ceil((self.pods + self.latency_pods) / PODS_PER_NAMESPACE))
        return [f"bench-{i + 1}" for i in range(n)]

    def saturation(self) -> list[tuple[str, str, int]]:
        """(namespace, name, replicas) of every saturation Deployment, in creation order."""
        out, left, ns = [], self.pods, self.namespaces
        i = 0
        while left > 0:
            r = min(self.replicas, left)
            out.append((ns[i % len(ns)], f"saturation-{i + 1}", r))
            left -= r
            i += 1
        return out

    def latency(self) -> list[tuple[str, str, int]]:
        ns = self.namespaces
        return [(ns[i % len(ns)], f"latency-{i + 1}", 1) for i in range(self.latency_pods)]


def deployment(namespace: str, name: str, replicas: int, group: str) -> dict[str, Any]:
    """A Deployment of pause pods with small requests (clusterloader2's density pods)."""
    labels = {"name": name, GROUP_LABEL: group}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"name": name}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{
                                               "name": "pause", "image": IMAGE,
                                               "resources": {"requests": {
                                                   "cpu": "10m", "memory": "10Mi"}}}]}}}}


async def prepare_namespaces(client: ApiClient, names: list[str], timeout: float) -> None:
    """Create the namespaces and wait for each one's default ServiceAccount (made by the
    controller-manager; pods are refused until it exists)."""
    for ns in names:
        with contextlib.suppress(AlreadyExists):
            await client.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": ns}})
    deadline = time.monotonic() + timeout
    for ns in names:
        while True:
            try:
                await client.get(R.SERVICEACCOUNTS, "default", ns)
                break
            except NotFound:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"namespace {ns} has no default ServiceAccount after "
                                       f"{timeout:.0f}s: is the controller-manager running?")
                await asyncio.sleep(0.2)


async def create_deployments(client: ApiClient, plan: list[tuple[str, str, int]], rate: float,
                             group: str, *, per_pod: bool, errors: list[str],
                             concurrency: int = 16) -> float:
    """Create ``plan``'s Deployments on a schedule: at ``rate`` pods/s (``per_pod``: the next
    Deployment is due when the previous one's replicas would have been created at that rate)
    or at ``rate`` Deployments/s.  A slow create never delays the schedule (up to
    ``concurrency`` in flight).  Returns the seconds it took."""
    sem = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    due = 0.0

    async def one(ns: str, name: str, replicas: int) -> None:
        try:
            for attempt in range(5):
                try:
                    await client.create(R.DEPLOYMENTS, deployment(ns, name, replicas, group), ns)
                    return
                except AlreadyExists:
                    return
                except APIError as e:  # Unreachable, OutcomeUnknown are APIErrors too
                    if e.code not in (429, 500, 503, 504):
                        raise
                    await asyncio.sleep(0.5 * (attempt + 1))
            raise RuntimeError("gave up after 5 attempts")
        except Exception as e:  # noqa: BLE001 - counted and reported, the run goes on
            errors.append(f"create deployment {ns}/{name}: {e}")
        finally:
            sem.release()

    tasks = []
    for ns, name, replicas in plan:
        await asyncio.sleep(max(0.0, started + due - time.monotonic()))
        await sem.acquire()
        tasks.append(asyncio.create_task(one(ns, name, replicas)))
        due += (replicas if per_pod else 1) / rate
    await asyncio.gather(*tasks)
    return time.monotonic() - started


@dataclass
class PodTimes:
    """One pod, on this process's monotonic clock, as the watch first showed each stage."""

    group: str
    first: float
    scheduled: float | None = None
    running: float | None = None
    node: str = ""


def _running(pod: dict[str, Any]) -> bool:
    st = pod.get("status") or {}
    statuses = st.get("containerStatuses") or []
    return st.get("phase") == "Running" and bool(statuses) and all(
        "running" in (c.get("state") or {}) or c.get("started") for c in statuses)


@dataclass
class PodTracker:
    """Every benchmark pod (label :data:`GROUP_LABEL`), cluster-wide, through one list+watch
    that resumes where it broke and relists on 410."""

    client: ApiClient
    pods: dict[str, PodTimes] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    bound_at: list[float] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)
    on_change: Callable[[], None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _count(self, group: str, stage: str) -> None:
        c = self.counts.setdefault(group, {"seen": 0, "scheduled": 0, "running": 0})
        c[stage] += 1

    def observe(self, pod: dict[str, Any], now: float) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        t = self.pods.get(uid)
        if t is None:
            group = (meta.get("labels") or {}).get(GROUP_LABEL, "")
            t = self.pods[uid] = PodTimes(group, now)
            self._count(group, "seen")
        node = (pod.get("spec") or {}).get("nodeName")
        if node and t.scheduled is None:
            t.scheduled, t.node = now, node
            self.bound_at.append(now)
            self._count(t.group, "scheduled")
        if t.running is None and _running(pod):
            t.running = now
            self._count(t.group, "running")
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Failed":
            self.failed[uid] = self.failed.get(uid, 0) + 1
        self._changed.set()

    def count(self, group: str, stage: str) -> int:
        return self.counts.get(group, {}).get(stage, 0)

    async def until(self, check: Callable[[], bool], timeout: float,
                    tick: Callable[[], None] | None = None) -> bool:
        """Wait until ``check()`` (re-tested on every change and every second, when ``tick``
        also runs); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not check():
            if tick is not None:
                tick()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that arrives as
            # the event fires, and pod events fire it constantly (SIGTERM went unheard)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(1.0, left)):
                    await self._changed.wait()
        return True

    async def run(self) -> None:
        """Follow the pods until cancelled."""
        rv = ""
        selector = GROUP_LABEL
        while True:
            try:
                if not rv:
                    items, rv = await self.client.list_all(R.PODS, label_selector=selector)
                    now = time.monotonic()
                    for pod in items:
                        self.observe(pod, now)
                async for ev in self.client.watch(R.PODS, resource_version=rv,
                                                  label_selector=selector):
                    rv = ev.resource_version or rv
                    if ev.type in ("ADDED", "MODIFIED"):
                        self.observe(ev.object, time.monotonic())
            except (Expired, Gone):
                rv = ""
            except APIError as e:
                log.warning("pod watch: %s; resuming", e)
                await asyncio.sleep(0.5)

    def throughput(self, since: float, until: float) -> list[float]:
        """Pods bound per second in each 5-second window of [since, until)."""
        if until <= since:
            return []
        n = max(1, int((until - since) // _WINDOW))
        counts = [0] * n
        for t in self.bound_at:
            if since <= t < since + n * _WINDOW:
                counts[int((t - since) // _WINDOW)] += 1
        return [c / _WINDOW for c in counts]
