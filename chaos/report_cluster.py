"""The ``--cluster`` part of a chaos report: time to convergence per fault and per kind, what
ran, and the timeline's rows per component and per node.

Role in the data flow: :mod:`chaos.report` calls these when a run has ``cluster`` figures;
they read only the :class:`~chaos.runner.RunResult` and its history.
"""

from __future__ import annotations

import html
from collections import defaultdict
from typing import Any

from .history import ProcessRun
from .runner import RunResult

__all__ = ["cluster_detail", "cluster_text", "timeline_rows"]


def cluster_detail(r: RunResult) -> list[dict[str, Any]]:
    """Per fault: its time to convergence after the heal (None: not within the wait)."""
    by_fault = {c.fault: c for c in r.history.convergence}
    return [{"converged_s": None if (c := by_fault.get(i)) is None or c.seconds is None
             else round(c.seconds, 3),
             "left": [] if c is None else c.problems[:10]}
            for i in range(len(r.history.faults))]


def cluster_text(r: RunResult) -> list[str]:
    s = r.cluster
    t = s.get("timings", {})
    lines = ["", (f"cluster: node Lease {t.get('node_lease')} s, Unknown after "
             f"{t.get('node_monitor_grace')} s (checked every {t.get('node_monitor_period')} s), "
             f"pods tolerate it {t.get('toleration')} s, leader Leases "
             f"{t.get('leader_lease')} s; initial convergence "
             f"{s.get('initial_convergence_s')} s"),
             f"  time to convergence after the heal (bound {s.get('bound_s', 30):g} s), seconds:"]
    rows = dict(s.get("convergence_s_by_fault", {}))
    rows["(all faults)"] = s.get("convergence_s_all", {"n": 0})
    for name, v in rows.items():
        if v.get("n"):
            lines.append(f"    {name:<30} n={v['n']:<4} p50={v['p50']:<6} p99={v['p99']:<6} "
                         f"max={v['max']}")
        else:
            lines.append(f"    {name:<30} n=0")
    missing = [f"#{i + 1} {f.name}" for i, (f, d) in enumerate(zip(
        r.history.faults, cluster_detail(r), strict=True)) if d["converged_s"] is None]
    if missing:
        lines.append(f"  not converged: {', '.join(missing[:20])}")
    lines.append(f"  {s.get('processes', 0)} container processes ran; {s.get('writes', 0)} "
                 f"controller-manager/scheduler writes logged; {s.get('observations', 0)} "
                 "object changes observed")
    lines.append(f"  component starts: {s.get('component_starts', {})}")
    return lines


_RUN = {"ok": "#6a6", "killed": "#c66", "open": "#69c"}


def _lanes(runs: list[ProcessRun], end: float) -> list[list[ProcessRun]]:
    """Pack runs into as few lanes as fit without overlap (first fit, by start)."""
    lanes: list[list[ProcessRun]] = []
    for run in sorted(runs, key=lambda x: x.start):
        for lane in lanes:
            last = lane[-1]
            if (last.end if last.end is not None else end) <= run.start:
                lane.append(run)
                break
        else:
            lanes.append([run])
    return lanes


def timeline_rows(r: RunResult, t0: float, t1: float, scale: float, y0: int,
                  row: int) -> tuple[list[str], int]:
    """SVG elements for: each component (up, paused, down; its lease terms as it acted
    them), each node (its container processes, in lanes) and the convergence after each
    fault.  Returns the elements and the rows used."""
    parts: list[str] = []
    y = y0

    def label(text: str) -> None:
        parts.append(f'<text x="0" y="{y + 10}" font-size="10">{html.escape(text)}</text>')

    def bar(a: float, b: float, colour: str, title: str, *, top: int = 0,
            h: int | None = None) -> None:
        x = (max(a, t0) - t0) * scale + 100
        w = max(0.5, (min(b, t1) - max(a, t0)) * scale)
        parts.append(f'<rect x="{x:.1f}" y="{y + top}" width="{w:.1f}" '
                     f'height="{(h or row - 3)}" fill="{colour}"><title>'
                     f'{html.escape(title)}</title></rect>')

    names = sorted({e.component for e in r.history.components})
    terms: dict[str, dict[tuple[str, int], list[float]]] = defaultdict(dict)
    for w in r.history.writes:
        if 200 <= w.code < 300 and w.term is not None:
            span = terms[w.component].setdefault((w.identity, w.term), [w.invoke, w.complete])
            span[0], span[1] = min(span[0], w.invoke), max(span[1], w.complete)
    for name in names:
        label(name)
        events = sorted((e for e in r.history.components if e.component == name),
                        key=lambda e: e.at)
        up: float | None = None
        paused: float | None = None
        for e in events + [None]:
            at = t1 if e is None else e.at
            if e is None or e.event in ("start", "sigkill", "sigterm"):
                if up is not None:
                    bar(up, at, "#bbb", f"{name} running")
                up = at if e is not None and e.event == "start" else None
            elif e.event == "sigstop":
                paused = at
            elif e.event == "sigcont" and paused is not None:
                bar(paused, at, "#333", f"{name} paused (SIGSTOP)")
                paused = None
        for (identity, term), (a, b) in terms.get(name, {}).items():
            bar(a, b, "#c90", f"{name} acting as leader, term {term} ({identity})",
                top=3, h=row - 9)
        y += row
    runs_by_node: dict[str, list[ProcessRun]] = defaultdict(list)
    for run in r.history.runs:
        runs_by_node[run.node].append(run)
    for node, runs in sorted(runs_by_node.items()):
        for i, lane in enumerate(_lanes(runs, t1)):
            label(f"{node} processes" if i == 0 else "")
            for run in lane:
                colour = _RUN["open"] if run.end is None else \
                    _RUN["ok"] if run.code == 0 else _RUN["killed"]
                bar(run.start, run.end if run.end is not None else t1, colour,
                    f"{run.namespace}/{run.pod} {run.container} pid {run.pid} exit {run.code}")
            y += row
    label("convergence")
    for c in r.history.convergence:
        f = r.history.faults[c.fault] if c.fault < len(r.history.faults) else None
        end = c.converged_at if c.converged_at is not None else t1
        what = f"after #{c.fault + 1} {f.name if f else ''}: " + (
            f"{c.seconds:.1f} s" if c.seconds is not None else "not converged: "
            + "; ".join(c.problems[:5]))
        bar(c.healed_at, end, "#3a3" if c.converged_at is not None else "#c33", what)
    y += row
    return parts, (y - y0) // row
