"""Figures of `ketch bench cluster`, each beside its anchor: Kubernetes' SLOs (pod startup p99
≤ 5 s; mutating API calls p99 ≤ 1 s; reads p99 ≤ 1 s for one object, ≤ 30 s for lists),
the issue's targets (scheduling ≥ 300 pods/s while saturating, no component over 4 GiB RSS)
and kubemark's cost (hollow nodes per core).

API latency is the apiserver's own ``apiserver_request_duration_seconds`` histogram (request
arrival to response, as the SLI defines it), the difference between two scrapes, its p99 read
from the buckets as Prometheus' ``histogram_quantile`` does.  Pure functions: unit-tested
without a cluster.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ketch.bench.cluster_procs import Usage
from ketch.bench.load import percentile
from ketch.bench.machine import CpuShare
from ketch.bench.report import _num, _render

__all__ = ["COSTS", "DELAY_METRIC", "GIB", "MUTATING", "SLI_METRIC", "WAIT_METRIC", "Hist", "Result", "Totals", "api_rows",
           "estimate_memory", "format_report", "histogram_quantile", "parse_histograms",
           "startup_row", "subtract", "to_json"]

GIB = 1 << 30
MIB = 1 << 20
MUTATING = ("create", "update", "patch", "delete", "deletecollection")
STARTUP_SLO = 5.0
SCHEDULING_TARGET = 300.0
RSS_LIMIT = 4 * GIB
_METRIC = "apiserver_request_duration_seconds"
#: The SLI: the same latency without the wait in flow control's queues, as kube measures it.
SLI_METRIC = "apiserver_request_sli_duration_seconds"
WAIT_METRIC = "apiserver_flowcontrol_request_wait_duration_seconds"
DELAY_METRIC = "apiserver_watch_event_delay_seconds"


@dataclass(frozen=True)
class Hist:
    """A cumulative histogram: upper bounds (ascending, the last +Inf) and counts."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    total: float
    sum: float

    def within(self, limit: float) -> float:
        """The fraction of observations at most ``limit`` (a bucket bound)."""
        if not self.total:
            return 1.0
        for b, c in zip(self.bounds, self.counts):
            if b >= limit:
                return c / self.total
        return 1.0


def parse_histograms(text: str, metric: str = _METRIC) -> dict[tuple[tuple[str, str], ...], Hist]:
    """Each series of ``metric`` in a Prometheus text exposition, keyed by its labels (sorted
    (name, value) pairs, ``le`` left out)."""
    raw: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name != metric:
            continue
        for s in fam.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            entry = raw.setdefault(key, {"buckets": {}, "count": 0.0, "sum": 0.0})
            if s.name.endswith("_bucket"):
                entry["buckets"][float(s.labels["le"])] = s.value
            elif s.name.endswith("_count"):
                entry["count"] = s.value
            elif s.name.endswith("_sum"):
                entry["sum"] = s.value
    out = {}
    for key, e in raw.items():
        bounds = tuple(sorted(e["buckets"]))
        out[key] = Hist(bounds, tuple(e["buckets"][b] for b in bounds), e["count"], e["sum"])
    return out


def traffic(api: Mapping[tuple[tuple[str, str], ...], Hist], delay: Mapping[Any, Hist],
            revisions: int, wall: float) -> dict[str, float]:
    """One phase's steady loads: store writes/s (revisions; every write is one), Lease
    writes/s (the node heartbeats and leader elections, from the API histogram), watch events
    delivered to watchers per second and their p99 delay (the watch cache's receipt -> the
    write to the watcher's connection)."""
    if wall <= 0:
        return {}
    leases = sum(h.total for key, h in api.items()
                 if dict(key).get("resource") == "leases" and dict(key).get("verb") in MUTATING)
    merged = next(iter(delay.values()), None)
    return {"store_writes_per_s": revisions / wall, "lease_writes_per_s": leases / wall,
            "watch_events_per_s": (merged.total / wall) if merged else 0.0,
            "watch_delay_p99_s": histogram_quantile(0.99, merged) if merged else math.nan}


def subtract(after: Mapping[Any, Hist], before: Mapping[Any, Hist]) -> dict[Any, Hist]:
    """What was observed between two scrapes (series with no new observation left out)."""
    out = {}
    for key, h in after.items():
        b = before.get(key)
        if b is None or b.bounds != h.bounds:
            d = h
        else:
            d = Hist(h.bounds, tuple(x - y for x, y in zip(h.counts, b.counts)),
                     h.total - b.total, h.sum - b.sum)
        if d.total > 0:
            out[key] = d
    return out


def histogram_quantile(q: float, h: Hist) -> float:
    """Prometheus' estimate: linear interpolation inside the bucket holding rank q·count (the
    lowest bucket from 0; the +Inf bucket answers the highest finite bound)."""
    if not h.total:
        return math.nan
    rank = q * h.total
    prev_bound, prev_count = 0.0, 0.0
    for b, c in zip(h.bounds, h.counts):
        if c >= rank:
            if math.isinf(b):
                return prev_bound
            if c == prev_count:
                return b
            return prev_bound + (b - prev_bound) * (rank - prev_count) / (c - prev_count)
        prev_bound, prev_count = b, c
    return prev_bound


def _slo(verb: str) -> tuple[float, str]:
    if verb in MUTATING:
        return 1.0, "≤ 1 s"
    if verb == "list":
        return 30.0, "≤ 30 s"
    return 1.0, "≤ 1 s"


def api_rows(hists: Mapping[tuple[tuple[str, str], ...], Hist], *, top: int = 0,
             waited: Mapping[tuple[tuple[str, str], ...], Hist] | None = None
             ) -> tuple[str, bool]:
    """A table of every (verb, resource[, subresource]) with its count, p50 and p99 next to
    its SLO; whether every mutating call met it.  ``top``: only the busiest rows (0: all).
    ``hists`` are the SLI's (without flow control's queue wait); ``waited``, if given, the
    same calls with it, shown as their own p99 column."""
    rows = [["verb", "resource", "calls", "p50 ms", "p99 ms", "≤ SLO", "SLO p99"]]
    if waited is not None:
        rows[0].insert(5, "p99 ms queued")
    met = True
    items = sorted(hists.items(), key=lambda kv: -kv[1].total)
    shown = items[:top] if top else items
    for key, h in shown:
        labels = dict(key)
        verb = labels.get("verb", "")
        resource = labels.get("resource", "") or "(non-resource)"
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        limit, text = _slo(verb)
        share = h.within(limit)
        ok = share >= 0.99
        if verb in MUTATING and not ok:
            met = False
        row = [verb, resource, f"{int(h.total):,}",
               _num(histogram_quantile(0.5, h) * 1000, ".0f"),
               _num(histogram_quantile(0.99, h) * 1000, ".0f"),
               f"{share:.2%}", f"{text} {'✓' if ok else '✗'}"]
        if waited is not None:
            w = waited.get(key)
            row.insert(5, _num(histogram_quantile(0.99, w) * 1000, ".0f") if w else "-")
        rows.append(row)
    for key, h in items[len(shown):]:
        labels = dict(key)
        limit, _ = _slo(labels.get("verb", ""))
        if labels.get("verb") in MUTATING and h.within(limit) < 0.99:
            met = False
    return _render(rows), met


def startup_row(name: str, values: Sequence[float]) -> list[str]:
    v = sorted(values)
    cells = [_num(percentile(v, q), ".2f") if v else "-" for q in (50, 90, 99)]
    return [name, *cells, f"{len(v):,}"]


# --- memory ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cost:
    """A component's memory: a base, plus so much per node and per pod (bytes)."""

    base: float
    per_node: float
    per_pod: float
    copies: int = 1

    def of(self, nodes: int, pods: int) -> float:
        return self.copies * (self.base + self.per_node * nodes + self.per_pod * pods)


#: Measured by `ketch bench cluster` runs on this machine (docs/bench/cluster-*.txt): RSS at
#: the control plane's start, with the nodes Ready, and once every pod ran, divided out.
#: Hollow-node processes: base per process, per node and per pod across all of them.
COSTS: dict[str, Cost] = {
    "apiserver": Cost(110 * MIB, 0.5 * MIB, 24 * 1024),
    "store": Cost(60 * MIB, 0.07 * MIB, 12 * 1024, copies=3),
    "controller-manager": Cost(70 * MIB, 0.04 * MIB, 12 * 1024),
    "scheduler": Cost(60 * MIB, 0.02 * MIB, 8 * 1024),
    "hollow": Cost(45 * MIB, 0.55 * MIB, 24 * 1024),
    "bench": Cost(60 * MIB, 0.0, 2 * 1024),
}


@dataclass
class Totals:
    """A memory estimate: bytes per component and in all, with the largest single process."""

    by_component: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.by_component.values())


def estimate_memory(nodes: int, pods: int, processes: int) -> Totals:
    """What a run of ``nodes`` hollow nodes (in ``processes`` processes) and ``pods`` pods
    should need, from :data:`COSTS`."""
    out = Totals()
    for name, cost in COSTS.items():
        value = cost.of(nodes, pods)
        if name == "hollow":
            value += cost.base * (processes - 1)
        out.by_component[name] = value
    return out


# --- the run's figures ----------------------------------------------------------------------

@dataclass
class Result:
    """Everything one run measured (filled in as it goes; a crash leaves the rest empty)."""

    nodes: int
    pods: int
    processes: int
    replicas: int
    rate: float
    latency_pods: int
    latency_rate: float
    cores: int
    load_before: float
    machine: CpuShare | None = None
    ready_s: float = math.nan
    walls: dict[str, float] = field(default_factory=dict)
    phases: dict[str, dict[str, Usage]] = field(default_factory=dict)
    api: dict[str, dict[Any, Hist]] = field(default_factory=dict)
    sli: dict[str, dict[Any, Hist]] = field(default_factory=dict)
    waits: dict[str, dict[Any, Hist]] = field(default_factory=dict)
    windows: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, dict[str, int]] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    startup: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    bound_rate: dict[str, float] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    failed_pods: int = 0
    traffic: dict[str, dict[str, float]] = field(default_factory=dict)
    crash: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return (not self.crash and self.running.get("saturation", 0) >= self.pods
                and self.running.get("latency", 0) >= self.latency_pods)

    def collect(self, tracker: Any) -> None:
        """Per group: startup latencies (SLI and its parts), pods running, the bind rate
        from the first to the last bind."""
        for group in ("saturation", "latency"):
            times = [t for t in tracker.pods.values() if t.group == group]
            self.running[group] = sum(1 for t in times if t.running is not None)
            self.startup[group] = {
                "startup": [t.running - t.first for t in times if t.running is not None],
                "schedule": [t.scheduled - t.first for t in times if t.scheduled is not None],
                "run": [t.running - t.scheduled for t in times
                        if t.running is not None and t.scheduled is not None]}
            bound = sorted(t.scheduled for t in times if t.scheduled is not None)
            if len(bound) > 1 and bound[-1] > bound[0]:
                self.bound_rate[group] = (len(bound) - 1) / (bound[-1] - bound[0])
        self.failed_pods = len(tracker.failed)


def _by_kind(usage: Mapping[str, Usage], kinds: Mapping[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, u in usage.items():
        kind = kinds.get(name, name)
        out[kind] = out.get(kind, 0.0) + u.cpu_s
    return out


def _components_table(r: Result) -> str:
    phases = [p for p in ("start-up", "saturation", "latency", "idle") if p in r.phases]
    rows = [["component", *[f"{p} cores" for p in phases], "peak RSS MiB", "per node KiB",
             "per pod KiB"]]
    base, nodes, pods = (r.rss.get(k, {}) for k in ("control plane", "nodes", "pods"))
    for name in sorted(r.kinds, key=lambda n: (list(COSTS).index(r.kinds[n])
                                               if r.kinds[n] in COSTS else 99, n)):
        cells = []
        for p in phases:
            wall = r.walls.get(p, r.ready_s if p == "start-up" else math.nan)
            u = r.phases[p].get(name)
            cells.append(_num(u.cpu_s / wall, ".2f") if u and wall and wall > 0 else "-")
        per_node = per_pod = math.nan
        if name in nodes and r.nodes:
            per_node = (nodes[name] - base.get(name, 0)) / r.nodes / 1024
        if name in pods and name in nodes and r.pods:
            per_pod = (pods[name] - nodes[name]) / r.pods / 1024
        peak = r.peak.get(name, 0)
        flag = " ✗" if peak > RSS_LIMIT else ""
        rows.append([name, *cells, f"{peak / MIB:,.0f}{flag}", _num(per_node, ",.0f"),
                     _num(per_pod, ",.1f")])
    return _render(rows, left=1)


def format_report(r: Result) -> str:
    """The whole report, as printed."""
    out = [f"ketch bench cluster: {r.nodes:,} hollow nodes in {r.processes} process(es), "
           f"{r.pods:,} saturation pods (Deployments of {r.replicas}, offered at "
           f"{r.rate:g} pods/s), then {r.latency_pods:,} latency pods at {r.latency_rate:g}/s; "
           f"{r.cores} cores, load {r.load_before:.2f} before the start"
           + (f", others used {r.machine.others:.0%} of the machine meanwhile"
              if r.machine else "")]
    if r.crash:
        out.append(f"\nCRASH: {r.crash}")
    for e in r.errors[:10]:
        out.append(f"error: {e}")
    if len(r.errors) > 10:
        out.append(f"... and {len(r.errors) - 10} more errors")
    out.append(f"\nnodes Ready: {r.nodes:,} in {_num(r.ready_s, '.0f')} s")
    if "saturation" in r.walls:
        w = r.windows.get("saturation") or []
        busy = sorted(x for x in w if x > 0)
        rate = r.bound_rate.get("saturation", math.nan)
        ok = "✓" if rate >= SCHEDULING_TARGET else "✗"
        out.append(f"saturation: {r.running.get('saturation', 0):,}/{r.pods:,} pods running in "
                   f"{r.walls['saturation']:.0f} s; scheduling {_num(rate, '.0f')} pods/s "
                   f"(first to last bind; 5-s windows p50 "
                   f"{_num(percentile(busy, 50), '.0f')}, max {_num(max(busy, default=math.nan), '.0f')}) "
                   f"— target ≥ {SCHEDULING_TARGET:.0f} {ok}")
    rows = [["pod startup, seconds (watch)", "p50", "p90", "p99", "pods"]]
    for group in ("latency", "saturation"):
        s = r.startup.get(group)
        if not s:
            continue
        rows.append(startup_row(f"{group} pods: create -> Running", s["startup"]))
        rows.append(startup_row("  create -> scheduled", s["schedule"]))
        rows.append(startup_row("  scheduled -> Running", s["run"]))
    if len(rows) > 1:
        out += ["", _render(rows, left=1)]
        lat = sorted(r.startup.get("latency", {}).get("startup", []))
        if lat:
            p99 = percentile(lat, 99)
            out.append(f"SLO: latency pods' startup p99 ≤ {STARTUP_SLO:.0f} s: {p99:.2f} s "
                       f"{'✓' if p99 <= STARTUP_SLO else '✗'} (saturation pods: "
                       f"clusterloader2's threshold is 1 h)")
    for phase in ("saturation", "latency", "idle"):
        t = r.traffic.get(phase)
        if t:
            out += ["", (f"load during {phase}: store writes {t['store_writes_per_s']:,.0f}/s, "
                    f"Lease writes {t['lease_writes_per_s']:,.0f}/s (kube: 1,000 nodes at "
                    f"10 s = 100/s), watch events delivered {t['watch_events_per_s']:,.0f}/s, "
                    f"p99 delay {_num(t['watch_delay_p99_s'] * 1000, '.1f')} ms (watch "
                    f"cache -> the watcher's connection)")]
        if r.waits.get(phase):
            out += ["", f"flow control during {phase}: requests (p99 wait) by priority level: "
                    + ", ".join(f"{dict(k).get('priority_level')} {int(h.total):,} "
                                f"({_num(histogram_quantile(0.99, h) * 1000, '.0f')} ms)"
                                for k, h in sorted(r.waits[phase].items(),
                                                   key=lambda kv: -kv[1].total))]
        if r.sli.get(phase):
            table, met = api_rows(r.sli[phase], top=12, waited=r.api.get(phase, {}))
            out += ["", (f"API calls during {phase} (server side, without the wait in flow "
                         f"control's queues as kube's SLI; 'queued': with it; SLO: mutating "
                         f"p99 ≤ 1 s, get ≤ 1 s, list ≤ 30 s) — mutating "
                         f"{'✓' if met else '✗'}"), table]
    if r.kinds:
        out += ["", ("components: cores used per phase, peak RSS (limit 4 GiB), memory per "
                "node (nodes Ready - control plane alone) and per pod (all pods running - "
                "nodes Ready)"), _components_table(r)]
        for phase in ("idle", "saturation"):
            cpu = _by_kind(r.phases.get(phase, {}), r.kinds).get("hollow")
            wall = r.walls.get(phase)
            if cpu and wall:
                out.append(f"hollow nodes per core ({phase}): {r.nodes / (cpu / wall):,.0f} "
                           f"(kubemark: ~10 per core by its guide, 6-8 per vCPU in CI)")
    if r.failed_pods:
        out.append(f"pods that failed: {r.failed_pods}")
    return "\n".join(out)


def to_json(r: Result) -> dict[str, Any]:
    def hist(h: Hist) -> dict[str, Any]:
        return {"count": h.total, "p50": histogram_quantile(0.5, h),
                "p99": histogram_quantile(0.99, h), "within_1s": h.within(1.0)}

    out = {k: v for k, v in asdict(r).items() if k not in ("api", "sli", "waits", "phases",
                                                             "startup", "machine")}
    out["machine_others"] = r.machine.others if r.machine else None
    out["api"] = {p: {"/".join(v for _, v in key): hist(h) for key, h in hs.items()}
                  for p, hs in r.api.items()}
    out["sli"] = {p: {"/".join(v for _, v in key): hist(h) for key, h in hs.items()}
                  for p, hs in r.sli.items()}
    out["waits"] = {p: {"/".join(v for _, v in key): hist(h) for key, h in hs.items()}
                    for p, hs in r.waits.items()}
    out["phases"] = {p: {n: asdict(u) for n, u in us.items()} for p, us in r.phases.items()}
    out["startup"] = {g: {k: {"p50": percentile(sorted(v), 50), "p90": percentile(sorted(v), 90),
                              "p99": percentile(sorted(v), 99), "n": len(v)} if v else {}
                          for k, v in s.items()} for g, s in r.startup.items()}
    return out
