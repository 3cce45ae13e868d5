"""The DaemonSet controller: one pod per eligible node (kubernetes ``pkg/controller/daemon``).

One reconcile per DaemonSet key:

1. **History**: claim the DaemonSet's ControllerRevisions, find or create the one of its
   current template (:mod:`.daemonset_history`); its hash labels new pods.
2. **Claim** pods (adopt orphans matching the selector, release what stopped matching) and
   group them by the node they target (``spec.nodeName``, else their node-affinity term).
3. **Manage**, when the last sync's creations and deletions have come back through the pod
   informer: create a pod for every node that should run one and has none (node selector,
   node affinity, taints against the template's tolerations plus the DaemonSet defaults:
   :mod:`.daemonset_nodes`), delete pods on nodes that should not run one, failed pods (under
   a back-off), extra pods, and unscheduled pods whose node is gone.  Pods are created
   unbound with ``metadata.name In [node]`` affinity, for the scheduler to bind.
4. **Roll**: with ``RollingUpdate``, replace old pods within maxUnavailable/maxSurge
   (:mod:`.daemonset_rollout`); ``OnDelete`` waits for the user to delete them.
5. **Prune** revisions beyond ``revisionHistoryLimit`` and write the status (counts,
   observedGeneration), guarded by resourceVersion.

A DaemonSet being deleted is left alone (its revisions may already be gone).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from control.api.errors import APIError, Conflict, Forbidden, NotFound
from control.api.objects import meta as _meta
from control.api.objects import spec_selector
from control.api.selectors import LabelSelector
from control.client import NORMAL, WARNING, object_key
from control.client import resources as R

from .base import ControllerContext
from .daemonset_history import DaemonSetHistory
from .daemonset_nodes import (
    daemon_pod_template,
    node_should_run,
    node_update_ignorable,
    replace_node_affinity,
    target_node_name,
)
from .daemonset_rollout import (
    DaemonStatus,
    FailedPodBackoff,
    Plan,
    daemon_status,
    node_plan,
    rolling_update_plan,
)
from .history import REVISION_LABEL
from .owners import controller_of
from .podowners import PodOwnerController
from .podutil import is_terminal, pod_from_template
from .refmanager import RefManager
from .replicaset import BURST_REPLICAS, slow_start

__all__ = ["DaemonSetController"]

log = logging.getLogger("ketch.controllers.daemonset")

Obj = dict[str, Any]


class DaemonSetController(PodOwnerController):
    name = "daemonset"
    resource = R.DAEMONSETS

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.sets = ctx.informer(R.DAEMONSETS)
        self.pods = ctx.informer(R.PODS)
        self.nodes = ctx.informer(R.NODES)
        self.revisions = ctx.informer(R.CONTROLLERREVISIONS)
        self.history = DaemonSetHistory(self.client)
        self.backoff = FailedPodBackoff()
        self.sets.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                              on_delete=self._set_deleted)
        self.pods.add_handler(on_add=self.pod_added, on_update=self.pod_updated,
                              on_delete=self.pod_deleted)
        self.nodes.add_handler(on_add=self._node_added, on_update=self._node_updated,
                               on_delete=self._node_deleted)
        self.revisions.add_handler(on_add=self._revision_changed,
                                   on_update=lambda _o, n: self._revision_changed(n),
                                   on_delete=self._revision_changed)

    def primary(self) -> Any:
        return self.sets

    # --- handlers ------------------------------------------------------------------------------

    def _set_deleted(self, ds: Obj) -> None:
        self.expectations.forget(object_key(ds))
        self.enqueue(ds)

    def _node_added(self, node: Obj) -> None:
        for ds in self.sets.cache.items():
            if node_should_run(node, ds)[0]:
                self.enqueue(ds)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if old is new or node_update_ignorable(old, new):
            return
        for ds in self.sets.cache.items():
            if node_should_run(old, ds) != node_should_run(new, ds):
                self.enqueue(ds)

    def _node_deleted(self, node: Obj) -> None:
        for ds in self.sets.cache.items():
            if node_should_run(node, ds)[1]:
                self.enqueue(ds)

    def _revision_changed(self, rev: Obj) -> None:
        key = self.owner_key(rev)
        if key is not None:
            self.enqueue(key)
        elif controller_of(rev) is None:
            for k in self.matching_owners(rev):
                self.enqueue(k)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        ds = self.sets.cache.get(key)
        if ds is None:
            self.expectations.forget(key)
            return None
        selector = spec_selector(ds)
        if selector is None:
            self.recorder.event(ds, WARNING, "InvalidSelector", "invalid selector")
            return None
        if selector.empty:
            self.recorder.event(ds, WARNING, "SelectingAll", "This daemon set is selecting "
                                "all pods. A non-empty selector is required.")
            return None
        if _meta(ds).get("deletionTimestamp"):
            return None
        nodes = self.nodes.cache.items()
        revisions = await RefManager(self.client, R.CONTROLLERREVISIONS, ds, selector,
                                     owner_res=R.DAEMONSETS).claim(self._candidates(
                                         self.revisions.cache, ds, selector))
        pods = await self._claim_pods(ds, selector)
        cur, old = await self.history.construct(ds, revisions, pods)
        hash_ = (_meta(cur).get("labels") or {}).get(REVISION_LABEL, "")
        if not self.expectations.satisfied(key):
            await self._update_status(ds, nodes, hash_, observed=False)
            return None
        plan = Plan()
        error: APIError | None = None
        try:
            plan = await self._manage(ds, key, nodes, _live(pods), hash_)
            if self.expectations.satisfied(key) and _strategy(ds) == "RollingUpdate":
                await self._roll(ds, key, nodes, hash_)
            await self.history.cleanup(ds, old, self._owned(ds))
        except APIError as e:
            error = e
        status = await self._update_status(ds, nodes, hash_, observed=True)
        if error is not None:
            raise error
        mrs = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if mrs > 0 and status is not None and status.ready != status.available:
            plan.later(float(mrs))
        return plan.again

    async def _roll(self, ds: Obj, key: str, nodes: list[Obj], hash_: str) -> None:
        try:
            plan = rolling_update_plan(ds, nodes, _by_node(self._claimed(ds)), hash_,
                                       self.clock.now())
        except ValueError as e:  # a maxSurge/maxUnavailable the apiserver should have refused
            self.recorder.event(ds, WARNING, "InvalidUpdateStrategy", f"rolling update: {e}")
            return
        await self._sync_nodes(ds, key, plan.delete, plan.create, hash_)

    def _candidates(self, cache: Any, ds: Obj, selector: LabelSelector) -> list[Obj]:
        """What may be claimed: objects controlled by the DaemonSet, and orphans matching."""
        uid = str(_meta(ds).get("uid"))
        owned = [o for o in cache.by_index("owner", uid)
                 if (controller_of(o) or {}).get("uid") == uid]
        orphans = [o for o in cache.list(_meta(ds).get("namespace", ""), selector)
                   if controller_of(o) is None]
        return owned + orphans

    def _owned(self, ds: Obj) -> list[Obj]:
        uid = str(_meta(ds).get("uid"))
        return [p for p in self.pods.cache.by_index("owner", uid)
                if (controller_of(p) or {}).get("uid") == uid]

    def _claimed(self, ds: Obj) -> list[Obj]:
        """The pods the DaemonSet controls and selects, as the cache has them now, without
        finished pods being deleted (``getNodesToDaemonPods`` without deleted terminal)."""
        selector = spec_selector(ds)
        return _live([p for p in self._owned(ds) if selector is not None
                      and selector.matches(_meta(p).get("labels") or {})])

    async def _claim_pods(self, ds: Obj, selector: LabelSelector) -> list[Obj]:
        return await RefManager(self.client, R.PODS, ds, selector, owner_res=R.DAEMONSETS
                                ).claim(self._candidates(self.pods.cache, ds, selector))

    async def _manage(self, ds: Obj, key: str, nodes: list[Obj], pods: list[Obj],
                      hash_: str) -> Plan:
        node_pods = _by_node(pods)
        plan = Plan()
        now = self.clock.now()
        uid, gen = _meta(ds).get("uid"), (ds.get("status") or {}).get("observedGeneration", 0)

        def failed_delay(node_name: str) -> float:
            bkey = f"{uid}/{gen}/{node_name}"
            wait = self.backoff.in_backoff(bkey, self.clock.monotonic())
            if wait <= 0:
                self.backoff.next(bkey, self.clock.monotonic())
            return wait

        for node in nodes:
            node_plan(plan, ds, node, node_pods.get(_meta(node).get("name", "")), hash_, now,
                      failed_delay)
        known = {_meta(n).get("name") for n in nodes}
        for node_name, on_node in node_pods.items():
            if node_name not in known:  # unscheduled pods whose node is gone
                plan.delete.extend(_meta(p)["name"] for p in on_node
                                   if not (p.get("spec") or {}).get("nodeName"))
        for type_, reason, message in plan.events:
            self.recorder.event(ds, type_, reason, message)
        await self._sync_nodes(ds, key, plan.delete, plan.create, hash_)
        return plan

    async def _sync_nodes(self, ds: Obj, key: str, delete: list[str], create: list[str],
                          hash_: str) -> None:
        """Delete the named pods and create one pod per named node, at most BURST_REPLICAS
        of each, with expectations set first; raises the first error."""
        create, delete = create[:BURST_REPLICAS], delete[:BURST_REPLICAS]
        if not create and not delete:
            return
        ns = _meta(ds)["namespace"]
        victims = [p for n in delete if (p := self.pods.cache.get_by(ns, n)) is not None]
        self.expectations.expect(key, adds=len(create),
                                 deletes=[object_key(p) for p in victims])
        template = daemon_pod_template(ds, hash_)
        queue = list(create)

        async def one() -> None:
            node_name = queue.pop(0)
            t = copy.deepcopy(template)
            t["spec"]["affinity"] = replace_node_affinity(t["spec"].get("affinity"), node_name)
            pod = pod_from_template(t, ds, generate_name=f"{_meta(ds)['name']}-")
            try:
                made = await self.client.create(R.PODS, pod, ns)
            except APIError as e:
                self.expectations.creation_failed(key)
                if not (isinstance(e, Forbidden) and "being terminated" in str(e)):
                    self.recorder.event(ds, WARNING, "FailedCreate", f"Error creating: {e}")
                    raise
                return
            self.recorder.event(ds, NORMAL, "SuccessfulCreate",
                                f"Created pod: {_meta(made).get('name')}")

        created, errors = await slow_start(len(create), one)
        for _ in range(len(create) - created - len(errors)):
            self.expectations.creation_failed(key)
        results = await asyncio.gather(*(self._delete(ds, key, p) for p in victims),
                                       return_exceptions=True)
        errors += [r for r in results if isinstance(r, Exception)]
        if errors:
            err = errors[0]
            if isinstance(err, APIError):
                raise err
            raise RuntimeError(f"daemonset {key}: {err}") from err

    async def _delete(self, ds: Obj, key: str, pod: Obj) -> None:
        meta = _meta(pod)
        try:
            await self.client.delete(R.PODS, meta["name"], meta["namespace"],
                                     preconditions={"uid": meta.get("uid", "")})
        except NotFound:
            self.expectations.deletion_observed(key, object_key(pod))
            return
        except APIError as e:
            self.expectations.deletion_failed(key, object_key(pod))
            self.recorder.event(ds, WARNING, "FailedDelete", f"Error deleting: {e}")
            raise
        self.recorder.event(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    # --- status ----------------------------------------------------------------------------------

    async def _update_status(self, ds: Obj, nodes: list[Obj], hash_: str, *,
                             observed: bool) -> DaemonStatus | None:
        counts = daemon_status(ds, nodes, _by_node(self._claimed(ds)), hash_,
                               self.clock.now())
        fresh = ds
        for attempt in range(2):
            status = _status_of(fresh, counts, observed)
            if status == (fresh.get("status") or {}):
                return counts
            try:
                await self.client.update_status(R.DAEMONSETS, {**fresh, "status": status})
                return counts
            except Conflict:
                if attempt:
                    raise
                meta = _meta(ds)
                fresh = await self.client.get(R.DAEMONSETS, meta["name"], meta["namespace"])
                if _meta(fresh).get("uid") != meta.get("uid"):
                    return counts
        return counts


def _status_of(ds: Obj, c: DaemonStatus, observed: bool) -> Obj:
    status = copy.deepcopy(ds.get("status") or {})
    status.update(desiredNumberScheduled=c.desired, currentNumberScheduled=c.current,
                  numberMisscheduled=c.misscheduled, numberReady=c.ready,
                  updatedNumberScheduled=c.updated, numberAvailable=c.available,
                  numberUnavailable=c.unavailable)
    if observed:
        status["observedGeneration"] = _meta(ds).get("generation", 0)
    else:
        status.setdefault("observedGeneration", 0)
    return status


def _strategy(ds: Obj) -> str:
    return str(((ds.get("spec") or {}).get("updateStrategy") or {}).get("type")
               or "RollingUpdate")


def _live(pods: list[Obj]) -> list[Obj]:
    return [p for p in pods if not (is_terminal(p) and _meta(p).get("deletionTimestamp"))]


def _by_node(pods: list[Obj]) -> dict[str, list[Obj]]:
    """Pods grouped by the node they target (pods targeting no node are left out)."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        node = target_node_name(pod)
        if node is not None:
            out.setdefault(node, []).append(pod)
    return out
