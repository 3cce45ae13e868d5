"""Parsed pod-affinity terms and topology-spread constraints of one pod template.

Parsing follows kube-scheduler: a nil ``labelSelector`` selects nothing; ``matchLabelKeys``
(and, for affinity, ``mismatchLabelKeys``) add ``key in (value)`` / ``key notin (value)`` with
the pod's own label values; a term with no ``namespaces`` and no ``namespaceSelector`` means
the pod's own namespace, an empty ``namespaceSelector`` every namespace.  Spread constraints
default ``minDomains`` to 1, ``nodeAffinityPolicy`` to Honor and ``nodeTaintsPolicy`` to Ignore.
Malformed input raises :class:`TermError` with a field path, which becomes the pod's
Unschedulable message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from control.api.selectors import (
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    from_label_selector,
)

__all__ = [
    "AffinityTerm",
    "SpreadConstraint",
    "TermError",
    "parse_affinity_terms",
    "parse_spread_constraints",
]

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


class TermError(ValueError):
    """A malformed affinity term or spread constraint; the text names the field."""


def _selector(raw: Any, labels: Mapping[str, str], match_keys: Any, mismatch_keys: Any,
              path: str) -> LabelSelector:
    if raw is not None and not isinstance(raw, Mapping):
        raise TermError(f"{path}.labelSelector: Invalid value: must be an object")
    try:
        sel = from_label_selector(raw)
        extra: list[Requirement] = []
        for key in match_keys or ():
            if key in labels:
                extra.append(Requirement.new(key, Operator.IN, (labels[key],)))
        for key in mismatch_keys or ():
            if key in labels:
                extra.append(Requirement.new(key, Operator.NOT_IN, (labels[key],)))
    except SelectorError as exc:
        raise TermError(f"{path}.labelSelector: {exc}") from None
    if not extra or sel.match_nothing:
        return sel
    return LabelSelector(tuple(sorted((*sel.requirements, *extra), key=lambda r: r.key)))


@dataclass(frozen=True)
class AffinityTerm:
    """One pod (anti-)affinity term: which pods (namespaces, selector) in which topology."""

    topology_key: str
    selector: LabelSelector
    namespaces: frozenset[str]
    namespace_selector: LabelSelector | None = None
    weight: int = 1

    def matches_namespace(self, namespace: str,
                          namespace_labels: Callable[[str], Mapping[str, str] | None]) -> bool:
        if namespace in self.namespaces:
            return True
        if self.namespace_selector is None:
            return False
        return self.namespace_selector.matches(namespace_labels(namespace) or {})

    def matches(self, namespace: str, labels: Mapping[str, str],
                namespace_labels: Callable[[str], Mapping[str, str] | None]) -> bool:
        """Whether a pod (by namespace and labels) is one this term is about."""
        return (self.matches_namespace(namespace, namespace_labels)
                and self.selector.matches(labels))


def _term(raw: Any, namespace: str, labels: Mapping[str, str], path: str,
          weight: int = 1) -> AffinityTerm:
    if not isinstance(raw, Mapping):
        raise TermError(f"{path}: Invalid value: must be an object")
    key = raw.get("topologyKey")
    if not key or not isinstance(key, str):
        raise TermError(f"{path}.topologyKey: Required value: can not be empty")
    selector = _selector(raw.get("labelSelector"), labels, raw.get("matchLabelKeys"),
                         raw.get("mismatchLabelKeys"), path)
    names = raw.get("namespaces") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TermError(f"{path}.namespaces: Invalid value: must be a list of names")
    ns_sel_raw = raw.get("namespaceSelector")
    ns_selector = None
    if ns_sel_raw is not None:
        try:
            ns_selector = from_label_selector(ns_sel_raw)
        except SelectorError as exc:
            raise TermError(f"{path}.namespaceSelector: {exc}") from None
    namespaces = frozenset(names) if (names or ns_selector is not None) else frozenset({namespace})
    return AffinityTerm(key, selector, namespaces, ns_selector, weight)


def parse_affinity_terms(pod: Mapping[str, Any], kind: str, *, preferred: bool
                         ) -> tuple[AffinityTerm, ...]:
    """The required (or preferred, weighted) terms of ``podAffinity``/``podAntiAffinity``."""
    meta = pod.get("metadata") or {}
    namespace, labels = meta.get("namespace") or "", meta.get("labels") or {}
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    section = affinity.get(kind) if isinstance(affinity, Mapping) else None
    if not isinstance(section, Mapping):
        return ()
    field = ("preferredDuringSchedulingIgnoredDuringExecution" if preferred
             else "requiredDuringSchedulingIgnoredDuringExecution")
    raw = section.get(field) or []
    path = f"spec.affinity.{kind}.{field}"
    if not isinstance(raw, list):
        raise TermError(f"{path}: Invalid value: must be a list")
    out: list[AffinityTerm] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not preferred:
            out.append(_term(item, namespace, labels, where))
            continue
        weight = item.get("weight") if isinstance(item, Mapping) else None
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
            raise TermError(f"{where}.weight: Invalid value: {weight!r}: must be in the range 1-100")
        out.append(_term(item.get("podAffinityTerm"), namespace, labels,
                         f"{where}.podAffinityTerm", weight))
    return tuple(out)


@dataclass(frozen=True)
class SpreadConstraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    hard: bool
    min_domains: int = 1
    honor_affinity: bool = True
    honor_taints: bool = False


_ACTIONS = {"DoNotSchedule": True, "ScheduleAnyway": False}


def _policy(raw: Any, default: bool, path: str) -> bool:
    if raw is None:
        return default
    if raw not in ("Honor", "Ignore"):
        raise TermError(f'{path}: Unsupported value: "{raw}": supported values: "Honor", "Ignore"')
    return bool(raw == "Honor")


def parse_spread_constraints(pod: Mapping[str, Any]) -> tuple[SpreadConstraint, ...]:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    raw = (pod.get("spec") or {}).get("topologySpreadConstraints") or []
    if not isinstance(raw, list):
        raise TermError("spec.topologySpreadConstraints: Invalid value: must be a list")
    out: list[SpreadConstraint] = []
    for i, c in enumerate(raw):
        path = f"spec.topologySpreadConstraints[{i}]"
        if not isinstance(c, Mapping):
            raise TermError(f"{path}: Invalid value: must be an object")
        skew = c.get("maxSkew")
        if not isinstance(skew, int) or isinstance(skew, bool) or skew < 1:
            raise TermError(f"{path}.maxSkew: Invalid value: {skew!r}: must be greater than zero")
        key = c.get("topologyKey")
        if not key or not isinstance(key, str):
            raise TermError(f"{path}.topologyKey: Required value: can not be empty")
        action = c.get("whenUnsatisfiable")
        if action not in _ACTIONS:
            raise TermError(f'{path}.whenUnsatisfiable: Unsupported value: "{action}": '
                            'supported values: "DoNotSchedule", "ScheduleAnyway"')
        min_domains = c.get("minDomains")
        if min_domains is None:
            min_domains = 1
        elif not isinstance(min_domains, int) or isinstance(min_domains, bool) \
                or min_domains < 1:
            raise TermError(f"{path}.minDomains: Invalid value: {min_domains!r}: "
                            "must be greater than zero")
        selector = _selector(c.get("labelSelector"), labels, c.get("matchLabelKeys"), None, path)
        out.append(SpreadConstraint(
            skew, key, selector, _ACTIONS[action], min_domains,
            _policy(c.get("nodeAffinityPolicy"), True, f"{path}.nodeAffinityPolicy"),
            _policy(c.get("nodeTaintsPolicy"), False, f"{path}.nodeTaintsPolicy")))
    return tuple(out)
