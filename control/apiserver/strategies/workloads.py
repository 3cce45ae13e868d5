"""Deployments, ReplicaSets, DaemonSets and StatefulSets: a selector over a pod template,
defaulted and validated alike; each kind adds its own spec defaults and update rules.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause
from control.api.selectors import SelectorError, from_label_selector

from .base import BaseStrategy
from .causes import (
    Raw,
    as_mapping,
    child,
    forbidden,
    immutable,
    invalid,
    mappings,
    one_of,
    required,
)
from .meta import validate_label_selector
from .pods import default_pod_spec, validate_pod_template

__all__ = [
    "DaemonSetStrategy",
    "DeploymentStrategy",
    "ReplicaSetStrategy",
    "StatefulSetStrategy",
    "WorkloadStrategy",
    "int_or_percent",
    "nonnegative",
    "selector_value",
]

_PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
    "'93%', regex used for validation is '[0-9]+%')"
)
_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
_STS_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
    "'minReadySeconds' are forbidden"
)


def selector_value(selector: Any) -> Any:
    """A LabelSelector as Go prints it in a field error (struct field order kept)."""
    if not isinstance(selector, Mapping):
        return selector
    expressions = [Raw.struct((k, e.get(k)) for k in ("key", "operator", "values"))
                   for e in selector.get("matchExpressions") or [] if isinstance(e, Mapping)]
    labels = selector.get("matchLabels")
    parts = [f'"matchLabels":{Raw.struct(sorted(labels.items())).text}'] if labels else []
    if expressions:
        parts.append('"matchExpressions":[' + ",".join(e.text for e in expressions) + "]")
    return Raw("{" + ",".join(parts) + "}")


def nonnegative(spec: Mapping[str, Any], path: str, *fields: str) -> list[Cause]:
    """Each of ``fields`` present in ``spec`` must be an integer ≥ 0."""
    errs: list[Cause] = []
    for f in fields:
        value = spec.get(f)
        if value is not None and (not isinstance(value, int) or value < 0):
            errs.append(invalid(child(path, f), value, "must be greater than or equal to 0"))
    return errs


def int_or_percent(value: Any, field: str) -> tuple[list[Cause], int | None]:
    """Validate an IntOrString that is a count or a percentage (at most 100%), as apps'
    ``ValidatePositiveIntOrPercent`` and ``IsNotMoreThan100Percent``; also return its
    number."""
    if isinstance(value, str):
        if not re.fullmatch("[0-9]+%", value):
            return [invalid(field, value, _PERCENT_MSG)], None
        number = int(value[:-1])
        if number > 100:
            return [invalid(field, value, "must not be greater than 100%")], number
        return [], number
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return [invalid(field, value, "must be greater than or equal to 0")], None
    return [], value


def _validate_rolling(rolling: Any, path: str) -> list[Cause]:
    if not isinstance(rolling, Mapping):
        return [required(path, "this should be defaulted and never be nil")]
    unavailable = rolling.get("maxUnavailable", 0)
    errs, n_unavailable = int_or_percent(unavailable, child(path, "maxUnavailable"))
    surge_errs, n_surge = int_or_percent(rolling.get("maxSurge", 0), child(path, "maxSurge"))
    if n_unavailable == 0 and n_surge == 0:
        errs.append(invalid(child(path, "maxUnavailable"), unavailable,
                            "may not be 0 when `maxSurge` is 0"))
    return errs + surge_errs


def _validate_partition(rolling: Any, path: str) -> list[Cause]:
    return nonnegative(rolling, path, "partition") if isinstance(rolling, Mapping) else []


def _default_strategy(spec: dict[str, Any], field: str,
                      rolling_defaults: tuple[tuple[str, Any], ...]) -> None:
    strategy = spec.setdefault(field, {})
    if not isinstance(strategy, dict):
        return
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        if isinstance(rolling, dict):
            for k, v in rolling_defaults:
                rolling.setdefault(k, v)


class WorkloadStrategy(BaseStrategy):
    """A controller of pods: ``spec.selector`` must select ``spec.template``'s labels and may
    not change; template pods restart Always; spec changes bump generation.

    Per kind: ``spec_defaults`` (top-level spec fields set when absent), ``strategy_field``
    (``strategy``/``updateStrategy``, None for none) with its ``strategy_types`` and
    ``rolling_defaults``, ``selector_noun`` (in "empty selector is invalid for <noun>") and
    ``deadline_owner`` (in "activeDeadlineSeconds in <owner> is not Supported"; None allows
    a template deadline)."""

    tracks_generation = True
    spec_defaults: tuple[tuple[str, Any], ...] = ()
    strategy_field: str | None = "updateStrategy"
    strategy_types: tuple[str, ...] = ("OnDelete", "RollingUpdate")
    rolling_defaults: tuple[tuple[str, Any], ...] = ()
    selector_noun = "deployment"
    deadline_owner: str | None = "ReplicaSet"
    restart_policies: tuple[str, ...] = ("Always",)

    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        for k, v in self.spec_defaults:
            spec.setdefault(k, copy.deepcopy(v))
        if self.strategy_field:
            _default_strategy(spec, self.strategy_field, self.rolling_defaults)
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.setdefault("spec", {}), dict):
            default_pod_spec(template["spec"])

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            return [required("spec")]
        errs = self._validate_selector(spec) + self._validate_template(spec)
        errs += nonnegative(spec, "spec", "replicas", "minReadySeconds", "revisionHistoryLimit")
        if self.strategy_field:
            errs += self._validate_strategy(spec.get(self.strategy_field),
                                            child("spec", self.strategy_field))
        return errs + self.validate_kind_spec(spec)

    def validate_kind_spec(self, spec: Mapping[str, Any]) -> list[Cause]:
        """The subclass's own checks of ``spec``."""
        return []

    def extra_volumes(self, spec: Mapping[str, Any]) -> frozenset[str]:
        """Volume names the controller adds to its pods, which template mounts may use."""
        return frozenset()

    def validate_rolling(self, rolling: Any, path: str) -> list[Cause]:
        """``rollingUpdate`` of a RollingUpdate strategy."""
        return _validate_rolling(rolling, path)

    def _validate_strategy(self, strategy: Any, path: str) -> list[Cause]:
        """A known type; rollingUpdate only with RollingUpdate."""
        strategy = strategy if isinstance(strategy, Mapping) else {}
        kind = strategy.get("type")
        errs = one_of(kind, child(path, "type"), self.strategy_types)
        if kind == "RollingUpdate":
            errs += self.validate_rolling(strategy.get("rollingUpdate"),
                                          child(path, "rollingUpdate"))
        elif kind in self.strategy_types and strategy.get("rollingUpdate") is not None:
            errs.append(forbidden(child(path, "rollingUpdate"),
                                  f"may not be specified when strategy `type` is '{kind}'"))
        return errs

    def _validate_selector(self, spec: Mapping[str, Any]) -> list[Cause]:
        selector = spec.get("selector")
        if selector is None:
            return [required("spec.selector")]
        errs = validate_label_selector(selector, "spec.selector")
        if isinstance(selector, Mapping) and not (selector.get("matchLabels")
                                                  or selector.get("matchExpressions")):
            errs.append(invalid("spec.selector", selector_value(selector),
                                f"empty selector is invalid for {self.selector_noun}"))
        return errs

    def _validate_template(self, spec: Mapping[str, Any]) -> list[Cause]:
        template = spec.get("template")
        errs = template_matches(spec.get("selector"), template)
        errs += validate_pod_template(template, "spec.template",
                                      restart_policies=self.restart_policies,
                                      extra_volumes=self.extra_volumes(spec))
        pod_spec = (template or {}).get("spec") if isinstance(template, Mapping) else None
        if self.deadline_owner and isinstance(pod_spec, Mapping) \
                and pod_spec.get("activeDeadlineSeconds") is not None:
            errs.append(invalid("spec.template.spec.activeDeadlineSeconds",
                                pod_spec["activeDeadlineSeconds"],
                                f"activeDeadlineSeconds in {self.deadline_owner} is not Supported"))
        return errs

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        selector = (new.get("spec") or {}).get("selector")
        if selector != (old.get("spec") or {}).get("selector"):
            return [immutable("spec.selector", selector_value(selector))]
        return []


def template_matches(selector: Any, template: Any) -> list[Cause]:
    """The template's labels must be selected by a (valid, non-empty) selector."""
    if not isinstance(selector, Mapping) or not isinstance(template, Mapping):
        return []
    try:
        parsed = from_label_selector(selector)
    except SelectorError:
        return []  # reported by the selector's own validation
    labels = (template.get("metadata") or {}).get("labels")
    if parsed.empty or parsed.matches(labels or {}):
        return []
    return [invalid("spec.template.metadata.labels", labels,
                    "`selector` does not match template `labels`")]


class DeploymentStrategy(WorkloadStrategy):
    spec_defaults = (("replicas", 1), ("revisionHistoryLimit", 10),
                     ("progressDeadlineSeconds", 600))
    strategy_field = "strategy"
    strategy_types = ("Recreate", "RollingUpdate")
    rolling_defaults = (("maxUnavailable", "25%"), ("maxSurge", "25%"))
    # Annotations are copied to the ReplicaSets, so changing them is a new generation too.
    generation_paths = (("spec",), ("metadata", "annotations"))
    status_keeps_meta = ("annotations",)

    def validate_kind_spec(self, spec: Mapping[str, Any]) -> list[Cause]:
        errs = nonnegative(spec, "spec", "progressDeadlineSeconds")
        deadline = spec.get("progressDeadlineSeconds")
        if isinstance(deadline, int) and deadline <= (spec.get("minReadySeconds") or 0):
            errs.append(invalid("spec.progressDeadlineSeconds", deadline,
                                "must be greater than minReadySeconds"))
        return errs


class ReplicaSetStrategy(WorkloadStrategy):
    spec_defaults = (("replicas", 1),)
    status_message = "apps.v1.ReplicaSetStatus"
    strategy_field = None


class DaemonSetStrategy(WorkloadStrategy):
    spec_defaults = (("revisionHistoryLimit", 10),)
    rolling_defaults = (("maxUnavailable", 1), ("maxSurge", 0))
    selector_noun = "daemonset"
    status_message = "apps.v1.DaemonSetStatus"
    deadline_owner = "DaemonSet"


class StatefulSetStrategy(WorkloadStrategy):
    spec_defaults = (
        ("replicas", 1), ("podManagementPolicy", "OrderedReady"), ("revisionHistoryLimit", 10),
        ("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain",
                                                  "whenScaled": "Retain"}),
    )
    rolling_defaults = (("partition", 0),)
    selector_noun = "statefulset"
    status_message = "apps.v1.StatefulSetStatus"
    deadline_owner = "StatefulSet"

    def validate_kind_spec(self, spec: Mapping[str, Any]) -> list[Cause]:
        return one_of(spec.get("podManagementPolicy"), "spec.podManagementPolicy",
                      ("OrderedReady", "Parallel"))

    def validate_rolling(self, rolling: Any, path: str) -> list[Cause]:
        return _validate_partition(rolling, path)

    def extra_volumes(self, spec: Mapping[str, Any]) -> frozenset[str]:
        return frozenset(str(as_mapping(t.get("metadata")).get("name") or "")
                         for t in mappings(spec.get("volumeClaimTemplates")))

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        def fixed(obj: Mapping[str, Any]) -> dict[str, Any]:
            spec = obj.get("spec")
            return {k: v for k, v in (spec if isinstance(spec, Mapping) else {}).items()
                    if k not in _STS_MUTABLE}

        return [] if fixed(new) == fixed(old) else [forbidden("spec", _STS_FORBIDDEN)]
