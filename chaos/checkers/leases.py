"""Leases do not expire early: a lease's keys stay until its TTL has run out since last renewed.

Role in the data flow: the lease workload builds one `LeaseRecord` per lease it granted (grant
invoke time, acknowledged keepalive invoke times, when it first saw the keys gone) and hands
the list here.

Rule: the store computes each deadline on the leader as (apply time + ttl), and the apply time
of a grant or keepalive is after its invoke, so the keys must not be seen gone before
``max(grant_invoke, keepalive_invokes) + ttl - tolerance``.  ``tolerance`` (default
`DEFAULT_TOLERANCE`, 0.25 s) absorbs clock granularity, scheduling jitter between processes
and rounding in the leader's expiry tick; it only ever excuses, it never accuses.  Only
acknowledged keepalives may be listed: an unknown one may never have been applied.
"""

from __future__ import annotations

from collections.abc import Iterable

from chaos.history import LeaseRecord

from .result import CheckResult, verdict_of

__all__ = ["DEFAULT_TOLERANCE", "LeaseInput", "leases_expire_after_ttl"]

DEFAULT_TOLERANCE = 0.25

LeaseInput = LeaseRecord | tuple[int, float, float, Iterable[float], float | None]


def leases_expire_after_ttl(
    lease_events: Iterable[LeaseInput], *, tolerance: float = DEFAULT_TOLERANCE
) -> CheckResult:
    """Check every lease seen expiring; records may also be plain 5-tuples in field order.

    "unknown" when no lease was seen expiring (nothing to judge).
    """
    violations: list[str] = []
    counts = {"leases": 0, "expired": 0, "early": 0}
    for item in lease_events:
        lease = item if isinstance(item, LeaseRecord) else _record(item)
        counts["leases"] += 1
        if lease.expired_observed_at is None:
            continue
        counts["expired"] += 1
        renewed = max((lease.grant_invoke, *lease.keepalive_invokes))
        earliest = renewed + lease.ttl
        if lease.expired_observed_at < earliest - tolerance:
            counts["early"] += 1
            violations.append(
                f"lease {lease.lease_id} (ttl {lease.ttl:g}s) gone at "
                f"{lease.expired_observed_at:.3f}, {earliest - lease.expired_observed_at:.3f}s "
                f"before {earliest:.3f} (last renewed, invoke time {renewed:.3f})"
            )
    return CheckResult(
        "leases_expire_after_ttl", verdict_of(violations, counts["expired"]), violations, counts
    )


def _record(item: tuple[int, float, float, Iterable[float], float | None]) -> LeaseRecord:
    lease_id, ttl, grant_invoke, keepalives, expired = item
    return LeaseRecord(lease_id, ttl, grant_invoke, tuple(keepalives), expired)
