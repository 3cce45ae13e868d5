"""NamespaceLifecycle: no new content in a missing or terminating namespace, and the system
namespaces cannot be deleted.

It runs first in both phases: in the mutating phase so that a create into a missing namespace
fails with ``namespaces "x" not found`` before other plugins look things up there (as in
kube-apiserver, where this plugin admits first), and again while validating, which is cheap and
catches a namespace that began terminating in between.
"""

from __future__ import annotations

from typing import Any

from control.api.errors import Cause, NotFound
from control.apiserver.admission.request import (
    CREATE,
    DELETE,
    AdmissionRequest,
    ClusterView,
    forbidden,
)

__all__ = ["IMMORTAL_NAMESPACES", "NamespaceLifecycle"]

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})

_REVIEW_GROUPS = frozenset({"authorization.k8s.io", "authentication.k8s.io"})


class NamespaceLifecycle:
    """Admit and validate the same read-only checks (see the module docstring)."""

    name = "NamespaceLifecycle"

    async def admit(self, req: AdmissionRequest, view: ClusterView) -> None:
        await self._check(req, view)

    async def validate(self, req: AdmissionRequest, view: ClusterView) -> None:
        await self._check(req, view)

    async def _check(self, req: AdmissionRequest, view: ClusterView) -> None:
        if req.group == "" and req.resource == "namespaces":
            if req.operation == DELETE and req.subresource == "" and (
                    req.name in IMMORTAL_NAMESPACES):
                raise forbidden(req, "this namespace may not be deleted")
            return
        if not req.namespace or req.operation == DELETE:
            return
        # Answering an access review with "namespace not found" would leak its existence.
        if req.group in _REVIEW_GROUPS and req.resource.endswith("reviews"):
            return
        namespace = await view.get_fresh("", "namespaces", "", req.namespace)
        if namespace is None:
            raise NotFound("namespaces", req.namespace)
        if req.operation == CREATE and _terminating(namespace):
            ns = req.namespace
            raise forbidden(
                req,
                f"unable to create new content in namespace {ns} because it is being terminated",
                (Cause("NamespaceTerminating", f"namespace {ns} is being terminated",
                       "metadata.namespace"),))


def _terminating(namespace: dict[str, Any]) -> bool:
    status = namespace.get("status") or {}
    meta = namespace.get("metadata") or {}
    return status.get("phase") == "Terminating" or bool(meta.get("deletionTimestamp"))
