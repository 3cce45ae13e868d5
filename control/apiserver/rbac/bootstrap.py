"""Bootstrap RBAC policy as data: the ClusterRoles and ClusterRoleBindings an apiserver
ensures exist at startup (like kube-apiserver's ``bootstrappolicy``), as Kubernetes-JSON dicts.

Names, bindings and the discovery/basic-user/public-info-viewer rules are Kubernetes'.
admin/edit/view are the non-aggregated core of Kubernetes' roles for the resources ketch
serves. Because ketch runs every controller under one identity and has no Node authorizer,
system:kube-controller-manager is the union of Kubernetes' per-controller roles, and
system:node (bound to the system:nodes group, as before Kubernetes 1.8) covers a kubelet plus
kube-proxy. Each call returns fresh dicts the caller may own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from control.apiserver.rbac.authorizer import (
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    NODES_GROUP,
    SYSTEM_MASTERS,
)
from control.apiserver.rbac.rbac import StaticRBACSource

__all__ = [
    "BOOTSTRAP_ANNOTATIONS",
    "BOOTSTRAP_LABELS",
    "bootstrap_cluster_role_bindings",
    "bootstrap_cluster_roles",
    "bootstrap_source",
]

BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
BOOTSTRAP_ANNOTATIONS = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
_RBAC_API = "rbac.authorization.k8s.io"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = READ + WRITE


def _rule(
    verbs: Sequence[str],
    groups: Sequence[str] = (),
    resources: Sequence[str] = (),
    names: Sequence[str] = (),
    urls: Sequence[str] = (),
) -> dict[str, Any]:
    rule: dict[str, Any] = {"verbs": list(verbs)}
    if urls:
        rule["nonResourceURLs"] = list(urls)
        return rule
    rule["apiGroups"] = list(groups)
    rule["resources"] = list(resources)
    if names:
        rule["resourceNames"] = list(names)
    return rule


def _meta(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "labels": dict(BOOTSTRAP_LABELS),
        "annotations": dict(BOOTSTRAP_ANNOTATIONS),
    }


def _events(verbs: Sequence[str] = ("create", "patch", "update")) -> list[dict[str, Any]]:
    return [_rule(verbs, ["", "events.k8s.io"], ["events"])]


_HEALTH = ("/healthz", "/livez", "/readyz")

_VIEW = [
    _rule(
        READ,
        [""],
        [
            "pods",
            "pods/log",
            "pods/status",
            "services",
            "services/status",
            "endpoints",
            "configmaps",
            "serviceaccounts",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "replicationcontrollers/status",
            "bindings",
            "events",
            "limitranges",
            "resourcequotas",
            "resourcequotas/status",
            "namespaces",
            "namespaces/status",
        ],
    ),
    _rule(
        READ,
        ["apps"],
        [
            "controllerrevisions",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
        ],
    ),
    _rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    _rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
    # metrics-server's system:aggregated-metrics-reader, aggregated into view/edit/admin
    _rule(READ, ["metrics.k8s.io"], ["pods", "nodes"]),
]

_EDIT = [
    _rule(
        READ_WRITE,
        [""],
        [
            "pods",
            "pods/attach",
            "pods/exec",
            "pods/portforward",
            "pods/proxy",
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "secrets",
            "serviceaccounts",
            "services",
            "services/proxy",
        ],
    ),
    _rule(["create"], [""], ["pods/eviction", "serviceaccounts/token"]),
    _rule(["impersonate"], [""], ["serviceaccounts"]),
    _rule(
        READ_WRITE,
        ["apps"],
        [
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
        ],
    ),
    _rule(READ_WRITE, ["batch"], ["cronjobs", "jobs"]),
    _rule(READ_WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    _rule(READ_WRITE, ["policy"], ["poddisruptionbudgets"]),
    _rule(READ_WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    *_VIEW,
]

_ADMIN = [
    _rule(READ_WRITE, [_RBAC_API], ["roles", "rolebindings"]),
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    *_EDIT,
]

_SCHEDULER = [
    *_events(),
    _rule(["create"], ["coordination.k8s.io"], ["leases"]),
    _rule(["get", "update"], ["coordination.k8s.io"], ["leases"], names=["kube-scheduler"]),
    _rule(
        READ,
        [""],
        [
            "nodes",
            "namespaces",
            "services",
            "replicationcontrollers",
            "persistentvolumeclaims",
            "persistentvolumes",
        ],
    ),
    _rule(["delete", "get", "list", "watch"], [""], ["pods"]),
    _rule(["create"], [""], ["bindings", "pods/binding"]),
    _rule(["patch", "update"], [""], ["pods/status"]),
    _rule(READ, ["apps"], ["replicasets", "statefulsets"]),
    _rule(READ, ["policy"], ["poddisruptionbudgets"]),
    # pods carry their resolved spec.priority; preemption compares it with their class's
    _rule(READ, ["scheduling.k8s.io"], ["priorityclasses"]),
    _rule(
        READ,
        ["storage.k8s.io"],
        ["csidrivers", "csinodes", "csistoragecapacities", "storageclasses"],
    ),
    _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
]

_CONTROLLER_MANAGER = [
    *_events(),
    # informers, garbage collector (ownerReferences), status writers, node lifecycle
    _rule(["get", "list", "watch", "patch", "update", "delete"], ["*"], ["*"]),
    # namespace deletion empties every collection in the namespace
    _rule(["deletecollection"], ["*"], ["*"]),
    _rule(
        ["create"],
        [""],
        [
            "pods",
            "pods/eviction",
            "endpoints",
            "serviceaccounts",
            "configmaps",
            "secrets",
            "persistentvolumeclaims",
        ],
    ),
    _rule(["create"], ["apps"], ["replicasets", "controllerrevisions", "deployments",
                                 "statefulsets", "daemonsets"]),
    _rule(["create"], ["batch"], ["jobs", "cronjobs"]),
    _rule(["create"], ["discovery.k8s.io"], ["endpointslices"]),
    _rule(["create"], ["coordination.k8s.io"], ["leases"]),
    _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
]

_NODE = [
    *_events(),
    _rule(["create", "get", "list", "watch", "patch", "update", "delete"], [""], ["nodes"]),
    _rule(["patch", "update"], [""], ["nodes/status"]),
    _rule(["create", "delete", "get", "list", "watch"], [""], ["pods"]),
    _rule(["patch", "update"], [""], ["pods/status"]),
    _rule(["create"], [""], ["pods/eviction", "serviceaccounts/token"]),
    _rule(READ, [""], ["services", "endpoints", "configmaps", "secrets"]),
    _rule(["get"], [""], ["persistentvolumeclaims", "persistentvolumes", "serviceaccounts"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _rule(["create", "delete", "get", "patch", "update"], ["coordination.k8s.io"], ["leases"]),
    _rule(
        ["create", "get", "list", "watch"], ["certificates.k8s.io"], ["certificatesigningrequests"]
    ),
    _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    _rule(
        ["create"], ["authorization.k8s.io"], ["subjectaccessreviews", "localsubjectaccessreviews"]
    ),
]

_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [_rule(["*"], ["*"], ["*"]), _rule(["*"], urls=["*"])],
    "admin": _ADMIN,
    "edit": _EDIT,
    "view": _VIEW,
    "system:discovery": [
        _rule(
            ["get"],
            urls=[
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/openapi",
                "/openapi/*",
                "/version",
                "/version/",
                *_HEALTH,
            ],
        )
    ],
    "system:basic-user": [
        _rule(
            ["create"],
            ["authorization.k8s.io"],
            ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        ),
        _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
    ],
    "system:public-info-viewer": [_rule(["get"], urls=[*_HEALTH, "/version", "/version/"])],
    "system:monitoring": [
        _rule(
            ["get"],
            urls=[*_HEALTH, "/healthz/*", "/livez/*", "/readyz/*", "/metrics", "/metrics/slis"],
        )
    ],
    "system:kube-scheduler": _SCHEDULER,
    "system:kube-controller-manager": _CONTROLLER_MANAGER,
    "system:node": _NODE,
    "system:service-account-issuer-discovery": [
        _rule(["get"], urls=["/.well-known/openid-configuration",
                             "/.well-known/openid-configuration/", "/openid/v1/jwks",
                             "/openid/v1/jwks/"])],
}

# binding name (= ClusterRole name) -> subjects as (kind, name)
_BINDINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "cluster-admin": (("Group", SYSTEM_MASTERS),),
    "system:discovery": (("Group", ALL_AUTHENTICATED),),
    "system:basic-user": (("Group", ALL_AUTHENTICATED),),
    "system:public-info-viewer": (("Group", ALL_AUTHENTICATED), ("Group", ALL_UNAUTHENTICATED)),
    "system:monitoring": (("Group", "system:monitoring"),),
    "system:kube-scheduler": (("User", "system:kube-scheduler"),),
    "system:kube-controller-manager": (("User", "system:kube-controller-manager"),),
    "system:node": (("Group", NODES_GROUP),),
    "system:service-account-issuer-discovery": (("Group", "system:serviceaccounts"),),
}


def _copy(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: list(v) if isinstance(v, list) else v for k, v in r.items()} for r in rules]


def bootstrap_cluster_roles() -> list[dict[str, Any]]:
    """The bootstrap ClusterRoles, as ``rbac.authorization.k8s.io/v1`` objects."""
    return [
        {
            "apiVersion": f"{_RBAC_API}/v1",
            "kind": "ClusterRole",
            "metadata": _meta(name),
            "rules": _copy(rules),
        }
        for name, rules in _CLUSTER_ROLES.items()
    ]


def bootstrap_cluster_role_bindings() -> list[dict[str, Any]]:
    """The bootstrap ClusterRoleBindings, each named after the ClusterRole it binds."""
    return [
        {
            "apiVersion": f"{_RBAC_API}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name),
            "roleRef": {"apiGroup": _RBAC_API, "kind": "ClusterRole", "name": name},
            "subjects": [
                {"apiGroup": _RBAC_API, "kind": kind, "name": subject} for kind, subject in subjects
            ],
        }
        for name, subjects in _BINDINGS.items()
    ]


def bootstrap_source() -> StaticRBACSource:
    """An RBACSource holding only the bootstrap policy (for a fresh cluster and tests)."""
    return StaticRBACSource(
        cluster_role_list=bootstrap_cluster_roles(),
        cluster_role_binding_list=bootstrap_cluster_role_bindings(),
    )
