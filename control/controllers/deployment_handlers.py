"""What brings a Deployment back to the Deployment controller's queue (kubernetes
``deployment_controller.go`` handlers): any change to it; a change to a ReplicaSet it controls
(also to the one that controlled it before, when the controller reference moved) or, for an
orphan, to every Deployment whose selector matches; and for a Recreate Deployment, the
deletion of one of its pods.  Handlers only enqueue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.api.objects import meta as _meta
from control.api.selectors import LabelSelector, SelectorError, from_label_selector
from control.client import Informer, object_key

from .owners import controller_of
from .written import WrittenVersions

__all__ = ["DeploymentHandlers", "selector_of"]

Obj = dict[str, Any]



def selector_of(d: Obj) -> LabelSelector | None:
    """A Deployment's selector; None when it is invalid."""
    try:
        return from_label_selector((d.get("spec") or {}).get("selector") or {})
    except SelectorError:
        return None


class DeploymentHandlers:
    """Mixed into the controller, which provides the informers, ``written`` and
    ``enqueue``."""

    deployments: Informer
    sets: Informer
    written: WrittenVersions

    if TYPE_CHECKING:
        def enqueue(self, obj: Obj | str) -> None: ...

    def _owner(self, obj: Obj) -> Obj | None:
        """The Deployment that controls ``obj`` (a ReplicaSet), if it exists with that uid."""
        ref = controller_of(obj)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.deployments.cache.get_by(_meta(obj).get("namespace", ""), ref.get("name", ""))
        return d if d is not None and _meta(d).get("uid") == ref.get("uid") else None

    def _matching(self, rs: Obj) -> list[Obj]:
        labels = _meta(rs).get("labels") or {}
        out = []
        for d in self.deployments.cache.by_index("namespace", _meta(rs).get("namespace", "")):
            sel = selector_of(d)
            if sel is not None and not sel.empty and sel.matches(labels):
                out.append(d)
        return out

    def _rs_added(self, rs: Obj) -> None:
        if _meta(rs).get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        owner = self._owner(rs)
        if owner is not None:
            self.enqueue(owner)
        elif controller_of(rs) is None:
            for d in self._matching(rs):
                self.enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        old_ref, new_ref = controller_of(old), controller_of(new)
        if old_ref != new_ref and old_ref is not None and (was := self._owner(old)):
            self.enqueue(was)
        if new_ref is not None:
            if (owner := self._owner(new)) is not None:
                self.enqueue(owner)
        elif _meta(old).get("labels") != _meta(new).get("labels") or old_ref != new_ref:
            for d in self._matching(new):
                self.enqueue(d)

    def _rs_deleted(self, rs: Obj) -> None:
        owner = self._owner(rs)
        if owner is not None:
            self.written.gone(object_key(owner), object_key(rs))
            self.enqueue(owner)

    def _pod_deleted(self, pod: Obj) -> None:
        """A Recreate rollout waits for the old pods to be gone."""
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.sets.cache.get_by(_meta(pod).get("namespace", ""), ref.get("name", ""))
        if rs is None or _meta(rs).get("uid") != ref.get("uid"):
            return
        d = self._owner(rs)
        if d is not None and ((d.get("spec") or {}).get("strategy") or {}).get(
                "type") == "Recreate":
            self.enqueue(d)
