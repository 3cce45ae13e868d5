"""Figures of `ketch bench api` to text and JSON, each next to its anchor (Kubernetes' SLOs).

Pure functions of `PhaseResult` / `WatchResult` values, so the layout and the ✓/✗ verdicts are
unit-tested without a cluster.  Latencies are kept in seconds and printed in ms.  The anchors are
Kubernetes' API call latency SLOs (sig-scalability ``slos/api_call_latency.md``: mutating and
single-object reads p99 ≤ 1 s, namespaced lists p99 ≤ 5 s) and, for watch delivery, the brief's
"p99 ≤ 100 ms with 1,000 watches".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ketch.bench.load import LoadResult, percentile
from ketch.bench.machine import CpuShare
from ketch.bench.report import _num, _render  # the one table layout of every bench

__all__ = [
    "SLOS",
    "WATCH_SLO",
    "CpuUse",
    "Latency",
    "PhaseResult",
    "Slo",
    "WatchResult",
    "format_crud",
    "format_watch",
    "latency",
    "phase_failed",
    "to_json",
    "verdict",
    "watch_failed",
]


@dataclass(frozen=True)
class Slo:
    """An anchor: p99 latency at most ``limit`` seconds; ``text`` is how the table names it."""

    limit: float
    text: str


SLOS: dict[str, Slo] = {
    "create": Slo(1.0, "p99 ≤ 1 s"),
    "get": Slo(1.0, "p99 ≤ 1 s"),
    "list": Slo(5.0, "p99 ≤ 5 s (namespaced list)"),
    "update": Slo(1.0, "p99 ≤ 1 s"),
    "patch": Slo(1.0, "p99 ≤ 1 s"),
    "delete": Slo(1.0, "p99 ≤ 1 s"),
}
"""Per verb, in the order the phases run."""

WATCH_SLO = Slo(0.100, "p99 ≤ 100 ms with 1,000 watches")


def verdict(p99: float, slo: Slo) -> str:
    """"✓" when ``p99`` is within the anchor, else "✗" (NaN — nothing succeeded — is "✗")."""
    return "✓" if not math.isnan(p99) and p99 <= slo.limit else "✗"


@dataclass(frozen=True)
class CpuUse:
    """CPU over one interval, in cores (1.0 = one core fully busy), by process group.

    ``machine`` splits the whole machine's busy time (all cores = 1.0) into the benchmark with
    its cluster and the others; None where /proc is missing."""

    apiserver: float
    store: float
    client: float
    machine: CpuShare | None = None


@dataclass(frozen=True)
class PhaseResult:
    """One verb at one concurrency: the closed-loop figures and what they mean here.

    ``conflicts`` (409s) and ``exhausted`` (a delete found no object left) are not ``errors``;
    ``items`` is the number of objects each list returned (0 for other verbs)."""

    verb: str
    load: LoadResult
    conflicts: int = 0
    exhausted: int = 0
    items: int = 0
    cpu: CpuUse | None = None

    @property
    def errors(self) -> int:
        return self.load.errors - self.conflicts - self.exhausted

    @property
    def items_per_s(self) -> float:
        return self.load.ops_per_s * self.items if self.items else math.nan


@dataclass(frozen=True)
class Latency:
    """p50 / p99 / max of a sample, seconds (NaN when empty)."""

    p50: float
    p99: float
    max: float
    count: int


def latency(values: Sequence[float]) -> Latency:
    """Nearest-rank p50/p99 and the max of ``values`` (any order; may be negative)."""
    ordered = sorted(values)
    return Latency(
        p50=percentile(ordered, 50),
        p99=percentile(ordered, 99),
        max=ordered[-1] if ordered else math.nan,
        count=len(ordered),
    )


@dataclass(frozen=True)
class WatchResult:
    """Watch fan-out: ``watchers`` opened, ``established`` saw the sentinel; ``events`` writes
    acknowledged at ``rate``/s, each expected once by every established watcher.

    ``after_response`` is receive − the write's response time over all (watcher × event)
    pairs received, ``after_send`` receive − the write's request send time.  ``lost`` pairs never
    arrived, ``duplicated`` arrived more than once, ``unexpected`` carried a resourceVersion no
    acknowledged write returned (a write whose answer was lost)."""

    watchers: int
    established: int
    establish_s: float
    events: int
    write_errors: int
    rate: float
    after_response: Latency
    after_send: Latency
    lost: int
    duplicated: int
    unexpected: int = 0
    delivery_s: float = math.nan
    """From the first write's send to the last arrival: deliveries / this = fan-out rate."""
    watcher_errors: tuple[str, ...] = ()
    cpu: CpuUse | None = None
    slo: Slo = field(default=WATCH_SLO)

    @property
    def deliveries_per_s(self) -> float:
        ok = self.delivery_s > 0  # False for NaN too
        return self.after_response.count / self.delivery_s if ok else math.nan


def phase_failed(r: PhaseResult) -> bool:
    return r.errors > 0


def watch_failed(w: WatchResult) -> bool:
    """A watch run fails when an event is lost or repeated, or a watch or write failed."""
    return bool(
        w.lost or w.duplicated or w.write_errors or w.established < w.watchers
        or w.watcher_errors
    )


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def format_crud(results: Sequence[PhaseResult]) -> str:
    """One line per (verb, concurrency), in the order given: throughput, latency (ms), errors,
    409s, CPU per process group (% of one core) and the verb's anchor with ✓/✗."""
    header = ["verb", "conc", "ops/s", "items/s", "p50 ms", "p99 ms", "max ms", "err", "409",
              "apiserver", "store", "client", "anchor (Kubernetes SLO)", ""]
    rows = [header]
    for r in results:
        slo = SLOS[r.verb]
        cpu = r.cpu
        rows.append([
            r.verb, str(r.load.concurrency), _num(r.load.ops_per_s, ".0f"),
            _num(r.items_per_s, ".0f"), _num(r.load.p50 * 1e3, ".1f"),
            _num(r.load.p99 * 1e3, ".1f"), _num(r.load.max * 1e3, ".1f"), str(r.errors),
            str(r.conflicts), _cores(cpu.apiserver if cpu else None),
            _cores(cpu.store if cpu else None), _cores(cpu.client if cpu else None),
            slo.text, verdict(r.load.p99, slo),
        ])
    table = _render(rows)
    return f"{table}\n(CPU: % of one core during the phase; store = all 3 replicas)"


def format_watch(w: WatchResult) -> str:
    """Two lines of delivery latency, each judged against the anchor: from the write's
    response (the definition) and from its send (an upper bound); then lost/duplicated counts,
    establishment, fan-out rate and CPU.  When events beat the writer's own answer a note says
    the true delay lies between the two."""
    rows = [["watch delivery", "watchers", "events", "p50 ms", "p99 ms", "max ms", "lost", "dup",
             "anchor", ""]]
    for label, lat in (("after write response", w.after_response),
                       ("after write sent", w.after_send)):
        rows.append([
            label, f"{w.established}/{w.watchers}", str(w.events), _num(lat.p50 * 1e3, ".1f"),
            _num(lat.p99 * 1e3, ".1f"), _num(lat.max * 1e3, ".1f"), str(w.lost),
            str(w.duplicated), w.slo.text, verdict(lat.p99, w.slo),
        ])
    lines = [_render(rows, left=1)]
    if w.after_response.p50 < 0:
        lines.append("note: most events reached the watchers before the writer got its answer; "
                     "the delay from the commit lies between the two lines")
    cpu = w.cpu
    lines.append(
        f"watches established in {w.establish_s:.1f} s; {w.events} writes at {w.rate:g}/s "
        f"({w.write_errors} failed); {w.after_response.count} deliveries in "
        f"{_num(w.delivery_s, '.1f')} s ({_num(w.deliveries_per_s, '.0f')}/s); "
        f"unexpected {w.unexpected}; CPU from first write to last delivery: "
        f"apiserver {_cores(cpu.apiserver if cpu else None)}, "
        f"store {_cores(cpu.store if cpu else None)}, client {_cores(cpu.client if cpu else None)}"
    )
    lines += [f"watch error: {e}" for e in w.watcher_errors]
    return "\n".join(lines)


def to_json(results: Sequence[PhaseResult], watch: WatchResult | None,
            settings: dict[str, Any]) -> dict[str, Any]:
    """Every figure as plain JSON (seconds, NaN left as NaN), with each verdict."""
    return {
        "settings": settings,
        "crud": [
            {"verb": r.verb, **asdict(r.load), "errors": r.errors, "conflicts": r.conflicts,
             "items": r.items, "cpu": asdict(r.cpu) if r.cpu else None,
             "slo_p99_s": SLOS[r.verb].limit, "slo_met": verdict(r.load.p99, SLOS[r.verb]) == "✓"}
            for r in results
        ],
        "watch": None if watch is None else {
            **asdict(watch), "slo_met": verdict(watch.after_response.p99, watch.slo) == "✓"},
    }
