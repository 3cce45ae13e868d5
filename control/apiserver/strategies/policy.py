"""ResourceQuotas and LimitRanges: per-namespace resource policy, checked as quantities.
(Enforcing them is admission's job; this is only their shape.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause
from control.api.quantity import quantity_or_none

from .base import BaseStrategy
from .causes import as_mapping, child, forbidden, index, invalid, key, mappings, one_of
from .names import qualified_name
from .quantity import validate_quantities

__all__ = ["LimitRangeStrategy", "ResourceQuotaStrategy"]

_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
           "CrossNamespacePodAffinity")
_LIMIT_TYPES = ("Container", "Pod", "PersistentVolumeClaim")
_LIMIT_MAPS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")
#: (lower, upper, message): ``lower[r]`` must not exceed ``upper[r]``; the cause is on the
#: limit's ``[r]`` with the lower value.
_ORDER = (
    ("min", "max", "min value {lo} is greater than max value {hi}"),
    ("default", "max", "default value {lo} is greater than max value {hi}"),
    ("defaultRequest", "max", "default request value {lo} is greater than max value {hi}"),
    ("min", "defaultRequest", "min value {lo} is greater than default request value {hi}"),
    ("defaultRequest", "default",
     "default request value {lo} is greater than default limit value {hi}"),
)


def _resource_names(values: Any, field: str) -> list[Cause]:
    names = values if isinstance(values, Mapping) else {}
    return [invalid(key(field, n), n, msg) for n in names for msg in qualified_name(str(n))]


class ResourceQuotaStrategy(BaseStrategy):
    """ResourceQuotas: ``spec.hard`` (and the status maps) hold non-negative quantities."""

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        spec, status = as_mapping(obj.get("spec")), as_mapping(obj.get("status"))
        errs = _resource_names(spec.get("hard"), "spec.hard")
        errs += validate_quantities(spec.get("hard"), "spec.hard")
        for f in ("hard", "used"):
            errs += validate_quantities(status.get(f), child("status", f))
        for i, scope in enumerate(spec.get("scopes") or []):
            errs += one_of(scope, index("spec.scopes", i), _SCOPES)
        return errs


class LimitRangeStrategy(BaseStrategy):
    """LimitRanges: typed limits whose quantities are ordered min ≤ defaultRequest ≤ default
    ≤ max; Pod limits have no defaults."""

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        errs: list[Cause] = []
        spec = obj.get("spec")
        if spec is not None and not isinstance(spec, Mapping):
            return [invalid("spec", str(spec), "must be an object")]
        limits = as_mapping(spec).get("limits")
        if limits is not None and not isinstance(limits, list):
            return [invalid("spec.limits", str(limits), "must be a list of limit items")]
        for i, item in enumerate(limits or []):
            if not isinstance(item, Mapping):  # Go's decoder refuses it; admission reads it
                errs.append(invalid(index("spec.limits", i), str(item), "must be an object"))
        for i, limit in enumerate(mappings(limits)):
            errs += _validate_limit(limit, index("spec.limits", i))
        return errs


def _validate_limit(limit: Mapping[str, Any], path: str) -> list[Cause]:
    kind = limit.get("type")
    errs = one_of(kind, child(path, "type"), _LIMIT_TYPES)
    for f in _LIMIT_MAPS:
        errs += validate_quantities(limit.get(f), child(path, f))
    if errs:
        return errs
    if kind == "Pod":
        errs += [forbidden(child(path, f), "may not be specified when `type` is 'Pod'")
                 for f in ("default", "defaultRequest") if limit.get(f)]
    for lower, upper, message in _ORDER:
        lows, highs = limit.get(lower) or {}, limit.get(upper) or {}
        for resource, low in lows.items():
            if resource in highs:
                lo, hi = quantity_or_none(low), quantity_or_none(highs[resource])
                if lo is not None and hi is not None and lo > hi:
                    errs.append(invalid(key(path, resource), str(low),
                                        message.format(lo=low, hi=highs[resource])))
    return errs
