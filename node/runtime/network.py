"""The pod network without root: one IP per pod from the node's ``spec.podCIDR``, carved from
127.0.0.0/8 by default.

Every 127.x.y.z address is local on Linux, so pods on one machine each get their own address
and can all listen on the same port; a process learns its address from ``POD_IP`` and binds it.
Allocations are persisted (a small JSON file under the runtime's directory) so a restarted
agent gives a re-adopted pod the IP it had, and released when the sandbox is removed.  The
allocator hands addresses out next-fit (as CNI's host-local IPAM does), so a freed address is
not reused at once by the next pod.

Privileged ports: without root (or ``CAP_NET_BIND_SERVICE``), ports below
``net.ipv4.ip_unprivileged_port_start`` (1024 by default) cannot be bound even on a pod's own
address.  :func:`pod_port` is the one rule for that case: such a port ``p`` is served at
``p + PRIVILEGED_PORT_OFFSET`` (80 -> 10080).  The catalog's servers bind by it, and every
client of a pod port on this node — probes, port-forward, the service proxy — connects by it.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import threading

__all__ = [
    "DEFAULT_POD_CIDR",
    "PRIVILEGED_PORT_OFFSET",
    "AddressExhausted",
    "PodIPAllocator",
    "can_bind_privileged",
    "pod_port",
]

DEFAULT_POD_CIDR = "127.1.0.0/16"
PRIVILEGED_PORT_OFFSET = 10000
_CAP_NET_BIND_SERVICE = 10


class AddressExhausted(Exception):
    """Every address of the pod CIDR is taken."""


class PodIPAllocator:
    """Pod IPs from ``cidr``, one per pod uid, persisted in ``state_path``.

    Thread-safe (the runtime calls it from worker threads).  ``allocate`` is idempotent per
    uid.  With ``loopback_only`` (the process runtime) a CIDR outside 127.0.0.0/8 is refused:
    those addresses would not be local."""

    def __init__(self, cidr: str, state_path: str, *, loopback_only: bool = True) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        loopback = ipaddress.IPv4Network("127.0.0.0/8")
        if loopback_only and not (isinstance(self.network, ipaddress.IPv4Network)
                                  and self.network.subnet_of(loopback)):
            raise ValueError(f"pod CIDR {cidr} is not inside 127.0.0.0/8: the process runtime "
                             "can only give pods loopback addresses")
        if self.network.num_addresses < 4:
            raise ValueError(f"pod CIDR {cidr} is too small")
        self.state_path = state_path
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}
        self._last = self._host_range()[0] - 1
        self._load()

    def allocate(self, pod_uid: str) -> str:
        """The pod's address (the one it already has, or a free one).
        Raises :class:`AddressExhausted`."""
        with self._lock:
            if pod_uid in self._by_uid:
                return self._by_uid[pod_uid]
            taken = set(self._by_uid.values())
            first, last = self._host_range()
            span = last - first + 1
            for step in range(span):
                index = first + (self._last - first + 1 + step) % span
                ip = str(self.network.network_address + index)
                if ip not in taken:
                    self._by_uid[pod_uid] = ip
                    self._last = index
                    self._save()
                    return ip
            raise AddressExhausted(f"no free address in {self.network}")

    def release(self, pod_uid: str) -> None:
        with self._lock:
            if self._by_uid.pop(pod_uid, None) is not None:
                self._save()

    def get(self, pod_uid: str) -> str | None:
        with self._lock:
            return self._by_uid.get(pod_uid)

    def allocations(self) -> dict[str, str]:
        with self._lock:
            return dict(self._by_uid)

    def _host_range(self) -> tuple[int, int]:
        # skip the network address, .1 (the host's own 127.0.0.1 in 127.0.0.0/x, a gateway
        # elsewhere) and the broadcast address
        return 2, self.network.num_addresses - 2

    def _load(self) -> None:
        try:
            with open(self.state_path) as f:
                state = json.load(f)
        except FileNotFoundError:
            return
        if state.get("cidr") != str(self.network):
            # a new podCIDR: addresses outside it are dropped (their pods get new ones)
            state["pods"] = {u: ip for u, ip in state.get("pods", {}).items()
                             if ipaddress.ip_address(ip) in self.network}
        self._by_uid = dict(state.get("pods", {}))
        self._last = int(state.get("last", self._last))

    def _save(self) -> None:
        tmp = f"{self.state_path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"cidr": str(self.network), "last": self._last, "pods": self._by_uid}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)


@functools.cache
def _unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


@functools.cache
def can_bind_privileged() -> bool:
    """Whether this process may bind any port (root, or CAP_NET_BIND_SERVICE)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_NET_BIND_SERVICE & 1)
    except OSError:
        pass
    return False


def pod_port(port: int) -> int:
    """The port on which a pod's ``port`` is actually served on this host: itself, unless it
    is privileged and this host may not bind it (then ``port + PRIVILEGED_PORT_OFFSET``)."""
    if port >= _unprivileged_port_start() or can_bind_privileged():
        return port
    return port + PRIVILEGED_PORT_OFFSET
