"""Authorization seam: who asks (UserInfo), what for (Attributes), and the answer (Decision).

The apiserver's authorization stage builds ``Attributes`` from the authenticated ``UserInfo``
and the ``RequestInfo``, asks an ``Authorizer``, and on denial answers 403 with
``forbidden_status``. ``new_authorizer`` wires the standard chain: the hard-wired
``system:masters`` superuser group first, then RBAC; the default is deny.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from control.apiserver.requestinfo import RequestInfo

__all__ = [
    "ALL_AUTHENTICATED",
    "ALL_UNAUTHENTICATED",
    "ANONYMOUS",
    "NODES_GROUP",
    "SYSTEM_MASTERS",
    "Attributes",
    "Authorizer",
    "Decision",
    "PrivilegedGroupsAuthorizer",
    "UnionAuthorizer",
    "UserInfo",
    "attributes_from_request",
    "forbidden_message",
    "forbidden_status",
]

SYSTEM_MASTERS = "system:masters"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
NODES_GROUP = "system:nodes"

_NO_EXTRA: Mapping[str, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity. From a client certificate: name = CN, groups = the O values
    plus ``system:authenticated``; no uid, no extra."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _NO_EXTRA, hash=False)

    def to_status(self) -> dict[str, Any]:
        """The ``userInfo`` of a SelfSubjectReview / SubjectAccessReview (empty fields left out)."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


@dataclass(frozen=True)
class Attributes:
    """What is being authorized. Resource requests use verb, namespace, api_group,
    api_version, resource, subresource and name; non-resource requests use verb and path.
    ``namespace`` is "" for cluster-scoped requests."""

    user: UserInfo
    verb: str
    is_resource_request: bool
    path: str = ""
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def attributes_from_request(user: UserInfo, info: RequestInfo) -> Attributes:
    """The authorizer's view of a parsed request (RequestInfo → Attributes, as
    apiserver ``GetAuthorizerAttributes``)."""
    return Attributes(
        user=user,
        verb=info.verb,
        is_resource_request=info.is_resource_request,
        path=info.path,
        namespace=info.namespace,
        api_group=info.api_group,
        api_version=info.api_version,
        resource=info.resource,
        subresource=info.subresource,
        name=info.name,
    )


@dataclass(frozen=True)
class Decision:
    """``allowed`` or not, with the authorizer's reason (may be ""). A denial's reason is
    appended to the Forbidden message after a colon."""

    allowed: bool
    reason: str = ""


class Authorizer(Protocol):
    """Decides one request. Must be pure with respect to its inputs and never raise for
    malformed policy objects: they simply grant nothing (and may be named in the reason)."""

    def authorize(self, attrs: Attributes) -> Decision: ...


@dataclass(frozen=True)
class PrivilegedGroupsAuthorizer:
    """Allows every request from members of ``groups`` (system:masters); no opinion otherwise.
    This is the bypass that keeps an admin in even when RBAC objects are broken."""

    groups: frozenset[str] = frozenset({SYSTEM_MASTERS})

    def authorize(self, attrs: Attributes) -> Decision:
        return Decision(allowed=not self.groups.isdisjoint(attrs.user.groups))


@dataclass(frozen=True)
class UnionAuthorizer:
    """Asks each authorizer in order; the first allow wins. Otherwise denies, with the
    non-empty reasons joined by newlines (as apiserver's union authorizer)."""

    authorizers: Sequence[Authorizer]

    def authorize(self, attrs: Attributes) -> Decision:
        reasons = []
        for authorizer in self.authorizers:
            decision = authorizer.authorize(attrs)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(allowed=False, reason="\n".join(reasons))


_SANITIZE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _why(attrs: Attributes) -> str:
    user = attrs.user.name
    if not attrs.is_resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = attrs.resource
    if attrs.subresource:
        resource = f"{resource}/{attrs.subresource}"
    head = (
        f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}"'
    )
    if attrs.namespace:
        return f'{head} in the namespace "{attrs.namespace}"'
    return f"{head} at the cluster scope"


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The message of the 403 Status, worded as kube-apiserver's (responsewriters
    ``forbiddenMessage`` wrapped by ``NewForbidden``), e.g.
    ``pods "x" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in
    the namespace "default"``; non-resource: ``forbidden: User "alice" cannot get path "/x"``.
    """
    why = _why(attrs).translate(_SANITIZE)
    if reason:
        why = f"{why}: {reason}"
    qualified = attrs.resource if attrs.is_resource_request else ""
    group = attrs.api_group if attrs.is_resource_request else ""
    if group and qualified:
        qualified = f"{qualified}.{group}"
    elif group:
        qualified = f".{group}"
    if not qualified:
        return f"forbidden: {why}"
    if not attrs.name:
        return f"{qualified} is forbidden: {why}"
    return f'{qualified} "{attrs.name}" is forbidden: {why}'


def forbidden_status(attrs: Attributes, reason: str = "") -> dict[str, Any]:
    """A complete ``Status`` body (code 403, reason Forbidden) for a denied request."""
    details = {"name": attrs.name, "group": attrs.api_group, "kind": attrs.resource}
    if not attrs.is_resource_request:
        details = {}
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": forbidden_message(attrs, reason),
        "reason": "Forbidden",
        "details": {k: v for k, v in details.items() if v},
        "code": 403,
    }
