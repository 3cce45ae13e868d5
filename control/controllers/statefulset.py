"""The StatefulSet controller: pods with stable names ``NAME-0 .. NAME-(N-1)``, created,
scaled and updated in ordinal order (kubernetes ``pkg/controller/statefulset``).

One reconcile per StatefulSet key: adopt orphaned ControllerRevisions that match the
selector, claim the pods (they must match the selector *and* be named ``NAME-<ordinal>``),
then run one sync of :class:`~.statefulset_control.StatefulSetControl` (revisions, pods in
order, status, history).  With ``minReadySeconds`` the set is looked at again after that
long while not every replica is available.

No expectations are needed: pod names are fixed, so a sync working from a cache that has not
yet seen its own creation gets AlreadyExists from the apiserver (and retries), never a second
pod.  A StatefulSet whose selector is invalid gets a Warning event and no pods.
"""

from __future__ import annotations

import logging
from typing import Any

from control.api.objects import meta as _meta
from control.api.objects import spec_selector
from control.api.selectors import LabelSelector
from control.client import WARNING
from control.client import resources as R

from .base import ControllerContext
from .history import owned_revisions
from .owners import controller_of
from .podowners import PodOwnerController
from .refmanager import RefManager
from .statefulset_control import StatefulSetControl
from .statefulset_pods import is_member_of, replicas

__all__ = ["StatefulSetController"]

log = logging.getLogger("ketch.controllers.statefulset")

Obj = dict[str, Any]


class StatefulSetController(PodOwnerController):
    name = "statefulset"
    resource = R.STATEFULSETS
    tracks_expectations = False  # pod names are fixed (see the module docstring)

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.sets = ctx.informer(R.STATEFULSETS)
        self.pods = ctx.informer(R.PODS)
        self.revisions = ctx.informer(R.CONTROLLERREVISIONS)
        self.control = StatefulSetControl(self.client, self.recorder, self.clock)
        self.watch(self.sets)
        self.pods.add_handler(on_add=self.pod_added, on_update=self.pod_updated,
                              on_delete=self.pod_deleted)

    def primary(self) -> Any:
        return self.sets

    # --- handlers ------------------------------------------------------------------------------

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        sts = self.sets.cache.get(key)
        if sts is None:
            return None
        selector = spec_selector(sts)
        if selector is None or selector.empty:
            self.recorder.event(sts, WARNING, "InvalidSelector",
                                "invalid selector" if selector is None else
                                "an empty selector would select every pod; refusing to "
                                "manage pods")
            return None
        revisions = await self._revisions(sts, selector)
        pods = await RefManager(self.client, R.PODS, sts, selector, owner_res=R.STATEFULSETS,
                                accept=lambda p: is_member_of(sts, p)).claim(
                                    self._candidates(sts, selector))
        status = await self.control.sync(sts, pods, revisions)
        mrs = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        if mrs > 0 and status.get("availableReplicas") != replicas(sts):
            return float(mrs)
        return None

    async def _revisions(self, sts: Obj, selector: LabelSelector) -> list[Obj]:
        """The set's revisions, orphans matching its selector adopted (``adoptOrphanRevisions``;
        an orphan that changed meanwhile is still counted, as Kubernetes lists it)."""
        revisions = owned_revisions(self.revisions.cache, sts, selector)
        orphans = [r for r in revisions if controller_of(r) is None]
        if orphans:
            manager = RefManager(self.client, R.CONTROLLERREVISIONS, sts, selector,
                                 owner_res=R.STATEFULSETS)
            if await manager.can_adopt():
                adopted = {_meta(r)["uid"]: r for o in orphans
                           if (r := await manager.adopt(o)) is not None}
                revisions = [adopted.get(_meta(r).get("uid"), r) for r in revisions]
        return revisions

    def _candidates(self, sts: Obj, selector: LabelSelector) -> list[Obj]:
        """Pods the set controls, and orphans its selector matches."""
        uid = str(_meta(sts).get("uid"))
        owned = [p for p in self.pods.cache.by_index("owner", uid)
                 if (controller_of(p) or {}).get("uid") == uid]
        orphans = [p for p in self.pods.cache.list(_meta(sts).get("namespace", ""), selector)
                   if controller_of(p) is None]
        return owned + orphans
