"""RBAC authorization for the apiserver: identities, request attributes, the Authorizer seam,
Kubernetes-compatible RBAC evaluation, the bootstrap policy and self-review answers.

Pure: policy objects come in through an ``RBACSource``; nothing here does I/O.
"""

from __future__ import annotations

from control.apiserver.rbac.authorizer import (
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    ANONYMOUS,
    NODES_GROUP,
    SYSTEM_MASTERS,
    Attributes,
    Authorizer,
    Decision,
    PrivilegedGroupsAuthorizer,
    UnionAuthorizer,
    UserInfo,
    attributes_from_request,
    forbidden_message,
    forbidden_status,
)
from control.apiserver.rbac.bootstrap import (
    bootstrap_cluster_role_bindings,
    bootstrap_cluster_roles,
    bootstrap_source,
)
from control.apiserver.rbac.rbac import (
    Grant,
    RBACAuthorizer,
    RBACSource,
    StaticRBACSource,
    new_authorizer,
)
from control.apiserver.rbac.review import (
    ReviewSpecError,
    access_review_attributes,
    access_review_status,
    rules_review_status,
)
from control.apiserver.rbac.rules import rule_allows, service_account_username, subject_applies

__all__ = [
    "ALL_AUTHENTICATED",
    "ALL_UNAUTHENTICATED",
    "ANONYMOUS",
    "NODES_GROUP",
    "SYSTEM_MASTERS",
    "Attributes",
    "Authorizer",
    "Decision",
    "Grant",
    "PrivilegedGroupsAuthorizer",
    "RBACAuthorizer",
    "RBACSource",
    "ReviewSpecError",
    "StaticRBACSource",
    "UnionAuthorizer",
    "UserInfo",
    "access_review_attributes",
    "access_review_status",
    "attributes_from_request",
    "bootstrap_cluster_role_bindings",
    "bootstrap_cluster_roles",
    "bootstrap_source",
    "forbidden_message",
    "forbidden_status",
    "new_authorizer",
    "rule_allows",
    "rules_review_status",
    "service_account_username",
    "subject_applies",
]
