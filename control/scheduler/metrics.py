"""The scheduler's Prometheus metrics, named as kube-scheduler's where one exists.

One :class:`Metrics` per scheduler, on its own registry (two schedulers in one test process
do not collide); the process serves it on ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)
_ALGO = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "scheduler_schedule_attempts", "Scheduling attempts by result "
            "(scheduled, unschedulable, error).", ["result"], registry=r)
        self.e2e = Histogram(
            "scheduler_e2e_scheduling_duration_seconds", "From a pod's arrival in the queue to "
            "its successful bind, including waits and retries.", buckets=_LATENCY, registry=r)
        self.algorithm = Histogram(
            "scheduler_scheduling_algorithm_duration_seconds", "One scheduling decision "
            "(filter + score), without API calls.", buckets=_ALGO, registry=r)
        self.binding = Histogram(
            "scheduler_binding_duration_seconds", "One pods/binding call.", buckets=_LATENCY,
            registry=r)
        self.pending = Gauge(
            "scheduler_pending_pods", "Pods in the scheduling queue by place.", ["queue"],
            registry=r)
        self.preemption_attempts = Counter(
            "scheduler_preemption_attempts", "Preemption attempts.", registry=r)
        self.preemption_victims = Counter(
            "scheduler_preemption_victims", "Pods evicted by preemption.", registry=r)
        self.cache_size = Gauge(
            "scheduler_cache_size", "Objects in the scheduler's cache.", ["type"], registry=r)
        self.classes = Gauge(
            "scheduler_equivalence_classes", "Live equivalence-class caches.", registry=r)
