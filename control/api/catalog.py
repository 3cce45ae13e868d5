"""The catalog of API resources the apiserver serves: one entry per resource, read by
discovery, OpenAPI, routing, Table printing and the registry.

A :class:`ResourceDef` holds what Kubernetes' discovery publishes for a resource (group,
version, plural, singular, kind, scope, verbs, short names, categories, subresources).  Adding a
resource is one line in :data:`RESOURCES` plus its strategy; nothing else branches on kinds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "CREATE_ONLY",
    "CRUD",
    "RESOURCES",
    "ResourceDef",
    "Subresource",
    "group_versions",
    "lookup",
    "lookup_kind",
    "resources_in",
]

CRUD = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)
_GPU = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    """``<resource>/<name>``: its response kind (in ``group/version`` if not the parent's)."""

    name: str
    kind: str
    verbs: tuple[str, ...] = _GPU
    group: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class ResourceDef:
    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = CRUD
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    #: Not stored (access/self reviews): POST answers computed from the request.
    virtual: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def subresource(self, name: str) -> Subresource | None:
        for s in self.subresources:
            if s.name == name:
                return s
        return None


def _status(kind: str) -> Subresource:
    return Subresource("status", kind)


def _scale() -> Subresource:
    return Subresource("scale", "Scale", group="autoscaling", version="v1")


_ALL = ("all",)
_CONNECT = ("create", "get")
# WebSocket upgrades the apiserver proxies to the pod's node agent (kubelet's streaming server)
_STREAMS = (Subresource("attach", "PodAttachOptions", _CONNECT),
            Subresource("exec", "PodExecOptions", _CONNECT),
            Subresource("portforward", "PodPortForwardOptions", _CONNECT))

RESOURCES: tuple[ResourceDef, ...] = (
    # core/v1
    ResourceDef("", "v1", "namespaces", "Namespace", False,
                verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
                short_names=("ns",),
                subresources=(_status("Namespace"), Subresource("finalize", "Namespace",
                                                                ("update",)))),
    ResourceDef("", "v1", "nodes", "Node", False, short_names=("no",),
                subresources=(_status("Node"), Subresource("proxy", "NodeProxyOptions",
                                                           ("get",)))),
    ResourceDef("", "v1", "pods", "Pod", True, short_names=("po",), categories=_ALL,
                subresources=(_status("Pod"), Subresource("binding", "Binding", CREATE_ONLY),
                              Subresource("eviction", "Eviction", CREATE_ONLY, group="policy",
                                          version="v1"),
                              Subresource("log", "Pod", ("get",)), *_STREAMS)),
    ResourceDef("", "v1", "services", "Service", True, short_names=("svc",),
                categories=_ALL, subresources=(_status("Service"),)),
    ResourceDef("", "v1", "endpoints", "Endpoints", True, short_names=("ep",)),
    ResourceDef("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    ResourceDef("", "v1", "secrets", "Secret", True),
    ResourceDef("", "v1", "events", "Event", True, short_names=("ev",)),
    ResourceDef("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",),
                subresources=(Subresource("token", "TokenRequest", CREATE_ONLY,
                                          group="authentication.k8s.io", version="v1"),)),
    ResourceDef("", "v1", "resourcequotas", "ResourceQuota", True, short_names=("quota",),
                subresources=(_status("ResourceQuota"),)),
    ResourceDef("", "v1", "limitranges", "LimitRange", True, short_names=("limits",)),
    # apps/v1
    ResourceDef("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",),
                categories=_ALL, subresources=(_scale(), _status("Deployment"))),
    ResourceDef("apps", "v1", "replicasets", "ReplicaSet", True, short_names=("rs",),
                categories=_ALL, subresources=(_scale(), _status("ReplicaSet"))),
    ResourceDef("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",),
                categories=_ALL, subresources=(_status("DaemonSet"),)),
    ResourceDef("apps", "v1", "statefulsets", "StatefulSet", True, short_names=("sts",),
                categories=_ALL, subresources=(_scale(), _status("StatefulSet"))),
    ResourceDef("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    # batch/v1
    ResourceDef("batch", "v1", "jobs", "Job", True, categories=_ALL,
                subresources=(_status("Job"),)),
    ResourceDef("batch", "v1", "cronjobs", "CronJob", True, short_names=("cj",),
                categories=_ALL, subresources=(_status("CronJob"),)),
    # discovery.k8s.io/v1
    ResourceDef("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    # policy/v1
    ResourceDef("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True,
                short_names=("pdb",), subresources=(_status("PodDisruptionBudget"),)),
    # scheduling.k8s.io/v1
    ResourceDef("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False,
                short_names=("pc",)),
    # coordination.k8s.io/v1
    ResourceDef("coordination.k8s.io", "v1", "leases", "Lease", True),
    # rbac.authorization.k8s.io/v1
    ResourceDef("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceDef("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceDef("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceDef("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                "ClusterRoleBinding", False),
    # apiextensions.k8s.io/v1
    ResourceDef("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                "CustomResourceDefinition", False, short_names=("crd", "crds"),
                categories=("api-extensions",),
                subresources=(_status("CustomResourceDefinition"),)),
    # reviews: computed answers, never stored
    ResourceDef("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
                "SelfSubjectAccessReview", False, verbs=CREATE_ONLY, virtual=True),
    ResourceDef("authorization.k8s.io", "v1", "selfsubjectrulesreviews",
                "SelfSubjectRulesReview", False, verbs=CREATE_ONLY, virtual=True),
    ResourceDef("authorization.k8s.io", "v1", "subjectaccessreviews",
                "SubjectAccessReview", False, verbs=CREATE_ONLY, virtual=True),
    ResourceDef("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview",
                False, verbs=CREATE_ONLY, virtual=True),
)

_BY_GVR = {(r.group, r.version, r.resource): r for r in RESOURCES}
_BY_GVK = {(r.group, r.version, r.kind): r for r in RESOURCES}


def lookup(group: str, version: str, resource: str) -> ResourceDef | None:
    """The resource at ``/api[s]/<group>/<version>/.../<resource>``, or None."""
    return _BY_GVR.get((group, version, resource))


def lookup_kind(api_version: str, kind: str) -> ResourceDef | None:
    """The resource whose objects are ``kind`` in ``api_version`` (``"apps/v1"``, ``"v1"``)."""
    group, _, version = api_version.rpartition("/")
    return _BY_GVK.get((group, version, kind))


def group_versions() -> list[tuple[str, str]]:
    """Every served (group, version), core first, in catalog order."""
    return list(dict.fromkeys((r.group, r.version) for r in RESOURCES))


def resources_in(group: str, version: str) -> Iterator[ResourceDef]:
    return (r for r in RESOURCES if r.group == group and r.version == version)
