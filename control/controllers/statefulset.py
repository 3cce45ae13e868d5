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

from control.api.selectors import LabelSelector, SelectorError, from_label_selector
from control.client import WARNING, object_key
from control.client import resources as R

from .base import Controller, ControllerContext
from .history import owned_revisions
from .owners import controller_of
from .podutil import is_pod_ready
from .refmanager import RefManager
from .statefulset_control import StatefulSetControl
from .statefulset_pods import is_member_of, replicas

__all__ = ["StatefulSetController"]

log = logging.getLogger("ketch.controllers.statefulset")

Obj = dict[str, Any]


def _meta(o: Obj) -> Obj:
    meta: Obj = o.get("metadata") or {}
    return meta


def _selector(sts: Obj) -> LabelSelector | None:
    try:
        return from_label_selector((sts.get("spec") or {}).get("selector"))
    except SelectorError:
        return None


class StatefulSetController(Controller):
    name = "statefulset"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.sets = ctx.informer(R.STATEFULSETS)
        self.pods = ctx.informer(R.PODS)
        self.revisions = ctx.informer(R.CONTROLLERREVISIONS)
        self.control = StatefulSetControl(self.client, self.recorder, self.clock)
        self.watch(self.sets)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_deleted)

    def primary(self) -> Any:
        return self.sets

    # --- handlers ------------------------------------------------------------------------------

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "StatefulSet":
            return None
        sts = self.sets.cache.get_by(_meta(pod).get("namespace", ""), ref.get("name", ""))
        if sts is None or _meta(sts).get("uid") != ref.get("uid"):
            return None
        return object_key(sts)

    def _matching_sets(self, pod: Obj) -> list[str]:
        labels = _meta(pod).get("labels") or {}
        keys = []
        for sts in self.sets.cache.by_index("namespace", _meta(pod).get("namespace", "")):
            sel = _selector(sts)
            if sel is not None and not sel.empty and sel.matches(labels):
                keys.append(object_key(sts))
        return keys

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.enqueue(key)
        elif controller_of(pod) is None and not _meta(pod).get("deletionTimestamp"):
            for k in self._matching_sets(pod):
                self.enqueue(k)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old is new:
            return
        old_ref, new_ref = controller_of(old), controller_of(new)
        if old_ref != new_ref and old_ref is not None and (k := self._owner_key(old)):
            self.enqueue(k)
        key = self._owner_key(new)
        if key is not None:
            self.enqueue(key)
            sts = self.sets.cache.get(key) or {}
            mrs = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
            if mrs > 0 and is_pod_ready(new) and not is_pod_ready(old):
                self.enqueue_after(key, mrs + 1)
        elif new_ref is None and (old_ref is not None or
                                  _meta(old).get("labels") != _meta(new).get("labels")):
            for k in self._matching_sets(new):
                self.enqueue(k)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.enqueue(key)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        sts = self.sets.cache.get(key)
        if sts is None:
            return None
        selector = _selector(sts)
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
