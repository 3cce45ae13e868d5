"""Claiming dependents by selector (apimachinery ``ControllerRefManager.ClaimObject``): a
controller keeps what it controls and still selects, releases what it controls but no longer
selects, and adopts matching orphans — for any owner and dependent kind (a Deployment's
ReplicaSets; a DaemonSet's or StatefulSet's ControllerRevisions).

Every ownerReferences change is a merge patch guarded by the dependent's uid and
resourceVersion, so a dependent that changed since it was read is left for the next pass
(its own event brings the owner back).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from control.api.errors import Conflict, NotFound
from control.api.objects import meta as _meta
from control.api.selectors import LabelSelector
from control.client import ApiClient, Resource

from .owners import controller_of

__all__ = ["claim", "set_owner_references"]

Obj = dict[str, Any]



async def set_owner_references(client: ApiClient, res: Resource, obj: Obj,
                               refs: list[Obj]) -> Obj | None:
    """``obj`` with ``refs`` as its owner references; None when it is gone or changed."""
    meta = _meta(obj)
    patch = {"metadata": {"ownerReferences": refs or None, "uid": meta.get("uid"),
                          "resourceVersion": meta.get("resourceVersion")}}
    try:
        out: Obj = await client.patch(res, meta["name"], patch, meta["namespace"])
        return out
    except (NotFound, Conflict):
        return None


async def claim(client: ApiClient, res: Resource, owner: Obj, selector: LabelSelector,
                candidates: Iterable[Obj], *, owner_ref: Obj,
                can_adopt: Callable[[], Awaitable[bool]]) -> list[Obj]:
    """The ``candidates`` (objects of ``res`` in the owner's namespace) that ``owner``
    controls after releasing and adopting.  An owner being deleted releases and adopts
    nothing; ``can_adopt`` (a fresh read of the owner, not the cache) is asked once, before
    the first adoption."""
    uid, deleting = _meta(owner).get("uid"), bool(_meta(owner).get("deletionTimestamp"))
    claimed: list[Obj] = []
    adoptable: bool | None = None
    for obj in candidates:
        ref, matches = controller_of(obj), selector.matches(_meta(obj).get("labels") or {})
        refs = list(_meta(obj).get("ownerReferences") or ())
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                claimed.append(obj)
            elif not deleting:
                await set_owner_references(client, res, obj,
                                           [r for r in refs if r.get("uid") != uid])
            continue
        if deleting or not matches or _meta(obj).get("deletionTimestamp"):
            continue
        if adoptable is None:
            adoptable = await can_adopt()
        if adoptable:
            adopted = await set_owner_references(client, res, obj, [*refs, owner_ref])
            if adopted is not None:
                claimed.append(adopted)
    return claimed
