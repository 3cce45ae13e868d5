"""The taint-eviction controller: deletes the pods that do not tolerate their node's NoExecute
taints (kubernetes ``pkg/controller/tainteviction``, "taint-eviction-controller").

One reconcile per node name: every pod bound to the node is looked at against the node's
NoExecute taints (``GetMatchingTolerations``: each taint's first tolerating toleration).

* a taint no toleration tolerates → the pod is deleted now;
* every used toleration without ``tolerationSeconds`` → tolerated forever;
* otherwise the pod is deleted the smallest ``tolerationSeconds`` (≤ 0: at once) after it
  became subject to those taints — the earlier of when this controller first saw that and the
  taints' ``timeAdded`` (so a new leader does not restart a pod's five minutes; a timeAdded in
  the future counts as now) — and the node is looked at again then.

A deletion is announced by a ``TaintManagerEviction`` event ("Marking for deletion Pod NS/NAME"),
then the pod gets the ``DisruptionTarget`` condition (reason ``DeletionByTaintManager``) and is
deleted (preconditioned on its uid).  A scheduled deletion that no longer applies (taint gone,
toleration changed) is cancelled with a "Cancelling deletion of Pod NS/NAME" event.  Pods
already being deleted are left to their deletion.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from control.api.clock import parse_time
from control.api.errors import NotFound
from control.api.objects import meta as _meta
from control.api.taints import node_taints, pod_tolerations, tolerates
from control.client import NORMAL, object_key
from control.client import resources as R

from .base import Controller, ControllerContext

__all__ = ["TaintEvictionController", "matching_tolerations", "min_toleration"]

log = logging.getLogger("ketch.controllers.tainteviction")

Obj = dict[str, Any]
FOREVER = -1.0



def no_execute_taints(node: Obj | None) -> list[Obj]:
    return [dict(t) for t in node_taints(node or {}) if t.get("effect") == "NoExecute"]


def matching_tolerations(taints: list[Obj], tolerations: list[Any]
                         ) -> tuple[bool, list[tuple[Obj, Any]]]:
    """(every taint tolerated, [(taint, the first toleration tolerating it)])."""
    used = []
    for taint in taints:
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            return False, []
        used.append((taint, match))
    return True, used


def min_toleration(tolerations: list[Any]) -> float:
    """``getMinTolerationTime``: the smallest tolerationSeconds (≤ 0 means 0); FOREVER when
    none of them has one; 0 for no tolerations."""
    if not tolerations:
        return 0.0
    seconds = [t.get("tolerationSeconds") for t in tolerations
               if isinstance(t.get("tolerationSeconds"), int)]
    if not seconds:
        return FOREVER
    return float(max(0, min(seconds)))


def _ref(key: str) -> Obj:
    ns, _, name = key.partition("/")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}}


class TaintEvictionController(Controller):
    name = "taint-eviction"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.nodes = ctx.informer(R.NODES)
        self.pods = ctx.informer(R.PODS)
        self.nodes.add_handler(on_add=self.enqueue, on_update=self._node_updated,
                               on_delete=self.enqueue)
        self.pods.add_handler(on_add=self._pod_event, on_update=self._pod_updated,
                              on_delete=self._pod_event)
        #: pod key -> (node, monotonic time it became subject to a finite toleration)
        self._since: dict[str, tuple[str, float]] = {}

    def primary(self) -> Any:
        return self.nodes

    def start_term(self) -> None:
        self._since.clear()
        super().start_term()

    # --- handlers ----------------------------------------------------------------------------

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if old is not new and no_execute_taints(old) != no_execute_taints(new):
            self.enqueue(new)

    def _pod_event(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self.enqueue(node)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        before, after = old.get("spec") or {}, new.get("spec") or {}
        if before.get("nodeName") != after.get("nodeName") or \
                before.get("tolerations") != after.get("tolerations"):
            self._pod_event(old)
            self._pod_event(new)

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.cache.get(key)
        if node is None:  # its pods are the pod garbage collector's now
            self._since = {k: v for k, v in self._since.items() if v[0] != key}
            return None
        taints = no_execute_taints(node)
        pods = self.pods.cache.by_index("node", key)
        present = {object_key(p) for p in pods}
        for k in [k for k, (n, _) in self._since.items() if n == key and k not in present]:
            del self._since[k]  # deleted or moved: nothing to cancel
        soonest: float | None = None
        for pod in pods:
            if _meta(pod).get("deletionTimestamp"):
                self._since.pop(object_key(pod), None)
                continue
            wait = await self._pod(pod, key, taints)
            if wait is not None:
                soonest = wait if soonest is None else min(soonest, wait)
        return soonest

    async def _pod(self, pod: Obj, node: str, taints: list[Obj]) -> float | None:
        """Decide about one pod; seconds until it is due, if it is waiting."""
        key = object_key(pod)
        if not taints:
            self._cancel(key)
            return None
        ok, used = matching_tolerations(taints, pod_tolerations(pod))
        if not ok:
            self._since.pop(key, None)
            await self._evict(pod)
            return None
        wait = min_toleration([t for _, t in used])
        if wait == FOREVER:
            self._cancel(key)
            return None
        now = self.clock.monotonic()
        first = self._since.setdefault(key, (node, now))[1]
        start = first
        wall = self.clock.now()
        for taint, toleration in used:
            added = parse_time(taint.get("timeAdded"))
            if added is not None and isinstance(toleration.get("tolerationSeconds"), int):
                start = min(start, now - max(0.0, (wall - added).total_seconds()))
        left = start + wait - now
        if left > 1e-6:
            return left
        self._since.pop(key, None)
        await self._evict(pod)
        return None

    def _cancel(self, key: str) -> None:
        if self._since.pop(key, None) is not None:
            self.recorder.event(_ref(key), NORMAL, "TaintManagerEviction",
                                f"Cancelling deletion of Pod {key}")

    async def _evict(self, pod: Obj) -> None:
        """``addConditionAndDeletePod``: event, DisruptionTarget condition, delete."""
        meta = _meta(pod)
        key = object_key(pod)
        try:
            fresh = await self.client.get(R.PODS, meta["name"], meta["namespace"])
        except NotFound:
            return
        if _meta(fresh).get("uid") != meta.get("uid") or _meta(fresh).get("deletionTimestamp"):
            return
        self.recorder.event(_ref(key), NORMAL, "TaintManagerEviction",
                            f"Marking for deletion Pod {key}")
        marked = _with_disruption_target(fresh, self.ctx.now())
        if marked is not None:
            try:
                await self.client.update_status(R.PODS, marked)
            except NotFound:
                return
        try:
            await self.client.delete(R.PODS, meta["name"], meta["namespace"],
                                     preconditions={"uid": meta.get("uid", "")})
        except NotFound:
            return
        log.info("pod %s deleted: its node's NoExecute taints", key)


def _with_disruption_target(pod: Obj, now: str) -> Obj | None:
    """A copy of ``pod`` with ``DisruptionTarget`` True (DeletionByTaintManager), or None when
    it already says so (``UpdatePodCondition``)."""
    want = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint"}
    out = copy.deepcopy(pod)
    conditions: list[Obj] = out.setdefault("status", {}).setdefault("conditions", [])
    for c in conditions:
        if c.get("type") == want["type"]:
            if all(c.get(k) == v for k, v in want.items()):
                return None
            if c.get("status") != want["status"]:
                c["lastTransitionTime"] = now
            c.update(want)
            return out
    conditions.append({**want, "lastTransitionTime": now})
    return out
