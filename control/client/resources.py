"""Resources as the client addresses them: group, version, plural, scope — and their paths.

Built-in resources come from the shared catalog (:mod:`control.api.catalog`), so the client
and the apiserver can never disagree on a plural or a scope.  :func:`resource` finds one by
``"deployments"``, ``"deployments.apps"`` or ``"apps/v1/deployments"``; the module constants
name the ones the components use.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from control.api.catalog import RESOURCES, ResourceDef

__all__ = [
    "CONFIGMAPS", "CONTROLLERREVISIONS", "CRONJOBS", "DAEMONSETS", "DEPLOYMENTS",
    "ENDPOINTS", "ENDPOINTSLICES", "EVENTS", "JOBS", "LEASES", "NAMESPACES", "NODES",
    "PODDISRUPTIONBUDGETS", "PODS", "PRIORITYCLASSES", "REPLICASETS", "RESOURCEQUOTAS",
    "SECRETS", "SERVICEACCOUNTS", "SERVICES", "STATEFULSETS", "Resource", "object_key",
    "resource", "split_key",
]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @classmethod
    def of(cls, rd: ResourceDef) -> Resource:
        return cls(rd.group, rd.version, rd.resource, rd.kind, rd.namespaced)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        """``/api/v1/namespaces/NS/pods/NAME/status``: the collection without ``name``,
        across namespaces without ``namespace`` (for a namespaced resource)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


_BY_NAME: dict[str, Resource] = {}
for _rd in RESOURCES:
    _r = Resource.of(_rd)
    _BY_NAME.setdefault(_rd.resource, _r)
    _BY_NAME[str(_r)] = _r
    _BY_NAME[f"{_r.api_version}/{_rd.resource}"] = _r


def resource(name: str) -> Resource:
    """A built-in resource by ``plural``, ``plural.group`` or ``group/version/plural``;
    KeyError naming it when the catalog has no such resource."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no resource {name!r} in the catalog") from None


def _maybe(r: Resource) -> Resource:
    # TODO(catalog): these resources are being added to the catalog; until then, as declared.
    return _BY_NAME.get(f"{r.api_version}/{r.plural}", r)


def object_key(obj: dict[str, object]) -> str:
    """``namespace/name`` (``name`` for cluster-scoped objects): the work-queue and cache key."""
    meta = obj.get("metadata") or {}
    assert isinstance(meta, dict)
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    return f"{ns}/{name}" if ns else str(name)


def split_key(key: str) -> tuple[str, str]:
    """``(namespace, name)`` of a key from :func:`object_key`."""
    ns, _, name = key.rpartition("/")
    return ns, name


PODS = resource("pods")
NODES = resource("nodes")
NAMESPACES = resource("namespaces")
SERVICES = resource("services")
ENDPOINTS = resource("endpoints")
CONFIGMAPS = resource("configmaps")
SECRETS = resource("secrets")
EVENTS = resource("events")
SERVICEACCOUNTS = resource("serviceaccounts")
RESOURCEQUOTAS = resource("resourcequotas")
DEPLOYMENTS = resource("deployments.apps")
REPLICASETS = resource("replicasets.apps")
DAEMONSETS = resource("daemonsets.apps")
STATEFULSETS = resource("statefulsets.apps")
JOBS = resource("jobs.batch")
LEASES = resource("leases.coordination.k8s.io")
CONTROLLERREVISIONS = _maybe(Resource("apps", "v1", "controllerrevisions",
                                       "ControllerRevision", True))
CRONJOBS = _maybe(Resource("batch", "v1", "cronjobs", "CronJob", True))
ENDPOINTSLICES = _maybe(Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice",
                                 True))
PODDISRUPTIONBUDGETS = _maybe(Resource("policy", "v1", "poddisruptionbudgets",
                                       "PodDisruptionBudget", True))
PRIORITYCLASSES = _maybe(Resource("scheduling.k8s.io", "v1", "priorityclasses",
                                  "PriorityClass", False))
