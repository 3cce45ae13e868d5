"""The resource quota controller: each ResourceQuota's ``status.used`` is recomputed from what
its namespace really holds, and ``status.hard`` mirrors ``spec.hard`` (kubernetes
``pkg/controller/resourcequota``).

ResourceQuota admission charges ``status.used`` as objects are created but never gives back:
deletions, pods finishing and objects made before the quota existed are this controller's to
account for.  It counts exactly what admission charges (:func:`control.api.quota.object_usage`,
the same scopes), except that pods which no longer hold resources are not counted (kube's
``QuotaV1Pod``: terminal pods, and pods whose deletion grace has run out).  Only the names
in ``spec.hard`` are reported; a name no object kind is charged for keeps its last value.

Custom resources (``count/widgets.example.com``) are counted once discovery serves them:
the controller looks at discovery every ``Settings.resource_discovery_period`` seconds (30;
sooner when a quota names a resource it does not know), watches a discovered resource as soon
as a quota names it, recounts the quotas naming a resource that came or went, and stops
watching a resource no longer served.

A quota is recomputed when it is created or its ``spec.hard`` changes, when an object it
counts is deleted (or a pod stops counting, or a Service changes type) in its namespace, and
every :attr:`ResourceQuotaController.resync` seconds (``--resource-quota-sync-period``, 5 m).
Before counting it waits for the caches to reach the quota's resourceVersion, so whatever was
charged before the quota's last write and already stored is seen (a quota whose status does
not show its current limits yet is counted at once, then again after that wait).  The write is guarded by
the quota's resourceVersion, so a charge admitted meanwhile is never overwritten.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from control.api.catalog import RESOURCES
from control.api.clock import parse_time
from control.api.podresources import ResourceList, add_into, resource_list
from control.api.quantity import Quantity, QuantityError
from control.api.quota import object_usage, quota_matches, usage_source
from control.client import Informer, Resource
from control.client import resources as R
from control.client.discovery import DiscoveredResource

from .base import Controller, ControllerContext
from .resourcediscovery import BUILT_IN, ResourceChange, ResourceDiscovery

__all__ = ["ResourceQuotaController", "counts_pod"]

log = logging.getLogger("ketch.controllers.resourcequota")

Obj = dict[str, Any]
_ZERO = Quantity.of(0)
_CATCH_UP_TIMEOUT = 10.0
_SERVED = {(rd.group, rd.resource): Resource.of(rd) for rd in RESOURCES
           if rd.namespaced and not rd.virtual}


def counts_pod(pod: Obj, now: dt.datetime) -> bool:
    """Whether a pod still counts against quota (kube ``QuotaV1Pod``): not terminal, and not
    stuck terminating past its deletion grace period (a lost node must not hold quota)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deleted_at = parse_time(meta.get("deletionTimestamp"))
    grace = meta.get("deletionGracePeriodSeconds")
    if deleted_at is not None and isinstance(grace, int):
        return not now > deleted_at + dt.timedelta(seconds=grace)
    return True


def quotable(d: DiscoveredResource) -> bool:
    """kube's ``GetQuotableResources``: namespaced, and created, listed, watched, deleted."""
    return d.resource.namespaced and d.supports("create", "list", "watch", "delete")


def _service_type(svc: Obj) -> str:
    return str((svc.get("spec") or {}).get("type") or "ClusterIP")


class ResourceQuotaController(Controller):
    name = "resourcequota"
    #: --resource-quota-sync-period: every quota is recomputed at least this often.
    resync = 300.0

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.quotas = ctx.informer(R.RESOURCEQUOTAS)
        self.quotas.add_handler(on_add=self.enqueue, on_update=self._quota_updated)
        self._monitored: dict[tuple[str, str], Informer] = {}
        self.discovery = ResourceDiscovery(
            ctx.client, ctx.clock, period=ctx.settings.resource_discovery_period,
            wanted=quotable)
        for res in (R.PODS, R.SERVICES, R.CONFIGMAPS, R.SECRETS, R.SERVICEACCOUNTS,
                    R.RESOURCEQUOTAS):
            self._monitor(res)

    def primary(self) -> Informer:
        return self.quotas

    async def run(self) -> None:
        async with self.discovery.running(self._synced_discovery, name=self.name):
            await super().run()

    def _served(self, src: tuple[str, str]) -> Resource | None:
        """The resource counted for ``src`` = (group, plural): built in, or discovered."""
        res = _SERVED.get(src)
        if res is None:
            res = next((r for r in self.discovery.resources if (r.group, r.plural) == src),
                       None)
        return res

    def _synced_discovery(self, change: ResourceChange) -> None:
        """Stop watching what is no longer served; recount the quotas that name what came
        or went (and any resource whose informer another controller stopped)."""
        for res in change.removed:
            inf = self._monitored.get((res.group, res.plural))
            if inf is not None and inf.resource == res:
                del self._monitored[(res.group, res.plural)]
                self.ctx.informers.forget(res)
        touched = {(r.group, r.plural) for r in (*change.added, *change.removed)}
        for key, inf in list(self._monitored.items()):
            if key not in BUILT_IN and self._monitor(inf.resource) is not inf:
                touched.add(key)
        if not touched:
            return
        for quota in self.quotas.cache:
            if any(usage_source(k) in touched
                   for k in (quota.get("spec") or {}).get("hard") or {}):
                self.enqueue(quota)

    # --- handlers -------------------------------------------------------------------------------

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        # Status writes (admission's charges, this controller's own) do not call for a full
        # recount; a change of what is limited does.
        hard = (new.get("spec") or {}).get("hard")
        changed = (old.get("spec") or {}).get("hard") != hard
        if old is new or changed or (new.get("status") or {}).get("hard") != hard:
            self.enqueue(new)

    def _monitor(self, res: Resource) -> Informer:
        """The shared informer of ``res`` with this controller's handlers (added again to a
        new one when the informer held was stopped: a custom resource gone and back)."""
        inf = self.ctx.informer(res)
        if self._monitored.get((res.group, res.plural)) is not inf:
            self._monitored[(res.group, res.plural)] = inf
            inf.add_handler(on_update=lambda old, new, r=res: self._object_updated(r, old, new),
                            on_delete=self._replenish)
        return inf

    def _object_updated(self, res: Resource, old: Obj, new: Obj) -> None:
        if old is new:
            return
        if res == R.PODS:
            now = self.clock.now()
            if counts_pod(old, now) and not counts_pod(new, now):
                self._replenish(new)
        elif res == R.SERVICES and _service_type(old) != _service_type(new):
            self._replenish(new)

    def _replenish(self, obj: Obj) -> None:
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        for quota in self.quotas.cache.by_index("namespace", ns):
            self.enqueue(quota)

    # --- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        quota = self.quotas.cache.get(key)
        if quota is None:
            return None
        spec_hard = (quota.get("spec") or {}).get("hard") or {}
        informers: dict[tuple[str, str], Informer] = {}
        for src in {usage_source(k) for k in spec_hard}:
            res = None if src is None else self._served(src)
            if res is not None and src is not None:
                informers[src] = self._monitor(res)
            elif src is not None and src not in BUILT_IN:
                self.discovery.request()  # a custom resource not served, or not known yet
        # A quota whose status does not show its hard limits yet (new, or limits changed) is
        # counted at once, so `kubectl describe quota` is right away, then counted again
        # once the caches have caught up with it.
        first = (quota.get("status") or {}).get("hard") != spec_hard
        rv = int(quota["metadata"].get("resourceVersion") or 0)
        for inf in informers.values():
            if not await inf.wait_synced(_CATCH_UP_TIMEOUT) or not first and not (
                    await inf.wait_for_version(rv, _CATCH_UP_TIMEOUT)):
                log.info("quota %s: cache of %s behind %d; looking again", key, inf.resource, rv)
                return 1.0
        counted = self._usage(quota, informers)
        status = self._status(quota, spec_hard, counted)
        if not _same(status, quota.get("status")):
            await self.client.update_status(R.RESOURCEQUOTAS, {**quota, "status": status})
        return 1.0 if first else self.resync

    def _usage(self, quota: Obj, informers: dict[tuple[str, str], Informer]) -> ResourceList:
        """What the quota's namespace holds, for every hard name some kind is charged for
        (zero when nothing is)."""
        hard = (quota.get("spec") or {}).get("hard") or {}
        ns = quota["metadata"].get("namespace") or ""
        now = self.clock.now()
        used: ResourceList = {k: _ZERO for k in hard if usage_source(k) in informers}
        for (group, resource), inf in informers.items():
            for obj in inf.cache.by_index("namespace", ns):
                if (group, resource) == ("", "pods") and not counts_pod(obj, now):
                    continue
                if not quota_matches(quota, group, resource, obj):
                    continue
                try:
                    cost = object_usage(group, resource, obj)
                except QuantityError:
                    continue  # the apiserver validates quantities; nothing to count
                add_into(used, {k: q for k, q in cost.items() if k in used})
        return used

    def _status(self, quota: Obj, hard: Obj, counted: ResourceList) -> Obj:
        before = (quota.get("status") or {}).get("used") or {}
        used = {k: v for k, v in before.items() if k in hard}
        used.update({k: str(q) for k, q in counted.items()})
        return {"hard": dict(hard), "used": used}


def _same(a: Obj | None, b: Obj | None) -> bool:
    """Equal as quantities (``1`` and ``1000m`` are the same usage)."""
    a, b = a or {}, b or {}
    try:
        return all(resource_list(a.get(f)) == resource_list(b.get(f)) for f in ("hard", "used"))
    except QuantityError:
        return False
