"""Liveness checkers of a ``--cluster`` chaos run: the cluster comes back whole after every
fault, within a bound, and a partitioned node behaves as Kubernetes promises.

- ``convergence``: after every fault's heal the runner timed how long until the cluster was
  whole again (:mod:`chaos.convergence`); each must be within ``bound`` seconds (the lines
  name what was still wrong when the wait ran out).
- ``node_partitions``: every ``partition-node`` fault held past the node-monitor grace period
  (plus ``slack`` for the monitor's period and the watch) saw its Node go Unknown while cut
  off, and no process on it stopped meanwhile except Job pods finishing their work: pods keep
  running on a node the control plane cannot reach.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chaos.history import Convergence, FaultRecord, Observation, ProcessRun

from .cluster import job_of
from .result import CheckResult, verdict_of

__all__ = ["convergence", "node_partitions"]


def convergence(records: Sequence[Convergence], faults: Sequence[FaultRecord], *,
                bound: float = 30.0, t0: float = 0.0) -> CheckResult:
    violations = []
    for c in records:
        f = faults[c.fault] if 0 <= c.fault < len(faults) else None
        what = f"fault #{c.fault + 1} {f.name} on {f.target}" if f else f"fault #{c.fault + 1}"
        if c.seconds is None or c.seconds > bound:
            took = "did not converge" if c.seconds is None else f"took {c.seconds:.1f} s"
            shown = "; ".join(c.problems[:6]) + (f"; … {len(c.problems) - 6} more"
                                                 if len(c.problems) > 6 else "")
            if not shown:  # converged late: what it waited on, last first
                shown = "waited on " + " | ".join(
                    f"from {at:.1f} s: {'; '.join(left)}"
                    for at, left in reversed([t for t in c.trail if t[1]][-3:]))
            violations.append(f"{what} (healed at {c.healed_at - t0:.1f}): {took} "
                              f"(bound {bound:.0f} s): {shown}")
    times = sorted(c.seconds for c in records if c.seconds is not None)
    counts = {"faults": len(records), "converged": len(times)}
    if times:
        counts["max_ms"] = round(times[-1] * 1000)
    return CheckResult("convergence", verdict_of(violations, len(records)), violations, counts)


def node_partitions(faults: Iterable[FaultRecord], observations: Iterable[Observation],
                    runs: Iterable[ProcessRun], *, grace: float, slack: float = 4.0,
                    t0: float = 0.0) -> CheckResult:
    nodes = [o for o in observations if o.resource == "nodes"]
    runs = list(runs)
    violations = []
    checked = 0
    for f in faults:
        if f.name != "partition-node" or f.healed_at is None:
            continue
        node, start, end = f.target, f.injected_at, f.healed_at
        stopped = [r for r in runs if r.node == node and r.end is not None
                   and start < r.end < end and r.start < start and not job_of(r.labels)]
        violations += [f"{r.namespace}/{r.pod} pid {r.pid} on {node} stopped at "
                       f"{(r.end or 0) - t0:.3f} while {node} was cut off "
                       f"[{start - t0:.1f}, {end - t0:.1f}]" for r in stopped]
        if end - start < grace + slack:
            continue
        checked += 1
        unknown = [o for o in nodes if o.name == node and start <= o.at <= end + 2.0
                   and o.data.get("ready") == "Unknown"]
        if not unknown:
            violations.append(f"{node} cut off for {end - start:.1f} s "
                              f"[{start - t0:.1f}, {end - t0:.1f}] never went Unknown")
    return CheckResult("node_partitions", verdict_of(violations, checked), violations,
                       {"long_partitions": checked})
