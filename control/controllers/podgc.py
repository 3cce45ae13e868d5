"""PodGC: deletes the pods nothing else will (kubernetes ``pkg/controller/podgc``).

Every :attr:`PodGCController.period` seconds (kube's ``gcCheckPeriod``, 20 s) it looks at all
pods and force-deletes (grace period 0, guarded by the pod's uid):

* **terminated pods beyond the threshold** — when more than
  ``--terminated-pod-gc-threshold`` (12,500; 0 disables) pods are Succeeded or Failed, the
  surplus goes, evicted pods first, then oldest first;
* **terminating pods on out-of-service nodes** — a pod being deleted on a node that is not
  Ready and carries the ``node.kubernetes.io/out-of-service`` taint (non-graceful node
  shutdown);
* **orphaned pods** — bound to a node that no longer exists: a node name missing from the
  cache is quarantined for 40 s, then confirmed absent by a live read, so a node the cache
  has not seen yet never loses its pods; such pods get the ``DisruptionTarget`` condition
  (reason ``DeletionByPodGC``) first;
* **unscheduled terminating pods** — being deleted but never bound to a node.

A pod not yet Succeeded or Failed is marked Failed before it is deleted (no node agent will
ever report it otherwise).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from control.api.errors import Conflict, NotFound
from control.api.objects import meta as _meta
from control.api.taints import node_taints
from control.client import resources as R

from .base import Controller, ControllerContext
from .podutil import condition, is_terminal

__all__ = ["OUT_OF_SERVICE_TAINT", "PodGCController", "gc_order"]

log = logging.getLogger("ketch.controllers.podgc")

Obj = dict[str, Any]
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"
_KEY = "gc"



def _evicted(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == "Evicted"


def gc_order(pods: list[Obj]) -> list[Obj]:
    """Terminated pods in the order they are collected: evicted first (so pods finished by
    Jobs are kept longest), then by creation time, then name (``byEvictionAndCreation``)."""
    return sorted(pods, key=lambda p: (not _evicted(p), _meta(p).get("creationTimestamp") or "",
                                       _meta(p).get("name") or ""))


def _node_ready(node: Obj) -> bool:
    c = condition(node, "Ready")
    return c is not None and c.get("status") == "True"


class PodGCController(Controller):
    name = "podgc"
    #: kube's gcCheckPeriod.
    period = 20.0
    #: How long a node name must stay unknown before its pods count as orphaned.
    quarantine = 40.0

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.workers = 1
        self.threshold = ctx.settings.terminated_pod_gc_threshold
        self.pods = ctx.informer(R.PODS)
        self.nodes = ctx.informer(R.NODES)
        self._missing: dict[str, float] = {}  # node name → when first missed (monotonic)

    def start_term(self) -> None:
        super().start_term()
        self.enqueue(_KEY)

    async def reconcile(self, key: str) -> float | None:
        pods = list(self.pods.cache)
        if self.threshold > 0:
            await self._gc_terminated(pods)
        await self._gc_terminating(pods)
        await self._gc_orphaned(pods)
        await self._gc_unscheduled_terminating(pods)
        return self.period

    async def _gc_terminated(self, pods: list[Obj]) -> None:
        terminated = [p for p in pods if is_terminal(p)]
        surplus = len(terminated) - self.threshold
        if surplus <= 0:
            return
        log.info("garbage collecting %d terminated pods", surplus)
        await self._delete_all(gc_order(terminated)[:surplus], None)

    async def _gc_terminating(self, pods: list[Obj]) -> None:
        doomed = []
        for pod in pods:
            if is_terminal(pod) or not _meta(pod).get("deletionTimestamp"):
                continue
            node = self.nodes.cache.get(str((pod.get("spec") or {}).get("nodeName") or ""))
            if node is None or _node_ready(node):
                continue
            if any(t.get("key") == OUT_OF_SERVICE_TAINT for t in node_taints(node)):
                doomed.append(pod)
        if doomed:
            log.info("garbage collecting %d terminating pods on out-of-service nodes",
                     len(doomed))
            await self._delete_all(doomed, None)

    async def _gc_orphaned(self, pods: list[Obj]) -> None:
        now = self.clock.monotonic()
        wanted = {str((p.get("spec") or {}).get("nodeName") or "") for p in pods} - {""}
        unknown = {n for n in wanted if self.nodes.cache.get(n) is None}
        self._missing = {n: self._missing.get(n, now) for n in unknown}
        deleted = set()
        for name, since in list(self._missing.items()):
            if now - since < self.quarantine:
                continue
            try:
                await self.client.get(R.NODES, name)
            except NotFound:
                deleted.add(name)
                continue
            del self._missing[name]  # it exists: the cache was behind
        orphans = [p for p in pods if (p.get("spec") or {}).get("nodeName") in deleted]
        if orphans:
            log.info("deleting %d pods orphaned by deleted nodes %s", len(orphans),
                     ", ".join(sorted(deleted)))
            await self._delete_all(orphans, {
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists", "lastTransitionTime": self.ctx.now()})

    async def _gc_unscheduled_terminating(self, pods: list[Obj]) -> None:
        doomed = [p for p in pods if _meta(p).get("deletionTimestamp")
                  and not (p.get("spec") or {}).get("nodeName")]
        if doomed:
            await self._delete_all(doomed, None)

    async def _delete_all(self, pods: list[Obj], cond: Obj | None) -> None:
        results = await asyncio.gather(*(self._fail_and_delete(p, cond) for p in pods),
                                       return_exceptions=True)
        for pod, r in zip(pods, results, strict=True):
            if isinstance(r, Exception):
                log.warning("podgc: deleting %s/%s failed: %s", _meta(pod).get("namespace"),
                            _meta(pod).get("name"), r)

    async def _fail_and_delete(self, pod: Obj, cond: Obj | None) -> None:
        """Mark ``pod`` Failed (with ``cond``) unless it already finished, then delete it with
        no grace period (kube's markFailedAndDeletePodWithCondition)."""
        meta = _meta(pod)
        name, ns = meta["name"], meta.get("namespace", "")
        if not is_terminal(pod):
            status: Obj = {"phase": "Failed"}
            if cond is not None:
                status["conditions"] = [cond]
            patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")},
                     "status": status}
            try:
                await self.client.patch(R.PODS, name, patch, ns, patch_type="strategic",
                                        subresource="status")
            except NotFound:
                return
            except Conflict:
                return  # it changed: the next round looks again
        try:
            await self.client.delete(R.PODS, name, ns, grace_period_seconds=0,
                                     preconditions={"uid": meta.get("uid", "")})
        except NotFound:
            return
        log.info("forced deletion of pod %s/%s", ns, name)
