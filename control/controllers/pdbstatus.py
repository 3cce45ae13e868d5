"""PodDisruptionBudget status arithmetic (kubernetes ``pkg/controller/disruption`` and
``component-helpers/apps/poddisruptionbudget``), pure.

* ``expectedPods``: with ``maxUnavailable`` or a percentage ``minAvailable``, the sum of the
  scales (``spec.replicas``) of the controllers of the selected pods — pods without a
  controller are *unmanaged* and left out; with an integer ``minAvailable``, the number of
  selected pods.
* ``desiredHealthy``: ``minAvailable`` (a percentage of expectedPods, rounded up), or
  expectedPods − ``maxUnavailable`` (a percentage rounded up), never below 0.
* ``currentHealthy``: selected pods that are Ready, not being deleted and not in
  ``disruptedPods`` (evicted a moment ago, their deletion not seen yet).
* ``disruptionsAllowed``: currentHealthy − desiredHealthy, 0 when negative or when no pod is
  expected (a budget that matched nothing must not allow anything when its first pods come).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from control.api.clock import parse_time

from .owners import controller_of
from .podutil import is_pod_ready

__all__ = [
    "DELETION_TIMEOUT", "DisruptionError", "Expected", "build_disrupted", "conditions_up_to_date",
    "count_healthy", "expected_and_desired", "scaled_value", "with_status",
]

Obj = dict[str, Any]
#: How long an evicted pod may take to show its deletion before it counts again.
DELETION_TIMEOUT = 120.0
CONDITION = "DisruptionAllowed"


class DisruptionError(Exception):
    """The budget's numbers cannot be computed (SyncFailed)."""


@dataclass(frozen=True)
class Expected:
    expected: int
    desired: int
    unmanaged: tuple[str, ...] = ()


def scaled_value(value: Any, total: int, *, round_up: bool = True) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: an int as is; ``"N%"`` of ``total``."""
    if isinstance(value, bool):
        raise DisruptionError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if not value.endswith("%"):
            raise DisruptionError("invalid value for IntOrString: invalid type: string is not "
                                  "a percentage")
        try:
            pct = int(value[:-1])
        except ValueError:
            raise DisruptionError(f"invalid value {value!r}: not an integer percentage") from None
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    raise DisruptionError(f"invalid value for IntOrString: {value!r}")


def _expected_scale(pods: list[Obj], scale_of: Callable[[Obj, Obj], tuple[str, int] | None]
                    ) -> tuple[int, tuple[str, ...]]:
    """Sum of the scales of the pods' controllers (each counted once) and the unmanaged pods'
    names.  ``scale_of(ref, pod)`` gives (controller uid, replicas), None when the controller
    does not exist, or raises DisruptionError."""
    scales: dict[str, int] = {}
    unmanaged = []
    for pod in pods:
        ref = controller_of(pod)
        if ref is None:
            unmanaged.append((pod.get("metadata") or {}).get("name", ""))
            continue
        if ref.get("uid") in scales:
            continue
        found = scale_of(ref, pod)
        if found is None:
            raise DisruptionError(
                f"found no controllers for pod {(pod.get('metadata') or {}).get('name', '')!r}")
        uid, replicas = found
        scales[uid] = replicas
    return sum(scales.values()), tuple(unmanaged)


def expected_and_desired(spec: Obj, pods: list[Obj],
                         scale_of: Callable[[Obj, Obj], tuple[str, int] | None]) -> Expected:
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        expected, unmanaged = _expected_scale(pods, scale_of)
        desired = max(0, expected - scaled_value(max_unavailable, expected))
        return Expected(expected, desired, unmanaged)
    if min_available is not None:
        if isinstance(min_available, int) and not isinstance(min_available, bool):
            return Expected(len(pods), min_available)
        expected, unmanaged = _expected_scale(pods, scale_of)
        return Expected(expected, scaled_value(min_available, expected), unmanaged)
    return Expected(0, 0)


def _name(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def build_disrupted(pods: list[Obj], recorded: dict[str, str] | None, now: dt.datetime,
                    seen_for: Callable[[str, str], float]) -> tuple[dict[str, str], float | None]:
    """The ``disruptedPods`` entries to keep and in how many seconds to look again.

    An entry is kept while its pod exists, is not yet being deleted and its deletion is not
    overdue.  Overdue means both 2 minutes past the recorded time *and* 2 minutes since this
    controller first saw the entry (``seen_for(pod, time)`` seconds ago, its own monotonic
    clock): the recorded time is the apiserver's clock, so a clock behind or ahead can never
    make the budget release a pod early."""
    keep: dict[str, str] = {}
    recheck: float | None = None
    for pod in pods:
        name = _name(pod)
        if (pod.get("metadata") or {}).get("deletionTimestamp") or name not in (recorded or {}):
            continue
        stamp = (recorded or {})[name]
        at = parse_time(stamp)
        remote = DELETION_TIMEOUT - (now - at).total_seconds() if at is not None else 0.0
        local = DELETION_TIMEOUT - seen_for(name, stamp)
        left = max(remote, local)
        if left >= 0:
            keep[name] = stamp
            recheck = left if recheck is None else min(recheck, left)
    return keep, recheck


def count_healthy(pods: list[Obj], disrupted: dict[str, str]) -> int:
    return sum(1 for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")
               and _name(p) not in disrupted and is_pod_ready(p))


def _condition(status: Obj) -> Obj:
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    return {"type": CONDITION, "status": "True" if allowed else "False",
            "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
            "observedGeneration": status.get("observedGeneration", 0)}


def set_condition(status: Obj, wanted: Obj, now: str) -> None:
    """``meta.SetStatusCondition``: the transition time moves only with the status."""
    conditions = [dict(c) for c in status.get("conditions") or [] if isinstance(c, dict)]
    for c in conditions:
        if c.get("type") == wanted["type"]:
            if c.get("status") != wanted["status"] or not c.get("lastTransitionTime"):
                c["lastTransitionTime"] = now
            c.update(wanted)
            break
    else:
        conditions.append({**wanted, "lastTransitionTime": now})
    status["conditions"] = conditions


def conditions_up_to_date(pdb: Obj) -> bool:
    status = pdb.get("status") or {}
    if status.get("observedGeneration") != (pdb.get("metadata") or {}).get("generation"):
        return False
    for c in status.get("conditions") or ():
        if c.get("type") == CONDITION:
            want = _condition(status)
            return (c.get("status"), c.get("reason")) == (want["status"], want["reason"])
    return False


def with_status(pdb: Obj, *, healthy: int, desired: int, expected: int,
                disrupted: dict[str, str], now: str) -> Obj | None:
    """The budget's new status, or None when it already says all this."""
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    status = pdb.get("status") or {}
    generation = (pdb.get("metadata") or {}).get("generation", 0)
    if (status.get("currentHealthy"), status.get("desiredHealthy"), status.get("expectedPods"),
            status.get("disruptionsAllowed"), status.get("disruptedPods") or {},
            status.get("observedGeneration")) == (healthy, desired, expected, allowed,
                                                  disrupted, generation) \
            and conditions_up_to_date(pdb):
        return None
    new: Obj = {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                "disruptionsAllowed": allowed, "observedGeneration": generation,
                "conditions": status.get("conditions") or []}
    if disrupted:
        new["disruptedPods"] = dict(disrupted)
    set_condition(new, _condition(new), now)
    return new


def failed_status(pdb: Obj, message: str, now: str) -> Obj:
    """``failSafe``: no disruption allowed, DisruptionAllowed False with reason SyncFailed."""
    status = dict(pdb.get("status") or {})
    status["disruptionsAllowed"] = 0
    set_condition(status, {"type": CONDITION, "status": "False", "reason": "SyncFailed",
                           "message": message,
                           "observedGeneration": status.get("observedGeneration", 0)}, now)
    return status
