"""A cluster CIDR cut into equal node subnets, each free or taken (kubernetes
``pkg/controller/nodeipam/ipam/cidrset``).  Pure and in memory: the node IPAM controller
rebuilds it from the nodes' ``spec.podCIDRs`` whenever it starts leading.

Allocation goes round-robin from the subnet after the last one handed out, so a subnet just
released is not handed out again at once (a departed node's pods may still be draining).
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network, IPv6Network

__all__ = ["CidrFull", "CidrSet"]

Network = IPv4Network | IPv6Network


class CidrFull(Exception):
    """Every subnet is taken."""


class CidrSet:
    def __init__(self, cluster_cidr: str, mask: int) -> None:
        """``cluster_cidr`` (e.g. ``127.64.0.0/10``) in subnets of prefix length ``mask``;
        ValueError when the mask is shorter than the cluster's or longer than the family's."""
        self.cluster: Network = ipaddress.ip_network(cluster_cidr, strict=False)
        if not self.cluster.prefixlen <= mask <= self.cluster.max_prefixlen:
            raise ValueError(f"node CIDR mask /{mask} does not fit in cluster CIDR "
                             f"{self.cluster}")
        self.mask = mask
        self.size = 1 << (mask - self.cluster.prefixlen)
        self._step = 1 << (self.cluster.max_prefixlen - mask)
        self._used: set[int] = set()
        self._next = 0

    @property
    def used(self) -> int:
        return len(self._used)

    def _subnet(self, i: int) -> Network:
        base = int(self.cluster.network_address) + i * self._step
        return ipaddress.ip_network(f"{ipaddress.ip_address(base)}/{self.mask}")

    def _indexes(self, cidr: str) -> range:
        """The subnet indexes ``cidr`` covers (empty when it lies outside the cluster CIDR)."""
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version != self.cluster.version or not net.overlaps(self.cluster):
            return range(0)
        lo = max(int(net.network_address), int(self.cluster.network_address))
        hi = min(int(net.broadcast_address), int(self.cluster.broadcast_address))
        base = int(self.cluster.network_address)
        return range((lo - base) // self._step, (hi - base) // self._step + 1)

    def allocate(self) -> str:
        """The next free subnet, now taken (CidrFull when there is none)."""
        for k in range(self.size):
            i = (self._next + k) % self.size
            if i not in self._used:
                self._used.add(i)
                self._next = (i + 1) % self.size
                return str(self._subnet(i))
        raise CidrFull(f"no remaining CIDRs of size /{self.mask} in {self.cluster}")

    def occupy(self, cidr: str) -> bool:
        """Mark every subnet ``cidr`` covers taken; False if it lies outside the cluster CIDR."""
        idx = self._indexes(cidr)
        self._used.update(idx)
        return len(idx) > 0

    def taken(self, cidr: str) -> bool:
        return any(i in self._used for i in self._indexes(cidr))

    def release(self, cidr: str) -> None:
        for i in self._indexes(cidr):
            self._used.discard(i)
