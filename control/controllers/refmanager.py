"""Claiming dependents by controller reference (kubernetes ``controller_ref_manager.go``):
which of the objects a controller's selector matches it controls, adopting orphans and
releasing what no longer matches.

Shared by the DaemonSet and StatefulSet controllers for their pods and ControllerRevisions.
Adoption happens only after a fresh read (not the cache) shows the owner is not being
deleted (kubernetes#42639), at most once per claim.  Every patch carries the dependent's uid
and resourceVersion, so an object that changed since the cache saw it is left for the next
reconcile (whose informer event the change itself causes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from control.api.errors import Conflict, Invalid, NotFound
from control.api.objects import meta as _meta
from control.api.selectors import LabelSelector
from control.client import ApiClient, Resource

from .owners import controller_of, controller_ref

__all__ = ["RefManager", "owner_still_there"]

Obj = dict[str, Any]



async def owner_still_there(client: ApiClient, res: Resource, owner: Obj) -> bool:
    """A fresh read: the owner exists with the same uid and is not being deleted."""
    meta = _meta(owner)
    try:
        fresh = await client.get(res, meta.get("name", ""), meta.get("namespace", ""))
    except NotFound:
        return False
    return _meta(fresh).get("uid") == meta.get("uid") and not _meta(fresh).get(
        "deletionTimestamp")


class RefManager:
    """Claims objects of ``res`` for ``owner``: ``selector`` and ``accept`` (an extra filter,
    such as a StatefulSet's pod names) must both hold for an object to be claimed."""

    def __init__(self, client: ApiClient, res: Resource, owner: Obj, selector: LabelSelector,
                 *, owner_res: Resource, accept: Callable[[Obj], bool] | None = None) -> None:
        self.client = client
        self.res = res
        self.owner = owner
        self.selector = selector
        self.owner_res = owner_res
        self.accept = accept
        self._can_adopt: bool | None = None

    def _matches(self, obj: Obj) -> bool:
        return self.selector.matches(_meta(obj).get("labels") or {}) and (
            self.accept is None or self.accept(obj))

    async def can_adopt(self) -> bool:
        if self._can_adopt is None:
            self._can_adopt = await owner_still_there(self.client, self.owner_res, self.owner)
        return self._can_adopt

    async def claim(self, candidates: Iterable[Obj]) -> list[Obj]:
        """The candidates this owner controls after adoption and release (``ClaimObject``).
        Objects controlled by someone else are ignored."""
        uid = _meta(self.owner).get("uid")
        deleting = bool(_meta(self.owner).get("deletionTimestamp"))
        ns = _meta(self.owner).get("namespace", "")
        claimed: list[Obj] = []
        for obj in candidates:
            ref = controller_of(obj)
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if self._matches(obj):
                    claimed.append(obj)
                elif not deleting:
                    await self.release(obj)
                continue
            if deleting or not self._matches(obj) or _meta(obj).get("deletionTimestamp"):
                continue
            if _meta(obj).get("namespace", "") != ns:
                continue
            if not await self.can_adopt():
                continue
            adopted = await self.adopt(obj)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def adopt(self, obj: Obj) -> Obj | None:
        meta = _meta(obj)
        refs = [*(meta.get("ownerReferences") or []), controller_ref(self.owner)]
        patch = {"metadata": {"ownerReferences": refs, "uid": meta.get("uid"),
                              "resourceVersion": meta.get("resourceVersion")}}
        try:
            return await self.client.patch(self.res, meta["name"], patch,
                                           meta.get("namespace", ""))
        except (NotFound, Conflict):
            return None  # gone or changed: the next reconcile sees the new state

    async def release(self, obj: Obj) -> None:
        meta = _meta(obj)
        uid = _meta(self.owner).get("uid")
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != uid]
        patch = {"metadata": {"ownerReferences": refs or None, "uid": meta.get("uid"),
                              "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.client.patch(self.res, meta["name"], patch, meta.get("namespace", ""))
        except (NotFound, Conflict, Invalid):
            pass
