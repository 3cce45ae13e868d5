"""Checkers that judge a recorded chaos history after the run.

Each returns a verdict that is "ok", a violation with readable lines, or "unknown" (could not
decide) — and "unknown" is never reported as a pass.  All are pure functions of their inputs.
"""

from __future__ import annotations

from .leaders import one_leader_per_term
from .leases import leases_expire_after_ttl
from .linearizability import Counterexample, LinearizabilityResult, check_linearizable
from .lost_writes import lost_writes
from .result import CheckResult, Verdict
from .revisions import revisions_monotonic
from .watches import watch_checker

__all__ = [
    "CheckResult",
    "Counterexample",
    "LinearizabilityResult",
    "Verdict",
    "check_linearizable",
    "leases_expire_after_ttl",
    "lost_writes",
    "one_leader_per_term",
    "revisions_monotonic",
    "watch_checker",
]
