"""What an object costs against a ResourceQuota, which quotas apply to it, and what a pod must
declare when a quota limits compute resources.

Pure functions over decoded objects, shared by the apiserver's ResourceQuota admission (which
charges a create) and the quota controller (which recomputes ``status.used``), so both count
alike.  Usage names follow Kubernetes: object counts
(``pods``, ``services``, ``count/<resource>[.<group>]``), pod compute (``requests.cpu`` and its
legacy alias ``cpu``, ``limits.memory``, ``requests.<extended>``, ...), service types
(``services.loadbalancers``, ``services.nodeports``) and claim storage (``requests.storage``,
per storage class).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control.api.podresources import (
    ResourceList,
    container_limits,
    container_requests,
    pod_limits,
    pod_requests,
    resource_list,
)
from control.api.quantity import Quantity

__all__ = [
    "COMPUTE_CONSTRAINED",
    "nonnegative_delta",
    "object_usage",
    "pod_constraint_failure",
    "quota_matches",
    "tracks_pods",
    "usage_source",
]

# Quota on any of these requires every container to state the corresponding request or limit.
COMPUTE_CONSTRAINED = frozenset({
    "cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})

# Core resources that have a quota name of their own besides count/<resource>.
_LEGACY_COUNTS = frozenset({
    "pods", "services", "configmaps", "secrets", "serviceaccounts", "resourcequotas",
    "replicationcontrollers", "persistentvolumeclaims"})
_PLAIN_AND_REQUESTS = ("cpu", "memory", "ephemeral-storage")
_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_ONE = Quantity.of(1)


def object_usage(group: str, resource: str, obj: Mapping[str, Any]) -> ResourceList:
    """Everything creating ``obj`` would add to a quota in its namespace."""
    usage: ResourceList = {f"count/{resource}.{group}" if group else f"count/{resource}": _ONE}
    if group:
        return usage
    if resource in _LEGACY_COUNTS:
        usage[resource] = _ONE
    if resource == "pods":
        usage.update(_pod_compute(obj))
    elif resource == "services":
        usage.update(_service_usage(obj))
    elif resource == "persistentvolumeclaims":
        usage.update(_claim_usage(obj))
    return usage


def _pod_compute(pod: Mapping[str, Any]) -> ResourceList:
    requests = pod_requests(pod, overhead=True)
    limits = pod_limits(pod, overhead=True)
    out: ResourceList = {}
    for name, q in requests.items():
        if name in _PLAIN_AND_REQUESTS or name.startswith("hugepages-"):
            out[name] = q
            out[f"requests.{name}"] = q
        elif _is_extended(name):
            out[f"requests.{name}"] = q
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    return out


def _is_extended(name: str) -> bool:
    """A vendor resource (``example.com/gpu``): quota tracks only its requests."""
    if "/" not in name or name.startswith("requests."):
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def _service_usage(service: Mapping[str, Any]) -> ResourceList:
    spec = service.get("spec") or {}
    ports = spec.get("ports") or []
    kind = spec.get("type") or "ClusterIP"
    if kind == "NodePort":
        return {"services.nodeports": Quantity.of(len(ports))}
    if kind == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is False:
            node_ports = sum(1 for p in ports if p.get("nodePort"))
        else:
            node_ports = len(ports)
        return {"services.loadbalancers": _ONE, "services.nodeports": Quantity.of(node_ports)}
    return {}


def _claim_usage(claim: Mapping[str, Any]) -> ResourceList:
    spec = claim.get("spec") or {}
    storage = resource_list((spec.get("resources") or {}).get("requests")).get("storage")
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    storage_class = (spec.get("storageClassName")
                     or annotations.get("volume.beta.kubernetes.io/storage-class") or "")
    out: ResourceList = {}
    if storage is not None:
        out["requests.storage"] = storage
    if storage_class:
        prefix = storage_class + _STORAGE_CLASS_SUFFIX
        out[prefix + "persistentvolumeclaims"] = _ONE
        if storage is not None:
            out[prefix + "requests.storage"] = storage
    return out


def usage_source(name: str) -> tuple[str, str] | None:
    """The (group, resource) whose objects a usage name counts: ``count/deployments.apps``
    → deployments.apps, ``requests.cpu`` → pods, ``services.nodeports`` → services; None for
    a name no kind of object is charged for (the inverse of :func:`object_usage`)."""
    if name.startswith("count/"):
        resource, _, group = name[len("count/"):].partition(".")
        return group, resource
    if name in _LEGACY_COUNTS:
        return "", name
    if name == "requests.storage" or _STORAGE_CLASS_SUFFIX in name:
        return "", "persistentvolumeclaims"
    if name.startswith("services."):
        return "", "services"
    if (name in _PLAIN_AND_REQUESTS or name.startswith(("requests.", "limits.", "hugepages-"))):
        return "", "pods"
    return None


def tracks_pods(hard: Mapping[str, Any]) -> bool:
    """Whether a quota with these hard limits constrains pods at all."""
    return any(
        key in ("pods", "count/pods") or key in COMPUTE_CONSTRAINED
        or key.startswith(("requests.", "limits.", "hugepages-")) or key == "ephemeral-storage"
        for key in hard)


def quota_matches(quota: Mapping[str, Any], group: str, resource: str,
                  obj: Mapping[str, Any]) -> bool:
    """Whether the quota's scopes select ``obj``: an unscoped quota selects everything; scopes
    (``Terminating``, ``BestEffort``, ``PriorityClass``, ...) select only pods."""
    spec = quota.get("spec") or {}
    selectors = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    selectors += (spec.get("scopeSelector") or {}).get("matchExpressions") or []
    if not selectors:
        return True
    if (group, resource) != ("", "pods"):
        return False
    return all(_pod_in_scope(obj, sel) for sel in selectors)


def _pod_in_scope(pod: Mapping[str, Any], selector: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    scope, operator = selector.get("scopeName"), selector.get("operator", "Exists")
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        values = selector.get("values") or []
        return {"In": name in values, "NotIn": name not in values, "Exists": bool(name),
                "DoesNotExist": not name}.get(operator, False)
    if scope in ("Terminating", "NotTerminating"):
        deadline = spec.get("activeDeadlineSeconds")
        result = deadline is not None and deadline >= 0
    elif scope in ("BestEffort", "NotBestEffort"):
        result = _best_effort(pod)
    elif scope == "CrossNamespacePodAffinity":
        result = _cross_namespace_affinity(spec)
    else:
        return False
    if scope.startswith("Not"):
        result = not result
    return result if operator != "DoesNotExist" else not result


def _best_effort(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        resources = container.get("resources") or {}
        for field in ("requests", "limits"):
            if any(k in ("cpu", "memory") for k in resources.get(field) or {}):
                return False
    return True


def _cross_namespace_affinity(spec: Mapping[str, Any]) -> bool:
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = affinity.get(kind) or {}
        terms = list(rules.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [t.get("podAffinityTerm") or {}
                  for t in rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def pod_constraint_failure(hard: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    """``must specify limits.cpu for: a,b; requests.memory for: a`` when the quota limits
    cpu or memory and some container does not state it; ``None`` otherwise."""
    required = COMPUTE_CONSTRAINED.intersection(hard)
    if not required:
        return None
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        stated = _container_usage_names(container)
        for name in required - stated:
            missing.setdefault(name, set()).add(str(container.get("name", "")))
    if not missing:
        return None
    parts = [f"{name} for: {','.join(sorted(who))}" for name, who in sorted(missing.items())]
    return "must specify " + "; ".join(parts)


def _container_usage_names(container: Mapping[str, Any]) -> set[str]:
    requests, limits = container_requests(container), container_limits(container)
    names: set[str] = set()
    for name in ("cpu", "memory"):
        if name in requests:
            names |= {name, f"requests.{name}"}
        if name in limits:
            names.add(f"limits.{name}")
    return names


def nonnegative_delta(new: ResourceList, old: ResourceList) -> ResourceList:
    """``new - old`` per name, dropping names that did not grow (an update's extra cost)."""
    out: ResourceList = {}
    for name, q in new.items():
        grown = q - old[name] if name in old else q
        if grown.value > 0:
            out[name] = grown
    return out

