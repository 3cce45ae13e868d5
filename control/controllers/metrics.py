"""The controller-manager's Prometheus metrics: work queues (client-go's ``workqueue_*``
names), reconciles per controller, REST client requests, and leadership."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ControllerMetrics"]

_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ControllerMetrics:
    """One registry per process; implements :class:`control.client.workqueue.QueueMetrics`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.queue_depth = Gauge("workqueue_depth", "Keys waiting in the queue", ("name",),
                                 registry=r)
        self.queue_adds = Counter("workqueue_adds_total", "Keys added", ("name",), registry=r)
        self.queue_retries = Counter("workqueue_retries_total", "Rate-limited re-adds",
                                     ("name",), registry=r)
        self.queue_wait = Histogram("workqueue_queue_duration_seconds",
                                    "Time a key waits before a worker takes it", ("name",),
                                    buckets=_BUCKETS, registry=r)
        self.work = Histogram("workqueue_work_duration_seconds", "Time one reconcile takes",
                              ("name",), buckets=_BUCKETS, registry=r)
        self.reconciles = Counter("controller_reconcile_total", "Reconciles by result",
                                  ("controller", "result"), registry=r)
        self.requests = Counter("rest_client_requests_total", "API requests by verb and code",
                                ("method", "code"), registry=r)
        self.request_latency = Histogram("rest_client_request_duration_seconds",
                                         "API request latency", ("method",), buckets=_BUCKETS,
                                         registry=r)
        self.leader = Gauge("leader_election_master_status",
                            "1 while this instance leads", ("name",), registry=r)

    # QueueMetrics
    def added(self, name: str) -> None:
        self.queue_adds.labels(name).inc()

    def depth(self, name: str, depth: int) -> None:
        self.queue_depth.labels(name).set(depth)

    def retried(self, name: str) -> None:
        self.queue_retries.labels(name).inc()

    def waited(self, name: str, seconds: float) -> None:
        self.queue_wait.labels(name).observe(seconds)

    # RequestHook
    def request(self, method: str, what: str, code: int, seconds: float) -> None:
        self.requests.labels(method, str(code)).inc()
        self.request_latency.labels(method).observe(seconds)
