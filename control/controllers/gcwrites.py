"""The garbage collector's reads and writes of one object (kubernetes
``pkg/controller/garbagecollector`` ``operations.go`` and ``patch.go``).

Every write is guarded: deletions by the node's uid (a re-created object of the same name is
never deleted for its predecessor), metadata patches by the uid and the resourceVersion of the
object just read, so a change made meanwhile fails with 409 and is read again.  NotFound means
the object is gone: done.
"""

from __future__ import annotations

import logging
from typing import Any

from control.api.errors import Conflict, NotFound
from control.client import ApiClient

from .gcgraph import Node

__all__ = ["delete", "live", "patch_meta", "release", "remove_finalizer",
           "remove_owner_refs", "unblock_owner_refs"]

log = logging.getLogger("ketch.controllers.garbagecollector")

Obj = dict[str, Any]
_ATTEMPTS = 5


async def live(client: ApiClient, node: Node) -> Obj | None:
    """``node``'s object read from the apiserver; None if it is gone or was replaced."""
    try:
        obj = await client.get(node.res, node.name, node.namespace)
    except NotFound:
        return None
    return obj if (obj.get("metadata") or {}).get("uid") == node.uid else None


async def delete(client: ApiClient, node: Node, policy: str) -> None:
    log.info("deleting %s with propagationPolicy %s", node, policy)
    try:
        await client.delete(node.res, node.name, node.namespace,
                            propagation_policy=policy, preconditions={"uid": node.uid})
    except NotFound:
        pass


async def patch_meta(client: ApiClient, node: Node, latest: Obj, changes: Obj) -> Obj | None:
    """Merge ``changes`` into ``latest``'s metadata, guarded by its uid and resourceVersion;
    the patched object, or None if it is gone."""
    meta = latest.get("metadata") or {}
    patch = {"metadata": {**changes, "uid": node.uid,
                          "resourceVersion": meta.get("resourceVersion")}}
    try:
        return await client.patch(node.res, node.name, patch, node.namespace)
    except NotFound:
        return None


async def remove_owner_refs(client: ApiClient, node: Node, latest: Obj, uids: set[str]) -> None:
    refs = [r for r in (latest.get("metadata") or {}).get("ownerReferences") or ()
            if r.get("uid") not in uids]
    await patch_meta(client, node, latest, {"ownerReferences": refs or None})


async def unblock_owner_refs(client: ApiClient, node: Node, latest: Obj) -> Obj:
    refs = [{**r, "blockOwnerDeletion": False} if r.get("blockOwnerDeletion") else r
            for r in (latest.get("metadata") or {}).get("ownerReferences") or ()]
    return await patch_meta(client, node, latest, {"ownerReferences": refs}) or latest


async def release(client: ApiClient, dep: Node, owner_uid: str) -> None:
    """Remove the reference to ``owner_uid`` from ``dep`` (read fresh, guarded by its
    resourceVersion; retried on conflict)."""
    for _ in range(_ATTEMPTS):
        latest = await live(client, dep)
        if latest is None or not any(r.get("uid") == owner_uid for r in (
                latest.get("metadata") or {}).get("ownerReferences") or ()):
            return
        try:
            await remove_owner_refs(client, dep, latest, {owner_uid})
            return
        except Conflict:
            continue
    raise Conflict(dep.res.plural, dep.name, group=dep.res.group)


async def remove_finalizer(client: ApiClient, node: Node, finalizer: str) -> None:
    """Remove ``finalizer`` from ``node``'s object (read fresh, guarded; retried on
    conflict)."""
    for _ in range(_ATTEMPTS):
        latest = await live(client, node)
        if latest is None:
            return
        finalizers = list((latest.get("metadata") or {}).get("finalizers") or ())
        if finalizer not in finalizers:
            return
        rest = [f for f in finalizers if f != finalizer]
        try:
            await patch_meta(client, node, latest, {"finalizers": rest or None})
            return
        except Conflict:
            continue
    raise Conflict(node.res.plural, node.name, group=node.res.group)
