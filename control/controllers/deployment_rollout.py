"""The Deployment controller's decisions, as pure plans (kubernetes
``pkg/controller/deployment/{rolling,recreate,sync}.go``): which ReplicaSet to scale
to what and which old ones to prune (the status is :mod:`.deployment_status`'s).

The controller reads the caches, asks these functions, and makes the writes in order; a plan
is computed from one consistent view and never from the result of a write it contains, so a
test can check every rounding and edge case without an apiserver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .deployment_util import (
    DESIRED_REPLICAS,
    active,
    available,
    by_creation,
    by_revision,
    desired,
    find_active_or_latest,
    get_proportion,
    has_revision_history_limit,
    is_rolling,
    is_saturated,
    max_surge,
    max_unavailable,
    new_rs_new_replicas,
    spec_replicas,
    status_int,
)

__all__ = ["Scale", "is_scaling_event", "new_rs_target", "old_pods_running",
           "plan_old_scale_down", "plan_scale", "to_prune"]

Obj = dict[str, Any]


@dataclass(frozen=True)
class Scale:
    """Scale ``rs`` to ``replicas``.  ``operation`` None: only if the size differs (kube's
    ``scaleReplicaSetAndRecordEvent``); "up"/"down"/"": write even to refresh the
    desired/max-replicas annotations, and word the event with it (``scaleReplicaSet``)."""

    rs: Obj
    replicas: int
    operation: str | None = None


def _uid(rs: Obj) -> str:
    return str((rs.get("metadata") or {}).get("uid") or "")


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


# --- RollingUpdate ---------------------------------------------------------------------------


def new_rs_target(d: Obj, all_rss: Sequence[Obj | None], new: Obj) -> int:
    """The new ReplicaSet's next size (``reconcileNewReplicaSet``): down to ``replicas`` when
    above, else as far as maxSurge allows."""
    current, want = spec_replicas(new), desired(d)
    if current >= want:
        return want
    return new_rs_new_replicas(d, all_rss, new)


def plan_old_scale_down(d: Obj, all_rss: Sequence[Obj], old_active: Sequence[Obj],
                        new: Obj) -> list[Scale]:
    """Scale-downs of old ReplicaSets that keep ``replicas - maxUnavailable`` pods available
    (``reconcileOldReplicaSets``): first their unavailable pods (oldest set first, at most
    what the new set's own unavailable pods leave room for), then available ones down to the
    minimum.  Availability is counted by :func:`available`."""
    if sum(spec_replicas(rs) for rs in old_active) == 0:
        return []
    min_available = desired(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new) - available(new)
    room = sum(spec_replicas(rs) for rs in all_rss) - min_available - new_unavailable
    if room <= 0:
        return []
    olds = sorted(old_active, key=by_creation)
    size = {_uid(rs): spec_replicas(rs) for rs in olds}
    plan: list[Scale] = []
    cleaned = 0
    for rs in olds:  # unhealthy replicas first: deleting them costs no availability
        if cleaned >= room:
            break
        n = size[_uid(rs)]
        unhealthy = n - available(rs)
        if n == 0 or unhealthy <= 0:
            continue
        down = min(room - cleaned, unhealthy)
        size[_uid(rs)] = n - down
        plan.append(Scale(rs, n - down))
        cleaned += down
    avail = sum(min(available(rs), size[_uid(rs)]) for rs in olds) + available(new)
    if avail <= min_available:
        return plan
    budget, done = avail - min_available, 0
    for rs in olds:
        if done >= budget:
            break
        n = size[_uid(rs)]
        if n == 0:
            continue
        down = min(n, budget - done)
        size[_uid(rs)] = n - down
        plan.append(Scale(rs, n - down))
        done += down
    return plan


# --- scaling events and paused deployments ---------------------------------------------------


def is_scaling_event(d: Obj, new: Obj | None, olds: Sequence[Obj]) -> bool:
    """An active ReplicaSet was sized for another ``replicas`` (``isScalingEvent``)."""
    for rs in active([*olds, new]):
        ann = (rs.get("metadata") or {}).get("annotations") or {}
        try:
            want = int(ann[DESIRED_REPLICAS])
        except (KeyError, ValueError):
            continue
        if want != desired(d):
            return True
    return False


def plan_scale(d: Obj, new: Obj | None, olds: Sequence[Obj]) -> list[Scale]:
    """``scale``: one active ReplicaSet takes all replicas; a saturated new one ends the old
    ones; otherwise a rolling Deployment's ``replicas + maxSurge`` are spread in proportion to
    each set's share of its ``max-replicas`` annotation, leftovers to the largest set (newer
    first when growing, older first when shrinking)."""
    one = find_active_or_latest(new, olds)
    if one is not None:
        return [] if spec_replicas(one) == desired(d) else [Scale(one, desired(d))]
    if is_saturated(d, new):
        return [Scale(rs, 0) for rs in active(olds)]
    if not is_rolling(d):
        return []
    rss = active([*olds, new])
    allowed = desired(d) + max_surge(d) if desired(d) > 0 else 0
    to_add = allowed - sum(spec_replicas(rs) for rs in rss)
    operation = ""
    if to_add > 0:
        rss = sorted(sorted(rss, key=by_creation, reverse=True), key=lambda r: -spec_replicas(r))
        operation = "up"
    elif to_add < 0:
        rss = sorted(sorted(rss, key=by_creation), key=lambda r: -spec_replicas(r))
        operation = "down"
    sizes, added = [], 0
    for rs in rss:
        share = get_proportion(rs, d, to_add, added) if to_add else 0
        sizes.append(spec_replicas(rs) + share)
        added += share
    if rss and to_add:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return [Scale(rs, n, operation) for rs, n in zip(rss, sizes, strict=True)]


# --- Recreate ----------------------------------------------------------------------------------


def old_pods_running(new: Obj | None, olds: Sequence[Obj],
                     pods_of: Callable[[Obj], Sequence[Obj]]) -> bool:
    """Any old ReplicaSet reports pods, or any pod of one has not finished (terminating pods
    count: Recreate starts the new pods only once the old ones are gone)."""
    if sum(status_int(rs, "replicas") for rs in olds) > 0:
        return True
    for rs in olds:
        if new is not None and _uid(rs) == _uid(new):
            continue
        for pod in pods_of(rs):
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
    return False


# --- history ---------------------------------------------------------------------------------


def to_prune(d: Obj, olds: Sequence[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond ``revisionHistoryLimit``, lowest revisions first, that are
    scaled to 0, have no pods and whose controller saw that (``cleanupDeployment``)."""
    if not has_revision_history_limit(d):
        return []
    alive = [rs for rs in olds if not (rs.get("metadata") or {}).get("deletionTimestamp")]
    excess = len(alive) - int((d.get("spec") or {})["revisionHistoryLimit"])
    out = []
    for rs in sorted(alive, key=by_revision)[:max(0, excess)]:
        meta = rs.get("metadata") or {}
        if (status_int(rs, "replicas") or spec_replicas(rs)
                or int(meta.get("generation") or 0) > status_int(rs, "observedGeneration")):
            continue
        out.append(rs)
    return out
