"""The ReplicaSet controller: keep ``spec.replicas`` active pods matching the selector, owned by
the ReplicaSet (kubernetes ``pkg/controller/replicaset``).

One reconcile per ReplicaSet key:

1. **Claim** pods: the ones it controls (found through the owner-uid index) that still match
   the selector are kept, the ones that no longer match are released (their owner reference
   removed); orphans in the namespace that match are adopted (an owner reference added, guarded
   by the pod's uid and resourceVersion, after a fresh read shows the ReplicaSet is not being
   deleted).
2. **Manage** replicas, only when the ReplicaSet's expectations are satisfied (its last
   creations and deletions have all come back through the pod informer, so the cache is not
   behind its own writes): too few → create in slow-start batches (1, 2, 4, … pods; a failure
   stops the remaining batches); too many → delete the pods that matter least (unscheduled,
   then pending, not ready, recently ready, most restarted, newest).
3. **Status**: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready for
   ``minReadySeconds``), observedGeneration and the ReplicaFailure condition, written only when
   changed and guarded by resourceVersion.

A ReplicaSet whose selector is invalid or does not match its own template gets a Warning event
and no pods (never a hot loop: the key is not retried until the object changes).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from typing import Any

from control.api.clock import parse_time
from control.api.errors import APIError, Conflict, Forbidden, NotFound
from control.api.objects import meta as _meta
from control.api.objects import spec_selector
from control.api.selectors import LabelSelector
from control.client import NORMAL, WARNING, object_key
from control.client import resources as R

from .base import ControllerContext
from .owners import controller_of, owner_ref
from .podowners import PodOwnerController
from .podutil import (
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    pod_from_template,
    set_condition,
)

__all__ = ["BURST_REPLICAS", "ReplicaSetController", "pods_to_delete", "slow_start"]

log = logging.getLogger("ketch.controllers.replicaset")

Obj = dict[str, Any]
BURST_REPLICAS = 500  # at most this many creations or deletions per reconcile


def _rank(pod: Obj) -> tuple[Any, ...]:
    """Sort key: pods that matter least first (kubernetes ``controller.ActivePods``)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", ""), 0)
    ready = is_pod_ready(pod)
    since = None
    for c in status.get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "True":
            since = parse_time(c.get("lastTransitionTime"))
    restarts = max((int(cs.get("restartCount") or 0)
                    for cs in status.get("containerStatuses") or ()), default=0)
    created = parse_time(_meta(pod).get("creationTimestamp")) or dt.datetime.min.replace(
        tzinfo=dt.UTC)
    newest_ready = -(since.timestamp()) if since else 0.0
    return (bool(spec.get("nodeName")), phase_rank, ready, newest_ready, -restarts,
            -created.timestamp(), _meta(pod).get("name", ""))


def pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    """The ``count`` pods to delete first."""
    return sorted(pods, key=_rank)[:max(0, count)]


async def slow_start(count: int, create: Any, *, initial: int = 1) -> tuple[int, list[Exception]]:
    """Call ``create()`` ``count`` times in batches of 1, 2, 4, …; stop after the first
    batch with a failure.  (successes, errors); creations never attempted count as neither."""
    done, size, errors = 0, initial, []
    while done < count:
        batch = min(size, count - done)
        results = await asyncio.gather(*(create() for _ in range(batch)),
                                       return_exceptions=True)
        errs = [r for r in results if isinstance(r, Exception)]
        done += batch
        if errs:
            errors.extend(errs)
            return done - len(errs), errors
        size *= 2
    return done, errors


class ReplicaSetController(PodOwnerController):
    name = "replicaset"
    #: The kind this controller manages (the Deployment controller's ReplicaSets are these).
    resource = R.REPLICASETS

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.sets = ctx.informer(self.resource)
        self.pods = ctx.informer(R.PODS)
        self.sets.add_handler(on_add=self.enqueue, on_update=self._set_updated,
                              on_delete=self._set_deleted)
        self.pods.add_handler(on_add=self.pod_added, on_update=self.pod_updated,
                              on_delete=self.pod_deleted)

    def primary(self) -> Any:
        return self.sets

    # --- handlers ----------------------------------------------------------------------------

    def _set_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _set_deleted(self, obj: Obj) -> None:
        self.expectations.forget(object_key(obj))
        self.enqueue(obj)

    # --- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        rs = self.sets.cache.get(key)
        if rs is None:
            self.expectations.forget(key)
            return None
        selector = spec_selector(rs)
        problem = _selector_problem(rs, selector)
        if problem:
            self.recorder.event(rs, WARNING, "InvalidSelector", problem)
            return None
        assert selector is not None
        needs_sync = self.expectations.satisfied(key) and not _meta(rs).get("deletionTimestamp")
        pods = await self._claim(rs, selector)
        error: APIError | None = None
        if needs_sync:
            error = await self._manage(rs, key, pods)
        pods = [p for p in self._owned(rs) if is_pod_active(p)]
        await self._update_status(rs, pods, error)
        spec = rs.get("spec") or {}
        mrs = int(spec.get("minReadySeconds") or 0)
        if error is not None:
            raise error
        if mrs > 0 and not all(is_pod_available(p, mrs, self.clock.now()) for p in pods
                                if is_pod_ready(p)):
            return float(mrs)
        return None

    def _owned(self, rs: Obj) -> list[Obj]:
        uid = _meta(rs).get("uid")
        return [p for p in self.pods.cache.by_index("owner", str(uid))
                if (controller_of(p) or {}).get("uid") == uid]

    async def _claim(self, rs: Obj, selector: LabelSelector) -> list[Obj]:
        """The active pods this ReplicaSet controls after adoption and release."""
        claimed: list[Obj] = []
        for pod in self._owned(rs):
            if not is_pod_active(pod):
                continue
            if selector.matches(_meta(pod).get("labels") or {}):
                claimed.append(pod)
            elif not _meta(rs).get("deletionTimestamp"):
                await self._release(rs, pod)
        ns = _meta(rs).get("namespace", "")
        orphans = [p for p in self.pods.cache.list(ns, selector)
                   if controller_of(p) is None and is_pod_active(p)]
        if orphans and not _meta(rs).get("deletionTimestamp") and await self._can_adopt(rs):
            for pod in orphans:
                adopted = await self._adopt(rs, pod)
                if adopted is not None:
                    claimed.append(adopted)
        return claimed

    async def _can_adopt(self, rs: Obj) -> bool:
        """A fresh read (not the cache): never adopt for a ReplicaSet being deleted."""
        try:
            fresh = await self.client.get(self.resource, _meta(rs)["name"], _meta(rs)["namespace"])
        except NotFound:
            return False
        return _meta(fresh).get("uid") == _meta(rs).get("uid") and not _meta(fresh).get(
            "deletionTimestamp")

    async def _adopt(self, rs: Obj, pod: Obj) -> Obj | None:
        meta = _meta(pod)
        refs = [*(meta.get("ownerReferences") or []),
                owner_ref(rs, controller=True, block_owner_deletion=True)]
        patch = {"metadata": {"ownerReferences": refs, "uid": meta.get("uid"),
                              "resourceVersion": meta.get("resourceVersion")}}
        try:
            return await self.client.patch(R.PODS, meta["name"], patch, meta["namespace"])
        except (NotFound, Conflict):
            return None  # gone or changed: the next reconcile sees the new state

    async def _release(self, rs: Obj, pod: Obj) -> None:
        meta = _meta(pod)
        uid = _meta(rs).get("uid")
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != uid]
        patch = {"metadata": {"ownerReferences": refs or None, "uid": meta.get("uid"),
                              "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.client.patch(R.PODS, meta["name"], patch, meta["namespace"])
        except (NotFound, Conflict):
            pass

    async def _manage(self, rs: Obj, key: str, pods: list[Obj]) -> APIError | None:
        want = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        diff = len(pods) - want
        if diff < 0:
            return await self._create(rs, key, min(-diff, BURST_REPLICAS))
        if diff > 0:
            return await self._delete(rs, key, pods_to_delete(pods, min(diff,
                                                                        BURST_REPLICAS)))
        return None

    async def _create(self, rs: Obj, key: str, count: int) -> APIError | None:
        template = (rs.get("spec") or {}).get("template") or {}
        ns = _meta(rs).get("namespace", "")
        self.expectations.expect(key, adds=count)

        async def one() -> None:
            pod = pod_from_template(template, rs, generate_name=f"{_meta(rs)['name']}-")
            try:
                made = await self.client.create(R.PODS, pod, ns)
            except APIError:  # AlreadyExists too: a generated name collided; a retry picks another
                self.expectations.creation_failed(key)
                raise
            self.recorder.event(rs, NORMAL, "SuccessfulCreate",
                                f"Created pod: {_meta(made).get('name')}")

        created, errors = await slow_start(count, one)
        for _ in range(count - created - len(errors)):
            self.expectations.creation_failed(key)  # never attempted
        if errors:
            err = errors[0]
            if isinstance(err, Forbidden) and "being terminated" in str(err):
                return None  # the namespace is going away: nothing to do
            self.recorder.event(rs, WARNING, "FailedCreate", f"Error creating: {err}")
            return err if isinstance(err, APIError) else None
        return None

    async def _delete(self, rs: Obj, key: str, victims: list[Obj]) -> APIError | None:
        self.expectations.expect(key, deletes=[object_key(p) for p in victims])

        async def one(pod: Obj) -> None:
            meta = _meta(pod)
            try:
                await self.client.delete(R.PODS, meta["name"], meta["namespace"],
                                         preconditions={"uid": meta.get("uid", "")})
            except NotFound:
                self.expectations.deletion_observed(key, object_key(pod))
                return
            except APIError:
                self.expectations.deletion_failed(key, object_key(pod))
                raise
            self.recorder.event(rs, NORMAL, "SuccessfulDelete",
                                f"Deleted pod: {meta.get('name')}")

        results = await asyncio.gather(*(one(p) for p in victims), return_exceptions=True)
        errors = [r for r in results if isinstance(r, APIError)]
        if errors:
            self.recorder.event(rs, WARNING, "FailedDelete", f"Error deleting: {errors[0]}")
            return errors[0]
        return None

    # --- status --------------------------------------------------------------------------------

    def _status(self, rs: Obj, pods: list[Obj], error: APIError | None) -> Obj:
        spec = rs.get("spec") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        mrs = int(spec.get("minReadySeconds") or 0)
        now = self.clock.now()
        status = copy.deepcopy(rs.get("status") or {})
        status.update(
            replicas=len(pods),
            fullyLabeledReplicas=sum(1 for p in pods if template_labels.items() <= (
                _meta(p).get("labels") or {}).items()),
            readyReplicas=sum(1 for p in pods if is_pod_ready(p)),
            availableReplicas=sum(1 for p in pods if is_pod_available(p, mrs, now)),
            observedGeneration=_meta(rs).get("generation", 0))
        if error is not None:
            want = int(spec.get("replicas", 1) or 0)
            reason = "FailedCreate" if len(pods) < want else "FailedDelete"
            set_condition(status, "ReplicaFailure", "True", reason, str(error), self.ctx.now())
        elif status.get("conditions"):
            status["conditions"] = [c for c in status["conditions"]
                                    if c.get("type") != "ReplicaFailure"]
            if not status["conditions"]:
                del status["conditions"]
        return status

    async def _update_status(self, rs: Obj, pods: list[Obj], error: APIError | None) -> None:
        status = self._status(rs, pods, error)
        if status == (rs.get("status") or {}):
            return
        try:
            await self.client.update_status(self.resource, {**rs, "status": status})
        except Conflict:
            meta = _meta(rs)
            fresh = await self.client.get(self.resource, meta["name"], meta["namespace"])
            if _meta(fresh).get("uid") != meta.get("uid"):
                return
            status = self._status(fresh, pods, error)
            await self.client.update_status(self.resource, {**fresh, "status": status})


def _selector_problem(rs: Obj, selector: LabelSelector | None) -> str:
    if selector is None:
        return "invalid selector"
    if selector.empty:
        return "an empty selector would select every pod; refusing to manage pods"
    labels = (((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels") or {}
    if not selector.matches(labels):
        return "selector does not match template labels"
    return ""
