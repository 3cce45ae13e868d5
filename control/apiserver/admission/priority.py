"""Priority: a pod's priority comes from its PriorityClass, never from the pod itself.

Mutating, on pod create: ``spec.priorityClassName`` is resolved to ``spec.priority`` and
``spec.preemptionPolicy`` (a missing class is 403 ``no PriorityClass with name X was
found``); a pod naming no class gets the global default class (its name too), else priority 0
and PreemptLowerPriority.  A pod that sets ``spec.priority`` (or ``preemptionPolicy``) to
something else than the class gives is refused.  On pod update the stored values are kept
when the new object leaves them out (validation then forbids any change).
Validating, on PriorityClass create and update: at most one class is the global default.
Subresources are never looked at.  Semantics of kube-apiserver's ``Priority`` plugin.
"""

from __future__ import annotations

from typing import Any

from control.apiserver.admission.request import (
    CREATE,
    UPDATE,
    AdmissionRequest,
    ClusterView,
    forbidden,
)

__all__ = ["DEFAULT_PRIORITY", "Priority", "default_priority_class"]

#: The priority of a pod when no PriorityClass is the global default.
DEFAULT_PRIORITY = 0
_GROUP, _RESOURCE = "scheduling.k8s.io", "priorityclasses"


def default_priority_class(view: ClusterView) -> dict[str, Any] | None:
    """The global default PriorityClass; if a race made several, the lowest-valued one."""
    found: dict[str, Any] | None = None
    for pc in view.list(_GROUP, _RESOURCE):
        if pc.get("globalDefault") is True and (
                found is None or int(found.get("value", 0)) > int(pc.get("value", 0))):
            found = pc
    return found


class Priority:
    name = "Priority"

    async def admit(self, req: AdmissionRequest, view: ClusterView) -> None:
        if (req.group, req.resource) != ("", "pods") or req.subresource or req.obj is None:
            return
        spec = req.obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        if req.operation == UPDATE:
            old = (req.old_obj or {}).get("spec") or {}
            for f in ("priority", "preemptionPolicy"):
                if spec.get(f) is None and old.get(f) is not None:
                    spec[f] = old[f]
        elif req.operation == CREATE:
            await self._resolve(req, spec, view)

    async def _resolve(self, req: AdmissionRequest, spec: dict[str, Any],
                       view: ClusterView) -> None:
        name = spec.get("priorityClassName") or ""
        policy: Any
        if not name:
            pc = default_priority_class(view)
            if pc is None:
                priority, policy = DEFAULT_PRIORITY, "PreemptLowerPriority"
            else:
                name = pc["metadata"]["name"]
                priority, policy = int(pc.get("value", 0)), pc.get("preemptionPolicy")
        else:
            # a class created a moment ago may not have reached the watch cache yet
            pc = await view.get_fresh(_GROUP, _RESOURCE, "", str(name))
            if pc is None:
                raise forbidden(req, f"no PriorityClass with name {name} was found")
            priority, policy = int(pc.get("value", 0)), pc.get("preemptionPolicy")
        given = spec.get("priority")
        if given is not None and given != priority:
            raise forbidden(req, f"the integer value of priority ({given}) must not be provided "
                                 "in pod spec; priority admission controller computed "
                                 f"{priority} from the given PriorityClass name")
        given = spec.get("preemptionPolicy")
        if policy is not None and given is not None and given != policy:
            raise forbidden(req, f"the string value of PreemptionPolicy ({given}) must not be "
                                 "provided in pod spec; priority admission controller computed "
                                 f"{policy} from the given PriorityClass name")
        if name:
            spec["priorityClassName"] = name
        spec["priority"] = priority
        if policy is not None:
            spec["preemptionPolicy"] = policy

    async def validate(self, req: AdmissionRequest, view: ClusterView) -> None:
        if (req.group, req.resource) != (_GROUP, _RESOURCE) or req.subresource:
            return
        if req.operation not in (CREATE, UPDATE) or req.obj is None:
            return
        if req.obj.get("globalDefault") is not True:
            return
        current = default_priority_class(view)
        if current is None:
            return
        mine = (req.obj.get("metadata") or {}).get("name")
        if req.operation == CREATE or current["metadata"]["name"] != mine:
            raise forbidden(req, f"PriorityClass {current['metadata']['name']} is already "
                                 "marked as default. Only one default can exist")
