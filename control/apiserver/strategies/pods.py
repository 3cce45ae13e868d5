"""Pods, and the pod spec every workload template shares: defaults, validation, QoS class,
the narrow set of fields a running pod may change, and binding to a node.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from control.api.errors import Cause
from control.api.quantity import quantity_or_none

from .base import BaseStrategy
from .causes import child, duplicate, forbidden, index, invalid, mappings, one_of, required
from .containers import default_container, validate_container
from .meta import validate_annotations, validate_labels
from .names import dns1123_label, dns1123_subdomain, qualified_name

__all__ = [
    "POD_UPDATE_FORBIDDEN",
    "RESTART_POLICIES",
    "PodStrategy",
    "default_pod_spec",
    "qos_class",
    "validate_pod_spec",
    "validate_pod_template",
]

RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_CONTAINER_GROUPS = ("initContainers", "containers")
_MODE_VOLUMES = ("secret", "configMap", "downwardAPI", "projected")
_SPEC_DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
    "securityContext": {}, "schedulerName": "default-scheduler", "enableServiceLinks": True,
}
_MAX_INT32 = 2**31 - 1

POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)


def _containers(spec: Mapping[str, Any], group: str) -> list[Any]:
    value = spec.get(group)
    return value if isinstance(value, list) else []


def default_pod_spec(spec: dict[str, Any]) -> None:
    """The defaults of a pod spec, in place, for pods and templates alike."""
    for k, v in _SPEC_DEFAULTS.items():
        spec.setdefault(k, copy.deepcopy(v))
    # serviceAccount is the deprecated spelling of serviceAccountName; both are served.
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    elif spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    for volume in spec.get("volumes") or []:
        for source in _MODE_VOLUMES:
            if isinstance(volume, dict) and isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 0o644)
    host_network = bool(spec.get("hostNetwork"))
    for group in _CONTAINER_GROUPS:
        for c in _containers(spec, group):
            if isinstance(c, dict):
                default_container(c, host_network=host_network)


def _default_pod_only(spec: dict[str, Any]) -> None:
    """Defaults a pod gets that its template does not: requests copied from limits
    (``SetDefaults_Pod``).  ``priority`` and ``preemptionPolicy`` are the Priority admission
    plugin's to set, from the pod's PriorityClass (or the global default)."""
    for group in _CONTAINER_GROUPS:
        for c in _containers(spec, group):
            resources = c.get("resources") if isinstance(c, dict) else None
            if isinstance(resources, dict) and isinstance(resources.get("limits"), dict) \
                    and resources["limits"]:
                requests = resources.setdefault("requests", {})
                for name, value in resources["limits"].items():
                    requests.setdefault(name, value)


def _sum_positive(into: dict[str, Fraction], values: Any) -> set[str]:
    found: set[str] = set()
    for name in ("cpu", "memory"):
        q = quantity_or_none(values.get(name)) if isinstance(values, Mapping) else None
        if q is not None and q > 0:
            into[name] = into.get(name, Fraction(0)) + q
            found.add(name)
    return found


def qos_class(spec: Mapping[str, Any]) -> str:
    """``BestEffort`` (no cpu/memory requests or limits anywhere), ``Guaranteed`` (every
    container limits both, and requests equal limits) or ``Burstable``."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for group in _CONTAINER_GROUPS:
        for c in mappings(_containers(spec, group)):
            resources = c.get("resources") or {}
            _sum_positive(requests, resources.get("requests"))
            if _sum_positive(limits, resources.get("limits")) != {"cpu", "memory"}:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def _validate_volumes(spec: Mapping[str, Any], path: str) -> tuple[list[Cause], set[str]]:
    errs: list[Cause] = []
    names: set[str] = set()
    for i, volume in enumerate(mappings(spec.get("volumes"))):
        p = child(index(path, i), "name")
        name = volume.get("name")
        if not name:
            errs.append(required(p))
            continue
        errs += [invalid(p, name, msg) for msg in dns1123_label(str(name))]
        if name in names:
            errs.append(duplicate(p, name))
        names.add(name)
    return errs, names


def _validate_tolerations(tolerations: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, t in enumerate(mappings(tolerations)):
        p = index(path, i)
        if t.get("key"):
            errs += [invalid(child(p, "key"), t["key"], m) for m in qualified_name(t["key"])]
        operator = t.get("operator") or "Equal"
        errs += one_of(operator, child(p, "operator"), ("Equal", "Exists"))
        if operator == "Exists" and t.get("value"):
            errs.append(invalid(child(p, "operator"), t["value"],
                                "value must be empty when `operator` is 'Exists'"))
        if t.get("effect"):
            errs += one_of(t["effect"], child(p, "effect"),
                           ("NoSchedule", "PreferNoSchedule", "NoExecute"))
    return errs


def _validate_scalars(spec: Mapping[str, Any], path: str,
                      restart_policies: tuple[str, ...]) -> list[Cause]:
    errs = one_of(spec.get("restartPolicy"), child(path, "restartPolicy"), restart_policies)
    errs += one_of(spec.get("dnsPolicy"), child(path, "dnsPolicy"), _DNS_POLICIES)
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or
                                 not 1 <= deadline <= _MAX_INT32):
        errs.append(invalid(child(path, "activeDeadlineSeconds"), deadline,
                            f"must be between 1 and {_MAX_INT32}, inclusive"))
    account = spec.get("serviceAccountName")
    if account:
        errs += [invalid(child(path, "serviceAccountName"), account, msg)
                 for msg in dns1123_subdomain(str(account))]
    errs += validate_labels(spec.get("nodeSelector"), child(path, "nodeSelector"))
    errs += _validate_tolerations(spec.get("tolerations"), child(path, "tolerations"))
    priority_class = spec.get("priorityClassName")
    if priority_class:
        errs += [invalid(child(path, "priorityClassName"), priority_class, msg)
                 for msg in dns1123_subdomain(str(priority_class))]
    if spec.get("preemptionPolicy") is not None:
        errs += one_of(spec["preemptionPolicy"], child(path, "preemptionPolicy"),
                       ("PreemptLowerPriority", "Never"))
    return errs


def validate_pod_spec(spec: Any, path: str, *,
                      restart_policies: tuple[str, ...] = RESTART_POLICIES,
                      extra_volumes: frozenset[str] = frozenset()) -> list[Cause]:
    """A pod spec at ``path`` (``spec``, ``spec.template.spec``): containers (required, names
    unique across init and regular containers), volumes, and the pod-level fields;
    ``restart_policies`` narrows what the owning kind allows; ``extra_volumes`` are volume
    names the owner adds (a StatefulSet's claim templates) that mounts may refer to."""
    if not isinstance(spec, Mapping):
        return [required(path)]
    errs, volumes = _validate_volumes(spec, child(path, "volumes"))
    volumes |= extra_volumes
    if not _containers(spec, "containers"):
        errs.append(required(child(path, "containers")))
    seen: set[str] = set()
    for group in _CONTAINER_GROUPS:
        for i, c in enumerate(mappings(_containers(spec, group))):
            p = index(child(path, group), i)
            errs += validate_container(c, p, volumes=volumes)
            name = str(c.get("name") or "")
            if name and name in seen:
                errs.append(duplicate(child(p, "name"), name))
            seen.add(name)
    return errs + _validate_scalars(spec, path, restart_policies)


def validate_pod_template(template: Any, path: str, *,
                          restart_policies: tuple[str, ...] = RESTART_POLICIES,
                          extra_volumes: frozenset[str] = frozenset()) -> list[Cause]:
    """A ``PodTemplateSpec`` at ``path`` (``spec.template``): its labels and annotations, and
    its pod spec (see :func:`validate_pod_spec` for the keywords)."""
    if not isinstance(template, Mapping):
        return [required(path)]
    meta = template.get("metadata") or {}
    errs = validate_labels(meta.get("labels"), child(path, "metadata", "labels"))
    errs += validate_annotations(meta.get("annotations"), child(path, "metadata", "annotations"))
    return errs + validate_pod_spec(template.get("spec"), child(path, "spec"),
                                    restart_policies=restart_policies,
                                    extra_volumes=extra_volumes)


def _munge_images(new: dict[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    errs: list[Cause] = []
    for group in _CONTAINER_GROUPS:
        news, olds = _containers(new, group), mappings(_containers(old, group))
        if len(news) != len(olds):
            errs.append(forbidden(f"spec.{group}", "pod updates may not add or remove containers"))
            continue
        for c, o in zip(news, olds):
            if isinstance(c, dict) and "image" in o:
                c["image"] = o["image"]
    return errs


def _munge_deadline(new: dict[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    field = "spec.activeDeadlineSeconds"
    errs: list[Cause] = []
    new_value, old_value = new.pop("activeDeadlineSeconds", None), old.get("activeDeadlineSeconds")
    if new_value is None and old_value is not None:
        errs.append(invalid(field, None, "must not update from a positive integer to nil value"))
    elif isinstance(new_value, int) and isinstance(old_value, int) and new_value > old_value:
        errs.append(invalid(field, new_value, "must be less than or equal to previous value"))
    if old_value is not None:
        new["activeDeadlineSeconds"] = old_value
    return errs


def _munge_mutable(new: dict[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """Overwrite in ``new`` (a copy) the fields a pod update may change with ``old``'s, so
    that what remains must be equal; returns the errors of the allowed-field rules."""
    errs = _munge_images(new, old) + _munge_deadline(new, old)
    old_tolerations = old.get("tolerations")
    if all(t in (new.get("tolerations") or []) for t in old_tolerations or []):
        _set_or_pop(new, "tolerations", old_tolerations)
    old_grace = old.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 \
            and new.get("terminationGracePeriodSeconds") == 1:
        new["terminationGracePeriodSeconds"] = old_grace
    return errs


def _set_or_pop(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = copy.deepcopy(value)


def validate_pod_spec_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """``spec`` may only change in container images, activeDeadlineSeconds, added
    tolerations and a negative grace period set to 1. nodeName is set by binding only."""
    munged = copy.deepcopy(dict(new.get("spec") or {}))
    old_spec = old.get("spec") or {}
    errs = _munge_mutable(munged, old_spec)
    if not errs and munged != old_spec:
        errs.append(forbidden("spec", POD_UPDATE_FORBIDDEN))
    return errs


class PodStrategy(BaseStrategy):
    """Pods: full defaults, ``status`` starts Pending with its QoS class, and the spec is
    all but immutable once created."""

    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            default_pod_spec(spec)
            _default_pod_only(spec)

    def initial_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        return validate_pod_spec(obj.get("spec"), "spec")

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        return validate_pod_spec_update(new, old)

    def apply_binding(self, pod: dict[str, Any], node_name: str, *, now: str) -> str | None:
        """Bind ``pod`` to ``node_name`` (the ``pods/binding`` subresource): sets
        ``spec.nodeName`` and a True ``PodScheduled`` condition stamped ``now``. Returns the
        reason for a 409 Conflict instead (already bound, or being deleted), changing
        nothing."""
        name = (pod.get("metadata") or {}).get("name", "")
        spec = pod.setdefault("spec", {})
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            return f"pod {name} is being deleted, cannot be assigned to a host"
        if spec.get("nodeName"):
            return f'pod {name} is already assigned to node "{spec["nodeName"]}"'
        spec["nodeName"] = node_name
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": now})
        status["conditions"] = conditions
        return None
