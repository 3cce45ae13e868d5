"""RBAC rule and subject matching on plain Kubernetes-JSON dicts (PolicyRule, Subject).

Semantics of ``pkg/apis/rbac/v1/evaluation_helpers.go``: a rule allows a request when every
one of its dimensions matches; there are no deny rules. Missing or malformed fields match
nothing rather than raising, so a broken object grants nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from control.apiserver.rbac.authorizer import Attributes, UserInfo

__all__ = [
    "api_group_matches",
    "non_resource_url_matches",
    "resource_matches",
    "resource_name_matches",
    "rule_allows",
    "service_account_username",
    "subject_applies",
    "verb_matches",
]

_ALL = "*"


def _strings(rule: Mapping[str, Any], key: str) -> Sequence[str]:
    value = rule.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else ()


def verb_matches(rule: Mapping[str, Any], verb: str) -> bool:
    verbs = _strings(rule, "verbs")
    return _ALL in verbs or verb in verbs


def api_group_matches(rule: Mapping[str, Any], group: str) -> bool:
    groups = _strings(rule, "apiGroups")
    return _ALL in groups or group in groups


def resource_matches(rule: Mapping[str, Any], resource: str, subresource: str) -> bool:
    """``*``; exactly ``res`` (no subresource) or ``res/sub``; or ``*/sub``.
    ``pods`` does not cover ``pods/log`` and ``pods/*`` is not a wildcard."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in _strings(rule, "resources"):
        if candidate in (_ALL, combined):
            return True
        if subresource and candidate == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: Mapping[str, Any], name: str) -> bool:
    """No resourceNames allows any name; otherwise the request must name one of them (so a
    named rule never allows create, or list/watch without a metadata.name selector)."""
    names = _strings(rule, "resourceNames")
    return not names or name in names


def non_resource_url_matches(rule: Mapping[str, Any], path: str) -> bool:
    """``*``, the exact path, or a prefix ending in ``*`` (``/apis/*`` covers ``/apis/x``)."""
    for url in _strings(rule, "nonResourceURLs"):
        if url in (_ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attrs: Attributes, rule: Mapping[str, Any]) -> bool:
    """Whether one PolicyRule allows the request."""
    if not verb_matches(rule, attrs.verb):
        return False
    if not attrs.is_resource_request:
        return non_resource_url_matches(rule, attrs.path)
    return (
        api_group_matches(rule, attrs.api_group)
        and resource_matches(rule, attrs.resource, attrs.subresource)
        and resource_name_matches(rule, attrs.name)
    )


def service_account_username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def subject_applies(subject: Mapping[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    """Whether a binding subject names this user. A ServiceAccount subject without a
    namespace means the binding's own namespace (none for a ClusterRoleBinding)."""
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str):
        return False
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == service_account_username(namespace, name)
    return False
