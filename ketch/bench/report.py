"""Figures to text: the throughput table and the failover summary printed by `ketch bench store`.

Pure functions of `LoadResult` / `KillRecord` values, so the layout is unit-tested without a
cluster.  Ratios are always ketch/etcd: above 1 is better for ketch in ops/s and worse in latency.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ketch.bench.load import Gap, LoadResult
from ketch.bench.machine import CpuShare

if TYPE_CHECKING:
    from ketch.bench.scenarios import Figures

__all__ = [
    "BUSY_THRESHOLD",
    "KillRecord",
    "ResultKey",
    "format_cpu_note",
    "format_failover",
    "format_table",
    "ratio",
    "to_json",
]

BUSY_THRESHOLD = 0.10
"""Share of the machine used by other processes above which a run's figures are flagged."""

ResultKey = tuple[str, str, int]
"""(system, operation, concurrency), e.g. ("etcd", "put", 16)."""


@dataclass(frozen=True)
class KillRecord:
    """One leader kill: which member (by the system's name for it) and the write gap it caused."""

    index: int
    member: str
    gap: Gap


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when either is NaN or ``b`` is 0 (a missing figure is not a ratio)."""
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


def _num(value: float, fmt: str) -> str:
    return "-" if math.isnan(value) else format(value, fmt)


def _render(rows: Sequence[Sequence[str]], *, left: int = 2) -> str:
    """Columns separated by two spaces; the first ``left`` left-aligned, the rest right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_table(results: Mapping[ResultKey, LoadResult], *, systems: Sequence[str]) -> str:
    """One line per (operation, concurrency) with each system's ops/s, p50/p99 (ms) and errors.

    When both "ketch" and "etcd" are in ``systems`` three ratio columns follow (ops/s, p50, p99,
    ketch/etcd).  A system with no result for a line shows "-".  Lines are ordered by operation
    (first seen) then concurrency.
    """
    ops = list(dict.fromkeys(op for (_, op, _) in results))
    concs = sorted({c for (_, _, c) in results})
    both = "ketch" in systems and "etcd" in systems
    header = ["op", "conc"]
    for system in systems:
        header += [f"{system} ops/s", "p50 ms", "p99 ms", "err"]
    if both:
        header += ["k/e ops/s", "k/e p50", "k/e p99"]
    rows = [header]
    for op in ops:
        for conc in concs:
            if not any((s, op, conc) in results for s in systems):
                continue
            row = [op, str(conc)]
            for system in systems:
                r = results.get((system, op, conc))
                if r is None:
                    row += ["-"] * 4
                else:
                    row += [
                        _num(r.ops_per_s, ".0f"),
                        _num(r.p50 * 1e3, ".2f"),
                        _num(r.p99 * 1e3, ".2f"),
                        str(r.errors),
                    ]
            if both:
                k, e = results.get(("ketch", op, conc)), results.get(("etcd", op, conc))
                for field in ("ops_per_s", "p50", "p99"):
                    value = ratio(getattr(k, field), getattr(e, field)) if k and e else math.nan
                    row.append(_num(value, ".2f"))
            rows.append(row)
    return _render(rows)


def _gap_summary(records: Sequence[KillRecord]) -> tuple[float, float]:
    lengths = [r.gap.length for r in records]
    if not lengths:
        return math.nan, math.nan
    return statistics.median(lengths), max(lengths)


def format_failover(kills: Mapping[str, Sequence[KillRecord]]) -> str:
    """Each kill's longest write gap (ms) per system, then median and max, then ketch/etcd.

    An unrecovered gap (no write succeeded after the kill within the deadline) is marked "+",
    meaning "at least this long".
    """
    rows = [["system", "member", "kill", "gap ms"]]
    for system, records in kills.items():
        for rec in records:
            mark = "" if rec.gap.recovered else "+"
            rows.append([system, rec.member, str(rec.index), f"{rec.gap.length * 1e3:.0f}{mark}"])
    out = [_render(rows), ""]
    summary = [["system", "", "kills", "median gap ms", "max gap ms"]]
    medians: dict[str, tuple[float, float]] = {}
    for system, records in kills.items():
        medians[system] = _gap_summary(records)
        med, top = medians[system]
        summary.append(
            [system, "", str(len(records)), _num(med * 1e3, ".0f"), _num(top * 1e3, ".0f")]
        )
    if "ketch" in medians and "etcd" in medians:
        (km, kx), (em, ex) = medians["ketch"], medians["etcd"]
        summary.append(
            ["ketch/etcd", "", "", _num(ratio(km, em), ".2f"), _num(ratio(kx, ex), ".2f")]
        )
    out.append(_render(summary))
    return "\n".join(out)


def format_cpu_note(cpu: Mapping[str, CpuShare], *, threshold: float = BUSY_THRESHOLD) -> str:
    """A warning naming every run during which other processes used more than ``threshold``
    of the machine (its figures are then lower bounds); "" when there is none."""
    busy = [(label, share) for label, share in cpu.items() if share.others > threshold]
    if not busy:
        return ""
    lines = [f"note: other processes used > {threshold:.0%} of the machine during:"]
    lines += [f"  {label}: others {s.others:.0%}, benchmark {s.ours:.0%}" for label, s in busy]
    return "\n".join(lines)


def to_json(figures: Figures) -> dict[str, Any]:
    """The figures as plain JSON values (seconds, not ms; NaN left as NaN)."""
    return {
        "results": [
            {"system": s, "op": o, **asdict(r)} for (s, o, _), r in figures.results.items()
        ],
        "cpu": {label: {"busy": c.busy, "ours": c.ours} for label, c in figures.cpu.items()},
        "failover": {
            label: [
                {
                    "kill": k.index,
                    "member": k.member,
                    "gap_s": k.gap.length,
                    "recovered": k.gap.recovered,
                }
                for k in records
            ]
            for label, records in figures.kills.items()
        },
    }
