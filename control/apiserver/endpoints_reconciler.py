"""The ``kubernetes`` Service's endpoints: every live apiserver's address, so in-cluster clients
reach the API through the Service's ClusterIP (kube-apiserver's lease endpoint reconciler).

Each apiserver holds a Lease in ``kube-system`` (``apiserver-<address>``, label
``apiserver.kubernetes.io/identity: kube-apiserver``, its address in an annotation) and renews
it every few seconds.  After each renewal it writes ``default/kubernetes`` Endpoints (one subset
per port) and EndpointSlices (``kubernetes`` for the first port, ``kubernetes-<port>`` for
others: a slice has one port set) holding the apiservers whose leases are live; a lease is
stale when *this* apiserver has not seen it change for its duration on its own monotonic clock
(never by comparing another process's timestamp with our wall clock).  All apiservers compute
the same set from the same leases, so their writes converge; a stopping apiserver removes its
lease and its address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from control.api import catalog
from control.api.errors import AlreadyExists, APIError, NotFound
from control.apiserver.rbac import SYSTEM_MASTERS, UserInfo
from control.apiserver.storage import GroupResource, collection_prefix, object_key

if TYPE_CHECKING:
    from .registry import WriteContext
    from .state import APIState

__all__ = ["EndpointReconciler", "desired_endpoints", "desired_slices"]

log = logging.getLogger("ketch.apiserver.endpoints")

_APISERVER = UserInfo(name="system:apiserver", groups=(SYSTEM_MASTERS,))
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
ADDRESS_ANNOTATION = "ketch.io/apiserver-address"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
LEASE_SECONDS = 15
RENEW_SECONDS = 5.0


def _lease_name(address: str) -> str:
    return "apiserver-" + address.replace(":", "-").replace(".", "-").strip("[]").lower()


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def desired_endpoints(addresses: list[str]) -> dict[str, Any]:
    """``default/kubernetes`` Endpoints for ``addresses`` (host:port), one subset per port."""
    by_port: dict[int, list[str]] = {}
    for a in sorted(set(addresses)):
        host, port = _split(a)
        by_port.setdefault(port, []).append(host)
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip} for ip in sorted(set(ips))],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
                        for port, ips in sorted(by_port.items())]}


def desired_slices(addresses: list[str]) -> dict[str, dict[str, Any]]:
    """EndpointSlices by name for ``addresses``: ``kubernetes`` for the lowest port."""
    by_port: dict[int, list[str]] = {}
    for a in sorted(set(addresses)):
        host, port = _split(a)
        by_port.setdefault(port, []).append(host)
    out = {}
    for i, (port, ips) in enumerate(sorted(by_port.items())):
        name = "kubernetes" if i == 0 else f"kubernetes-{port}"
        out[name] = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": name, "namespace": "default",
                                  "labels": {SERVICE_NAME_LABEL: "kubernetes"}},
                     "addressType": "IPv4",
                     "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}
                                   for ip in sorted(set(ips))],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
    return out


class EndpointReconciler:
    """One per apiserver that advertises ``address`` (host:port)."""

    def __init__(self, api: APIState, address: str, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.address = address
        self.monotonic = monotonic
        self._seen: dict[str, tuple[str, float]] = {}  # lease -> (resourceVersion, seen at)

    def _ctx(self, group: str, resource: str, namespace: str, name: str) -> WriteContext:
        from .registry import WriteContext

        rd = catalog.lookup(group, "v1", resource)
        assert rd is not None
        return WriteContext(user=_APISERVER, rd=rd, namespace=namespace, name=name,
                            field_manager="kube-apiserver")

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.renew()
                    await self.reconcile()
                except APIError as e:
                    log.warning("kubernetes service endpoints: %s; retrying", e)
                await asyncio.sleep(RENEW_SECONDS)
        finally:  # cancelled at shutdown: leave before the store client closes
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self.stop()

    async def renew(self) -> None:
        name = _lease_name(self.address)
        ctx = self._ctx("coordination.k8s.io", "leases", "kube-system", name)
        now = self.api.inputs.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": name, "namespace": "kube-system",
                              "labels": {IDENTITY_LABEL: "kube-apiserver"},
                              "annotations": {ADDRESS_ANNOTATION: self.address}},
                 "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                          "renewTime": now}}
        try:
            await self.api.registry.mutate(ctx, lambda old: {**old, "spec": lease["spec"]})
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                await self.api.registry.create(ctx, lease)

    def live_addresses(self) -> list[str]:
        """Addresses of the leases this apiserver has seen renewed within their duration."""
        prefix = collection_prefix(GroupResource("coordination.k8s.io", "leases"), "kube-system")
        now = self.monotonic()
        out = []
        current = set()
        for _, lease in self.api.cache.snapshot(prefix)[0]:
            meta = lease.get("metadata") or {}
            if (meta.get("labels") or {}).get(IDENTITY_LABEL) != "kube-apiserver":
                continue
            address = (meta.get("annotations") or {}).get(ADDRESS_ANNOTATION)
            if not address:
                continue
            name, rv = meta["name"], meta.get("resourceVersion", "")
            current.add(name)
            seen = self._seen.get(name)
            if seen is None or seen[0] != rv:
                seen = self._seen[name] = (rv, now)
            duration = (lease.get("spec") or {}).get("leaseDurationSeconds") or LEASE_SECONDS
            if now - seen[1] <= duration or address == self.address:
                out.append(address)
        for gone in set(self._seen) - current:
            del self._seen[gone]
        return sorted(out)

    async def reconcile(self, addresses: list[str] | None = None) -> None:
        addresses = self.live_addresses() if addresses is None else addresses
        await self._put("", "endpoints", "kubernetes", desired_endpoints(addresses),
                        ("subsets",))
        wanted = desired_slices(addresses)
        for name, obj in wanted.items():
            await self._put("discovery.k8s.io", "endpointslices", name, obj,
                            ("endpoints", "ports", "addressType"))
        prefix = collection_prefix(GroupResource("discovery.k8s.io", "endpointslices"),
                                   "default")
        for _, s in self.api.cache.snapshot(prefix)[0]:
            meta = s["metadata"]
            if (meta.get("labels") or {}).get(SERVICE_NAME_LABEL) == "kubernetes" \
                    and meta["name"].startswith("kubernetes") and meta["name"] not in wanted:
                with contextlib.suppress(NotFound):
                    await self.api.registry.delete(self._ctx(
                        "discovery.k8s.io", "endpointslices", "default", meta["name"]), {})

    async def _put(self, group: str, resource: str, name: str, obj: dict[str, Any],
                   fields: tuple[str, ...]) -> None:
        gr = GroupResource(group, resource)
        current = self.api.cache.get(object_key(gr, "default", name))
        if current is not None and all(current.get(f) == obj.get(f) for f in fields):
            return
        ctx = self._ctx(group, resource, "default", name)
        try:
            await self.api.registry.mutate(ctx, lambda old: {
                **old, **{f: obj[f] for f in fields},
                "metadata": {**old["metadata"], "labels": {
                    **(old["metadata"].get("labels") or {}), **obj["metadata"]["labels"]}}})
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                await self.api.registry.create(ctx, obj)

    async def stop(self) -> None:
        """Leave: drop this apiserver's lease and its address (graceful shutdown)."""
        with contextlib.suppress(NotFound):
            await self.api.registry.delete(self._ctx(
                "coordination.k8s.io", "leases", "kube-system", _lease_name(self.address)), {})
        others = [a for a in self.live_addresses() if a != self.address]
        await self.reconcile(others)
