"""A pod as the scheduler needs it: its template (:class:`PodTemplate`, shared by every pod of
an equivalence class) and its identity (:class:`PodInfo`).

Pods created from one template (same namespace, controller owner, labels and the spec fields
that scheduling reads) form an **equivalence class** (Borg §3.4): they ask the same of every
node, so the template is parsed once per class — requests as ints, tolerations, node
affinity, spread constraints, affinity terms — and the per-node filter results cached against
it (:mod:`control.scheduler.equivalence`).  A malformed template is not an exception: its
``errors`` become the pod's Unschedulable message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from control.api.nodeaffinity import PreferredTerms, RequiredNodeAffinity
from control.api.quantity import QuantityError
from control.api.taints import pod_tolerations

from .resources import Requests
from .terms import (
    AffinityTerm,
    SpreadConstraint,
    TermError,
    parse_affinity_terms,
    parse_spread_constraints,
)

__all__ = ["PodInfo", "PodTemplate", "class_key", "controller_of", "pod_info", "same_class",
           "template_of"]

Obj = Mapping[str, Any]
HostPort = tuple[str, str, int]

# The spec fields that decide where a pod may go; two pods equal on these (and on namespace,
# labels and controller) are interchangeable to the scheduler.
# (spec.nodeName is left out: it is what the scheduler decides, and a placed pod must share
# its pending siblings' template.)
_SPEC_FIELDS = ("nodeSelector", "affinity", "tolerations", "topologySpreadConstraints",
                "schedulerName", "priority", "preemptionPolicy", "overhead",
                "resources", "hostNetwork")
_CONTAINER_FIELDS = ("resources", "ports", "restartPolicy")


def controller_of(pod: Obj) -> tuple[str, str]:
    """``(kind, uid)`` of the pod's controller owner reference, or ``("", "")``."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller"):
            return str(ref.get("kind") or ""), str(ref.get("uid") or "")
    return "", ""


def class_key(pod: Obj) -> str:
    """The equivalence-class key: a digest of what scheduling reads of the pod."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    parts = {
        "ns": meta.get("namespace") or "",
        "labels": meta.get("labels") or {},
        "owner": controller_of(pod)[1],
        "spec": {k: spec[k] for k in _SPEC_FIELDS if k in spec},
        "c": [[{k: c.get(k) for k in _CONTAINER_FIELDS} for c in spec.get(group) or ()
               if isinstance(c, Mapping)] for group in ("initContainers", "containers")],
    }
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def same_class(old: Obj, new: Obj) -> bool:
    """Whether two versions of a pod certainly share a class (what :func:`class_key` reads
    is equal), by direct comparison — much cheaper than hashing, for the common update that
    changes only status or ``spec.nodeName``."""
    if old is new:
        return True
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    if om.get("labels") != nm.get("labels") or om.get("namespace") != nm.get("namespace") \
            or om.get("ownerReferences") != nm.get("ownerReferences"):
        return False
    os_, ns_ = old.get("spec") or {}, new.get("spec") or {}
    if any(os_.get(k) != ns_.get(k) for k in _SPEC_FIELDS):
        return False
    return bool(os_.get("containers") == ns_.get("containers")
                and os_.get("initContainers") == ns_.get("initContainers"))


def _host_ports(spec: Obj) -> tuple[HostPort, ...]:
    ports: list[HostPort] = []
    containers = list(spec.get("containers") or [])
    containers += [c for c in spec.get("initContainers") or []
                   if isinstance(c, Mapping) and c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in (c.get("ports") or []) if isinstance(c, Mapping) else ():
            host = p.get("hostPort") if isinstance(p, Mapping) else None
            if isinstance(host, int) and not isinstance(host, bool) and host > 0:
                ports.append((str(p.get("hostIP") or "0.0.0.0"), str(p.get("protocol") or "TCP"),
                              host))
    return tuple(ports)


@dataclass(eq=False)
class PodTemplate:
    """What scheduling reads of a pod, parsed once per equivalence class (never mutated
    after :func:`template_of` returns).  ``errors`` non-empty means the pod cannot be placed
    and says why."""

    key: str
    namespace: str
    labels: Mapping[str, str]
    owner_kind: str
    owner_uid: str
    requests: Requests = field(default_factory=Requests)
    host_ports: tuple[HostPort, ...] = ()
    tolerations: list[Obj] = field(default_factory=list)
    required: RequiredNodeAffinity = field(default_factory=RequiredNodeAffinity)
    preferred: PreferredTerms = field(default_factory=PreferredTerms)
    spread: tuple[SpreadConstraint, ...] = ()
    affinity: tuple[AffinityTerm, ...] = ()
    anti_affinity: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[AffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[AffinityTerm, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def hard_spread(self) -> tuple[SpreadConstraint, ...]:
        return tuple(c for c in self.spread if c.hard)

    @property
    def has_pod_affinity(self) -> bool:
        """Any pod (anti-)affinity term, required or preferred (pods with these make the
        scoring of others depend on them: kube's ``PodsWithAffinity``)."""
        return bool(self.affinity or self.anti_affinity or self.preferred_affinity
                    or self.preferred_anti_affinity)


def template_of(pod: Obj, key: str | None = None) -> PodTemplate:
    """Parse the scheduling-relevant parts of ``pod``; never raises for bad input."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    labels = meta.get("labels") or {}
    kind, uid = controller_of(pod)
    t = PodTemplate(key or class_key(pod), meta.get("namespace") or "",
                    labels if isinstance(labels, Mapping) else {}, kind, uid)
    errors: list[str] = []
    try:
        t.requests = Requests.of_pod(pod)
    except (QuantityError, AttributeError, TypeError) as exc:
        errors.append(f"spec.containers[*].resources: {exc}")
    t.host_ports = _host_ports(spec)
    t.tolerations = pod_tolerations(pod)
    t.required = RequiredNodeAffinity.of_pod(pod)
    t.preferred = PreferredTerms.of_pod(pod)
    errors += t.required.errors
    errors += t.preferred.errors
    try:
        t.spread = parse_spread_constraints(pod)
    except TermError as exc:
        errors.append(str(exc))
    for attr, kind_name, preferred in (
        ("affinity", "podAffinity", False), ("anti_affinity", "podAntiAffinity", False),
        ("preferred_affinity", "podAffinity", True),
        ("preferred_anti_affinity", "podAntiAffinity", True),
    ):
        try:
            setattr(t, attr, parse_affinity_terms(pod, kind_name, preferred=preferred))
        except TermError as exc:
            errors.append(str(exc))
    t.errors = tuple(errors)
    return t


@dataclass(eq=False)
class PodInfo:
    """One pod: identity, priority, the shared template, and the object itself (read-only)."""

    uid: str
    namespace: str
    name: str
    priority: int
    created: str
    template: PodTemplate
    obj: Obj
    terminating: bool = False
    node_name: str = ""
    nominated_node: str = ""
    preempt_never: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def labels(self) -> Mapping[str, str]:
        return self.template.labels


def pod_info(pod: Obj, template: PodTemplate) -> PodInfo:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    priority = spec.get("priority")
    return PodInfo(
        uid=str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"),
        namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else 0,
        created=str(meta.get("creationTimestamp") or ""), template=template, obj=pod,
        terminating=bool(meta.get("deletionTimestamp")),
        node_name=str(spec.get("nodeName") or ""),
        nominated_node=str((pod.get("status") or {}).get("nominatedNodeName") or ""),
        preempt_never=spec.get("preemptionPolicy") == "Never",
    )
