"""The node lifecycle controller: notices nodes whose agents went silent, says so in their
status and taints, and rate-limits what that does to their pods (kubernetes
``pkg/controller/nodelifecycle``).  Evicting the pods is the taint-eviction controller's
(:mod:`.tainteviction`), driven by the NoExecute taints written here.

Keys: ``#monitor`` — the health pass, every ``node_monitor_period`` (5 s); ``#taint`` — the
rate-limited NoExecute tainting pass; a node name — its NoSchedule condition taints
(TaintNodesByCondition) and beta OS/arch labels; ``namespace/name`` — a pod just bound to a
node that is not Ready, marked NotReady.

The health pass, per node (:mod:`.nodehealth`): a node whose Lease or Ready heartbeat this
controller has not seen change for ``node_monitor_grace`` (50 s; ``node_startup_grace``, 60 s,
until it first reports Ready) gets every agent condition set Unknown ("Kubelet stopped posting
node status."), its pods marked NotReady, a ``NodeNotReady`` event, and joins its zone's queue
for the ``unreachable:NoExecute`` taint (``not-ready:NoExecute`` when its agent says Ready
False); a node that is Ready again loses both at once.  Zones: Normal → taints at
``node_eviction_rate`` (0.1 node/s); PartialDisruption (more than 2 and at least
``unhealthy_zone_threshold`` of a zone's nodes not Ready) → 0.01/s, or none at all in a zone
of at most 50 nodes; when every zone is FullDisruption (no Ready node anywhere — most likely
the control plane is the one cut off) no node is tainted and the NoExecute taints are lifted.

Unlike kube-controller-manager, a node is queued for its NoExecute taint only while it lacks
it, and an existing taint is never re-stamped, so its ``timeAdded`` says when it really came
(the taint-eviction controller counts tolerationSeconds from it); and a new leader does not
lift the taints of nodes it sees for the first time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from control.api.errors import APIError, Conflict, NotFound
from control.api.objects import meta as _meta
from control.client import resources as R

from .base import Controller, ControllerContext
from .evictionqueue import TimedQueue
from .nodehealth import (
    FULL,
    INITIAL,
    NORMAL,
    NOT_READY_EXECUTE,
    PARTIAL,
    UNREACHABLE_EXECUTE,
    NodeHealth,
    compute_zone_state,
    excluded_from_disruption,
    has_taint,
    is_condition_taint,
    labels_to_reconcile,
    mark_unknown,
    no_schedule_taints,
    observe,
    ready_condition,
    zone_key,
)
from .nodetaints import (
    mark_pods_not_ready,
    node_event,
    patch_node,
    status_change_event,
    swap_taints,
)

__all__ = ["MONITOR", "TAINT", "NodeLifecycleController"]

log = logging.getLogger("ketch.controllers.nodelifecycle")

Obj = dict[str, Any]
MONITOR, TAINT = "#monitor", "#taint"
NODE_LEASE_NAMESPACE = "kube-node-lease"
SECONDARY_EVICTION_RATE = 0.01  # --secondary-node-eviction-rate
LARGE_CLUSTER_THRESHOLD = 50  # --large-cluster-size-threshold
PARALLEL = 8  # nodes checked at once (nodeUpdateWorkerSize)



def _same(a: Obj, b: Obj) -> bool:
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings
        self.nodes = ctx.informer(R.NODES)
        self.pods = ctx.informer(R.PODS)
        self.leases = ctx.informer(R.LEASES, namespace=NODE_LEASE_NAMESPACE)
        self.nodes.add_handler(on_add=self.enqueue, on_update=self._node_updated)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated)
        self.health: dict[str, NodeHealth] = {}
        self.known: dict[str, str] = {}  # name -> uid
        self.zone_states: dict[str, str] = {}
        self.tainters: dict[str, TimedQueue] = {}
        self.retry: set[str] = set()  # nodes whose pods still need marking NotReady

    def primary(self) -> Any:
        return self.nodes

    def start_term(self) -> None:
        """A new term knows nothing: every node gets a full grace period from now."""
        self.health.clear()
        self.known.clear()
        self.zone_states.clear()
        self.tainters.clear()
        self.retry.clear()
        super().start_term()
        self.enqueue(MONITOR)

    # --- handlers ----------------------------------------------------------------------------

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if old is not new:
            self.enqueue(new)

    def _pod_added(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.enqueue(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        node = (new.get("spec") or {}).get("nodeName")
        if node and node != (old.get("spec") or {}).get("nodeName"):
            self.enqueue(new)

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key == MONITOR:
            await self.monitor()
            if any(len(q) for q in self.tainters.values()):
                self.enqueue(TAINT)
            return self.settings.node_monitor_period
        if key == TAINT:
            return await self.taint_pass()
        if "/" in key:
            return await self._pod_bound(key)
        node = self.nodes.cache.get(key)
        if node is not None:
            node = await self._no_schedule_pass(node)
        if node is not None:
            await self._reconcile_labels(node)
        return None

    # --- the health pass ---------------------------------------------------------------------

    async def monitor(self) -> None:
        """``monitorNodeHealth``: one look at every node."""
        nodes = list(self.nodes.cache)
        names = {_meta(n).get("name", "") for n in nodes}
        for node in nodes:
            name = _meta(node).get("name", "")
            if name not in self.known:
                node_event(self.recorder, node, "RegisteredNode",
                           f"Registered Node {name} in Controller")
                self.known[name] = _meta(node).get("uid", "")
            self._zone_queue(zone_key(node))
        for name in [n for n in self.known if n not in names]:
            node_event(self.recorder, {"metadata": {"name": name, "uid": self.known[name]}},
                       "RemovingNode", f"Removing Node {name} from Controller")
            del self.known[name]
            self.health.pop(name, None)
            self.retry.discard(name)
        by_zone: dict[str, list[Obj | None]] = {}
        gate = asyncio.Semaphore(PARALLEL)

        async def one(node: Obj) -> None:
            async with gate:
                try:
                    await self._check(node, by_zone)
                except APIError as e:
                    log.info("node %s: health not updated: %s; no pods will be evicted",
                             _meta(node).get("name"), e)

        await asyncio.gather(*(one(n) for n in nodes))
        await self._handle_disruption(by_zone, nodes)

    async def _check(self, node: Obj, by_zone: dict[str, list[Obj | None]]) -> None:
        name = _meta(node).get("name", "")
        observed = ready_condition(node) or {"type": "Ready", "status": "Unknown"}
        fresh = await self._update_health(node)
        if fresh is None:
            return  # deleted meanwhile
        current = ready_condition(fresh)
        if not excluded_from_disruption(fresh):
            by_zone.setdefault(zone_key(fresh), []).append(current)
        if current is None:
            return
        # The current condition, not the one seen before this pass (kubernetes#120815): the
        # taint is queued in the pass that finds the node silent, not 5 s later.
        fresh = await self._taint_by_readiness(fresh, current.get("status", ""))
        went_down = current.get("status") != "True" and observed.get("status") == "True"
        if went_down:
            status_change_event(self.recorder, fresh, "NodeNotReady")
        if went_down or (name in self.retry and observed.get("status") != "True"):
            pods = self.pods.cache.by_index("node", name)
            if await mark_pods_not_ready(self.client, self.recorder, pods, name, self.ctx.now()):
                self.retry.add(name)
                return
        self.retry.discard(name)

    async def _update_health(self, node: Obj) -> Obj | None:
        """``tryUpdateNodeHealth``: record signs of life; past the grace period write every
        agent condition Unknown.  The node as it now is (None: it is gone)."""
        name = _meta(node).get("name", "")
        lease = self.leases.cache.get_by(NODE_LEASE_NAMESPACE, name)
        now = self.clock.monotonic()
        health = observe(self.health.get(name), node, lease, now)
        for _ in range(5):
            current = ready_condition(node)
            s = self.settings
            grace = s.node_startup_grace if current is None else s.node_monitor_grace
            if now <= health.probe + grace:
                break
            unknown = mark_unknown(node, self.ctx.now())
            if ready_condition(unknown) == current:
                break  # already Unknown
            try:
                node = await self.client.update_status(R.NODES, unknown)
            except Conflict:
                try:
                    node = await self.client.get(R.NODES, name)
                except NotFound:
                    return None
                health = observe(health, node, lease, now)
                continue
            except NotFound:
                return None
            log.info("node %s: no sign of life for %.0fs; Ready=Unknown", name,
                     now - health.probe)
            health = NodeHealth(health.probe, now, ready_condition(node), health.lease_renew)
            break
        self.health[name] = health
        return node

    async def _taint_by_readiness(self, node: Obj, status: str) -> Obj:
        """``processTaintBaseEviction``."""
        name, zone = _meta(node).get("name", ""), zone_key(node)
        queue = self._zone_queue(zone)
        if status in ("False", "Unknown"):
            want, other = ((NOT_READY_EXECUTE, UNREACHABLE_EXECUTE) if status == "False"
                           else (UNREACHABLE_EXECUTE, NOT_READY_EXECUTE))
            if has_taint(node, other):  # the other one is there: swap at once
                written = await swap_taints(self.client, node, [want], [other], self.ctx.now())
                queue.remove(name)
                return written or node
            if not has_taint(node, want):
                queue.add(name, _meta(node).get("uid", ""))
            else:
                queue.remove(name)
            return node
        return await self._mark_reachable(node)

    async def _mark_reachable(self, node: Obj) -> Obj:
        self._zone_queue(zone_key(node)).remove(_meta(node).get("name", ""))
        if not (has_taint(node, UNREACHABLE_EXECUTE) or has_taint(node, NOT_READY_EXECUTE)):
            return node
        written = await swap_taints(self.client, node, [],
                                    [UNREACHABLE_EXECUTE, NOT_READY_EXECUTE], self.ctx.now())
        return written or node

    def _zone_queue(self, zone: str) -> TimedQueue:
        q = self.tainters.get(zone)
        if q is None:
            q = self.tainters[zone] = TimedQueue(self.settings.node_eviction_rate, self.clock)
            self.zone_states[zone] = INITIAL
        return q

    # --- zones -------------------------------------------------------------------------------

    async def _handle_disruption(self, by_zone: dict[str, list[Obj | None]],
                                 nodes: list[Obj]) -> None:
        new: dict[str, str] = {}
        all_full_now = True
        for zone, conditions in by_zone.items():
            _, new[zone] = compute_zone_state(conditions, self.settings.unhealthy_zone_threshold)
            all_full_now = all_full_now and new[zone] == FULL
            self.zone_states.setdefault(zone, INITIAL)
            self._zone_queue(zone)
        for zone in [z for z in self.zone_states if z not in by_zone]:
            del self.zone_states[zone]
        all_were_full = all(s == FULL for s in self.zone_states.values())
        if all_full_now and all_were_full:
            return
        if all_full_now:
            log.warning("no node is Ready in any zone: entering master disruption mode, no "
                        "NoExecute taints")
            for node in nodes:
                try:
                    await self._mark_reachable(node)
                except APIError as e:
                    log.info("node %s: taints not lifted: %s", _meta(node).get("name"), e)
            for zone in self.zone_states:
                self.tainters[zone].swap_limiter(0)
                self.zone_states[zone] = FULL
            return
        if all_were_full:
            log.info("some nodes are Ready again: leaving master disruption mode")
            now = self.clock.monotonic()
            self.health = {k: dataclasses.replace(h, probe=now, ready_transition=now)
                           for k, h in self.health.items()}
            for zone in self.zone_states:
                self._set_limiter(zone, len(by_zone[zone]), new[zone])
            return
        for zone, state in self.zone_states.items():
            if state != new[zone]:
                log.info("zone %r is now %s", zone, new[zone])
                self._set_limiter(zone, len(by_zone[zone]), new[zone])

    def _set_limiter(self, zone: str, size: int, state: str) -> None:
        rate = self.settings.node_eviction_rate
        if state == PARTIAL:
            rate = SECONDARY_EVICTION_RATE if size > LARGE_CLUSTER_THRESHOLD else 0.0
        if state in (NORMAL, PARTIAL, FULL):
            self.tainters[zone].swap_limiter(rate)
        self.zone_states[zone] = state

    # --- the tainting pass -------------------------------------------------------------------

    async def taint_pass(self) -> float | None:
        """``doNoExecuteTaintingPass``: taint the queued nodes the zones' limiters allow;
        seconds until the next may be tainted."""
        soonest: float | None = None
        for queue in list(self.tainters.values()):
            while (item := queue.take()) is not None:
                name = item[0]
                node = self.nodes.cache.get(name)
                if node is None:
                    queue.done(name)
                    continue
                # What this controller last saw or wrote: the cache may not show yet the
                # Unknown status the health pass has just written.
                health = self.health.get(name)
                ready = health.ready if health is not None and health.ready is not None \
                    else ready_condition(node)
                if ready is None:
                    queue.retry(name, 0.05)
                    continue
                if ready.get("status") not in ("False", "Unknown"):
                    queue.done(name)  # Ready again: no taint
                    continue
                want, other = ((NOT_READY_EXECUTE, UNREACHABLE_EXECUTE)
                               if ready.get("status") == "False"
                               else (UNREACHABLE_EXECUTE, NOT_READY_EXECUTE))
                try:
                    await swap_taints(self.client, node, [want], [other], self.ctx.now())
                except APIError as e:
                    log.info("node %s: NoExecute taint not added: %s", name, e)
                    queue.retry(name, 0)
                    continue
                queue.done(name)
            due = queue.next_due()
            if due is not None:
                soonest = due if soonest is None else min(soonest, due)
        return None if soonest is None else max(soonest, 0.01)

    # --- per node: NoSchedule taints and labels; per pod: bound to a NotReady node -----------

    async def _no_schedule_pass(self, node: Obj) -> Obj | None:
        """``doNoScheduleTaintingPass``: condition taints (and unschedulable) as the node's
        conditions and ``spec.unschedulable`` say."""
        want = no_schedule_taints(node)
        have = [t for t in (node.get("spec") or {}).get("taints") or ()
                if isinstance(t, dict) and is_condition_taint(t)]
        add = [t for t in want if not any(_same(t, h) for h in have)]
        remove = [h for h in have if not any(_same(h, t) for t in want)]
        if not add and not remove:
            return node
        return await swap_taints(self.client, node, add, remove, self.ctx.now())

    async def _reconcile_labels(self, node: Obj) -> None:
        def change(n: Obj) -> Obj | None:
            labels = labels_to_reconcile(n)
            return {"metadata": {"labels": labels}} if labels else None

        await patch_node(self.client, node, change)

    async def _pod_bound(self, key: str) -> float | None:
        """``processPod``: a pod bound to a node this controller knows is not Ready."""
        pod = self.pods.cache.get(key)
        if pod is None:
            return None
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        health = self.health.get(node_name)
        if health is None or health.ready is None or self.nodes.cache.get(node_name) is None:
            return None
        if health.ready.get("status") != "True":
            errors = await mark_pods_not_ready(self.client, self.recorder, [pod], node_name,
                                               self.ctx.now())
            if errors:
                raise errors[0]
        return None
