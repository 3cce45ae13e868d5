"""root-ca-cert-publisher: every namespace has the ``kube-root-ca.crt`` ConfigMap, whose
``ca.crt`` is the cluster CA pods use to verify the apiserver (kubernetes
``pkg/controller/certificates/rootcacertpublisher/publisher.go``).

Service-account token volumes project this ConfigMap into every pod, so it must exist in
every namespace and hold exactly the CA the controller-manager was configured with
(:attr:`Settings.ca_pem <.base.Settings.ca_pem>`, read from its kubeconfig); an edit or a
deletion is undone.  Without a configured CA the controller does nothing (and says so once).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from control.api.errors import AlreadyExists, Forbidden, NotFound
from control.client import Informer
from control.client import resources as R

from .base import Controller, ControllerContext
from .serviceaccount import is_active, namespace_terminating

__all__ = ["DESCRIPTION", "DESCRIPTION_ANNOTATION", "ROOT_CA_CONFIGMAP", "RootCACertPublisher"]

log = logging.getLogger("ketch.controllers.rootcacert")

Obj = dict[str, Any]
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using "
               "internal endpoints such as the internal service IP or kubernetes.default.svc. "
               "No other usage is guaranteed across distributions of Kubernetes clusters.")


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.ca = ctx.settings.ca_pem.decode()
        if not self.ca:
            log.warning("no cluster CA configured: %s publishes nothing", self.name)
        self.namespaces = ctx.informer(R.NAMESPACES)
        self.configmaps = ctx.informer(R.CONFIGMAPS)
        self.namespaces.add_handler(on_add=self.enqueue, on_update=self._namespace_updated)
        self.configmaps.add_handler(on_update=lambda _old, new: self._configmap_changed(new),
                                    on_delete=self._configmap_changed)

    def primary(self) -> Informer:
        return self.namespaces

    def _namespace_updated(self, _old: Obj, new: Obj) -> None:
        if is_active(new):
            self.enqueue(new)

    def _configmap_changed(self, cm: Obj) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == ROOT_CA_CONFIGMAP:
            self.enqueue(str(meta.get("namespace") or ""))

    async def reconcile(self, key: str) -> float | None:
        if not self.ca or self.namespaces.cache.get(key) is None:
            return None
        data = {"ca.crt": self.ca}
        cm = self.configmaps.cache.get_by(key, ROOT_CA_CONFIGMAP)
        if cm is None:
            new = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": key,
                                "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                   "data": data}
            try:
                await self.client.create(R.CONFIGMAPS, new, key)
            except (AlreadyExists, NotFound):
                pass  # made meanwhile (the cache will show it), or the namespace is gone
            except Forbidden as e:
                if not namespace_terminating(e):
                    raise
            return None
        meta = cm.get("metadata") or {}
        if cm.get("data") == data and (meta.get("annotations") or {}).get(
                DESCRIPTION_ANNOTATION):
            return None
        fixed = copy.deepcopy(cm)
        fixed["data"] = data
        fixed["metadata"].setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = DESCRIPTION
        await self.client.update(R.CONFIGMAPS, fixed)  # guarded by the cached resourceVersion
        return None
