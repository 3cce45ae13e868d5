"""Which nodes a DaemonSet's pods belong on, and the pods it makes for them (kubernetes
``pkg/controller/daemon``: ``NodeShouldRunDaemonPod``, ``util/daemonset_util.go``).

Pure functions over API dicts.  A daemon pod is the template plus the DaemonSet default
tolerations (not-ready and unreachable NoExecute with no time limit; disk-, memory-,
pid-pressure and unschedulable NoSchedule; network-unavailable for host-network pods), the
``controller-revision-hash`` label, and a required node affinity on ``metadata.name`` = its
node, so the scheduler (not this controller) binds it there.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from typing import Any

from control.api.clock import parse_time
from control.api.nodeaffinity import RequiredNodeAffinity
from control.api.objects import meta as _meta
from control.api.taints import NO_EXECUTE, NO_SCHEDULE, find_untolerated_taint, node_taints

from .history import REVISION_LABEL

__all__ = [
    "TEMPLATE_GENERATION_ANNOTATION", "TEMPLATE_GENERATION_LABEL", "add_daemon_tolerations",
    "allows_surge", "creation_order", "daemon_pod_template", "is_pod_updated",
    "node_should_run", "node_update_ignorable", "replace_node_affinity", "scaled_value", "surge_count",
    "target_node_name", "template_generation", "unavailable_count",
]

Obj = dict[str, Any]
#: Pods of DaemonSets from before hashes carried their template generation (still honoured).
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
_EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)

_DEFAULT_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", NO_EXECUTE),
    ("node.kubernetes.io/unreachable", NO_EXECUTE),
    ("node.kubernetes.io/disk-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/pid-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/unschedulable", NO_SCHEDULE),
)
_NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", NO_SCHEDULE)



def _add_toleration(spec: Obj, key: str, effect: str) -> None:
    """``AddOrUpdateTolerationInPodSpec``: replace a toleration with the same key, operator
    and effect (so a user's tolerationSeconds gives way to "forever"), else append."""
    wanted = {"key": key, "operator": "Exists", "effect": effect}
    tolerations = [t for t in spec.get("tolerations") or () if isinstance(t, dict)]
    for i, t in enumerate(tolerations):
        if (t.get("key"), t.get("operator") or "Equal", t.get("effect")) == (key, "Exists",
                                                                            effect):
            tolerations[i] = wanted
            break
    else:
        tolerations.append(wanted)
    spec["tolerations"] = tolerations


def add_daemon_tolerations(spec: Obj) -> None:
    """Add the DaemonSet default tolerations to a pod spec (in place)."""
    for key, effect in _DEFAULT_TOLERATIONS:
        _add_toleration(spec, key, effect)
    if spec.get("hostNetwork"):
        _add_toleration(spec, *_NETWORK_UNAVAILABLE)


def replace_node_affinity(affinity: Obj | None, node_name: str) -> Obj:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: the required node-affinity terms become
    the single term ``metadata.name In [node_name]``; everything else is kept."""
    out = copy.deepcopy(affinity) if isinstance(affinity, dict) else {}
    term = {"matchFields": [{"key": "metadata.name", "operator": "In",
                             "values": [node_name]}]}
    node_aff = out.get("nodeAffinity")
    if not isinstance(node_aff, dict):
        node_aff = out["nodeAffinity"] = {}
    required = node_aff.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not isinstance(required, dict):
        required = node_aff["requiredDuringSchedulingIgnoredDuringExecution"] = {}
    required["nodeSelectorTerms"] = [term]
    return out


def template_generation(ds: Obj) -> str | None:
    """The deprecated template-generation annotation (only a valid integer counts)."""
    value = (_meta(ds).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    if value is None:
        return None
    try:
        return str(int(value))
    except ValueError:
        return None


def daemon_pod_template(ds: Obj, hash_: str) -> Obj:
    """``CreatePodTemplate``: the template with the default tolerations and the revision
    (and legacy generation) labels; the caller sets the node affinity per node."""
    template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    spec = template.setdefault("spec", {})
    add_daemon_tolerations(spec)
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    generation = template_generation(ds)
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = generation
    if hash_:
        labels[REVISION_LABEL] = hash_
    return template


def _candidate(ds: Obj, node_name: str) -> Obj:
    """``NewPod``: the pod the DaemonSet would run on ``node_name``, for the predicates."""
    template = (ds.get("spec") or {}).get("template") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    spec["nodeName"] = node_name
    add_daemon_tolerations(spec)
    return {"metadata": copy.deepcopy(template.get("metadata") or {}), "spec": spec}


def node_should_run(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """``(should_run, should_continue_running)``: whether a daemon pod should be started on
    ``node``, and whether one already there may stay (a NoSchedule taint keeps new pods off
    but lets a running one stay; an untolerated NoExecute taint evicts it)."""
    name = _meta(node).get("name", "")
    template_node = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "nodeName") or ""
    if template_node and template_node != name:
        return False, False
    pod = _candidate(ds, name)
    if not RequiredNodeAffinity.of_pod(pod).matches(node):
        return False, False
    taints = node_taints(node)
    tolerations = pod["spec"].get("tolerations") or []
    if find_untolerated_taint(taints, tolerations, frozenset({NO_SCHEDULE, NO_EXECUTE})):
        return False, find_untolerated_taint(taints, tolerations,
                                             frozenset({NO_EXECUTE})) is None
    return True, True


def target_node_name(pod: Obj) -> str | None:
    """``GetTargetNodeName``: ``spec.nodeName``, else the node an unscheduled daemon pod's
    ``metadata.name In [node]`` affinity term names; None when neither says."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or ():
        for expr in (term or {}).get("matchFields") or ():
            if expr.get("key") == "metadata.name" and expr.get("operator") == "In":
                values = expr.get("values") or []
                return str(values[0]) if len(values) == 1 else None
    return None


def is_pod_updated(pod: Obj, hash_: str, generation: str | None) -> bool:
    """The pod is of the current revision: its hash label, or the legacy generation label."""
    labels = _meta(pod).get("labels") or {}
    return bool(hash_) and labels.get(REVISION_LABEL) == hash_ or (
        generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == generation)


def creation_order(pod: Obj) -> tuple[bool, dt.datetime, str]:
    """Sort key ``podByCreationTimestampAndPhase``: scheduled first, then oldest, then name."""
    return (not (pod.get("spec") or {}).get("nodeName"),
            parse_time(_meta(pod).get("creationTimestamp")) or _EPOCH,
            _meta(pod).get("name", ""))


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int as is, ``"N%"`` of ``total`` rounded up or
    down; ValueError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError(f"invalid value for IntOrString: invalid type: string is not a "
                     f"percentage: {value!r}")


def _rolling(ds: Obj) -> Obj | None:
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    rolling = strategy.get("rollingUpdate")
    return rolling if isinstance(rolling, dict) else None


def surge_count(ds: Obj, number: int) -> int:
    """Pods that may be surged out of ``number`` (0 unless RollingUpdate sets maxSurge)."""
    rolling = _rolling(ds)
    if rolling is None or rolling.get("maxSurge") is None:
        return 0
    return scaled_value(rolling["maxSurge"], number, round_up=True)


def unavailable_count(ds: Obj, number: int) -> int:
    """Pods that may be unavailable out of ``number`` (RollingUpdate's maxUnavailable)."""
    rolling = _rolling(ds)
    if rolling is None:
        return 0
    return scaled_value(rolling.get("maxUnavailable", 1), number, round_up=True)


def allows_surge(ds: Obj) -> bool:
    try:
        return surge_count(ds, 1) > 0
    except ValueError:
        return False


def node_update_ignorable(old: Obj, new: Obj) -> bool:
    """``shouldIgnoreNodeUpdate``: only the conditions that are not True changed (and the
    resourceVersion), which cannot change where daemon pods belong."""
    def true_types(n: Obj) -> set[str]:
        return {c.get("type") for c in (n.get("status") or {}).get("conditions") or ()
                if c.get("status") == "True"}

    if true_types(old) != true_types(new):
        return False

    def strip(n: Obj) -> Obj:
        out = {**n, "metadata": {k: v for k, v in _meta(n).items()
                                 if k not in ("resourceVersion", "managedFields")}}
        out["status"] = {k: v for k, v in (n.get("status") or {}).items() if k != "conditions"}
        return out

    return strip(old) == strip(new)
