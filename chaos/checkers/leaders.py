"""Election safety: at most one member ever claimed leadership of a given term.

Role in the data flow: the status poller records a `LeaderObservation` per member per poll;
this checker groups the claims by term.  Only claims count (``is_leader``): a follower's view
of who leads may lag and proves nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from chaos.history import LeaderObservation

from .result import CheckResult, verdict_of

__all__ = ["one_leader_per_term"]


def one_leader_per_term(observations: Iterable[LeaderObservation]) -> CheckResult:
    """One violation line per term claimed by two or more members; "unknown" if no claims."""
    claims: dict[int, dict[str, float]] = {}
    for obs in observations:
        if obs.is_leader:
            first_seen = claims.setdefault(obs.term, {})
            first_seen[obs.member] = min(
                first_seen.get(obs.member, obs.observed_at), obs.observed_at
            )
    violations = [
        f"term {term} claimed by "
        + ", ".join(f"{m} (first at {t:.3f})" for m, t in sorted(members.items()))
        for term, members in sorted(claims.items())
        if len(members) > 1
    ]
    counts = {"terms": len(claims), "split_terms": len(violations)}
    return CheckResult(
        "one_leader_per_term", verdict_of(violations, len(claims)), violations, counts
    )
