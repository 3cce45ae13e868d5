"""Prometheus metrics of one replica: request counts and latencies, Raft and journal state.

Request metrics are updated by the server's middleware; everything else is read from the node
when ``/metrics`` is scraped (a custom collector), so the hot path pays one histogram update.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from .node import StoreNode

__all__ = ["StoreMetrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class StoreMetrics:
    """One registry per replica process (never the global default registry)."""

    def __init__(self, node: StoreNode) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "ketch_store_requests", "HTTP requests by path and outcome code",
            ["path", "code"], registry=self.registry,
        )
        self._latency = Histogram(
            "ketch_store_request_seconds", "HTTP request latency by path",
            ["path"], buckets=_BUCKETS, registry=self.registry,
        )
        self._commit = Histogram(
            "ketch_store_entry_commit_seconds",
            "time from proposing a Raft entry here to its result (replicate + fsync + apply)",
            buckets=_BUCKETS, registry=self.registry,
        )
        self._batch = Histogram(
            "ketch_store_entry_commands", "commands per Raft entry proposed here",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry,
        )
        node.proposer.on_committed = self._committed
        self.registry.register(_NodeCollector(node))

    def _committed(self, seconds: float, commands: int) -> None:  # any thread
        self._commit.observe(seconds)
        self._batch.observe(commands)

    def observe(self, path: str, code: str, seconds: float) -> None:
        self._requests.labels(path, code).inc()
        self._latency.labels(path).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _NodeCollector:
    def __init__(self, node: StoreNode) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        node = self._node
        st = node.status()
        j = node.replica.journal
        gauges = {
            "ketch_store_is_leader": ("1 if this replica is the Raft leader", int(st["is_leader"])),
            "ketch_store_raft_term": ("current Raft term", st["term"]),
            "ketch_store_raft_index": ("last Raft log index", st["raft_index"]),
            "ketch_store_raft_commit_index": ("Raft commit index", st["commit_index"]),
            "ketch_store_raft_applied_index": ("Raft applied index", st["applied_index"]),
            "ketch_store_revision": ("store revision", st["revision"]),
            "ketch_store_compact_revision": ("store compact revision", st["compact_revision"]),
            "ketch_store_watchers": ("open watch streams", st["watchers"]),
            "ketch_store_proposals_queued": ("commands waiting for a Raft entry", node.proposer.queued),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(name, doc, value=value)
        counters = {
            "ketch_store_fsyncs": ("journal fsyncs", j.fsync_count),
            "ketch_store_fsync_seconds": ("time spent in journal fsync", j.fsync_seconds_total),
            "ketch_store_journal_bytes_written": ("bytes written to the journal", j.bytes_written),
            "ketch_store_raft_entries_proposed": ("Raft entries proposed here", node.proposer.entries_proposed),
            "ketch_store_commands_proposed": ("commands proposed here", node.proposer.commands_proposed),
            "ketch_store_events_published": ("watch events fanned out", node.hub.published),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(name, doc, value=value)
