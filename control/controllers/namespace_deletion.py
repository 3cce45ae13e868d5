"""Emptying a namespace being deleted, and the status conditions that say why it is not gone
yet (kubernetes ``pkg/controller/namespace/deletion``: ``namespaced_resources_deleter.go``,
``status_condition_utils.go``).

:func:`delete_all_content` discovers every namespaced kind the apiservers serve, deletes each
kind's objects in the namespace (``deletecollection`` with background propagation, or one by
one where that verb is not served), lists what is left, and returns a :class:`ContentReport`:
an estimate of the seconds until the rest is gone (the longest pod grace period still running,
or 15 s for content held by finalizers), what remains by kind and by finalizer, and the
errors.  :func:`updated_conditions` turns a report into the namespace's five deletion
conditions, Kubernetes' reasons and messages included, so ``kubectl describe ns`` names the
kind or finalizer a stuck namespace waits for.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from control.api.clock import parse_time
from control.api.errors import APIError, MethodNotAllowed, NotFound
from control.client import ApiClient
from control.client import resources as R
from control.client.discovery import DiscoveredResource, preferred_resources

__all__ = [
    "CONDITION_TYPES",
    "FINALIZER_ESTIMATE",
    "ContentReport",
    "delete_all_content",
    "updated_conditions",
]

Obj = dict[str, Any]

#: Assumed seconds for finalizers to finish on content still pending deletion.
FINALIZER_ESTIMATE = 15

DISCOVERY = "NamespaceDeletionDiscoveryFailure"
PARSING = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
REMAINING = "NamespaceContentRemaining"
FINALIZERS = "NamespaceFinalizersRemaining"
CONDITION_TYPES = (DISCOVERY, PARSING, CONTENT_FAILURE, REMAINING, FINALIZERS)

_OK: dict[str, tuple[str, str]] = {
    DISCOVERY: ("ResourcesDiscovered", "All resources successfully discovered"),
    PARSING: ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    CONTENT_FAILURE: ("ContentDeleted",
                      "All content successfully deleted, may be waiting on finalization"),
    REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS: ("ContentRemoved", "All content successfully removed"),
}


@dataclass
class ContentReport:
    estimate: int = 0
    #: ``resource.group`` → objects left.
    remaining: dict[str, int] = field(default_factory=dict)
    #: finalizer → objects it holds.
    finalizers: dict[str, int] = field(default_factory=dict)
    discovery_error: str = ""
    errors: list[str] = field(default_factory=list)

    def failures(self) -> dict[str, tuple[str, str]]:
        """The conditions that are True, as type → (reason, message)."""
        out: dict[str, tuple[str, str]] = {}
        if self.discovery_error:
            out[DISCOVERY] = ("DiscoveryFailed", self.discovery_error)
        if self.errors:
            msgs = sorted(self.errors)
            message = (f"Failed to delete all resource types, {len(msgs)} remaining: "
                       f"{', '.join(msgs)}")
            out[CONTENT_FAILURE] = ("ContentDeletionFailed", message)
        if self.remaining:
            parts = sorted(f"{k} has {n} resource instances"
                           for k, n in self.remaining.items() if n)
            out[REMAINING] = ("SomeResourcesRemain",
                              f"Some resources are remaining: {', '.join(parts)}")
        if self.finalizers:
            parts = sorted(f"{k} in {n} resource instances"
                           for k, n in self.finalizers.items() if n)
            out[FINALIZERS] = ("SomeFinalizerRemain",
                               f"Some finalizers are remaining: {', '.join(parts)}")
        return out


def updated_conditions(status: Obj, report: ContentReport, now: str) -> tuple[Obj, bool]:
    """``status`` (copied) with the five deletion conditions set from ``report``: True with
    the failure's reason, else False with the "ok" one; lastTransitionTime moves only when
    the status does.  (new status, whether anything changed)."""
    out = copy.deepcopy(status)
    conditions: list[Obj] = out.setdefault("conditions", [])
    failures = report.failures()
    changed = False
    for kind in CONDITION_TYPES:
        state = "True" if kind in failures else "False"
        reason, message = failures.get(kind) or _OK[kind]
        old = next((c for c in conditions if c.get("type") == kind), None)
        if old is None:
            conditions.append({"type": kind, "status": state, "lastTransitionTime": now,
                               "reason": reason, "message": message})
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != (
                state, reason, message):
            if old.get("status") != state:
                old["lastTransitionTime"] = now
            old.update(status=state, reason=reason, message=message)
            changed = True
    return out, changed


async def delete_all_content(client: ApiClient, namespace: Obj, now: dt.datetime
                             ) -> ContentReport:
    """Delete everything in ``namespace`` (an object being deleted); what is left."""
    name = namespace["metadata"]["name"]
    deleted_at = parse_time(namespace["metadata"].get("deletionTimestamp")) or now
    report = ContentReport()
    discovered = await preferred_resources(client)
    if discovered.failed:
        report.discovery_error = discovered.failure_message()
    for d in discovered.resources:
        if not d.resource.namespaced or not d.supports("delete"):
            continue
        try:
            await _delete_kind(client, d, name, deleted_at, now, report)
        except APIError as e:
            report.errors.append(str(e))
    return report


async def _delete_kind(client: ApiClient, d: DiscoveredResource, ns: str,
                       deleted_at: dt.datetime, now: dt.datetime, report: ContentReport) -> None:
    res = d.resource
    estimate = 0
    if (res.group, res.plural) == ("", "pods"):
        estimate = await _pod_grace_estimate(client, ns, deleted_at, now)
    background = {"apiVersion": "v1", "kind": "DeleteOptions",
                  "propagationPolicy": "Background"}
    if d.supports("deletecollection"):
        try:
            await client.request("DELETE", res.path(ns), body=background, what=str(res),
                                 safe=True)
        except (MethodNotAllowed, NotFound):
            await _delete_each(client, d, ns)
    else:
        await _delete_each(client, d, ns)
    if not d.supports("list"):
        report.estimate = max(report.estimate, estimate)
        return
    items, _ = await client.list_all(res, ns)
    if not items:
        return
    held: dict[str, int] = {}
    for item in items:
        for f in (item.get("metadata") or {}).get("finalizers") or ():
            held[f] = held.get(f, 0) + 1
    report.remaining[f"{res.plural}.{res.group}"] = len(items)
    for f, n in held.items():
        report.finalizers[f] = report.finalizers.get(f, 0) + n
    if estimate:
        report.estimate = max(report.estimate, estimate)
    elif held:
        report.estimate = max(report.estimate, FINALIZER_ESTIMATE)
    else:
        report.errors.append(f"unexpected items still remain in namespace: {ns} for gvr: "
                             f"{{{res.group} {res.version} {res.plural}}}")


async def _delete_each(client: ApiClient, d: DiscoveredResource, ns: str) -> None:
    if not d.supports("list"):
        return
    items, _ = await client.list_all(d.resource, ns)
    for item in items:
        try:
            await client.delete(d.resource, item["metadata"]["name"], ns,
                                propagation_policy="Background")
        except (NotFound, MethodNotAllowed):
            pass


async def _pod_grace_estimate(client: ApiClient, ns: str, deleted_at: dt.datetime,
                              now: dt.datetime) -> int:
    """The longest grace period of a pod still running in ``ns``; 0 once that long has
    passed since the namespace's deletion (kube's estimateGracefulTermination)."""
    pods, _ = await client.list_all(R.PODS, ns)
    estimate = 0
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        if isinstance(grace, int) and grace > estimate:
            estimate = grace
    if (now - deleted_at).total_seconds() >= estimate:
        return 0
    return estimate
