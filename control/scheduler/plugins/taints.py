"""TaintToleration: a node's NoSchedule/NoExecute taints must be tolerated (filter,
UnschedulableAndUnresolvable), and fewer untolerated PreferNoSchedule taints score higher
(score: the count, normalized in reverse, weight 3)."""

from __future__ import annotations

from control.api.taints import PREFER_NO_SCHEDULE, find_untolerated_taint, tolerations_tolerate

from ..framework import Reasons, Status, unresolvable
from ..nodeinfo import NodeInfo
from ..podinfo import PodTemplate

__all__ = ["filter_taints", "prefer_no_schedule_count"]


def filter_taints(t: PodTemplate, n: NodeInfo) -> Status | None:
    if not n.taints:
        return None
    taint = find_untolerated_taint(n.taints, t.tolerations)
    if taint is None:
        return None
    return unresolvable("TaintToleration",
                        Reasons.untolerated_taint(str(taint.get("key") or ""),
                                                  str(taint.get("value") or "")))


def prefer_no_schedule_count(t: PodTemplate, n: NodeInfo) -> int:
    """Untolerated PreferNoSchedule taints (tolerations with an empty or PreferNoSchedule
    effect count; the raw score, normalized in reverse by the caller)."""
    if not n.taints:
        return 0
    tolerations = [x for x in t.tolerations if (x.get("effect") or "") in ("", PREFER_NO_SCHEDULE)]
    return sum(1 for taint in n.taints if taint.get("effect") == PREFER_NO_SCHEDULE
               and not tolerations_tolerate(tolerations, taint))
