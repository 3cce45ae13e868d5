"""The namespace controller: a namespace being deleted is emptied, then released
(kubernetes ``pkg/controller/namespace``).

``kubectl delete namespace x`` only marks it: the apiserver sets ``deletionTimestamp`` and
phase ``Terminating`` and keeps the object while ``spec.finalizers`` holds ``kubernetes``
(NamespaceLifecycle admission refuses new content meanwhile).  This controller, for each
namespace in that state (looked at :attr:`NamespaceController.deletion_grace` seconds after
the change, so every apiserver has seen the termination), deletes every namespaced object of
every kind the apiservers serve (:mod:`.namespace_deletion`), records on the namespace's
status conditions what is left and why (kinds, finalizers, failures), and once nothing is
left removes ``kubernetes`` through ``namespaces/NAME/finalize`` — guarded by the
namespace's resourceVersion — after which the apiserver deletes the namespace.

Content still terminating is looked at again after half the estimate (pods' grace periods,
15 s for finalizers) plus one second; failures are retried with back-off.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from control.api.errors import APIError, Conflict, NotFound
from control.client import resources as R

from .base import Controller, ControllerContext
from .namespace_deletion import ContentReport, delete_all_content, updated_conditions

__all__ = ["FINALIZER", "NamespaceController"]

log = logging.getLogger("ketch.controllers.namespace")

Obj = dict[str, Any]
FINALIZER = "kubernetes"


class NamespaceController(Controller):
    name = "namespace"
    #: kube's namespaceDeletionGracePeriod: let every apiserver observe the deletion, and
    #: every last-moment create inside the namespace land, before emptying it.
    deletion_grace = 5.0

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.workers = ctx.settings.concurrency.get(self.name, 10)  # --concurrent-namespace-syncs
        self.namespaces = ctx.informer(R.NAMESPACES)
        self.namespaces.add_handler(on_add=self._changed,
                                    on_update=lambda _old, new: self._changed(new))

    def _changed(self, ns: Obj) -> None:
        meta = ns.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self.enqueue_after(str(meta.get("name")), self.deletion_grace)

    def start_term(self) -> None:
        super().start_term()
        for ns in self.namespaces.cache:
            self._changed(ns)

    async def reconcile(self, key: str) -> float | None:
        if self.namespaces.cache.get(key) is None:
            return None
        try:
            ns = await self.client.get(R.NAMESPACES, key)
        except NotFound:
            return None
        if not ns["metadata"].get("deletionTimestamp"):
            return None
        ns = await self._mark_terminating(ns)
        if not (ns.get("spec") or {}).get("finalizers"):
            return None  # finalized: the apiserver deletes it once its metadata allows
        report = await delete_all_content(self.client, ns, self.clock.now())
        ns = await self._record(ns, report)
        if report.errors or report.discovery_error:
            raise APIError(500, "InternalError",
                           "; ".join([report.discovery_error, *report.errors]).strip("; "))
        if report.estimate > 0:
            log.info("content remaining in namespace %s, waiting %d seconds", key,
                     report.estimate // 2 + 1)
            return float(report.estimate // 2 + 1)
        await self._finalize(ns)
        return None

    async def _mark_terminating(self, ns: Obj) -> Obj:
        if (ns.get("status") or {}).get("phase") == "Terminating":
            return ns
        new = copy.deepcopy(ns)
        new.setdefault("status", {})["phase"] = "Terminating"
        return await self.client.update_status(R.NAMESPACES, new)

    async def _record(self, ns: Obj, report: ContentReport) -> Obj:
        """Write the deletion conditions if they changed (best effort, as kube: a conflict
        leaves them to the next round)."""
        status, changed = updated_conditions(ns.get("status") or {}, report, self.ctx.now())
        if not changed:
            return ns
        try:
            return await self.client.update_status(R.NAMESPACES, {**ns, "status": status})
        except (Conflict, NotFound) as e:
            log.info("namespace %s: conditions not written: %s", ns["metadata"]["name"], e)
            return ns

    async def _finalize(self, ns: Obj) -> None:
        """Remove ``kubernetes`` from ``spec.finalizers`` (a compare-and-swap on the
        namespace's resourceVersion; on conflict, read again and retry)."""
        name = ns["metadata"]["name"]
        for _ in range(5):
            finalizers = list((ns.get("spec") or {}).get("finalizers") or ())
            if FINALIZER not in finalizers:
                return
            body = {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name,
                                 "resourceVersion": ns["metadata"]["resourceVersion"]},
                    "spec": {"finalizers": sorted(set(finalizers) - {FINALIZER})}}
            try:
                await self.client.update(R.NAMESPACES, body, subresource="finalize")
                log.info("namespace %s emptied and finalized", name)
                return
            except NotFound:
                return
            except Conflict:
                fresh = await self.client.get(R.NAMESPACES, name)
                if fresh["metadata"].get("uid") != ns["metadata"].get("uid"):
                    return
                ns = fresh
        raise Conflict("namespaces", name)
