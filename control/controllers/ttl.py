"""ttl: every Node carries ``node.alpha.kubernetes.io/ttl``, how long its agent may keep the
ConfigMaps and Secrets it read before it reads them again — longer as the cluster grows
(kubernetes ``pkg/controller/ttl/ttl_controller.go``).

Node agents read a pod's ConfigMaps and Secrets when it starts and at each resync.  In a small
cluster a fresh read is cheap; with a thousand nodes starting thirty pods each, every
``kube-root-ca.crt`` read is one more GET on the apiserver.  The controller counts the nodes
and picks the TTL from Kubernetes' table, whose overlapping ranges give hysteresis: the step
goes up only past a range's top and down only below its bottom, so a cluster hovering at a
boundary does not rewrite every Node back and forth.  A step change re-queues every Node;
otherwise a Node is written only when its annotation differs (one merge patch, once).

The same patch carries ``node.ketch.io/lease-renew-seconds``, Nomad's cap on heartbeats
(``max_heartbeats_per_second``, 50) applied to Kubernetes' Leases: at most
:data:`MAX_HEARTBEATS_PER_SECOND` renewals a second for the largest cluster of the current
step — 20 s between renewals at 450–1,000 nodes, not the kubelet's 10 s, so a thousand
nodes write 50 Leases a second, not 100.  Node agents renew no more often than that, and
never less often than twice per Lease (the node lifecycle controller's grace period is
unchanged, so failure detection is not slower); below 500 nodes it changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from control.api.objects import (
    NODE_LEASE_RENEW_ANNOTATION,
    NODE_TTL_ANNOTATION,
    node_lease_renew_seconds,
    node_ttl_seconds,
)
from control.client import Informer
from control.client import resources as R

from .base import Controller, ControllerContext

__all__ = ["BOUNDARIES", "MAX_HEARTBEATS_PER_SECOND", "TTLController", "lease_renew_for",
           "step_for"]

log = logging.getLogger("ketch.controllers.ttl")

Obj = dict[str, Any]


class Boundary(NamedTuple):
    size_min: int
    size_max: int
    ttl_seconds: int


#: Kubernetes' table: (nodes from, nodes to, TTL).  The ranges overlap on purpose.
BOUNDARIES = (Boundary(0, 100, 0), Boundary(90, 500, 15), Boundary(450, 1000, 30),
              Boundary(900, 2000, 60), Boundary(1800, 2**31 - 1, 300))


#: Nomad's default cap on heartbeats per second, cluster-wide.
MAX_HEARTBEATS_PER_SECOND = 50
_RENEW_CAP = 300


def lease_renew_for(step: int) -> int:
    """The least Lease renewal interval for a step: its largest cluster at the cap."""
    return min(_RENEW_CAP, -(-BOUNDARIES[step].size_max // MAX_HEARTBEATS_PER_SECOND))


def step_for(count: int, step: int) -> int:
    """The step for ``count`` nodes, starting from ``step`` (the hysteresis walk)."""
    while step + 1 < len(BOUNDARIES) and count > BOUNDARIES[step].size_max:
        step += 1
    while step > 0 and count < BOUNDARIES[step].size_min:
        step -= 1
    return step


class TTLController(Controller):
    name = "ttl"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.nodes = ctx.informer(R.NODES)
        self._step = 0
        self.nodes.add_handler(on_add=self._added, on_update=self._updated,
                               on_delete=self._deleted)

    def primary(self) -> Informer:
        return self.nodes

    @property
    def ttl_seconds(self) -> int:
        return BOUNDARIES[self._step].ttl_seconds

    def _recount(self) -> bool:
        """Walk the step for the cache's node count (the cache already holds the change);
        True when it moved, and then every Node is queued."""
        count = len(self.nodes.cache)
        step = step_for(count, self._step)
        if step == self._step:
            return False
        log.info("%d nodes: node TTL %d s -> %d s", count,
                 BOUNDARIES[self._step].ttl_seconds, BOUNDARIES[step].ttl_seconds)
        self._step = step
        for node in self.nodes.cache.items():
            self.enqueue(node)
        return True

    def _added(self, node: Obj) -> None:
        if not self._recount():
            self.enqueue(node)

    def _current(self, node: Obj) -> bool:
        return (node_ttl_seconds(node) == self.ttl_seconds
                and node_lease_renew_seconds(node) == lease_renew_for(self._step))

    def _updated(self, _old: Obj, new: Obj) -> None:
        if not self._current(new):
            self.enqueue(new)

    def _deleted(self, _node: Obj) -> None:
        self._recount()

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.cache.get(key)
        if node is None or self._current(node):
            return None
        patch = {"metadata": {"annotations": {
            NODE_TTL_ANNOTATION: str(self.ttl_seconds),
            NODE_LEASE_RENEW_ANNOTATION: str(lease_renew_for(self._step))}}}
        await self.client.patch(R.NODES, key, patch)
        return None

