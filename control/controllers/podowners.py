"""Pod informer handlers for controllers whose objects own pods by controller reference
(ReplicaSet, DaemonSet, StatefulSet): kube's ``addPod``/``updatePod``/``deletePod``.

A pod with a controller reference to one of ours enqueues that owner (and counts toward its
expectations); an orphan enqueues every owner whose selector matches it (for adoption); a pod
that starts being deleted counts as deleted; a pod becoming ready is looked at again after the
owner's ``minReadySeconds``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from control.api.objects import meta, spec_selector
from control.client import Informer, Resource, object_key

from .base import Controller
from .owners import controller_of
from .podutil import is_pod_ready

__all__ = ["PodOwnerController"]

Obj = dict[str, Any]


class PodOwnerController(Controller):
    """Subclasses set :attr:`resource`, create ``self.sets`` (their objects' informer) and
    register :meth:`pod_added`, :meth:`pod_updated`, :meth:`pod_deleted` on the pods'."""

    resource: ClassVar[Resource]
    #: Whether pod creations and deletions are counted in expectations (StatefulSets
    #: create pods one at a time by name and need none).
    tracks_expectations: ClassVar[bool] = True
    sets: Informer

    def owner_key(self, pod: Obj) -> str | None:
        """The key of the object of ours that controls ``pod``, if it still exists (same
        uid)."""
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != self.resource.kind:
            return None
        owner = self.sets.cache.get_by(meta(pod).get("namespace", ""), ref.get("name", ""))
        if owner is None or meta(owner).get("uid") != ref.get("uid"):
            return None
        return object_key(owner)

    def matching_owners(self, pod: Obj) -> list[str]:
        """Keys of our objects in the pod's namespace whose selector matches it."""
        labels = meta(pod).get("labels") or {}
        keys = []
        for owner in self.sets.cache.by_index("namespace", meta(pod).get("namespace", "")):
            sel = spec_selector(owner)
            if sel is not None and not sel.empty and sel.matches(labels):
                keys.append(object_key(owner))
        return keys

    def pod_added(self, pod: Obj) -> None:
        if meta(pod).get("deletionTimestamp"):
            self.pod_deleted(pod)
            return
        key = self.owner_key(pod)
        if key is not None:
            if self.tracks_expectations:
                self.expectations.creation_observed(key)
            self.enqueue(key)
        elif controller_of(pod) is None:
            for k in self.matching_owners(pod):
                self.enqueue(k)

    def pod_updated(self, old: Obj, new: Obj) -> None:
        if old is new:  # a resync
            return
        if meta(new).get("deletionTimestamp"):
            self.pod_deleted(new)
            return
        old_ref, new_ref = controller_of(old), controller_of(new)
        if old_ref != new_ref and old_ref is not None and (k := self.owner_key(old)):
            self.enqueue(k)
        key = self.owner_key(new)
        if key is not None:
            self.enqueue(key)
            owner = self.sets.cache.get(key) or {}
            mrs = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
            if mrs > 0 and is_pod_ready(new) and not is_pod_ready(old):
                self.enqueue_after(key, mrs + 1)
        elif new_ref is None and (old_ref is not None or
                                  meta(old).get("labels") != meta(new).get("labels")):
            for k in self.matching_owners(new):
                self.enqueue(k)

    def pod_deleted(self, pod: Obj) -> None:
        key = self.owner_key(pod)
        if key is not None:
            if self.tracks_expectations:
                self.expectations.deletion_observed(key, object_key(pod))
            self.enqueue(key)
