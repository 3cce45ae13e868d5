"""Self-review answers: SelfSubjectAccessReview ("can I?") and SelfSubjectRulesReview
("what can I?"), computed for the caller. The handler decodes the request body, calls these
with the authenticated user, and returns the object with the ``status`` they build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control.apiserver.rbac.authorizer import SYSTEM_MASTERS, Attributes, Authorizer, UserInfo
from control.apiserver.rbac.rbac import RBACAuthorizer

__all__ = [
    "ReviewSpecError",
    "access_review_attributes",
    "access_review_status",
    "rules_review_status",
]


class ReviewSpecError(ValueError):
    """An invalid review spec; the handler answers 422 Invalid with ``field`` and ``detail``."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def _text(spec: Mapping[str, Any], key: str) -> str:
    value = spec.get(key)
    return value if isinstance(value, str) else ""


def access_review_attributes(user: UserInfo, spec: Mapping[str, Any]) -> Attributes:
    """Attributes for a (Self)SubjectAccessReview spec: exactly one of
    ``resourceAttributes{namespace,verb,group,version,resource,subresource,name}`` or
    ``nonResourceAttributes{path,verb}``. An empty version means any ("*").

    Raises ReviewSpecError when both or neither are given.
    """
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        raise ReviewSpecError(
            "spec.nonResourceAttributes",
            "Invalid value: cannot be specified in combination with resourceAttributes",
        )
    if isinstance(non_resource, Mapping):
        return Attributes(
            user=user,
            verb=_text(non_resource, "verb"),
            is_resource_request=False,
            path=_text(non_resource, "path"),
        )
    if not isinstance(resource, Mapping):
        raise ReviewSpecError(
            "spec.resourceAttributes",
            "Required value: one of resourceAttributes or nonResourceAttributes must be specified",
        )
    return Attributes(
        user=user,
        verb=_text(resource, "verb"),
        is_resource_request=True,
        namespace=_text(resource, "namespace"),
        api_group=_text(resource, "group"),
        api_version=_text(resource, "version") or "*",
        resource=_text(resource, "resource"),
        subresource=_text(resource, "subresource"),
        name=_text(resource, "name"),
    )


def access_review_status(
    authorizer: Authorizer, user: UserInfo, spec: Mapping[str, Any]
) -> dict[str, Any]:
    """``status`` of a SelfSubjectAccessReview: ``{"allowed": bool, "reason"?: str}``.

    ``denied`` is never set: these authorizers only allow or have no opinion, and Kubernetes
    omits a false ``denied``. Raises ReviewSpecError for an invalid spec.
    """
    decision = authorizer.authorize(access_review_attributes(user, spec))
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


_RESOURCE_KEYS = ("verbs", "apiGroups", "resources", "resourceNames")


def _split_rule(rule: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    resource = non_resource = None
    if rule.get("resources"):
        resource = {k: list(rule[k]) for k in _RESOURCE_KEYS if rule.get(k)}
    if rule.get("nonResourceURLs"):
        non_resource = {
            "verbs": list(rule.get("verbs") or []),
            "nonResourceURLs": list(rule["nonResourceURLs"]),
        }
    return resource, non_resource


def rules_review_status(
    rbac: RBACAuthorizer,
    user: UserInfo,
    namespace: str,
    *,
    privileged_groups: frozenset[str] = frozenset({SYSTEM_MASTERS}),
) -> dict[str, Any]:
    """``status`` of a SelfSubjectRulesReview for ``namespace``: every rule granted by the
    cluster-wide and namespace bindings, plus wildcards for privileged groups.
    ``incomplete`` and ``evaluationError`` report roles that could not be resolved."""
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    if not privileged_groups.isdisjoint(user.groups):
        resource_rules.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
        non_resource_rules.append({"verbs": ["*"], "nonResourceURLs": ["*"]})
    errors = []
    for grant in rbac.grants_for(user, namespace):
        if grant.error:
            errors.append(grant.error)
        for rule in grant.rules:
            if not isinstance(rule, Mapping):
                continue
            resource, non_resource = _split_rule(rule)
            if resource:
                resource_rules.append(resource)
            if non_resource:
                non_resource_rules.append(non_resource)
    status: dict[str, Any] = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": bool(errors),
    }
    if errors:
        status["evaluationError"] = ", ".join(dict.fromkeys(errors))
    return status
