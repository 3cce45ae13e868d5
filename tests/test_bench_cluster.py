"""`ketch bench cluster`: its pure parts — the load plan, the pod tracker's stages and windows,
the apiserver histograms (parse, difference, p99), the verdicts, the memory estimate and the
refusals — without a cluster (the small real run is tests/test_bench_cluster_run.py)."""

from __future__ import annotations

import argparse
import math

import pytest

from ketch.bench.cluster import _check
from ketch.bench.cluster_load import GROUP_LABEL, LoadPlan, PodTracker
from ketch.bench.cluster_procs import Usage
from ketch.bench.cluster_report import (
    GIB,
    Hist,
    Result,
    api_rows,
    estimate_memory,
    format_report,
    histogram_quantile,
    parse_histograms,
    subtract,
    to_json,
    traffic,
)

_METRICS = """# HELP apiserver_request_duration_seconds Request latency
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{le="0.1",resource="pods",verb="create"} %d
apiserver_request_duration_seconds_bucket{le="1.0",resource="pods",verb="create"} %d
apiserver_request_duration_seconds_bucket{le="10.0",resource="pods",verb="create"} %d
apiserver_request_duration_seconds_bucket{le="+Inf",resource="pods",verb="create"} %d
apiserver_request_duration_seconds_count{resource="pods",verb="create"} %d
apiserver_request_duration_seconds_sum{resource="pods",verb="create"} 1.0
apiserver_request_duration_seconds_bucket{le="0.1",resource="nodes",verb="list"} 5
apiserver_request_duration_seconds_bucket{le="1.0",resource="nodes",verb="list"} 5
apiserver_request_duration_seconds_bucket{le="10.0",resource="nodes",verb="list"} 5
apiserver_request_duration_seconds_bucket{le="+Inf",resource="nodes",verb="list"} 5
apiserver_request_duration_seconds_count{resource="nodes",verb="list"} 5
apiserver_request_duration_seconds_sum{resource="nodes",verb="list"} 0.1
"""
CREATE = (("resource", "pods"), ("verb", "create"))


def _metrics(fast: int, medium: int, slow: int, beyond: int = 0) -> str:
    c1, c2, c3 = fast, fast + medium, fast + medium + slow
    return _METRICS % (c1, c2, c3, c3 + beyond, c3 + beyond)


def test_histograms_are_parsed_differenced_and_read_as_prometheus_does() -> None:
    before = parse_histograms(_metrics(10, 0, 0))
    after = parse_histograms(_metrics(60, 40, 0))
    assert after[CREATE].bounds == (0.1, 1.0, 10.0, math.inf)
    d = subtract(after, before)
    assert set(d) == {CREATE}  # nodes/list saw nothing new between the scrapes
    h = d[CREATE]
    assert (h.total, h.counts) == (90, (50, 90, 90, 90))
    assert histogram_quantile(0.5, h) == pytest.approx(0.09)  # 45th of 50 in (0, 0.1]
    assert histogram_quantile(0.99, h) == pytest.approx(0.1 + 0.9 * (89.1 - 50) / 40)
    assert h.within(1.0) == 1.0
    assert histogram_quantile(0.99, Hist((0.1, math.inf), (0, 5), 5, 1.0)) == 0.1
    assert math.isnan(histogram_quantile(0.5, Hist((math.inf,), (0,), 0, 0.0)))


@pytest.mark.parametrize(("slow", "met"), [
    pytest.param(1, True, id="1-percent-over-1s"), pytest.param(2, False, id="2-percent")])
def test_a_mutating_call_meets_its_slo_when_99_percent_are_within_1s(slow: int,
                                                                     met: bool) -> None:
    d = subtract(parse_histograms(_metrics(100 - slow, 0, slow)), {})
    table, ok = api_rows(d)
    assert ok is met
    assert "create  pods" in table and ("≤ 1 s ✓" in table) is met
    assert "≤ 30 s ✓" in table  # lists have the 30 s SLO


def test_the_plan_spreads_pods_over_namespaces_of_at_most_3000() -> None:
    plan = LoadPlan(pods=7_050, replicas=100, rate=100, latency_pods=10, latency_rate=5)
    assert plan.namespaces == ["bench-1", "bench-2", "bench-3"]
    sat = plan.saturation()
    assert len(sat) == 71 and sat[-1] == ("bench-2", "saturation-71", 50)
    assert sum(r for _, _, r in sat) == 7_050
    assert plan.latency()[:4] == [("bench-1", "latency-1", 1), ("bench-2", "latency-2", 1),
                                  ("bench-3", "latency-3", 1), ("bench-1", "latency-4", 1)]


def _pod(uid: str, group: str, node: str = "", phase: str = "Pending",
         started: bool = False) -> dict[str, object]:
    status: dict[str, object] = {"phase": phase}
    if started:
        status["containerStatuses"] = [{"name": "c", "state": {"running": {}}}]
    return {"metadata": {"uid": uid, "labels": {GROUP_LABEL: group}},
            "spec": {"nodeName": node} if node else {}, "status": status}


def test_the_tracker_notes_each_stage_once_at_first_sight() -> None:
    t = PodTracker(client=None)  # type: ignore[arg-type]
    t.observe(_pod("a", "latency"), 1.0)
    t.observe(_pod("a", "latency", "n1"), 2.0)
    t.observe(_pod("a", "latency", "n1", "Running", started=False), 2.5)  # not started yet
    t.observe(_pod("a", "latency", "n1", "Running", started=True), 3.0)
    t.observe(_pod("a", "latency", "n1", "Running", started=True), 9.0)
    t.observe(_pod("b", "saturation", "n2"), 4.0)
    a = t.pods["a"]
    assert (a.first, a.scheduled, a.running, a.node) == (1.0, 2.0, 3.0, "n1")
    assert t.counts == {"latency": {"seen": 1, "scheduled": 1, "running": 1},
                        "saturation": {"seen": 1, "scheduled": 1, "running": 0}}
    assert t.throughput(0.0, 10.0) == [0.4, 0.0]
    r = Result(nodes=2, pods=1, processes=1, replicas=1, rate=1, latency_pods=1,
               latency_rate=1, cores=2, load_before=0.0)
    r.collect(t)
    assert r.startup["latency"] == {"startup": [2.0], "schedule": [1.0], "run": [1.0]}
    assert r.running == {"saturation": 0, "latency": 1}
    assert not r.complete


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"nodes": 10, "pods": 100, "per_process": 5, "replicas": 10,
                               "latency_pods": 10, "rate": 10.0, "latency_rate": 5.0,
                               "profile": "", "force": False}
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.parametrize(("kw", "said"), [
    pytest.param({}, None, id="fine"),
    pytest.param({"nodes": 0}, "--nodes must be >= 1", id="no-nodes"),
    pytest.param({"pods": 2_000}, "do not fit on 10 nodes of 110 pods each: use at least 19",
                 id="too-many-pods"),
    pytest.param({"profile": "apiserver,kubelet"}, "not kubelet", id="unknown-profile"),
    pytest.param({"nodes": 100_000, "pods": 1_000_000}, "GiB is available", id="memory"),
    pytest.param({"nodes": 100_000, "pods": 1_000_000, "force": True}, None,
                 id="memory-forced"),
])
def test_sizes_the_machine_cannot_hold_are_refused_with_the_reason(
        kw: dict[str, object], said: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ketch.bench.cluster._mem_available", lambda: 16 * GIB)
    why = _check(_args(**kw))
    assert (why is None) if said is None else (why is not None and said in why)


def test_the_memory_estimate_grows_with_nodes_pods_and_processes() -> None:
    small, big = estimate_memory(100, 3_000, 1), estimate_memory(1_000, 30_000, 2)
    assert big.total > 5 * small.total
    assert set(big.by_component) >= {"apiserver", "store", "hollow"}
    assert estimate_memory(1_000, 30_000, 4).by_component["hollow"] > \
        big.by_component["hollow"]


def test_the_report_states_every_figure_beside_its_target() -> None:
    r = Result(nodes=100, pods=3_000, processes=1, replicas=100, rate=500, latency_pods=100,
               latency_rate=5, cores=2, load_before=0.5)
    r.ready_s = 12
    r.walls = {"saturation": 20.0, "latency": 21.0, "idle": 10.0}
    r.windows = {"saturation": [100.0, 150.0, 0.0]}
    r.bound_rate = {"saturation": 150.0}
    r.running = {"saturation": 3_000, "latency": 100}
    r.startup = {"latency": {"startup": [1.0] * 98 + [6.0, 7.0], "schedule": [0.1] * 100,
                             "run": [0.9] * 100}}
    r.kinds = {"apiserver-1": "apiserver", "hollow-1": "hollow"}
    r.phases = {"idle": {"apiserver-1": Usage(2.0, 100, 100), "hollow-1": Usage(1.0, 5, 5)}}
    r.peak = {"apiserver-1": 5 * GIB, "hollow-1": GIB}
    r.rss = {"control plane": {"apiserver-1": 100 << 20}, "nodes": {"apiserver-1": 150 << 20},
             "pods": {"apiserver-1": 300 << 20}}
    # The SLI (no queue wait) meets the SLO; with the wait a third of the creates took > 10 s.
    r.api = {"saturation": subtract(parse_histograms(_metrics(10, 0, 0, 5)), {})}
    r.sli = {"saturation": subtract(parse_histograms(_metrics(15, 0, 0, 0)), {})}
    r.traffic = {"idle": {"store_writes_per_s": 120.0, "lease_writes_per_s": 100.0,
                          "watch_events_per_s": 450.0, "watch_delay_p99_s": 0.0042}}
    text = format_report(r)
    assert ("load during idle: store writes 120/s, Lease writes 100/s (kube: 1,000 nodes at "
            "10 s = 100/s), watch events delivered 450/s, p99 delay 4.2 ms") in text
    assert "scheduling 150 pods/s" in text and "target ≥ 300 ✗" in text
    assert "p99 ≤ 5 s: 6.00 s ✗" in text  # nearest rank: the 99th of 100
    assert "mutating ✓" in text  # the SLI leaves flow control's queue wait out, as kube's
    create = next(line.split() for line in text.splitlines() if line.startswith("create "))
    assert create[:3] == ["create", "pods", "15"]
    assert float(create[4]) <= 100 and float(create[5]) >= 10_000  # p99: SLI, then queued
    assert "5,120 ✗" in text  # the apiserver's peak RSS over 4 GiB
    assert "hollow nodes per core (idle): 1,000" in text
    assert r.complete
    doc = to_json(r)
    assert doc["startup"]["latency"]["startup"]["p99"] == 6.0
    assert doc["api"]["saturation"]["pods/create"]["count"] == 15
    assert doc["sli"]["saturation"]["pods/create"]["within_1s"] == 1.0


def test_the_steady_loads_come_from_revisions_lease_writes_and_watch_deliveries() -> None:
    lease = Hist((0.1, math.inf), (40.0, 50.0), 50.0, 1.0)
    other = Hist((0.1, math.inf), (7.0, 7.0), 7.0, 0.1)
    delay = Hist((0.001, 0.01, math.inf), (90.0, 100.0, 100.0), 100.0, 0.2)
    api = {(("resource", "leases"), ("verb", "update")): lease,
           (("resource", "leases"), ("verb", "get")): other,
           (("resource", "pods"), ("verb", "create")): other}
    t = traffic(api, {(): delay}, revisions=570, wall=10.0)
    assert t["store_writes_per_s"] == 57.0 and t["lease_writes_per_s"] == 5.0
    assert t["watch_events_per_s"] == 10.0 and 0.001 < t["watch_delay_p99_s"] <= 0.01
    assert traffic(api, {}, revisions=0, wall=0.0) == {}


def test_progress_lines_stop_quietly_when_their_reader_is_gone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``ketch bench cluster 2>&1 | head``: once head exits, a progress line must not raise in
    the teardown (that left a store replica running) — the lines are dropped instead."""
    import os

    from ketch.bench import cluster

    read, write = os.pipe()
    os.close(read)
    stream = os.fdopen(write, "w")
    monkeypatch.setattr(cluster.sys, "stderr", stream)
    monkeypatch.setattr(cluster, "_stderr_gone", False)
    cluster._progress("stopping every process of the benchmark")
    cluster._progress("and the next line")
    assert cluster._stderr_gone
    with pytest.raises(BrokenPipeError):
        stream.close()
