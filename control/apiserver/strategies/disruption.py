"""PodDisruptionBudgets (policy/v1): how many of the selected pods voluntary disruptions
(evictions) must leave running.  Validation of ``ValidatePodDisruptionBudgetSpec`` and, for
what the disruption controller and the eviction subresource write, of the v1 status
(``ValidatePodDisruptionBudgetStatusUpdate``: non-negative counts, well-formed conditions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause

from .base import BaseStrategy
from .causes import (
    Raw,
    as_mapping,
    child,
    duplicate,
    index,
    invalid,
    mappings,
    not_supported,
    required,
    too_long,
)
from .meta import validate_label_selector
from .names import qualified_name
from .workloads import int_or_percent, nonnegative, selector_value

__all__ = ["EVICTION_POLICIES", "PodDisruptionBudgetStrategy", "validate_conditions"]

EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")
_STATUS_COUNTS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")
_CONDITION_STATUSES = ("False", "True", "Unknown")
_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
_REASON_MSG = ("a condition reason must start with alphabetic character, optionally followed "
               "by a string of alphanumeric characters or '_,:', and must end with an "
               "alphanumeric character or '_'")
_MAX_REASON, _MAX_MESSAGE = 1024, 32 * 1024


def _spec_value(spec: Mapping[str, Any]) -> Raw:
    """The spec as Go prints the struct in an Invalid cause (fields in struct order)."""
    parts = []
    for k in ("minAvailable", "selector", "maxUnavailable", "unhealthyPodEvictionPolicy"):
        v = spec.get(k)
        if v is None:
            continue
        text = selector_value(v).text if k == "selector" and isinstance(v, Mapping) \
            else json.dumps(v, separators=(",", ":"))
        parts.append(f'"{k}":{text}')
    return Raw("{" + ",".join(parts) + "}")


def validate_conditions(conditions: Any, path: str) -> list[Cause]:
    """``metav1.Condition`` lists (apimachinery ``ValidateConditions``): a qualified-name type,
    unique; status True, False or Unknown; a reason and a transition time."""
    errs: list[Cause] = []
    seen: set[str] = set()
    for i, c in enumerate(mappings(conditions)):
        p = index(path, i)
        kind = str(c.get("type") or "")
        errs += [invalid(child(p, "type"), kind, m) for m in qualified_name(kind)]
        if kind in seen:
            errs.append(duplicate(child(p, "type"), kind))
        seen.add(kind)
        if c.get("status") not in _CONDITION_STATUSES:
            errs.append(not_supported(child(p, "status"), c.get("status") or "",
                                      _CONDITION_STATUSES))
        generation = c.get("observedGeneration")
        if isinstance(generation, int) and generation < 0:
            errs.append(invalid(child(p, "observedGeneration"), generation,
                                "must be greater than or equal to zero"))
        if not c.get("lastTransitionTime"):
            errs.append(required(child(p, "lastTransitionTime"), "must be set"))
        reason = str(c.get("reason") or "")
        if not reason:
            errs.append(required(child(p, "reason"), "must be set"))
        else:
            if not _REASON.fullmatch(reason):
                errs.append(invalid(child(p, "reason"), reason, _REASON_MSG))
            if len(reason) > _MAX_REASON:
                errs.append(too_long(child(p, "reason"), _MAX_REASON))
        if len(str(c.get("message") or "")) > _MAX_MESSAGE:
            errs.append(too_long(child(p, "message"), _MAX_MESSAGE))
    return errs


class PodDisruptionBudgetStrategy(BaseStrategy):
    """At most one of minAvailable and maxUnavailable, each a count or a percentage; an
    optional selector (empty selects every pod of the namespace in v1); status only through
    ``/status``; spec changes bump generation (the eviction subresource refuses to act on a
    budget whose status has not caught up with it)."""

    tracks_generation = True

    def initial_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The zero status (its counts are not omitempty, so they show as 0)."""
        return dict.fromkeys(_STATUS_COUNTS, 0)

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        spec = as_mapping(obj.get("spec"))
        errs: list[Cause] = []
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            errs.append(invalid("spec", _spec_value(spec),
                                "minAvailable and maxUnavailable cannot be both set"))
        for f in ("minAvailable", "maxUnavailable"):
            if spec.get(f) is not None:
                errs += int_or_percent(spec[f], child("spec", f))[0]
        errs += validate_label_selector(spec.get("selector"), "spec.selector")
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in EVICTION_POLICIES:
            errs.append(not_supported("spec.unhealthyPodEvictionPolicy", policy,
                                      EVICTION_POLICIES))
        status = as_mapping(obj.get("status"))
        errs += validate_conditions(status.get("conditions"), "status.conditions")
        return errs + nonnegative(status, "status", *_STATUS_COUNTS)
