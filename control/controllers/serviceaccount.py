"""The serviceaccount controller: every active namespace has its ``default`` ServiceAccount
(kubernetes ``pkg/controller/serviceaccount/serviceaccounts_controller.go``).

Pods name an account (``default`` unless they say otherwise) and the ServiceAccount
admission plugin refuses a pod whose account does not exist, so a namespace is usable for
pods once this controller has made its ``default`` account.  The account is recreated if
deleted.  Terminating namespaces are left alone (the apiserver would refuse the create).
"""

from __future__ import annotations

import logging
from typing import Any

from control.api.errors import AlreadyExists, Forbidden, NotFound
from control.client import Informer
from control.client import resources as R

from .base import Controller, ControllerContext

__all__ = ["ACCOUNTS", "ServiceAccountsController"]

log = logging.getLogger("ketch.controllers.serviceaccount")

Obj = dict[str, Any]
#: The accounts every namespace gets (kube-controller-manager's serviceAccountsToEnsure).
ACCOUNTS = ("default",)


def is_active(ns: Obj) -> bool:
    """Phase Active (a namespace the apiserver has not stamped yet counts as active)."""
    if (ns.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (ns.get("status") or {}).get("phase", "Active") == "Active"


def namespace_terminating(err: Forbidden) -> bool:
    causes = err.details.get("causes") or ()
    return any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating"
               for c in causes) or "being terminated" in str(err)


class ServiceAccountsController(Controller):
    name = "serviceaccount"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = ctx.informer(R.NAMESPACES)
        self.accounts = ctx.informer(R.SERVICEACCOUNTS)
        self.namespaces.add_handler(on_add=self.enqueue,
                                    on_update=lambda _old, new: self.enqueue(new))
        self.accounts.add_handler(on_delete=self._account_deleted)

    def primary(self) -> Informer:
        return self.namespaces

    def _account_deleted(self, sa: Obj) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in ACCOUNTS:
            self.enqueue(str(meta.get("namespace") or ""))

    async def reconcile(self, key: str) -> float | None:
        ns = self.namespaces.cache.get(key)
        if ns is None or not is_active(ns):
            return None
        for name in ACCOUNTS:
            if self.accounts.cache.get_by(key, name) is not None:
                continue
            sa = {"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": name, "namespace": key}}
            try:
                await self.client.create(R.SERVICEACCOUNTS, sa, key)
                log.info("created ServiceAccount %s/%s", key, name)
            except (AlreadyExists, NotFound):
                pass  # made meanwhile, or the namespace is gone
            except Forbidden as e:
                if not namespace_terminating(e):
                    raise
        return None
