"""The Endpoints controller: the legacy core/v1 Endpoints object of every Service with a
selector, named like the Service (kubernetes ``pkg/controller/endpoint``).

One reconcile per Service key: the pods the selector matches become ready and not-ready
addresses per port (a named ``targetPort`` resolved on each pod; terminating pods only with
``publishNotReadyAddresses``, which also lists not-ready pods as ready), in the canonical
layout of :mod:`.endpointsubsets`, with the Service's labels (plus the headless label when it
has no cluster IP), the ``last-change-trigger-time`` annotation, and at most 1000 addresses
(``endpoints.kubernetes.io/over-capacity: truncated`` beyond).  Written only when different,
guarded by resourceVersion.  A deleted Service's Endpoints are deleted; an Endpoints object
without a Service is deleted at the start of each term.  Services without a selector (whose
Endpoints are written by their owners) and ExternalName Services are left alone.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from control.api.errors import APIError, Forbidden, NotFound
from control.api.objects import meta as _meta
from control.client import WARNING, split_key
from control.client import resources as R

from .base import Controller, ControllerContext
from .endpointsubsets import (
    MAX_CAPACITY,
    OVER_CAPACITY,
    build_subsets,
    count,
    subsets_equal,
    truncate,
)
from .endpointutil import (
    HEADLESS_LABEL,
    LAST_CHANGE_TRIGGER_TIME,
    TriggerTimeTracker,
    format_nano,
    is_service_ip_set,
    pod_endpoints_changed,
    service_selector,
    services_for_pod,
)

__all__ = ["EndpointsController"]

log = logging.getLogger("ketch.controllers.endpoints")

Obj = dict[str, Any]
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
STALE_RETRY = 0.1



class EndpointsController(Controller):
    name = "endpoint"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = ctx.informer(R.SERVICES)
        self.pods = ctx.informer(R.PODS)
        self.endpoints = ctx.informer(R.ENDPOINTS)
        self.triggers = TriggerTimeTracker()
        #: Endpoints resourceVersions this controller replaced: a cache still showing one is
        #: behind this controller's own write.
        self._replaced: dict[str, str] = {}
        self.watch(self.services)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_added)
        self.endpoints.add_handler(on_delete=self.enqueue)

    def primary(self) -> Any:
        return self.services

    def start_term(self) -> None:
        self._replaced.clear()
        super().start_term()
        for ep in self.endpoints.cache:  # checkLeftoverEndpoints: Endpoints without a Service
            if LEADER_ANNOTATION not in (_meta(ep).get("annotations") or {}):
                self.enqueue(ep)

    # --- handlers ----------------------------------------------------------------------------

    def _services_of(self, pod: Obj, labels: dict[str, str] | None = None) -> set[str]:
        ns = _meta(pod).get("namespace", "")
        return services_for_pod(self.services.cache.by_index("namespace", ns),
                                labels if labels is not None else _meta(pod).get("labels"))

    def _pod_added(self, pod: Obj) -> None:
        for key in self._services_of(pod):
            self.enqueue(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old is new or _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        changed, labels_changed = pod_endpoints_changed(old, new)
        if not changed and not labels_changed:
            return
        keys = self._services_of(new)
        if labels_changed:
            before = self._services_of(old, _meta(old).get("labels") or {})
            keys = keys | before if changed else keys ^ before
        for key in keys:
            self.enqueue(key)

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        svc = self.services.cache.get(key)
        if svc is None:
            self.triggers.forget(key)
            self._replaced.pop(key, None)
            if self.endpoints.cache.get(key) is not None:
                try:
                    await self.client.delete(R.ENDPOINTS, name, ns)
                except NotFound:
                    pass
            return None
        if (svc.get("spec") or {}).get("type") == "ExternalName":
            return None
        selector = service_selector(svc)
        if selector is None:
            return None
        pods = self.pods.cache.list(ns, selector)
        trigger = self.triggers.compute(svc, pods)
        subsets = build_subsets(svc, pods)
        current = self.endpoints.cache.get(key)
        if current is not None and self._replaced.get(key) == _meta(current).get(
                "resourceVersion"):
            return STALE_RETRY  # the cache has not shown our last write yet
        labels = dict(_meta(svc).get("labels") or {})
        if current is not None:
            have = {k: v for k, v in (_meta(current).get("labels") or {}).items()
                    if k != HEADLESS_LABEL}
            annotations = _meta(current).get("annotations") or {}
            capacity_ok = count(current.get("subsets") or []) <= MAX_CAPACITY and \
                OVER_CAPACITY not in annotations
            if subsets_equal(current.get("subsets"), subsets) and have == labels \
                    and capacity_ok:
                return None
        await self._write(svc, current, subsets, labels, trigger)
        return None

    async def _write(self, svc: Obj, current: Obj | None, subsets: list[Obj], labels: Obj,
                     trigger: Any) -> None:
        meta = _meta(svc)
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        new: Obj = copy.deepcopy(current) if current is not None else {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns}}
        over = truncate(subsets)
        if subsets:
            new["subsets"] = subsets
        else:
            new.pop("subsets", None)  # as kube writes an empty list: not at all
        annotations = dict(_meta(new).get("annotations") or {})
        if trigger is not None:
            annotations[LAST_CHANGE_TRIGGER_TIME] = format_nano(trigger)
        else:
            annotations.pop(LAST_CHANGE_TRIGGER_TIME, None)
        if over:
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        if not is_service_ip_set(svc):
            labels = {**labels, HEADLESS_LABEL: ""}
        new["metadata"]["labels"] = labels
        new["metadata"]["annotations"] = annotations
        key = f"{ns}/{name}"
        try:
            if current is None:
                await self.client.create(R.ENDPOINTS, new, ns)
            else:
                written = await self.client.update(R.ENDPOINTS, new)
                if _meta(written).get("resourceVersion") != _meta(current).get(
                        "resourceVersion"):
                    self._replaced[key] = _meta(current).get("resourceVersion", "")
        except Forbidden as e:
            if current is None and "being terminated" in str(e):
                return  # the namespace is going away
            self._failed(new, current is None, key, e)
            raise
        except APIError as e:
            self._failed(new, current is None, key, e)
            raise

    def _failed(self, ep: Obj, create: bool, key: str, err: Exception) -> None:
        if create:
            self.recorder.event(ep, WARNING, "FailedToCreateEndpoint",
                                f"Failed to create endpoint for service {key}: {err}")
        else:
            self.recorder.event(ep, WARNING, "FailedToUpdateEndpoint",
                                f"Failed to update endpoint {key}: {err}")
