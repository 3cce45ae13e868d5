"""What one apiserver holds: store client, storage, watch cache, registry, authorizer.

The RBAC policy and the admission plugins read the cluster through the watch cache
(:class:`CacheView`), as kube-apiserver's informers feed its authorizer and admission; the
ResourceQuota plugin charges usage with a compare-and-swap through storage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from control.apiserver.admission import AdmissionChain, default_chain
from control.apiserver.rbac import UnionAuthorizer, new_authorizer
from control.apiserver.rbac.rbac import RBACAuthorizer
from control.apiserver.storage import GroupResource, Storage, collection_prefix, object_key
from store.client import KeyValueStore

from .allocation import SERVICE_CIDR, Allocator
from .crd.catalog import Catalog, follow
from .objectmeta import Inputs
from .reads import Reader
from .registry import Registry
from .watchcache import WatchCache

if TYPE_CHECKING:  # kubelet's modules import this one
    from .kubelet.client import KubeletClient
    from .serviceaccounts.tokens import TokenIssuer

__all__ = ["APIState", "CacheView"]

_RBAC = "rbac.authorization.k8s.io"


class CacheView:
    """Read-only cluster state from the watch cache (admission's ClusterView and RBAC's
    RBACSource).  The objects are the cache's own (copying them cost a tenth of a create):
    callers copy before they keep or change any part, as ClusterView's contract says."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache

    def get(self, group: str, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cache.get(object_key(GroupResource(group, resource), namespace, name))

    async def get_fresh(self, group: str, resource: str, namespace: str,
                        name: str) -> dict[str, Any] | None:
        found = self.get(group, resource, namespace, name)
        if found is None and await self.cache.sync():
            found = self.get(group, resource, namespace, name)
        return found

    def list(self, group: str, resource: str, namespace: str = "") -> list[dict[str, Any]]:
        items, _ = self.cache.snapshot(collection_prefix(GroupResource(group, resource),
                                                         namespace))
        return [o for _, o in items]

    def _raw(self, resource: str, namespace: str = "") -> Iterable[dict[str, Any]]:
        items, _ = self.cache.snapshot(collection_prefix(GroupResource(_RBAC, resource),
                                                         namespace))
        return [o for _, o in items]

    # RBACSource
    def roles_in(self, namespace: str) -> Iterable[dict[str, Any]]:
        return self._raw("roles", namespace) if namespace else ()

    def cluster_roles(self) -> Iterable[dict[str, Any]]:
        return self._raw("clusterroles")

    def role_bindings_in(self, namespace: str) -> Iterable[dict[str, Any]]:
        return self._raw("rolebindings", namespace) if namespace else ()

    def cluster_role_bindings(self) -> Iterable[dict[str, Any]]:
        return self._raw("clusterrolebindings")


class _QuotaWriter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def update_quota_status(self, namespace: str, name: str,
                                  mutate: Callable[[dict[str, Any]], dict[str, Any]]
                                  ) -> dict[str, Any]:
        return await self.storage.guaranteed_update(GroupResource("", "resourcequotas"),
                                                    namespace, name, mutate)


@dataclass
class APIState:
    client: KeyValueStore
    storage: Storage
    cache: WatchCache
    view: CacheView
    reader: Reader
    registry: Registry
    authorizer: UnionAuthorizer
    rbac: RBACAuthorizer
    inputs: Inputs
    server_url: str = ""
    #: The client of the node agents (exec, logs, metrics); None: those answer 503.
    kubelet: KubeletClient | None = None
    #: Built-in and custom resources: the one lookup of what this apiserver serves.
    catalog: Catalog = field(default_factory=Catalog)
    #: Signs and checks service-account tokens; None: TokenRequest answers 503 and bearer
    #: tokens are refused.
    tokens: TokenIssuer | None = None
    #: Called with each watch event's cache-receipt time (monotonic) as it is written to a
    #: watcher's connection (the fan-out metrics); None: not counted.
    watch_delivered: Callable[[float], None] | None = None

    @classmethod
    def build(cls, client: KeyValueStore, *, inputs: Inputs | None = None,
              chain: AdmissionChain | None = None, server_url: str = "",
              kubelet: KubeletClient | None = None,
              tokens: TokenIssuer | None = None,
              toleration_seconds: tuple[int, int] = (300, 300),
              service_cidr: str = SERVICE_CIDR) -> APIState:
        inputs = inputs or Inputs()
        storage = Storage(client)
        cache = WatchCache(client)
        view = CacheView(cache)
        chain = chain or default_chain(quota_writer=_QuotaWriter(storage),
                                       random_suffix=inputs.suffix,
                                       toleration_seconds=toleration_seconds)
        authorizer = new_authorizer(view)
        rbac = RBACAuthorizer(view)
        registry = Registry(storage, chain, view, inputs=inputs,
                            allocator=Allocator(storage, cache, cidr=service_cidr))
        catalog = Catalog()
        cache.listeners.append(follow(catalog))
        return cls(client, storage, cache, view, Reader(storage, cache), registry, authorizer,
                   rbac, inputs, server_url, kubelet, catalog, tokens)
