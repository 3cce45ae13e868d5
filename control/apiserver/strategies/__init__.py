"""Per-resource registry behaviour (kube-apiserver's ``RESTCreateStrategy`` and
``RESTUpdateStrategy``): the registry asks :func:`strategy_for` and calls, in order,

* create: (registry: namespace from the URL, name from generateName) →
  ``prepare_for_create(obj)`` → (registry: uid, creationTimestamp) → ``apply_uid(obj, uid)``
  when ``needs_uid_selector`` → cluster IP and node ports when ``needs_cluster_ip`` (see
  :class:`~.services.ServiceStrategy`) → ``validate(obj)``;
* update: ``prepare_for_update(new, old)`` → ``validate_update(new, old)``;
* status: ``prepare_for_status_update(new, old)`` → ``validate_update(new, old)``;
* namespaces/finalize: :meth:`~.core.NamespaceStrategy.prepare_for_finalize`, pods/binding:
  :meth:`~.pods.PodStrategy.apply_binding`.

Strategies are pure (objects are JSON dicts changed in place; no clock, I/O or randomness)
and stateless, so one instance per resource is shared. Validation returns a list of
:class:`~control.api.errors.Cause`; an empty list means valid, anything else is a 422 Invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from control.api.catalog import RESOURCES, ResourceDef
from control.api.errors import Cause
from control.apiserver.crd.definition import CustomResourceDefinitionStrategy

from .base import BaseStrategy
from .config import ConfigMapStrategy, SecretStrategy
from .core import (
    EndpointsStrategy,
    EventStrategy,
    LeaseStrategy,
    NamespaceStrategy,
    NodeStrategy,
    PlainStrategy,
)
from .cronjobs import CronJobStrategy
from .disruption import PodDisruptionBudgetStrategy
from .endpointslices import EndpointSliceStrategy
from .jobs import JobStrategy
from .meta import validate_object_meta
from .pods import PodStrategy
from .policy import LimitRangeStrategy, ResourceQuotaStrategy
from .rbac import (
    ClusterRoleBindingStrategy,
    ClusterRoleStrategy,
    RoleBindingStrategy,
    RoleStrategy,
)
from .revisions import ControllerRevisionStrategy
from .scheduling import PriorityClassStrategy
from .services import ServiceStrategy
from .workloads import (
    DaemonSetStrategy,
    DeploymentStrategy,
    ReplicaSetStrategy,
    StatefulSetStrategy,
)

__all__ = [
    "BaseStrategy",
    "ControllerRevisionStrategy",
    "CronJobStrategy",
    "EndpointSliceStrategy",
    "JobStrategy",
    "NamespaceStrategy",
    "PodDisruptionBudgetStrategy",
    "PodStrategy",
    "PriorityClassStrategy",
    "ServiceStrategy",
    "Strategy",
    "strategy_for",
    "validate_object_meta",
]


class Strategy(Protocol):
    """What the registry needs of a resource's strategy (see the module docstring)."""

    status_subresource: bool
    tracks_generation: bool
    needs_uid_selector: bool
    needs_cluster_ip: bool

    def prepare_for_create(self, obj: dict[str, Any]) -> None: ...

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None: ...

    def prepare_for_status_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        ...

    def apply_uid(self, obj: dict[str, Any], uid: str) -> None: ...

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]: ...

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        ...


#: (group, resource) → strategy class; every stored (non-virtual) catalog resource is here.
_CLASSES: dict[tuple[str, str], type[BaseStrategy]] = {
    ("", "namespaces"): NamespaceStrategy,
    ("", "nodes"): NodeStrategy,
    ("", "pods"): PodStrategy,
    ("", "services"): ServiceStrategy,
    ("", "endpoints"): EndpointsStrategy,
    ("", "configmaps"): ConfigMapStrategy,
    ("", "secrets"): SecretStrategy,
    ("", "events"): EventStrategy,
    ("", "serviceaccounts"): PlainStrategy,
    ("", "resourcequotas"): ResourceQuotaStrategy,
    ("", "limitranges"): LimitRangeStrategy,
    ("apps", "deployments"): DeploymentStrategy,
    ("apps", "replicasets"): ReplicaSetStrategy,
    ("apps", "daemonsets"): DaemonSetStrategy,
    ("apps", "statefulsets"): StatefulSetStrategy,
    ("apps", "controllerrevisions"): ControllerRevisionStrategy,
    ("batch", "jobs"): JobStrategy,
    ("batch", "cronjobs"): CronJobStrategy,
    ("discovery.k8s.io", "endpointslices"): EndpointSliceStrategy,
    ("policy", "poddisruptionbudgets"): PodDisruptionBudgetStrategy,
    ("scheduling.k8s.io", "priorityclasses"): PriorityClassStrategy,
    ("coordination.k8s.io", "leases"): LeaseStrategy,
    ("rbac.authorization.k8s.io", "roles"): RoleStrategy,
    ("rbac.authorization.k8s.io", "clusterroles"): ClusterRoleStrategy,
    ("rbac.authorization.k8s.io", "rolebindings"): RoleBindingStrategy,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): ClusterRoleBindingStrategy,
    ("apiextensions.k8s.io", "customresourcedefinitions"): CustomResourceDefinitionStrategy,
}
_INSTANCES: dict[tuple[str, str], BaseStrategy] = {}


def _build(r: ResourceDef) -> BaseStrategy:
    return _CLASSES[(r.group, r.resource)](
        namespaced=r.namespaced, status_subresource=r.subresource("status") is not None)


def strategy_for(group: str, resource: str) -> Strategy:
    """The shared strategy of ``resource`` in ``group`` (``""`` for core), configured from its
    catalog entry (scope, /status). Raises KeyError for a resource the catalog does not
    store (unknown or virtual) or one missing from the strategy table."""
    k = (group, resource)
    if k not in _INSTANCES:
        defs = [r for r in RESOURCES if (r.group, r.resource) == k and not r.virtual]
        if not defs:
            raise KeyError(f"no stored resource {resource!r} in group {group!r}")
        _INSTANCES[k] = _build(defs[0])
    return _INSTANCES[k]
