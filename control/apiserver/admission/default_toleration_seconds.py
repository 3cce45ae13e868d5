"""DefaultTolerationSeconds: a pod that does not say otherwise stays on a NotReady or
unreachable node for five minutes before the node lifecycle controller evicts it.

On pod create and update (the pod itself, not a subresource) it appends a NoExecute toleration
with ``tolerationSeconds: 300`` for ``node.kubernetes.io/not-ready`` and for
``node.kubernetes.io/unreachable``, unless the pod already tolerates that taint: a toleration
whose key is that taint's or empty (empty matches every key) and whose effect is NoExecute or
empty (every effect).  The apiserver's ``--default-not-ready-toleration-seconds`` and
``--default-unreachable-toleration-seconds`` (kube-apiserver's flags) set the two values.
"""

from __future__ import annotations

from typing import Any

from control.apiserver.admission.request import CREATE, UPDATE, AdmissionRequest, ClusterView

__all__ = ["DEFAULT_TOLERATION_SECONDS", "NOT_READY", "UNREACHABLE", "DefaultTolerationSeconds"]

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300


class DefaultTolerationSeconds:
    name = "DefaultTolerationSeconds"

    def __init__(self, *, seconds: int = DEFAULT_TOLERATION_SECONDS,
                 unreachable_seconds: int | None = None) -> None:
        self._seconds = {NOT_READY: seconds, UNREACHABLE: seconds if unreachable_seconds is None
                         else unreachable_seconds}

    async def admit(self, req: AdmissionRequest, view: ClusterView) -> None:
        if (req.group, req.resource, req.subresource) != ("", "pods", "") or req.obj is None:
            return
        if req.operation not in (CREATE, UPDATE):
            return
        spec = req.obj.setdefault("spec", {})
        tolerations = list(spec.get("tolerations") or [])
        added = [
            {"key": key, "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": self._seconds[key]}
            for key in (NOT_READY, UNREACHABLE)
            if not any(_tolerates(t, key) for t in tolerations)
        ]
        if added:
            spec["tolerations"] = tolerations + added


def _tolerates(toleration: dict[str, Any], key: str) -> bool:
    return (toleration.get("key", "") in ("", key)
            and toleration.get("effect", "") in ("", "NoExecute"))
