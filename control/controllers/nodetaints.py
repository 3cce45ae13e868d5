"""The writes the node lifecycle controller makes: node taints, node labels, pods' Ready
condition (kubernetes ``pkg/controller/util/node/controller_utils.go`` and
``pkg/controller/controller_utils.go``: ``SwapNodeControllerTaint``, ``AddOrUpdateTaintOnNode``,
``RemoveTaintOffNode``, ``MarkPodsNotReady``).

Every write is guarded by the resourceVersion of the object it was computed from; on a 409 the
object is read again from the apiserver and the change recomputed, a few times.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from control.api.errors import APIError, Conflict, NotFound
from control.client import NORMAL, WARNING, ApiClient, Recorder
from control.client import resources as R

__all__ = ["mark_pods_not_ready", "patch_node", "status_change_event", "swap_taints"]

log = logging.getLogger("ketch.controllers.nodelifecycle")

Obj = dict[str, Any]
ATTEMPTS = 5


def _same(a: Obj, b: Obj) -> bool:
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


def _taints(node: Obj) -> list[Obj]:
    return [t for t in (node.get("spec") or {}).get("taints") or () if isinstance(t, dict)]


async def patch_node(client: ApiClient, node: Obj,
                     change: Callable[[Obj], Obj | None]) -> Obj | None:
    """Apply ``change(node) -> merge patch or None (nothing to do)`` guarded by the node's
    resourceVersion, re-reading the node after a conflict.  The node written (or the one that
    needed nothing); None when the node is gone."""
    for attempt in range(ATTEMPTS):
        patch = change(node)
        if patch is None:
            return node
        meta = node.get("metadata") or {}
        patch = {**patch, "metadata": {**patch.get("metadata", {}),
                                       "resourceVersion": meta.get("resourceVersion")}}
        try:
            written: Obj = await client.patch(R.NODES, meta.get("name", ""), patch)
            return written
        except Conflict:
            if attempt == ATTEMPTS - 1:
                raise
        except NotFound:
            return None
        try:
            node = await client.get(R.NODES, meta.get("name", ""))
        except NotFound:
            return None
    return None


async def swap_taints(client: ApiClient, node: Obj, add: list[Obj], remove: list[Obj],
                      now: str) -> Obj | None:
    """Make the node carry ``add`` (stamped ``timeAdded: now`` when new; one already there
    with the same key and effect is left as it is, so its ``timeAdded`` keeps counting) and
    not ``remove``.  The node as written; None if it is gone; raises APIError."""

    def change(n: Obj) -> Obj | None:
        have = _taints(n)
        kept = [t for t in have if not any(_same(t, r) for r in remove)]
        new = [{**t, "timeAdded": now} for t in add if not any(_same(t, h) for h in kept)]
        if len(kept) == len(have) and not new:
            return None
        return {"spec": {"taints": (kept + new) or None}}

    return await patch_node(client, node, change)


def _not_ready(pod: Obj, now: str) -> Obj | None:
    """A copy of ``pod`` with its Ready condition False, or None when it needs no change
    (no Ready condition, or already False)."""
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            if c.get("status") == "False":
                return None
            out = copy.deepcopy(pod)
            for oc in out["status"]["conditions"]:
                if oc.get("type") == "Ready":
                    oc["status"] = "False"
                    oc["lastTransitionTime"] = now
            return out
    return None


async def mark_pods_not_ready(client: ApiClient, recorder: Recorder, pods: list[Obj],
                              node_name: str, now: str) -> list[APIError]:
    """``MarkPodsNotReady``: set the Ready condition of the node's pods False (with a
    ``NodeNotReady`` event on each changed pod); the errors of the writes that failed."""
    errors: list[APIError] = []
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") != node_name:
            continue
        new = _not_ready(pod, now)
        if new is None:
            continue
        try:
            await client.update_status(R.PODS, new)
        except NotFound:
            continue
        except APIError as e:
            log.info("pod %s/%s: not marked NotReady: %s", (pod.get("metadata") or {}).get(
                "namespace"), (pod.get("metadata") or {}).get("name"), e)
            errors.append(e)
            continue
        recorder.event(pod, WARNING, "NodeNotReady", "Node is not ready")
    return errors


def status_change_event(recorder: Recorder, node: Obj, status: str) -> None:
    """``RecordNodeStatusChange``: a Normal event on the node named after its new status."""
    meta = node.get("metadata") or {}
    name = meta.get("name", "")
    ref = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "uid": meta.get("uid", "")}}
    recorder.event(ref, NORMAL, status, f"Node {name} status is now: {status}")


def node_event(recorder: Recorder, node: Obj, reason: str, event: str) -> None:
    """``RecordNodeEvent``: a Normal event on the node, ``Node NAME event: EVENT``."""
    meta = node.get("metadata") or {}
    name = meta.get("name", "")
    ref = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "uid": meta.get("uid", "")}}
    recorder.event(ref, NORMAL, reason, f"Node {name} event: {event}")
