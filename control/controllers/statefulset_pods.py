"""A StatefulSet's pods: stable identities and what their state means (kubernetes
``pkg/controller/statefulset/stateful_set_utils.go``).

Pod ``i`` of StatefulSet ``web`` is named ``web-i``, labelled
``statefulset.kubernetes.io/pod-name: web-i`` and ``apps.kubernetes.io/pod-index: i``, has
``hostname`` ``web-i`` and ``subdomain`` = ``serviceName``, and carries the name of its
ControllerRevision in ``controller-revision-hash``.  Ordinals run from ``spec.ordinals.start``
(default 0) for ``replicas`` pods.  Pure functions over API dicts; status counting too.

Volume claim templates: this cluster has no persistent volumes, so each claim a pod would
mount becomes an ``emptyDir`` volume of the same name (the controller records a Warning that
claims are not supported), so that the template's mounts resolve and the pod can run.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from control.api.objects import meta as _meta

from .history import REVISION_LABEL
from .podutil import is_pod_available, is_pod_ready, pod_from_template

__all__ = [
    "POD_INDEX_LABEL", "POD_NAME_LABEL", "claim_names", "count_status", "end_ordinal",
    "identity_matches", "in_ordinal_range", "is_created", "is_failed", "is_healthy",
    "is_member_of", "is_running_and_available", "is_running_and_ready", "is_succeeded",
    "is_terminating", "new_pod", "ordinal", "parent_and_ordinal", "pod_name", "pod_revision",
    "replicas", "start_ordinal", "update_identity",
]

Obj = dict[str, Any]
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_NAME = re.compile(r"^(.*)-([0-9]+)$")



def _spec(o: Obj) -> Obj:
    spec: Obj = o.get("spec") or {}
    return spec


def parent_and_ordinal(name: str) -> tuple[str, int]:
    """``("web", 3)`` for ``web-3``; ``("", -1)`` when the name has no ordinal."""
    m = _NAME.match(name)
    if not m:
        return "", -1
    try:
        return m.group(1), int(m.group(2))
    except ValueError:
        return "", -1


def ordinal(pod: Obj) -> int:
    return parent_and_ordinal(_meta(pod).get("name", ""))[1]


def is_member_of(sts: Obj, pod: Obj) -> bool:
    return parent_and_ordinal(_meta(pod).get("name", ""))[0] == _meta(sts).get("name")


def pod_name(sts: Obj, i: int) -> str:
    return f"{_meta(sts).get('name', '')}-{i}"


def replicas(sts: Obj) -> int:
    value = _spec(sts).get("replicas", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def start_ordinal(sts: Obj) -> int:
    start = (_spec(sts).get("ordinals") or {}).get("start", 0)
    return start if isinstance(start, int) and not isinstance(start, bool) else 0


def end_ordinal(sts: Obj) -> int:
    return start_ordinal(sts) + replicas(sts) - 1


def in_ordinal_range(pod: Obj, sts: Obj) -> bool:
    return start_ordinal(sts) <= ordinal(pod) <= end_ordinal(sts)


def identity_matches(sts: Obj, pod: Obj) -> bool:
    """The pod's name, namespace and identity labels are those of its ordinal."""
    parent, i = parent_and_ordinal(_meta(pod).get("name", ""))
    labels = _meta(pod).get("labels") or {}
    return (i >= 0 and parent == _meta(sts).get("name")
            and _meta(pod).get("namespace") == _meta(sts).get("namespace")
            and labels.get(POD_NAME_LABEL) == _meta(pod).get("name")
            and labels.get(POD_INDEX_LABEL) == str(i))


def update_identity(sts: Obj, pod: Obj) -> None:
    """Set the identity labels (in place, on a copy the caller owns)."""
    i = ordinal(pod)
    meta = pod.setdefault("metadata", {})
    meta["name"] = pod_name(sts, i)
    meta["namespace"] = _meta(sts).get("namespace", "")
    labels = meta.setdefault("labels", {})
    labels[POD_NAME_LABEL] = meta["name"]
    labels[POD_INDEX_LABEL] = str(i)


def claim_names(sts: Obj, pod_name_: str) -> list[tuple[str, str]]:
    """``(volume name, claim name)`` for each volume claim template: the claim of pod
    ``web-0`` from template ``www`` is ``www-web-0``."""
    out = []
    for t in _spec(sts).get("volumeClaimTemplates") or ():
        name = ((t or {}).get("metadata") or {}).get("name") if isinstance(t, dict) else None
        if name:
            out.append((str(name), f"{name}-{pod_name_}"))
    return out


def _add_claim_volumes(sts: Obj, pod: Obj) -> None:
    """``updateStorage`` as this cluster can honour it: each claim template becomes an
    emptyDir volume of its name (unless the template already has a volume by that name)."""
    spec = pod.setdefault("spec", {})
    volumes = [v for v in spec.get("volumes") or () if isinstance(v, dict)]
    have = {v.get("name") for v in volumes}
    for volume, _claim in claim_names(sts, _meta(pod).get("name", "")):
        if volume not in have:
            volumes.append({"name": volume, "emptyDir": {}})
    if volumes:
        spec["volumes"] = volumes


def new_pod(sts: Obj, template: Obj, i: int, revision: str) -> Obj:
    """``newVersionedStatefulSetPod``: pod ``i`` from ``template`` (the template of
    ``revision``), with its identity, storage and revision label."""
    pod = pod_from_template(template, sts, name=pod_name(sts, i))
    update_identity(sts, pod)
    pod["spec"]["hostname"] = pod["metadata"]["name"]
    service = _spec(sts).get("serviceName")
    if service:
        pod["spec"]["subdomain"] = service
    _add_claim_volumes(sts, pod)
    pod["metadata"]["labels"][REVISION_LABEL] = revision
    return pod


def pod_revision(pod: Obj) -> str:
    return str((_meta(pod).get("labels") or {}).get(REVISION_LABEL, ""))


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_created(pod: Obj) -> bool:
    """The apiserver has it (a pod only planned has no phase yet)."""
    return _phase(pod) != ""


def is_failed(pod: Obj) -> bool:
    return _phase(pod) == "Failed"


def is_succeeded(pod: Obj) -> bool:
    return _phase(pod) == "Succeeded"


def is_terminating(pod: Obj) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def is_running_and_ready(pod: Obj) -> bool:
    return _phase(pod) == "Running" and is_pod_ready(pod)


def is_running_and_available(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> bool:
    return is_pod_available(pod, min_ready_seconds, now)


def is_healthy(pod: Obj) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def count_status(pods: list[Obj], min_ready_seconds: int, current: str, update: str,
                 now: dt.datetime) -> Obj:
    """``computeReplicaStatus`` over every list of pods (planned ones included): replicas,
    readyReplicas, availableReplicas, currentReplicas, updatedReplicas."""
    out = dict.fromkeys(("replicas", "readyReplicas", "availableReplicas", "currentReplicas",
                         "updatedReplicas"), 0)
    for pod in pods:
        if is_created(pod):
            out["replicas"] += 1
        if is_running_and_ready(pod):
            out["readyReplicas"] += 1
            if is_running_and_available(pod, min_ready_seconds, now):
                out["availableReplicas"] += 1
        if is_created(pod) and not is_terminating(pod):
            revision = pod_revision(pod)
            out["currentReplicas"] += revision == current
            out["updatedReplicas"] += revision == update
    return out
