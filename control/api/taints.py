"""Taints and tolerations: which of a node's taints a pod's tolerations leave untolerated.

Shared by the scheduler's TaintToleration and NodeUnschedulable filters, the DaemonSet
controller (which places pods on nodes the scheduler would) and the node lifecycle controller
(NoExecute eviction).  Semantics are component-helpers' ``ToleratesTaint`` /
``FindMatchingUntoleratedTaint``: a toleration with an empty effect matches every effect, an
empty key with ``Exists`` matches every taint, ``Equal`` (or no operator) compares values.
Pure; objects are the JSON dicts the apiserver serves and are never changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DO_NOT_SCHEDULE",
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "PREFER_NO_SCHEDULE",
    "TAINT_UNSCHEDULABLE",
    "find_untolerated_taint",
    "node_taints",
    "pod_tolerations",
    "tolerates",
    "tolerations_tolerate",
]

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"
# The taints that keep a pod off a node when it is placed (the scheduler's filter).
DO_NOT_SCHEDULE = frozenset({NO_SCHEDULE, NO_EXECUTE})
# What a cordoned node (spec.unschedulable) is treated as carrying.
TAINT_UNSCHEDULABLE = {"key": "node.kubernetes.io/unschedulable", "effect": NO_SCHEDULE}

Obj = Mapping[str, Any]


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Whether one toleration tolerates one taint (``Toleration.ToleratesTaint``).

    An operator other than ``Equal``/``Exists`` tolerates nothing (fail closed)."""
    effect = toleration.get("effect") or ""
    if effect and effect != (taint.get("effect") or ""):
        return False
    key = toleration.get("key") or ""
    if key and key != (taint.get("key") or ""):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerations_tolerate(tolerations: Iterable[Obj], taint: Obj) -> bool:
    """Whether any of ``tolerations`` tolerates ``taint``."""
    return any(tolerates(t, taint) for t in tolerations)


def find_untolerated_taint(
    taints: Sequence[Obj],
    tolerations: Sequence[Obj],
    effects: Callable[[Obj], bool] | frozenset[str] = DO_NOT_SCHEDULE,
) -> Obj | None:
    """The first taint (among those ``effects`` selects: a set of effect names or a
    predicate) that no toleration tolerates, or None when every such taint is tolerated."""
    for taint in taints:
        wanted = effects(taint) if callable(effects) else (taint.get("effect") in effects)
        if wanted and not tolerations_tolerate(tolerations, taint):
            return taint
    return None


def node_taints(node: Obj) -> list[Obj]:
    """``spec.taints`` of a node, keeping only well-formed entries (dicts)."""
    taints = (node.get("spec") or {}).get("taints") or []
    return [t for t in taints if isinstance(t, Mapping)] if isinstance(taints, list) else []


def pod_tolerations(pod: Obj) -> list[Obj]:
    """``spec.tolerations`` of a pod, keeping only well-formed entries (dicts)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    if not isinstance(tolerations, list):
        return []
    return [t for t in tolerations if isinstance(t, Mapping)]
