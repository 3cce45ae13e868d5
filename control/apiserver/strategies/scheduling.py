"""PriorityClasses (scheduling.k8s.io/v1, cluster-scoped): a named pod priority.  User
classes go up to one billion; the ``system-`` prefix is reserved for the two system classes,
which every apiserver creates at start (see :data:`SYSTEM_PRIORITY_CLASSES`).  ``value`` and
``preemptionPolicy`` are fixed once created.  That at most one class is the global default
is the Priority admission plugin's check, since it needs the other classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause

from .base import BaseStrategy
from .causes import as_mapping, forbidden, immutable, invalid, one_of

__all__ = [
    "HIGHEST_USER_DEFINABLE_PRIORITY",
    "PREEMPTION_POLICIES",
    "SYSTEM_CRITICAL_PRIORITY",
    "SYSTEM_PRIORITY_CLASSES",
    "PriorityClassStrategy",
    "validate_preemption_policy",
]

HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_CRITICAL_PRIORITY = 2 * HIGHEST_USER_DEFINABLE_PRIORITY
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")
_SYSTEM_PREFIX = "system-"
_MAX_INT32 = 2**31 - 1

#: (name, value, description) of the system classes (scheduling/v1 ``SystemPriorityClasses``);
#: neither is the global default.
SYSTEM_PRIORITY_CLASSES: tuple[tuple[str, int, str], ...] = (
    ("system-node-critical", SYSTEM_CRITICAL_PRIORITY + 1000,
     "Used for system critical pods that must not be moved from their current node."),
    ("system-cluster-critical", SYSTEM_CRITICAL_PRIORITY,
     ("Used for system critical pods that must run in the cluster, but can be moved to "
      "another node if necessary.")),
)


def validate_preemption_policy(policy: Any, path: str) -> list[Cause]:
    """``ValidatePreemptionPolicy``: PreemptLowerPriority or Never (when set)."""
    return [] if policy is None else one_of(policy, path, PREEMPTION_POLICIES)


def _system_class_error(name: str, value: Any, global_default: bool) -> str | None:
    """``IsKnownSystemPriorityClass``'s reason a ``system-`` class is refused, or None."""
    for known, known_value, _ in SYSTEM_PRIORITY_CLASSES:
        if known == name:
            if value != known_value:
                return f"value of {known} PriorityClass must be {known_value}"
            if global_default:
                return f"globalDefault of {known} PriorityClass must be false"
            return None
    return f"{name} is not a known system priority class"


class PriorityClassStrategy(BaseStrategy):
    """Generation 1 on create and never bumped (kube's priorityclass strategy);
    ``preemptionPolicy`` defaults to PreemptLowerPriority."""

    tracks_generation = True
    generation_paths = ()

    def default(self, obj: dict[str, Any]) -> None:
        if obj.get("preemptionPolicy") in (None, ""):
            obj["preemptionPolicy"] = "PreemptLowerPriority"

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        name = str(as_mapping(obj.get("metadata")).get("name") or "")
        value = obj.get("value", 0)
        errs: list[Cause] = []
        if isinstance(value, bool) or not isinstance(value, int) \
                or not -_MAX_INT32 - 1 <= value <= _MAX_INT32:
            errs.append(invalid("value", value, "must be a 32-bit integer"))
        elif name.startswith(_SYSTEM_PREFIX):
            why = _system_class_error(name, value, obj.get("globalDefault") is True)
            if why:
                errs.append(forbidden("metadata.name", f"priority class names with "
                                      f"'{_SYSTEM_PREFIX}' prefix are reserved for system use "
                                      f"only. error: {why}"))
        elif value > HIGHEST_USER_DEFINABLE_PRIORITY:
            errs.append(forbidden("value", "maximum allowed value of a user defined priority is "
                                           f"{HIGHEST_USER_DEFINABLE_PRIORITY}"))
        return errs + validate_preemption_policy(obj.get("preemptionPolicy"), "preemptionPolicy")

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        errs: list[Cause] = []
        if new.get("value", 0) != old.get("value", 0):
            errs.append(forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            errs.append(immutable("preemptionPolicy", new.get("preemptionPolicy")))
        return errs
