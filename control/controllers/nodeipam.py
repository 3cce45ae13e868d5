"""The node IPAM controller: every Node gets a ``spec.podCIDR`` (and ``podCIDRs``) of its own from
the cluster CIDR, which its agent carves pod IPs from (kubernetes
``pkg/controller/nodeipam/ipam/range_allocator.go``).

One reconcile per Node key.  Which subnets are taken is held in memory (:class:`.cidrset
.CidrSet`) and rebuilt from the nodes at the start of every leadership term — after the node
cache has caught up with a fresh read, so a new leader never hands out a subnet its
predecessor wrote a moment before.  A node keeps its CIDR for life (the apiserver refuses to
change a set one); a deleted node's subnet is released.  If the write that sets a CIDR
fails the subnet is released again; if its outcome is unknown the subnet stays held until a
fresh read of the node tells.  When every subnet
is taken the node gets a ``CIDRNotAvailable`` event and waits for one to be released.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from control.api.errors import APIError, Conflict, NotFound
from control.api.objects import meta as _meta
from control.client import OutcomeUnknown, object_key
from control.client import resources as R

from .base import Controller, ControllerContext
from .cidrset import CidrFull, CidrSet
from .nodetaints import status_change_event

__all__ = ["NodeIpamController"]

log = logging.getLogger("ketch.controllers.nodeipam")

Obj = dict[str, Any]
FULL_RETRY = 60.0



def node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or () if c]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [str(spec["podCIDR"])]
    return cidrs


class NodeIpamController(Controller):
    name = "nodeipam"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.nodes = ctx.informer(R.NODES)
        self.watch(self.nodes)
        self._lock = asyncio.Lock()
        self._set: CidrSet | None = None
        self._owner: dict[str, tuple[str, str]] = {}  # cidr -> (node name, node uid)

    def primary(self) -> Any:
        return self.nodes

    def start_term(self) -> None:
        self._set = None
        self._owner.clear()
        super().start_term()

    async def _ready(self) -> CidrSet | None:
        """The allocation map of this term, rebuilt from the nodes on first use."""
        async with self._lock:
            if self._set is not None:
                return self._set
            s = self.ctx.settings
            try:
                cidrs = CidrSet(s.cluster_cidr.split(",")[0].strip(), s.node_cidr_mask)
            except ValueError as e:
                log.error("node IPAM disabled: %s", e)
                return None
            listing = await self.client.list(R.NODES, limit=1)
            rv = (listing.get("metadata") or {}).get("resourceVersion") or "0"
            if not await self.nodes.wait_for_version(rv, timeout=10.0):
                raise TimeoutError(f"node cache did not reach resourceVersion {rv}")
            self._owner.clear()
            for node in self.nodes.cache:
                self._occupy(cidrs, node)
            self._set = cidrs
            return cidrs

    def _occupy(self, cidrs: CidrSet, node: Obj) -> None:
        for c in node_cidrs(node):
            if cidrs.occupy(c):
                self._owner[c] = (_meta(node).get("name", ""), _meta(node).get("uid", ""))
            else:
                log.warning("node %s: podCIDR %s is outside the cluster CIDR %s",
                            _meta(node).get("name"), c, cidrs.cluster)

    def _release(self, cidrs: CidrSet, name: str, keep_uid: str = "") -> bool:
        """Release what ``name`` holds, except what the node of ``keep_uid`` holds."""
        released = False
        for c, (owner, uid) in list(self._owner.items()):
            if owner == name and not (keep_uid and uid == keep_uid):
                cidrs.release(c)
                del self._owner[c]
                released = True
        return released

    def _held(self, node: Obj) -> list[str]:
        me = (_meta(node).get("name", ""), _meta(node).get("uid", ""))
        return [c for c, owner in self._owner.items() if owner == me]

    async def reconcile(self, key: str) -> float | None:
        cidrs = await self._ready()
        if cidrs is None:
            return None
        node = self.nodes.cache.get(key)
        if node is None:
            if self._release(cidrs, key):
                self._wake_waiting()
            return None
        if self._release(cidrs, key, keep_uid=_meta(node).get("uid", "")):
            self._wake_waiting()  # a node re-created under the same name
        if not node_cidrs(node) and self._held(node):
            # a subnet was handed to this node but the cache does not show it: an earlier
            # write whose outcome is unknown, or a cache behind.  Ask the apiserver.
            try:
                node = await self.client.get(R.NODES, key)
            except NotFound:
                self._release(cidrs, key)
                return None
        have = node_cidrs(node)
        for c in self._held(node):
            if c not in have:
                self._forget(cidrs, c)
        if have:
            self._occupy(cidrs, node)
            return None
        return await self._allocate(cidrs, node)

    async def _allocate(self, cidrs: CidrSet, node: Obj) -> float | None:
        meta = _meta(node)
        try:
            cidr = cidrs.allocate()
        except CidrFull:
            status_change_event(self.recorder, node, "CIDRNotAvailable")
            return FULL_RETRY
        self._owner[cidr] = (meta.get("name", ""), meta.get("uid", ""))
        # Guarded by the node's uid, not its resourceVersion (which every status update moves):
        # the apiserver itself refuses to change a podCIDR once set, so this write is a
        # compare-and-swap on "no CIDR yet".
        patch = {"metadata": {"uid": meta.get("uid")},
                 "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
        try:
            await self.client.patch(R.NODES, meta["name"], patch)
        except OutcomeUnknown:
            raise  # it may have been written: the subnet stays held until a read tells
        except NotFound:
            self._forget(cidrs, cidr)
            return None
        except Conflict:
            self._forget(cidrs, cidr)
            raise  # another uid under this name: look again
        except APIError:
            self._forget(cidrs, cidr)
            status_change_event(self.recorder, node, "CIDRAssignmentFailed")
            raise
        log.info("node %s: podCIDR %s", meta.get("name"), cidr)
        return None

    def _forget(self, cidrs: CidrSet, cidr: str) -> None:
        cidrs.release(cidr)
        self._owner.pop(cidr, None)

    def _wake_waiting(self) -> None:
        """A subnet came free: look again at the nodes still without one."""
        for node in self.nodes.cache:
            if not node_cidrs(node):
                self.enqueue(object_key(node))
