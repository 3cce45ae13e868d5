"""The RBAC authorizer: evaluates Role/ClusterRole/RoleBinding/ClusterRoleBinding objects.

Policy objects are plain dicts in Kubernetes JSON shape, read through an ``RBACSource`` (the
apiserver's watch cache later; ``StaticRBACSource`` for bootstrap and tests). Evaluation is
that of ``plugin/pkg/auth/authorizer/rbac/rbac.go``: ClusterRoleBindings grant their
ClusterRole everywhere; RoleBindings in the request's namespace grant their Role, or a
ClusterRole, in that namespace only; the first matching rule allows; otherwise no opinion
(deny), with unresolvable role references named in the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from control.apiserver.rbac.authorizer import (
    Attributes,
    Decision,
    PrivilegedGroupsAuthorizer,
    UnionAuthorizer,
    UserInfo,
)
from control.apiserver.rbac.rules import rule_allows, subject_applies

__all__ = ["Grant", "RBACAuthorizer", "RBACSource", "StaticRBACSource", "new_authorizer"]

Obj = Mapping[str, Any]


class RBACSource(Protocol):
    """Read access to the current RBAC objects. Implementations return snapshots the
    authorizer only reads; a namespace with no objects yields nothing."""

    def roles_in(self, namespace: str) -> Iterable[Obj]: ...

    def cluster_roles(self) -> Iterable[Obj]: ...

    def role_bindings_in(self, namespace: str) -> Iterable[Obj]: ...

    def cluster_role_bindings(self) -> Iterable[Obj]: ...


def _ns(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


@dataclass(frozen=True)
class StaticRBACSource:
    """An in-memory RBACSource over fixed lists (namespaced objects filtered by
    ``metadata.namespace``)."""

    roles: Sequence[Obj] = ()
    cluster_role_list: Sequence[Obj] = ()
    role_bindings: Sequence[Obj] = ()
    cluster_role_binding_list: Sequence[Obj] = ()

    def roles_in(self, namespace: str) -> Iterable[Obj]:
        return [r for r in self.roles if _ns(r) == namespace]

    def cluster_roles(self) -> Iterable[Obj]:
        return self.cluster_role_list

    def role_bindings_in(self, namespace: str) -> Iterable[Obj]:
        return [b for b in self.role_bindings if _ns(b) == namespace]

    def cluster_role_bindings(self) -> Iterable[Obj]:
        return self.cluster_role_binding_list


class Grant(NamedTuple):
    """The rules one applicable binding grants, described as Kubernetes describes it
    (``ClusterRoleBinding "x" of ClusterRole "y" to Group "z"``), or the error that kept
    its role from resolving (then ``rules`` is empty)."""

    description: str
    rules: Sequence[Obj]
    error: str = ""


def _describe_subject(subject: Obj, binding_namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


@dataclass
class _RoleLookup:
    """Resolves roleRefs against one source, indexing each kind of role on first use."""

    source: RBACSource
    _cluster: dict[str, Obj] | None = None
    _namespaced: dict[str, dict[str, Obj]] = field(default_factory=dict)

    def rules(self, ref: Obj, namespace: str) -> tuple[Sequence[Obj], str]:
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        if kind == "ClusterRole":
            if self._cluster is None:
                self._cluster = {_name(r): r for r in self.source.cluster_roles()}
            role, resource = self._cluster.get(name), "clusterrole"
        elif kind == "Role":
            if namespace not in self._namespaced:
                self._namespaced[namespace] = {_name(r): r for r in self.source.roles_in(namespace)}
            role, resource = self._namespaced[namespace].get(name), "role"
        else:
            return (), f'unsupported role reference kind: "{kind}"'
        if role is None:
            return (), f'{resource}.rbac.authorization.k8s.io "{name}" not found'
        rules = role.get("rules")
        return (rules if isinstance(rules, list) else []), ""


def _applicable(binding: Obj, user: UserInfo, namespace: str) -> Obj | None:
    subjects = binding.get("subjects")
    for subject in subjects if isinstance(subjects, list) else ():
        if isinstance(subject, Mapping) and subject_applies(subject, user, namespace):
            return subject
    return None


def _grants(source: RBACSource, user: UserInfo, namespace: str) -> Iterator[Grant]:
    """Every binding that applies to ``user`` for a request in ``namespace``: all
    ClusterRoleBindings, then (for a namespaced request) the RoleBindings there."""
    lookup = _RoleLookup(source)
    for binding in source.cluster_role_bindings():
        subject = _applicable(binding, user, "")
        if subject is None:
            continue
        ref = binding.get("roleRef") or {}
        rules, error = lookup.rules(ref, "")
        yield Grant(
            f'ClusterRoleBinding "{_name(binding)}" of {ref.get("kind", "")} '
            f'"{ref.get("name", "")}" to {_describe_subject(subject, "")}',
            rules,
            error,
        )
    if not namespace:
        return
    for binding in source.role_bindings_in(namespace):
        subject = _applicable(binding, user, namespace)
        if subject is None:
            continue
        ref = binding.get("roleRef") or {}
        rules, error = lookup.rules(ref, namespace)
        yield Grant(
            f'RoleBinding "{_name(binding)}/{namespace}" of {ref.get("kind", "")} '
            f'"{ref.get("name", "")}" to {_describe_subject(subject, namespace)}',
            rules,
            error,
        )


def _aggregate(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


@dataclass(frozen=True)
class RBACAuthorizer:
    """Authorizer over an RBACSource. Allows with reason ``RBAC: allowed by <binding>``;
    otherwise denies with reason "" or ``RBAC: <role lookup errors>``."""

    source: RBACSource

    def authorize(self, attrs: Attributes) -> Decision:
        errors = []
        for grant in _grants(self.source, attrs.user, attrs.namespace):
            if grant.error:
                errors.append(grant.error)
            for rule in grant.rules:
                if isinstance(rule, Mapping) and rule_allows(attrs, rule):
                    return Decision(allowed=True, reason=f"RBAC: allowed by {grant.description}")
        return Decision(allowed=False, reason=f"RBAC: {_aggregate(errors)}" if errors else "")

    def grants_for(self, user: UserInfo, namespace: str) -> list[Grant]:
        """Every applicable binding's rules for ``user`` in ``namespace`` (for
        SelfSubjectRulesReview); errors are carried in the grants."""
        return list(_grants(self.source, user, namespace))


def new_authorizer(source: RBACSource) -> UnionAuthorizer:
    """The apiserver's authorizer: system:masters bypass, then RBAC; default deny."""
    return UnionAuthorizer((PrivilegedGroupsAuthorizer(), RBACAuthorizer(source)))
