"""The node's heartbeat: its Lease ``kube-node-lease/NAME`` renewed every 10 s (the kubelet's
``nodelease`` controller).

The node lifecycle controller judges the node by when it last saw this Lease change, so the
renewal runs on its own task and, in the agent, on its own API client (its own connections):
no pod work, no status write and no event can delay it — a Kubernetes node flaps NotReady
when its heartbeat waits behind the runtime.

Each renewal is a PUT of the last Lease it got back (guarded by its resourceVersion) with
``renewTime`` now; a 409 or 404 makes it read (or create) the Lease and try again at once.
Failures are retried after 200 ms, doubling up to 7 s — never slower than the renewal itself,
so a Lease renewed every 2.5 s retries at least every 2.5 s — then the rhythm resumes.  The Lease
names the Node as its owner once the Node's UID is known, so deleting the Node deletes it.

``renew_floor`` (the Node's ``node.ketch.io/lease-renew-seconds``, which the controller-
manager raises as the cluster grows: Nomad's cap on heartbeats per second) stretches the
interval, never past half the Lease's duration: a thousand nodes renew every 20 s.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from control.api.clock import Clock, format_time
from control.api.errors import APIError, Conflict, NotFound
from control.client import ApiClient
from control.client import resources as R

__all__ = ["LEASE_NAMESPACE", "LeaseHeartbeat"]

log = logging.getLogger("ketch.node.heartbeat")

LEASE_NAMESPACE = "kube-node-lease"


class LeaseHeartbeat:
    """``node_uid`` returns the Node's UID ("" while unknown).  :attr:`renewed_at` is the
    monotonic time of the last successful renewal (None before the first)."""

    def __init__(self, client: ApiClient, name: str, *, clock: Clock, duration: int = 40,
                 renew_seconds: float = 10.0, retry_initial: float = 0.2,
                 retry_cap: float = 7.0, node_uid: Callable[[], str] = lambda: "",
                 renew_floor: Callable[[], float | None] = lambda: None) -> None:
        self.client = client
        self.name = name
        self.clock = clock
        self.duration = duration
        self.renew_seconds = renew_seconds
        # a failing heartbeat must not wait longer than a healthy one: with a short Lease (the
        # chaos cluster's 10 s renewed every 2.5 s) the kubelet's 7-s cap let an apiserver
        # outage of 6 s turn into 15 s without a renewal, and the node went Unknown
        self.retry_initial, self.retry_cap = retry_initial, min(retry_cap, renew_seconds)
        self.node_uid = node_uid
        self.renew_floor = renew_floor
        self.renewed_at: float | None = None
        self.renewals = 0
        self.failures = 0
        self._lease: dict[str, Any] | None = None

    async def run(self) -> None:
        """Renew until cancelled; never raises for the apiserver's failures."""
        delay = self.retry_initial
        while True:
            if await self.renew():
                delay = self.retry_initial
                await self.clock.sleep(self.interval())
            else:
                await self.clock.sleep(delay)
                delay = min(delay * 2, self.retry_cap)

    def interval(self) -> float:
        """Seconds to the next renewal: the configured interval, stretched to the cluster's
        floor, at most half the Lease."""
        return min(max(self.renew_seconds, self.renew_floor() or 0.0),
                   max(self.renew_seconds, self.duration / 2))

    async def renew(self) -> bool:
        """One renewal (with one immediate retry after a conflict); whether it succeeded."""
        for _ in range(2):
            try:
                self._lease = await self._write()
            except (Conflict, NotFound):
                self._lease = None
                continue
            except APIError as e:
                self.failures += 1
                log.warning("node %s: renewing the lease failed: %s", self.name, e)
                return False
            self.renewals += 1
            self.renewed_at = self.clock.monotonic()
            return True
        self.failures += 1
        return False

    async def _write(self) -> dict[str, Any]:
        lease = self._lease
        if lease is None:
            try:
                lease = await self.client.get(R.LEASES, self.name, LEASE_NAMESPACE)
            except NotFound:
                return await self.client.create(R.LEASES, self._fresh(), LEASE_NAMESPACE)
        new = copy.deepcopy(lease)
        new["spec"] = {**(new.get("spec") or {}), "holderIdentity": self.name,
                       "leaseDurationSeconds": self.duration,
                       "renewTime": format_time(self.clock.now(), micro=True)}
        self._own(new)
        return await self.client.update(R.LEASES, new)

    def _fresh(self) -> dict[str, Any]:
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
                 "spec": {"holderIdentity": self.name, "leaseDurationSeconds": self.duration,
                          "renewTime": format_time(self.clock.now(), micro=True)}}
        self._own(lease)
        return lease

    def _own(self, lease: dict[str, Any]) -> None:
        uid = self.node_uid()
        meta = lease["metadata"]
        if uid and not meta.get("ownerReferences"):
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                                        "uid": uid}]
