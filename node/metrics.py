"""The agent's own metrics on its ``/metrics`` listener, read from the agent when scraped
(pods it runs, heartbeat renewals and failures, status writes and conflicts, events
dropped)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .agent import NodeAgent

__all__ = ["agent_registry"]


class _AgentCollector(Collector):
    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        a = self.agent
        workers = a.workers.workers if a.workers is not None else {}
        yield GaugeMetricFamily("kubelet_running_pods", "Pods this node has a worker for",
                                value=sum(1 for w in workers.values() if not w.done))
        yield GaugeMetricFamily("kubelet_node_ready", "1 when the node reports Ready",
                                value=0 if a.not_ready() else 1)
        yield CounterMetricFamily("ketch_node_lease_renewals", "Successful Lease renewals",
                                  value=a.heartbeat.renewals)
        yield CounterMetricFamily("ketch_node_lease_failures", "Failed Lease renewals",
                                  value=a.heartbeat.failures)
        yield CounterMetricFamily("ketch_node_status_posts", "Node status posts",
                                  value=a.status.posts)
        writer = a.writer
        yield CounterMetricFamily("ketch_pod_status_writes", "Pod status writes",
                                  value=writer.writes if writer else 0)
        yield CounterMetricFamily("ketch_pod_status_conflicts", "Pod status writes refused "
                                  "with 409", value=writer.conflicts if writer else 0)
        yield GaugeMetricFamily("ketch_pod_status_pending", "Pods whose status is not written",
                                value=writer.pending if writer else 0)
        yield CounterMetricFamily("ketch_node_events_dropped", "Events dropped by the spam "
                                  "filter", value=a.events.dropped)


def agent_registry(agent: NodeAgent) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_AgentCollector(agent))
    return registry
