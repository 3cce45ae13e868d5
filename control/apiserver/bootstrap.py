"""What every apiserver makes sure of at start: the system namespaces, the bootstrap RBAC
policy and the system PriorityClasses exist (created when missing, as kube-apiserver's
``rbac/bootstrap-roles`` and ``scheduling/bootstrap-system-priority-classes`` post-start hooks
do).  Idempotent, so several apiservers may run it at once.

Namespaces' ``default`` ServiceAccounts and the emptying of deleted namespaces are the
controller-manager's (its serviceaccount and namespace controllers), as in Kubernetes.
"""

from __future__ import annotations

import logging
from typing import Any

from control.api.catalog import lookup
from control.api.errors import AlreadyExists
from control.apiserver.rbac import (
    SYSTEM_MASTERS,
    UserInfo,
    bootstrap_cluster_role_bindings,
    bootstrap_cluster_roles,
)
from control.apiserver.storage import object_key
from control.apiserver.strategies.scheduling import SYSTEM_PRIORITY_CLASSES

from .allocation import SERVICE_CIDR, kubernetes_service_ip
from .registry import WriteContext
from .state import APIState

__all__ = ["SYSTEM_NAMESPACES", "bootstrap"]

log = logging.getLogger("ketch.apiserver.bootstrap")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_APISERVER = UserInfo(name="system:apiserver", groups=(SYSTEM_MASTERS,))
_RBAC = "rbac.authorization.k8s.io"


def _ctx(group: str, version: str, resource: str, namespace: str = "",
         name: str = "") -> WriteContext:
    rd = lookup(group, version, resource)
    assert rd is not None
    return WriteContext(user=_APISERVER, rd=rd, namespace=namespace, name=name,
                        field_manager="kube-apiserver")


async def _ensure(api: APIState, ctx: WriteContext, obj: dict[str, Any]) -> bool:
    """Create ``obj`` unless it exists; True if this call created it."""
    if api.cache.get(object_key(ctx.gr, ctx.namespace, obj["metadata"]["name"])) is not None:
        return False
    try:
        await api.registry.create(ctx, obj)
        return True
    except AlreadyExists:
        return False


async def bootstrap(api: APIState) -> None:
    for ns in SYSTEM_NAMESPACES:
        await _ensure(api, _ctx("", "v1", "namespaces"),
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await _ensure(api, _ctx("", "v1", "services", "default"), {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": kubernetes_service_ip(str(
                     api.registry.allocator.net if api.registry.allocator else SERVICE_CIDR)),
                 "type": "ClusterIP",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": 6443}]}})
    for role in bootstrap_cluster_roles():
        await _ensure(api, _ctx(_RBAC, "v1", "clusterroles"), role)
    for binding in bootstrap_cluster_role_bindings():
        await _ensure(api, _ctx(_RBAC, "v1", "clusterrolebindings"), binding)
    for name, value, description in SYSTEM_PRIORITY_CLASSES:
        await _ensure(api, _ctx("scheduling.k8s.io", "v1", "priorityclasses"), {
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description})
