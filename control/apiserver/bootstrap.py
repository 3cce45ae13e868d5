"""What every apiserver makes sure of at start and keeps true while it runs.

* ``bootstrap``: the system namespaces, the bootstrap RBAC policy and the system
  PriorityClasses exist (created when missing, as kube-apiserver's ``rbac/bootstrap-roles``
  and ``scheduling/bootstrap-system-priority-classes`` post-start hooks do).
* ``housekeeping``: every namespace has its ``default`` ServiceAccount, and a namespace being
  deleted is emptied and then finalized.  In Kubernetes these are controller-manager loops
  (serviceaccounts and namespace controllers); ketch runs them here until its
  controller-manager exists.  They are idempotent, so several apiservers may run them at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from control.api.catalog import RESOURCES, lookup
from control.api.errors import AlreadyExists, APIError, Conflict, NotFound
from control.apiserver.rbac import (
    SYSTEM_MASTERS,
    UserInfo,
    bootstrap_cluster_role_bindings,
    bootstrap_cluster_roles,
)
from control.apiserver.storage import object_key
from control.apiserver.strategies.scheduling import SYSTEM_PRIORITY_CLASSES

from .allocation import KUBERNETES_SERVICE_IP
from .registry import WriteContext
from .state import APIState
from .subresources import finalize_namespace

__all__ = ["SYSTEM_NAMESPACES", "bootstrap", "housekeeping"]

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
        "spec": {"clusterIP": KUBERNETES_SERVICE_IP, "type": "ClusterIP",
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


# --- housekeeping ---------------------------------------------------------------------------

async def _service_accounts(api: APIState) -> None:
    for ns in api.view.list("", "namespaces"):
        meta = ns["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        name = meta["name"]
        await _ensure(api, _ctx("", "v1", "serviceaccounts", name),
                      {"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "default", "namespace": name}})


async def _empty_namespace(api: APIState, ns: str) -> bool:
    """Delete everything in ``ns``; True once nothing is left."""
    left = False
    for rd in RESOURCES:
        if not rd.namespaced or rd.virtual:
            continue
        for obj in api.view.list(rd.group, rd.resource, ns):
            left = True
            if obj["metadata"].get("deletionTimestamp"):
                continue
            ctx = _ctx(rd.group, rd.version, rd.resource, ns, obj["metadata"]["name"])
            try:
                await api.registry.delete(ctx, {"propagationPolicy": "Background"})
            except (NotFound, Conflict):
                pass
    return not left


async def _finalize_namespaces(api: APIState) -> None:
    for ns in api.view.list("", "namespaces"):
        meta = ns["metadata"]
        if not meta.get("deletionTimestamp"):
            continue
        name = meta["name"]
        if not await _empty_namespace(api, name):
            continue
        try:
            await finalize_namespace(api, name, lambda fins: [f for f in fins
                                                              if f != "kubernetes"])
        except (NotFound, Conflict):
            pass


async def housekeeping(api: APIState, *, resync: float = 10.0) -> None:
    """Run the loops whenever a namespace, service account or namespaced object changes,
    and every ``resync`` seconds; errors are logged and retried on the next round."""
    wake = asyncio.Event()
    watched = {("", "namespaces"), ("", "serviceaccounts")}

    def listener(ev: Any) -> None:
        parts = ev.key.decode(errors="replace").split("/")
        group = "" if parts[2] == "core" else parts[2]
        if (group, parts[3]) in watched or ev.type == "DELETED":
            wake.set()

    api.cache.listeners.append(listener)
    try:
        while True:
            wake.clear()
            try:
                await _service_accounts(api)
                await _finalize_namespaces(api)
            except APIError as e:
                log.warning("housekeeping: %s", e)
            try:
                await asyncio.wait_for(wake.wait(), resync)
            except TimeoutError:
                pass
    finally:
        api.cache.listeners.remove(listener)
