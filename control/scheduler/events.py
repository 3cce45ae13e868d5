"""Informer events into the scheduler's cache and queue (kube-scheduler's ``eventhandlers.go``).

* a pod with ``spec.nodeName`` is placed in the cache (this confirms an assumed bind) and
  leaves the queue; a pending pod for this scheduler (``spec.schedulerName``) is queued; a
  finished pod (Succeeded/Failed) is treated as gone;
* a node is (re)cached, and the queue is told which kind of change it was — added,
  allocatable, labels, taints/readiness, cordon lifted — so only the pods it could help move;
  a heartbeat that changes none of that touches nothing (no cache invalidation);
* Services, ReplicaSets and StatefulSets change the default spreading selectors; namespace
  labels change what ``namespaceSelector`` terms select.

Handlers only update in-memory state and set ``wake``; they never do I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .algorithm import Algorithm
from .cache import SchedulerCache
from .queue import SchedulingQueue

__all__ = ["EventRouter"]

Obj = dict[str, Any]
_DONE = ("Succeeded", "Failed")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _uid(obj: Mapping[str, Any]) -> str:
    meta = _meta(obj)
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def _node_name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("nodeName") or "")


def _finished(obj: Mapping[str, Any]) -> bool:
    return (obj.get("status") or {}).get("phase") in _DONE


def _node_facets(node: Mapping[str, Any]) -> tuple[Any, ...]:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or ()
                  if isinstance(c, Mapping) and c.get("type") == "Ready"), None)
    return (status.get("allocatable"), _meta(node).get("labels"), spec.get("taints"),
            bool(spec.get("unschedulable")), ready)


class EventRouter:
    def __init__(self, cache: SchedulerCache, queue: SchedulingQueue, algorithm: Algorithm, *,
                 scheduler_name: str = "default-scheduler",
                 wake: Callable[[], None] = lambda: None) -> None:
        self.cache, self.queue, self.algorithm = cache, queue, algorithm
        self.scheduler_name = scheduler_name
        self.wake = wake

    def _mine(self, pod: Mapping[str, Any]) -> bool:
        name = (pod.get("spec") or {}).get("schedulerName") or "default-scheduler"
        return bool(name == self.scheduler_name)

    # --- pods -----------------------------------------------------------------------------

    def pod_added(self, pod: Obj) -> None:
        uid = _uid(pod)
        if _node_name(pod):
            self.queue.delete(uid)
            if _finished(pod):
                self._pod_gone(uid)
                return
            self.cache.add_pod(pod)
            self.queue.on_event("AssignedPodAdd")
        elif self._mine(pod) and not _meta(pod).get("deletionTimestamp") and not _finished(pod):
            info = self.cache.pod_info(pod)
            self.cache.nominate(info, info.nominated_node)
            self.queue.add(info)
        self.wake()

    def pod_updated(self, old: Obj, new: Obj) -> None:
        if old is new:
            return  # a resync: nothing changed
        if not _node_name(new):
            if not self._mine(new) or _meta(new).get("deletionTimestamp") or _finished(new):
                self.queue.delete(_uid(new))
                self.cache.nominate(self.cache.pod_info(new), "")
            else:
                info = self.cache.pod_info(new)
                self.cache.nominate(info, info.nominated_node)
                self.queue.update(info)
            self.wake()
            return
        uid = _uid(new)
        self.queue.delete(uid)
        if _finished(new):
            self._pod_gone(uid)
            return
        had = self.cache.placed(uid)
        self.cache.add_pod(new)
        if had is None or had[2]:
            self.queue.on_event("AssignedPodAdd")
        elif _meta(old).get("labels") != _meta(new).get("labels"):
            self.queue.on_event("AssignedPodUpdate")
        self.wake()

    def pod_deleted(self, pod: Obj) -> None:
        uid = _uid(pod)
        self.queue.delete(uid)
        self._pod_gone(uid)

    def _pod_gone(self, uid: str) -> None:
        if self.cache.remove_pod(uid) is not None:
            self.queue.on_event("AssignedPodDelete")
            self.wake()

    # --- nodes ----------------------------------------------------------------------------

    def node_added(self, node: Obj) -> None:
        self.cache.set_node(node)
        self.queue.on_event("NodeAdd")
        self.wake()

    def node_updated(self, old: Obj, new: Obj) -> None:
        if old is new:
            return
        before, after = _node_facets(old), _node_facets(new)
        if before == after:
            self.cache.refresh_node(new)
            return
        self.cache.set_node(new)
        events = []
        if before[0] != after[0]:
            events.append("NodeAllocatable")
        if before[1] != after[1]:
            events.append("NodeLabel")
        if before[2] != after[2] or before[4] != after[4]:
            events.append("NodeTaint")
        if before[3] and not after[3]:
            events.append("NodeSchedulable")
        for event in events:
            self.queue.on_event(event)
        self.wake()

    def node_deleted(self, node: Obj) -> None:
        self.cache.remove_node(str(_meta(node).get("name") or ""))

    # --- what selectors read ----------------------------------------------------------------

    def namespace_changed(self, old: Obj | None, new: Obj | None) -> None:
        obj = new or old or {}
        labels = _meta(new).get("labels") if new is not None else None
        if old is not None and new is not None and _meta(old).get("labels") == labels:
            return
        self.cache.set_namespace(str(_meta(obj).get("name") or ""),
                                 labels if new is not None else None)
        self.queue.on_event("NamespaceLabel")
        self.wake()

    def selectors_changed(self, old: Obj | None, new: Obj | None) -> None:
        """A Service, ReplicaSet or StatefulSet came, went, or changed its selector."""
        if old is not None and new is not None and \
                (old.get("spec") or {}).get("selector") == (new.get("spec") or {}).get("selector"):
            return
        self.algorithm.invalidate_default_selectors()
