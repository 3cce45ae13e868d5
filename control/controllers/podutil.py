"""What controllers ask of pods, and how they make them from templates (kubernetes
``pkg/controller/controller_utils.go``, ``pkg/api/v1/pod``).

Pure functions over pod dicts.  "Active" is not terminal and not being deleted; "ready" is the
Ready condition True; "available" is ready for at least ``minReadySeconds``.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from typing import Any

from control.api.clock import parse_time

from .owners import controller_ref

__all__ = [
    "condition", "is_pod_active", "is_pod_available", "is_pod_ready", "is_terminal",
    "pod_from_template", "ready_since", "set_condition", "template_hash",
]

Obj = dict[str, Any]
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery rand.SafeEncodeString: no vowels


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_pod_active(pod: Obj) -> bool:
    """Counts toward a controller's replicas: not Succeeded/Failed, not being deleted."""
    return not is_terminal(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def condition(obj: Obj, kind: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def is_pod_ready(pod: Obj) -> bool:
    c = condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def ready_since(pod: Obj) -> dt.datetime | None:
    c = condition(pod, "Ready")
    if c is None or c.get("status") != "True":
        return None
    return parse_time(c.get("lastTransitionTime"))


def is_pod_available(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> bool:
    """Ready, and (with ``minReadySeconds``) ready for at least that long."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + dt.timedelta(seconds=min_ready_seconds) <= now


def set_condition(status: Obj, kind: str, value: str, reason: str, message: str,
                  now: str) -> bool:
    """Set condition ``kind`` in ``status`` (a dict being built); the transition time moves
    only when the status value changes.  True if anything changed."""
    conds: list[Obj] = status.setdefault("conditions", [])
    for c in conds:
        if c.get("type") == kind:
            if (c.get("status"), c.get("reason"), c.get("message")) == (value, reason, message):
                return False
            if c.get("status") != value:
                c["lastTransitionTime"] = now
            c.update(status=value, reason=reason, message=message, lastUpdateTime=now)
            return True
    conds.append({"type": kind, "status": value, "reason": reason, "message": message,
                  "lastUpdateTime": now, "lastTransitionTime": now})
    return True


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """A stable short hash of a pod template (the ``pod-template-hash`` label value): FNV-1a
    style over canonical JSON, rendered in apimachinery's safe alphabet.  Different ketch
    versions agree; it need not equal Kubernetes' (which hashes Go's printing of the struct)."""
    blob = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        blob += str(collision_count).encode()
    value = int.from_bytes(hashlib.blake2s(blob, digest_size=4).digest(), "big")
    out = []
    for _ in range(10):
        out.append(_SAFE[value % len(_SAFE)])
        value //= len(_SAFE)
        if not value:
            break
    return "".join(out)


def pod_from_template(template: Obj, owner: Obj, *, name: str = "",
                      generate_name: str = "", extra_labels: Obj | None = None) -> Obj:
    """A new pod from ``template`` controlled by ``owner`` (labels, annotations, finalizers
    and spec copied; the caller's template is not changed)."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {"labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
                 "ownerReferences": [controller_ref(owner)]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name
    ns = (owner.get("metadata") or {}).get("namespace")
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}
