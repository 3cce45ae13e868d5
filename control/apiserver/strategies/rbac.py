"""RBAC kinds (rbac.authorization.k8s.io/v1): Roles and ClusterRoles hold rules, bindings
hold a ``roleRef`` (fixed for life) and subjects. Names are URL path segments, so
``system:controller:x`` is fine. Evaluation lives in :mod:`control.apiserver.rbac`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause

from .base import BaseStrategy
from .causes import Raw, as_mapping, child, index, invalid, mappings, not_supported, required
from .meta import validate_label_selector
from .names import dns1123_subdomain, path_segment

__all__ = [
    "ClusterRoleBindingStrategy",
    "ClusterRoleStrategy",
    "RoleBindingStrategy",
    "RoleStrategy",
]

GROUP = "rbac.authorization.k8s.io"
_SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def _validate_rule(rule: Mapping[str, Any], path: str, *, namespaced: bool) -> list[Cause]:
    errs: list[Cause] = []
    if not rule.get("verbs"):
        errs.append(required(child(path, "verbs"), "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs")
    if urls:
        if namespaced:
            errs.append(invalid(child(path, "nonResourceURLs"), urls,
                                "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(invalid(child(path, "nonResourceURLs"), urls,
                                "rules cannot apply to both regular resources and non-resource "
                                "URLs"))
        return errs
    if not rule.get("apiGroups"):
        errs.append(required(child(path, "apiGroups"),
                             "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        errs.append(required(child(path, "resources"),
                             "resource rules must supply at least one resource"))
    return errs


class RoleStrategy(BaseStrategy):
    """Roles: every rule has verbs, and resource rules name groups and resources;
    non-resource URLs only in cluster roles."""

    name_rule = "path"

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        errs: list[Cause] = []
        for i, rule in enumerate(mappings(obj.get("rules"))):
            errs += _validate_rule(rule, index("rules", i), namespaced=self.namespaced)
        return errs


class ClusterRoleStrategy(RoleStrategy):
    """ClusterRoles: as Roles, plus an optional ``aggregationRule`` of label selectors."""

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        errs = super().validate_spec(obj)
        aggregation = obj.get("aggregationRule")
        if aggregation is not None:
            selectors = as_mapping(aggregation).get("clusterRoleSelectors")
            if not selectors:
                errs.append(required("aggregationRule.clusterRoleSelectors"))
            for i, selector in enumerate(selectors or []):
                errs += validate_label_selector(
                    selector, index("aggregationRule.clusterRoleSelectors", i))
        return errs


def _role_ref_value(ref: Any) -> Raw:
    """A RoleRef as Go prints it: all three fields, in struct order."""
    ref = as_mapping(ref)
    fields = {k: str(ref.get(k) or "") for k in ("apiGroup", "kind", "name")}
    return Raw(json.dumps(fields, separators=(",", ":")))


def _validate_subject(subject: Mapping[str, Any], path: str, *,
                      namespaced: bool) -> list[Cause]:
    errs: list[Cause] = []
    name, kind, group = subject.get("name"), subject.get("kind"), subject.get("apiGroup", "")
    if not name:
        errs.append(required(child(path, "name")))
    if kind == "ServiceAccount":
        if name:
            errs += [invalid(child(path, "name"), name, m) for m in dns1123_subdomain(str(name))]
        if group:
            errs.append(not_supported(child(path, "apiGroup"), group, ("",)))
        if not namespaced and not subject.get("namespace"):
            errs.append(required(child(path, "namespace")))
    elif kind in ("User", "Group"):
        if group != GROUP:
            errs.append(not_supported(child(path, "apiGroup"), group, (GROUP,)))
    else:
        errs.append(not_supported(child(path, "kind"), kind, _SUBJECT_KINDS))
    return errs


class RoleBindingStrategy(BaseStrategy):
    """RoleBindings: a roleRef to a Role or ClusterRole that never changes, and subjects
    whose ``apiGroup`` defaults by kind."""

    name_rule = "path"
    role_kinds: tuple[str, ...] = ("Role", "ClusterRole")

    def default(self, obj: dict[str, Any]) -> None:
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and not subject.get("apiGroup"):
                if subject.get("kind") in ("User", "Group"):
                    subject["apiGroup"] = GROUP
                elif subject.get("kind") == "ServiceAccount":
                    subject["apiGroup"] = ""

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        ref = as_mapping(obj.get("roleRef"))
        errs: list[Cause] = []
        if ref.get("apiGroup") != GROUP:
            errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), (GROUP,)))
        if ref.get("kind") not in self.role_kinds:
            errs.append(not_supported("roleRef.kind", ref.get("kind", ""), self.role_kinds))
        name = ref.get("name")
        if not name:
            errs.append(required("roleRef.name"))
        else:
            errs += [invalid("roleRef.name", name, msg) for msg in path_segment(str(name))]
        for i, subject in enumerate(mappings(obj.get("subjects"))):
            errs += _validate_subject(subject, index("subjects", i), namespaced=self.namespaced)
        return errs

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        if as_mapping(new.get("roleRef")) != as_mapping(old.get("roleRef")):
            return [invalid("roleRef", _role_ref_value(new.get("roleRef")),
                            "cannot change roleRef")]
        return []


class ClusterRoleBindingStrategy(RoleBindingStrategy):
    """ClusterRoleBindings: only ClusterRoles; ServiceAccount subjects name a namespace."""

    role_kinds = ("ClusterRole",)
