"""The EndpointSlice controller: for every Service with a selector, discovery.k8s.io/v1
EndpointSlices listing the pods it selects (kubernetes ``pkg/controller/endpointslice``).

One reconcile per Service key.  The slices it manages carry ``kubernetes.io/service-name`` and
``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`` and are owned by
the Service (the garbage collector removes them with it).  What they should hold is computed
by :mod:`.sliceplan`; this module reads the caches, guards against acting on a cache that has
not yet shown this controller's own last writes (a per-Service record of the generation it
wrote, as ``EndpointSliceTracker``), writes, and stamps ``last-change-trigger-time``.

Services without a selector and ExternalName Services are left alone.  Pod changes that matter
to endpoints (readiness, IPs, deletion, labels) enqueue the Services at once, so the node
agents' proxies see a readiness change within moments.
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
from .endpointutil import (
    LAST_CHANGE_TRIGGER_TIME,
    TriggerTimeTracker,
    format_nano,
    pod_endpoints_changed,
    service_selector,
    services_for_pod,
)
from .sliceplan import (
    CONTROLLER_NAME,
    MANAGED_BY_LABEL,
    MAX_ENDPOINTS_PER_SLICE,
    SERVICE_NAME_LABEL,
    plan_slices,
)

__all__ = ["EndpointSliceController"]

log = logging.getLogger("ketch.controllers.endpointslice")

Obj = dict[str, Any]
_DELETED = -1
#: A change to a slice made by someone else is looked at after this long (as Kubernetes'
#: endpointSliceChangeMinSyncDelay), so a burst of such changes costs one sync.
SLICE_CHANGE_DELAY = 1.0
NODE_RETRY = 5.0
STALE_PATIENCE = 10.0



class _Tracker:
    """The generations this controller wrote (or the deletions it made) per Service: a slice
    event that matches them is this controller's own echo; a cache that still shows less is
    stale and must not be acted on."""

    def __init__(self) -> None:
        self._by_service: dict[str, dict[str, int]] = {}

    def wrote(self, svc_key: str, s: Obj) -> None:
        self._by_service.setdefault(svc_key, {})[_meta(s).get("uid", "")] = int(
            _meta(s).get("generation") or 0)

    def deleted(self, svc_key: str, s: Obj) -> None:
        self._by_service.setdefault(svc_key, {})[_meta(s).get("uid", "")] = _DELETED

    def should_sync(self, svc_key: str, s: Obj) -> bool:
        g = self._by_service.get(svc_key, {}).get(_meta(s).get("uid", ""))
        return g is None or g != int(_meta(s).get("generation") or 0)

    def handle_deletion(self, svc_key: str, s: Obj) -> bool:
        """Forget a deleted slice; True if the deletion was this controller's own."""
        gens = self._by_service.get(svc_key, {})
        return gens.pop(_meta(s).get("uid", ""), None) == _DELETED

    def stale(self, svc_key: str, slices: list[Obj]) -> bool:
        gens = self._by_service.get(svc_key)
        if not gens:
            return False
        seen = set()
        for s in slices:
            uid = _meta(s).get("uid", "")
            seen.add(uid)
            g = gens.get(uid)
            if g is not None and (g == _DELETED or g > int(_meta(s).get("generation") or 0)):
                return True
        return any(g != _DELETED and uid not in seen for uid, g in gens.items())

    def forget(self, svc_key: str) -> None:
        self._by_service.pop(svc_key, None)

    def clear(self) -> None:
        self._by_service.clear()


class EndpointSliceController(Controller):
    name = "endpointslice"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = ctx.informer(R.SERVICES)
        self.pods = ctx.informer(R.PODS)
        self.nodes = ctx.informer(R.NODES)
        self.slices = ctx.informer(R.ENDPOINTSLICES)
        self.max_per_slice = MAX_ENDPOINTS_PER_SLICE
        self.tracker = _Tracker()
        self._stale_since: dict[str, float] = {}
        self.triggers = TriggerTimeTracker()
        self.watch(self.services)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_added)
        self.slices.add_handler(on_add=self._slice_added, on_update=self._slice_updated,
                                on_delete=self._slice_deleted)

    def primary(self) -> Any:
        return self.services

    def start_term(self) -> None:
        self.tracker.clear()
        super().start_term()

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

    def _service_key(self, s: Obj) -> str | None:
        name = (_meta(s).get("labels") or {}).get(SERVICE_NAME_LABEL)
        return f"{_meta(s).get('namespace', '')}/{name}" if name else None

    def _managed(self, s: Obj) -> bool:
        return (_meta(s).get("labels") or {}).get(MANAGED_BY_LABEL) == CONTROLLER_NAME

    def _slice_added(self, s: Obj) -> None:
        key = self._service_key(s)
        if key and self._managed(s) and self.tracker.should_sync(key, s):
            self.enqueue_after(key, SLICE_CHANGE_DELAY)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        key, old_key = self._service_key(new), self._service_key(old)
        if key != old_key:
            for k in (key, old_key):
                if k:
                    self.enqueue_after(k, SLICE_CHANGE_DELAY)
            return
        if key and (self._managed(old) != self._managed(new) or (
                self._managed(new) and self.tracker.should_sync(key, new))):
            self.enqueue_after(key, SLICE_CHANGE_DELAY)

    def _slice_deleted(self, s: Obj) -> None:
        key = self._service_key(s)
        if key and self._managed(s) and not self.tracker.handle_deletion(key, s):
            self.enqueue_after(key, SLICE_CHANGE_DELAY)

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        svc = self.services.cache.get(key)
        if svc is None:
            self.triggers.forget(key)
            self.tracker.forget(key)
            self._stale_since.pop(key, None)
            return None  # its slices go with it (owner references)
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            return None
        selector = service_selector(svc)
        if selector is None:
            return None  # endpoints of a Service without a selector are written by others
        ns, name = split_key(key)
        pods = self.pods.cache.list(ns, selector)
        slices = [s for s in self.slices.cache.by_index("label", f"{SERVICE_NAME_LABEL}={name}")
                  if _meta(s).get("namespace") == ns and self._managed(s)
                  and not _meta(s).get("deletionTimestamp")]
        if self.tracker.stale(key, slices):
            since = self._stale_since.setdefault(key, self.clock.monotonic())
            if self.clock.monotonic() - since < STALE_PATIENCE:
                return SLICE_CHANGE_DELAY / 10  # our own writes have not come back yet
            # a write whose echo never comes (created and deleted between two lists):
            # trust the cache rather than wait forever
            log.info("service %s: slice cache never caught up; resyncing from it", key)
            self.tracker.forget(key)
        self._stale_since.pop(key, None)
        trigger = self.triggers.compute(svc, pods)
        plan = plan_slices(svc, pods, lambda n: self.nodes.cache.get(n), slices,
                           max_per_slice=self.max_per_slice)
        try:
            await self._finalize(key, svc, plan.create, plan.update, plan.delete, trigger)
        except APIError as e:
            self.recorder.event(svc, WARNING, "FailedToUpdateEndpointSlices",
                                f"Error updating Endpoint Slices for Service {key}: {e}")
            raise
        return NODE_RETRY if plan.problems else None

    async def _finalize(self, key: str, svc: Obj, create: list[Obj], update: list[Obj],
                        delete: list[Obj], trigger: Any) -> None:
        ns = _meta(svc).get("namespace", "")
        if not _meta(svc).get("deletionTimestamp"):
            for s in create:
                _stamp(s, trigger)
                try:
                    made = await self.client.create(R.ENDPOINTSLICES, s, ns)
                except Forbidden as e:
                    if "being terminated" in str(e):
                        return  # the namespace is going away
                    raise
                self.tracker.wrote(key, made)
        for s in update:
            _stamp(s, trigger)
            self.tracker.wrote(key, await self.client.update(R.ENDPOINTSLICES, s))
        for s in delete:
            meta = _meta(s)
            try:
                await self.client.delete(R.ENDPOINTSLICES, meta["name"], ns,
                                         preconditions={"uid": meta.get("uid", "")})
            except NotFound:
                continue
            self.tracker.deleted(key, s)


def _stamp(s: Obj, trigger: Any) -> None:
    """Set (or clear, without a trigger time) the last-change-trigger-time annotation; ``s``
    is a copy this controller owns."""
    meta = s.setdefault("metadata", {})
    annotations = copy.copy(meta.get("annotations") or {})
    if trigger is not None:
        annotations[LAST_CHANGE_TRIGGER_TIME] = format_nano(trigger)
    else:
        annotations.pop(LAST_CHANGE_TRIGGER_TIME, None)
    meta["annotations"] = annotations

