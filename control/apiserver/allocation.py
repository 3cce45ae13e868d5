"""Service cluster IPs and node ports, allocated exactly once across every apiserver.

Each allocated value is a reservation object in the store, created with the store's
create-if-absent txn: ``networking.k8s.io/v1`` IPAddress objects named by the IP (what
kube-apiserver's IPAddress-based allocator keeps), and node-port reservations under a ketch
internal group.  Two apiservers racing for one value: exactly one create succeeds, the other
tries the next candidate.  Candidates start at a random offset and probe linearly, skipping
what the watch cache shows as taken.  A service's reservations are released when it is
deleted (and when its own create fails after allocation).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator
from typing import Any

from control.api.errors import AlreadyExists, Cause, Invalid, NotFound, ServiceUnavailable
from control.apiserver.storage import GroupResource, Storage, object_key

from .watchcache import WatchCache

__all__ = ["IPADDRESSES", "KUBERNETES_SERVICE_IP", "NODEPORTS", "SERVICE_CIDR", "Allocator",
           "kubernetes_service_ip"]

IPADDRESSES = GroupResource("networking.k8s.io", "ipaddresses")
NODEPORTS = GroupResource("ketch.internal", "nodeports")
# Service ClusterIPs come from 127.0.0.0/8 so they are local addresses on every Linux host: the
# node agents' service proxy listens on them without root (pods use 127.64.0.0/10).
SERVICE_CIDR = "127.16.0.0/12"
KUBERNETES_SERVICE_IP = "127.16.0.1"  # the first address, as kube-apiserver's 10.96.0.1


def kubernetes_service_ip(cidr: str) -> str:
    """The ``kubernetes`` Service's ClusterIP: the first address of the service range."""
    return str(ipaddress.ip_network(cidr).network_address + 1)
NODE_PORT_RANGE = (30000, 32767)
_ATTEMPTS = 64


class Allocator:
    def __init__(self, storage: Storage, cache: WatchCache, *,
                 cidr: str = SERVICE_CIDR, node_ports: tuple[int, int] = NODE_PORT_RANGE,
                 rng: random.Random | None = None) -> None:
        self.storage = storage
        self.cache = cache
        self.net = ipaddress.ip_network(cidr)
        self.node_ports = node_ports
        self.rng = rng or random.SystemRandom()

    def _candidates(self, first: int, last: int) -> Iterator[int]:
        span = last - first + 1
        start = self.rng.randrange(span)
        for i in range(span):
            yield first + (start + i) % span

    async def _reserve(self, gr: GroupResource, names: Iterator[str],
                       owner: dict[str, str], what: str) -> str:
        tried = 0
        for name in names:
            if self.cache.get(object_key(gr, "", name)) is not None:
                continue
            obj = {"apiVersion": f"{gr.group}/v1", "kind": "IPAddress" if gr is IPADDRESSES
                   else "NodePortReservation", "metadata": {"name": name},
                   "spec": {"parentRef": {"group": "", "resource": "services", **owner}}}
            try:
                await self.storage.create(gr, "", name, obj)
                return name
            except AlreadyExists:
                tried += 1
                if tried >= _ATTEMPTS:
                    break
        raise ServiceUnavailable(f"no free {what} left to allocate")

    async def cluster_ip(self, namespace: str, name: str) -> str:
        # .0 is the network, .1 belongs to the "kubernetes" service; skip both and broadcast.
        base = int(self.net.network_address)
        ips = (str(ipaddress.ip_address(base + i))
               for i in self._candidates(2, self.net.num_addresses - 2))
        return await self._reserve(IPADDRESSES, ips, {"namespace": namespace, "name": name},
                                   "cluster IP")

    async def node_port(self, namespace: str, name: str) -> int:
        ports = (str(p) for p in self._candidates(*self.node_ports))
        return int(await self._reserve(NODEPORTS, ports, {"namespace": namespace, "name": name},
                                       "node port"))

    async def release(self, service: dict[str, Any]) -> None:
        """Free every cluster IP and node port ``service`` holds (missing ones are fine)."""
        spec = service.get("spec") or {}
        held = [(IPADDRESSES, ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]
                if ip and ip != "None"]
        held += [(NODEPORTS, str(p["nodePort"])) for p in spec.get("ports") or []
                 if isinstance(p, dict) and p.get("nodePort")]
        meta = service.get("metadata") or {}
        for gr, name in held:
            current = self.cache.get(object_key(gr, "", name))
            ref = ((current or {}).get("spec") or {}).get("parentRef") or {}
            if current is not None and (ref.get("namespace"), ref.get("name")) != (
                    meta.get("namespace"), meta.get("name")):
                continue  # someone else's now
            try:
                await self.storage.delete(gr, "", name)
            except NotFound:
                pass

    async def _requested(self, ip: str, owner: dict[str, str]) -> bool:
        """Reserve a cluster IP the client chose: in range and free, else 422.  True if this
        call made the reservation, False if the same service already held it (another
        apiserver creating the same object at the same time)."""
        try:
            inside = ipaddress.ip_address(ip) in self.net
        except ValueError:
            inside = False
        if not inside:
            raise Invalid("Service", owner["name"], [Cause(
                "FieldValueInvalid", f"Invalid value: \"{ip}\": provided IP is not in the "
                f"valid range. The range of valid IPs is {self.net}", "spec.clusterIPs")])
        try:
            await self.storage.create(IPADDRESSES, "", ip, {
                "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                "metadata": {"name": ip},
                "spec": {"parentRef": {"group": "", "resource": "services", **owner}}})
            return True
        except AlreadyExists:
            held = await self.storage.get(IPADDRESSES, "", ip)
            ref = (held.get("spec") or {}).get("parentRef") or {}
            if (ref.get("namespace"), ref.get("name")) == (owner["namespace"], owner["name"]):
                return False
            raise Invalid("Service", owner["name"], [Cause(
                "FieldValueInvalid", f"Invalid value: \"{ip}\": provided IP is already "
                "allocated", "spec.clusterIPs")]) from None

    async def allocate(self, strategy: Any,
                       service: dict[str, Any]) -> list[tuple[GroupResource, str]]:
        """Fill in what the service's strategy says it needs; reserve a client-chosen IP.
        Returns the reservations this call made (for :meth:`undo` if the create fails)."""
        meta = service.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        made: list[tuple[GroupResource, str]] = []
        chosen = (service.get("spec") or {}).get("clusterIP")
        try:
            if strategy.wants_cluster_ip(service):
                ip = await self.cluster_ip(ns, name)
                made.append((IPADDRESSES, ip))
                strategy.apply_cluster_ip(service, ip)
            elif chosen and chosen != "None" and await self._requested(
                    chosen, {"namespace": ns, "name": name}):
                made.append((IPADDRESSES, chosen))
            for i in strategy.node_ports_wanted(service):
                port = await self.node_port(ns, name)
                made.append((NODEPORTS, str(port)))
                service["spec"]["ports"][i]["nodePort"] = port
        except BaseException:
            await self.undo(made)
            raise
        return made

    async def undo(self, made: list[tuple[GroupResource, str]]) -> None:
        """Free reservations :meth:`allocate` made for a service that was not created."""
        for gr, name in made:
            try:
                await self.storage.delete(gr, "", name)
            except NotFound:
                pass
