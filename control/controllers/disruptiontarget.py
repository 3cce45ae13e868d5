"""Stale ``DisruptionTarget`` pod conditions (kubernetes ``pkg/controller/disruption``,
``nonTerminatingPodHasStaleDisruptionCondition``): a pod marked as about to be disrupted (by an
eviction or the taint-eviction controller) that is still not being deleted 2 minutes later
was not disrupted after all, and its condition is set back to False.  Pure.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from control.api.clock import parse_time

from .podutil import condition, is_terminal

__all__ = ["STALE_TIMEOUT", "cleared", "stale_wait"]

Obj = dict[str, Any]
STALE_TIMEOUT = 120.0
KUBELET_REASON = "TerminationByKubelet"


def stale_wait(pod: Obj, now: dt.datetime, seen_for: Callable[[str], float]) -> float | None:
    """None when the pod has no stale-able DisruptionTarget condition (none, not True, set by
    the kubelet, on a terminal or deleting pod); else seconds until it is stale (≤ 0: now).
    Stale means 2 minutes past its lastTransitionTime *and* 2 minutes since this controller
    first saw it (``seen_for(transition time)`` seconds ago), so another host's clock can never
    make it clear early."""
    if (pod.get("metadata") or {}).get("deletionTimestamp") or is_terminal(pod):
        return None
    c = condition(pod, "DisruptionTarget")
    if c is None or c.get("status") != "True" or c.get("reason") == KUBELET_REASON:
        return None
    stamp = str(c.get("lastTransitionTime") or "")
    at = parse_time(stamp)
    remote = STALE_TIMEOUT - (now - at).total_seconds() if at is not None else 0.0
    return max(remote, STALE_TIMEOUT - seen_for(stamp))


def cleared(pod: Obj, now: str) -> Obj:
    """A copy of ``pod`` whose DisruptionTarget condition is False (``UpdatePodCondition``
    with only a type and status: reason and message go)."""
    out = copy.deepcopy(pod)
    out["status"]["conditions"] = [
        {"type": "DisruptionTarget", "status": "False", "lastTransitionTime": now}
        if c.get("type") == "DisruptionTarget" else c for c in out["status"]["conditions"]]
    return out
