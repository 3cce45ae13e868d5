"""What a chaos run leaves behind: a report a person can read, the raw history, and a timeline.

Files in the report directory: ``report.txt`` (what is printed at the end), ``report.json``
(the same as data), ``history.jsonl`` (every operation and observation), ``timeline.html`` (one
row per client, operations coloured by outcome, faults as shaded bands; in a ``--cluster`` run
also a row per component, lanes of container processes per node and the convergence after
each fault) and the cluster's logs and data under ``cluster/``.
"""

from __future__ import annotations

import html
import json
import statistics
from pathlib import Path
from typing import Any

from .runner import RunResult

__all__ = ["render_text", "reproduce_command", "write_report"]


def reproduce_command(r: RunResult) -> str:
    api = ""
    if r.cluster:
        api = " --cluster"
        api += "".join(f" --sabotage {k}" for k in r.cluster.get("sabotage") or ())
        if r.cluster.get("actions"):
            api += f" --actions {','.join(r.cluster['actions'])}"
        if r.cluster.get("settle_s", 90.0) != 90.0:
            api += f" --settle {r.cluster['settle_s']:g}"
        if r.cluster.get("bound_s", 30.0) != 30.0:
            api += f" --bound {r.cluster['bound_s']:g}"
    elif r.api_clients:
        api = " --api" + (f" --api-clients {r.api_clients}" if r.api_clients != 4 else "")
        api += " --api-contend" if r.api_stats.get("contend") else ""
    return (f"ketch chaos run --scenario {r.scenario} --duration {r.duration:g} "
            f"--seed {r.seed}{api} --report DIR")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def _clip(line: str, limit: int = 240) -> str:
    """Violation lines quote values, which can be kilobytes long: keep a line readable."""
    return line if len(line) <= limit else line[: limit - 15] + f"… (+{len(line) - limit + 15} chars)"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def summary(r: RunResult) -> dict[str, Any]:
    faults: dict[str, int] = {}
    for f in r.history.faults:
        faults[f.name] = faults.get(f.name, 0) + 1
    kill_gaps = [g for f, _, g in r.recovery if f.name == "kill-leader" and g is not None]
    recover = [s for _, s, _ in r.recovery if s is not None]
    return {
        "scenario": r.scenario,
        "seed": r.seed,
        "duration_s": r.duration,
        "faults": faults,
        "faults_total": len(r.history.faults),
        "operations": r.history.summary(),
        "verdicts": {c.name: c.verdict for c in r.checks},
        "violations": {c.name: c.violations[:20] for c in r.checks if c.violations},
        "leader_kill_write_gap_ms": {
            "count": len(kill_gaps),
            "p50": None if not kill_gaps else round(statistics.median(kill_gaps) * 1000),
            "p99": None if not kill_gaps else round((_pct(kill_gaps, 0.99) or 0) * 1000),
            "max": None if not kill_gaps else round(max(kill_gaps) * 1000),
        },
        "recovery_after_heal_ms": {
            "p50": None if not recover else round(statistics.median(recover) * 1000),
            "p99": None if not recover else round((_pct(recover, 0.99) or 0) * 1000),
        },
        "notes": r.notes,
        "reproduce": reproduce_command(r),
    } | ({"api": _api_summary(r)} if r.api_clients else {}) | _cluster_summary(r)


def _api_summary(r: RunResult) -> dict[str, Any]:
    """The API part of an --api run: longest gap without an acknowledged API write around
    each fault, by fault type, and what the workload and watchers went through."""
    gaps: dict[str, list[float]] = {}
    for f, _, gap in r.api_recovery:
        if gap is not None:
            gaps.setdefault(f.name, []).append(gap)
    worst: dict[str, float] = {}
    for f, gap in zip(r.history.faults, r.api_stats.get("worst_apiserver_gap_s", []),
                      strict=False):
        worst[f.name] = max(worst.get(f.name, 0.0), gap)
    recover = [s for _, s, _ in r.api_recovery if s is not None]
    final = r.api_final
    return {
        "clients": r.api_clients,
        "write_gap_ms_by_fault": {
            name: {"count": len(g), "p50": round(statistics.median(g) * 1000),
                   "max": round(max(g) * 1000)} for name, g in sorted(gaps.items())},
        "worst_apiserver_gap_ms_by_fault": {k: round(v * 1000) for k, v in sorted(
            worst.items())},
        "first_write_after_heal_ms": {
            "p50": None if not recover else round(statistics.median(recover) * 1000),
            "max": None if not recover else round(max(recover) * 1000)},
        "final": None if final is None else {
            "list_rv": final.list_rv, "objects_read": len(final.objects),
            "present": sum(v is not None for v in final.objects.values()),
            "lagging_watchers": final.lagging},
        **{k: v for k, v in r.api_stats.items() if k != "worst_apiserver_gap_s"},
    }


def _cluster_summary(r: RunResult) -> dict[str, Any]:
    return {"cluster": r.cluster} if r.cluster else {}


def render_text(r: RunResult) -> str:
    s = summary(r)
    lines = [f"chaos run: scenario {r.scenario}, seed {r.seed}, {r.duration:g} s of faults", ""]
    lines.append(f"faults injected: {s['faults_total']}")
    for name, n in sorted(s["faults"].items()):
        lines.append(f"  {name:<26} {n}")
    lines.append("")
    lines.append("operations by outcome:")
    lines.append(r.history.format_summary())
    lines.append("")
    lines.append("checkers:")
    for c in r.checks:
        extra = ", ".join(f"{k} {v}" for k, v in sorted(c.counts.items()))
        lines.append(f"  {c.name:<24} {c.verdict.upper():<10} {extra}")
        for v in c.violations[:10]:
            lines.append(f"      ! {_clip(v)}")
    g = s["leader_kill_write_gap_ms"]
    rec = s["recovery_after_heal_ms"]
    lines.append("")
    lines.append(f"longest write gap per leader kill: n={g['count']} p50={g['p50']} ms "
                 f"p99={g['p99']} ms max={g['max']} ms")
    lines.append(f"first acknowledged write after a heal: p50={rec['p50']} ms p99={rec['p99']} ms")
    if r.api_clients:
        lines += _api_text(s["api"])
    if r.cluster:
        from .report_cluster import cluster_text

        lines += cluster_text(r)
    if r.notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in r.notes)
    lines.append("")
    lines.append(f"verdict: {'OK' if r.ok else ('VIOLATION' if r.violations else 'UNDECIDED')}")
    lines.append(f"reproduce: {reproduce_command(r)}")
    return "\n".join(lines)


def _api_text(api: dict[str, Any]) -> list[str]:
    lines = ["", (f"API ({len(api.get('apiserver_starts', {}))} apiservers, {api['clients']} "
             "clients): longest time without an acknowledged API write (either apiserver), "
             "and without any answered request from the worst single apiserver, per fault:")]
    worst = api.get("worst_apiserver_gap_ms_by_fault", {})
    for name, g in api["write_gap_ms_by_fault"].items():
        lines.append(f"  {name:<26} n={g['count']:<3} p50={g['p50']} ms max={g['max']} ms; "
                     f"one apiserver max={worst.get(name)} ms")
    first = api["first_write_after_heal_ms"]
    lines.append(f"  first acknowledged API write after a heal: p50={first['p50']} ms "
                 f"max={first['max']} ms")
    lines.append(f"  watchers: {api.get('watch_streams', 0)} streams opened, "
                 f"{api.get('watch_breaks', 0)} broke and were resumed, "
                 f"{api.get('watch_refused', 0)} watch requests refused, "
                 f"{api.get('relists_after_410', 0)} relists after 410 Expired")
    lines.append(f"  apiserver starts: {api.get('apiserver_starts', {})}")
    answers = api.get("answers", {})
    if answers:
        lines.append("  answers: " + ", ".join(f"{k}: {v}" for k, v in answers.items()))
    if api.get("final"):
        f = api["final"]
        lines.append(f"  final: list at rv {f['list_rv']}, {f['objects_read']} objects read, "
                     f"{f['present']} present")
    return lines


def write_report(r: RunResult, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.txt").write_text(render_text(r) + "\n")
    data = summary(r)
    data["faults_detail"] = [
        {"name": f.name, "target": f.target, "injected_at": f.injected_at,
         "healed_at": f.healed_at, "recover_s": rec, "longest_write_gap_s": gap}
        | ({"api_recover_s": api[1], "api_longest_write_gap_s": api[2]} if api else {})
        for (f, rec, gap), api in zip(
            r.recovery, r.api_recovery or [None] * len(r.recovery),  # type: ignore[list-item]
            strict=True)]
    if r.cluster:
        from .report_cluster import cluster_detail

        for entry, extra in zip(data["faults_detail"], cluster_detail(r), strict=True):
            entry.update(extra)
    (directory / "report.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    r.history.to_jsonl(directory / "history.jsonl")
    (directory / "timeline.html").write_text(_timeline(r))


_COLOURS = {"ok": "#3a3", "fail": "#c33", "unknown": "#e90"}


def _timeline(r: RunResult) -> str:
    # Watch events and bookmarks are instants, thousands of them: the history file has them.
    ops = [op for op in r.history if op.invoke is not None
           and op.kind not in ("api_watch_event", "api_watch_bookmark")]
    if not ops:
        return "<html><body>no operations</body></html>"
    t0 = min(op.invoke for op in ops)
    t1 = max((op.complete or op.invoke) for op in ops)
    row = 14
    width = int(max(1400, min(40000, (t1 - t0) * 8)))  # long runs scroll sideways
    scale = width / max(t1 - t0, 1e-9)
    clients = sorted({op.client for op in ops})
    extra: list[str] = []
    rows = 0
    if r.cluster:
        from .report_cluster import timeline_rows

        extra, rows = timeline_rows(r, t0, t1, scale, row * (len(clients) + 1), row)
    height = row * (len(clients) + 2 + rows)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 120}" height="{height}">']
    for f in r.history.faults:
        x = (f.injected_at - t0) * scale
        w = max(1.0, ((f.healed_at or t1) - f.injected_at) * scale)
        parts.append(f'<rect x="{x + 100:.1f}" y="0" width="{w:.1f}" height="{height}" '
                     f'fill="#99c" opacity="0.3"><title>{html.escape(f.name)} on '
                     f'{html.escape(str(f.target))}</title></rect>')
    for i, c in enumerate(clients):
        parts.append(f'<text x="0" y="{(i + 1) * row + 10}" font-size="10">client {c}</text>')
    index = {c: i for i, c in enumerate(clients)}
    for op in ops:
        x = (op.invoke - t0) * scale + 100
        w = max(0.5, ((op.complete or t1) - op.invoke) * scale)
        y = (index[op.client] + 1) * row
        title = html.escape(f"{op.kind} {op.key} {op.input} -> {op.status} {op.output}")
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 3}" '
                     f'fill="{_COLOURS.get(op.status, "#999")}"><title>{title}</title></rect>')
    parts += extra
    parts.append("</svg>")
    legend = " ".join(f'<span style="color:{c}">■ {s}</span>' for s, c in _COLOURS.items())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>ketch chaos timeline</title>"
            "</head><body style='font-family:sans-serif'>"
            f"<h2>ketch chaos: {html.escape(r.scenario)}, seed {r.seed}</h2>"
            f"<p>{legend} <span style='color:#99c'>■ fault</span> — hover for details</p>"
            f"<pre>{html.escape(render_text(r))}</pre><div style='overflow-x:auto'>"
            + "".join(parts) + "</div></body></html>")
