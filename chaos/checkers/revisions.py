"""Revisions never go backwards: not for clients in real time, not for a replica's applied state.

Role in the data flow: reads the header revisions the ops' answers carried (``output
["revision"]``) and the `RevisionObservation`s the status poller recorded.

Rules:

- real time (all clients share the history clock, which subsumes "per client"): an ok op that
  is not a serializable read and was invoked after op ``A`` completed answers a revision
  ≥ ``A``'s, and > ``A``'s when it is an acknowledged write (it made a new revision).  Every
  ok op, serializable reads included, counts as such an ``A``: a replica only applies
  committed entries, so whatever it answered was a committed revision by then.
- replicas: per member and incarnation (restart count), the applied revision is
  non-decreasing in ``observed_at`` order.  Across a restart it is not judged: a restarted
  replica may report less until it has replayed its log (lost data is lost_writes' business).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from chaos.history import Op, RevisionObservation

from .result import CheckResult, verdict_of
from .writes import acknowledged

__all__ = ["revisions_monotonic"]


def revisions_monotonic(
    history: Iterable[Op], replicas: Iterable[RevisionObservation] = ()
) -> CheckResult:
    """Check both rules; "unknown" when no op carried a revision and no replica was observed."""
    answered = [op for op in history if _revision(op) is not None]
    violations = _realtime(answered)
    observations = list(replicas)
    violations += _per_replica(observations)
    counts = {
        "ops": len(answered),
        "replica_observations": len(observations),
        "backwards": len(violations),
    }
    checked = len(answered) + len(observations)
    return CheckResult("revisions_monotonic", verdict_of(violations, checked), violations, counts)


def _revision(op: Op) -> int | None:
    revision = op.output.get("revision")
    if op.status != "ok" or op.complete is None or not isinstance(revision, int):
        return None
    return revision


def _realtime(ops: list[Op]) -> list[str]:
    """Sweep ops by invoke time, keeping the highest revision of every op completed before."""
    completed = sorted(ops, key=lambda o: o.complete or 0.0)
    violations: list[str] = []
    best: Op | None = None
    done = 0
    for op in sorted(ops, key=lambda o: o.invoke):
        while done < len(completed) and (completed[done].complete or 0.0) < op.invoke:
            if best is None or _rev(completed[done]) > _rev(best):
                best = completed[done]
            done += 1
        if best is None or op.input.get("serializable"):
            continue
        floor, mine = _rev(best), _rev(op)
        wrote = acknowledged(op)
        if mine < floor or (wrote and mine == floor):
            need = "above" if wrote else "at least"
            violations.append(
                f"{op.kind} #{op.id} (client {op.client}) answered rev {mine}, but "
                f"{best.kind} #{best.id} (client {best.client}) had already answered rev "
                f"{floor}; needed {need} {floor}"
            )
    return violations


def _rev(op: Op) -> int:
    revision = _revision(op)
    assert revision is not None
    return revision


def _per_replica(observations: list[RevisionObservation]) -> list[str]:
    violations: list[str] = []
    ordered = sorted(observations, key=lambda o: (o.member, o.incarnation, o.observed_at))
    for (member, incarnation), group in groupby(ordered, key=lambda o: (o.member, o.incarnation)):
        high: RevisionObservation | None = None
        for obs in group:
            if high is not None and obs.revision < high.revision:
                violations.append(
                    f"replica {member} (incarnation {incarnation}) applied rev {obs.revision} "
                    f"at {obs.observed_at:.3f} after rev {high.revision} at {high.observed_at:.3f}"
                )
            if high is None or obs.revision > high.revision:
                high = obs
    return violations
