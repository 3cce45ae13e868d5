"""A DaemonSet's ControllerRevisions (kubernetes ``pkg/controller/daemon/update.go``:
``constructHistory``, ``snapshot``, ``dedupCurHistories``, ``cleanupHistory``).

The current revision is the one whose data equals the DaemonSet's template patch; it gets
the highest revision number (a rollback renumbers an old one instead of copying it); its
``controller-revision-hash`` label is the hash new pods carry.  A name taken by a different
template bumps ``status.collisionCount`` (a resourceVersion-guarded status write) and the
sync is retried with the new hash.  Old revisions beyond ``revisionHistoryLimit`` are
deleted oldest first, except those some live pod still runs.
"""

from __future__ import annotations

import copy
from typing import Any

from control.api.errors import AlreadyExists, Conflict
from control.api.objects import meta as _meta
from control.client import ApiClient
from control.client import resources as R

from .history import (
    REVISION_LABEL,
    History,
    canonical,
    max_revision,
    sort_revisions,
    template_patch,
)
from .owners import controller_ref
from .podutil import template_hash

__all__ = ["DaemonSetHistory", "matches_template"]

Obj = dict[str, Any]



def matches_template(ds: Obj, revision: Obj) -> bool:
    """``Match``: the revision's data is the DaemonSet's current template patch."""
    return canonical(template_patch(ds)) == canonical(revision.get("data"))


def _collision_count(ds: Obj) -> int | None:
    value = (ds.get("status") or {}).get("collisionCount")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class DaemonSetHistory:
    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.history = History(client)

    async def construct(self, ds: Obj, revisions: list[Obj], pods: list[Obj]
                        ) -> tuple[Obj, list[Obj]]:
        """``(current, old)`` from the revisions the DaemonSet controls: labels the ones
        missing the hash label, creates the current revision or renumbers it to the top, and
        removes duplicates of it (relabelling their pods first)."""
        current: list[Obj] = []
        old: list[Obj] = []
        for rev in revisions:
            if REVISION_LABEL not in (_meta(rev).get("labels") or {}):
                fixed = copy.deepcopy(rev)
                fixed["metadata"].setdefault("labels", {})[REVISION_LABEL] = _meta(rev)["name"]
                rev = await self.client.update(R.CONTROLLERREVISIONS, fixed)
            (current if matches_template(ds, rev) else old).append(rev)
        number = max_revision(old) + 1
        if not current:
            return await self.snapshot(ds, number), old
        cur = await self._dedup(ds, current, pods)
        if int(cur.get("revision") or 0) < number:
            cur = await self.history.renumber(cur, number)
        return cur, old

    async def snapshot(self, ds: Obj, number: int) -> Obj:
        """Create the revision of the current template, named ``NAME-<template hash>``."""
        hash_ = template_hash((ds.get("spec") or {}).get("template") or {}, _collision_count(ds))
        meta = _meta(ds)
        labels = dict((((ds.get("spec") or {}).get("template") or {}).get("metadata") or {}
                       ).get("labels") or {})
        labels[REVISION_LABEL] = hash_
        rmeta: Obj = {"name": f"{meta['name']}-{hash_}", "namespace": meta["namespace"],
                      "labels": labels, "ownerReferences": [controller_ref(ds)]}
        if meta.get("annotations"):
            rmeta["annotations"] = dict(meta["annotations"])
        revision = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": rmeta,
                    "data": template_patch(ds), "revision": number}
        try:
            return await self.client.create(R.CONTROLLERREVISIONS, revision, meta["namespace"])
        except AlreadyExists:
            existing = await self.client.get(R.CONTROLLERREVISIONS, rmeta["name"],
                                             meta["namespace"])
            if matches_template(ds, existing):
                return existing
            await self._bump_collisions(ds)
            raise

    async def _bump_collisions(self, ds: Obj) -> None:
        """Another template holds the name: count a collision (on a fresh read, guarded by
        its resourceVersion, and only if the count this sync used is still current)."""
        meta = _meta(ds)
        fresh = await self.client.get(R.DAEMONSETS, meta["name"], meta["namespace"])
        if _collision_count(fresh) != _collision_count(ds):
            raise Conflict("daemonsets", meta["name"], group="apps", why=(
                f"found a stale collision count ({_collision_count(ds)}, expected "
                f"{_collision_count(fresh)}) while processing; will retry until it is updated"))
        status = dict(fresh.get("status") or {})
        status["collisionCount"] = (_collision_count(fresh) or 0) + 1
        await self.client.update_status(R.DAEMONSETS, {**fresh, "status": status})

    async def _dedup(self, ds: Obj, current: list[Obj], pods: list[Obj]) -> Obj:
        """Keep the highest-numbered of several equal revisions; move the pods to its hash
        label, then delete the others."""
        if len(current) == 1:
            return current[0]
        keep = sort_revisions(current)[-1]
        keep_hash = (_meta(keep).get("labels") or {}).get(REVISION_LABEL, "")
        for pod in pods:
            if (_meta(pod).get("labels") or {}).get(REVISION_LABEL) != keep_hash:
                pmeta = _meta(pod)
                await self.client.patch(R.PODS, pmeta["name"], {"metadata": {
                    "labels": {REVISION_LABEL: keep_hash},
                    "resourceVersion": pmeta.get("resourceVersion")}}, pmeta["namespace"])
        for rev in current:
            if rev is not keep:
                await self.history.delete(rev)
        return keep

    async def cleanup(self, ds: Obj, old: list[Obj], pods: list[Obj]) -> None:
        """Delete the oldest old revisions beyond ``revisionHistoryLimit`` that no pod runs."""
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        limit = limit if isinstance(limit, int) and limit >= 0 else 10
        excess = len(old) - limit
        if excess <= 0:
            return
        live = {h for p in pods if (h := (_meta(p).get("labels") or {}).get(REVISION_LABEL))}
        for rev in sort_revisions(old):
            if excess <= 0:
                break
            if (_meta(rev).get("labels") or {}).get(REVISION_LABEL) in live:
                continue
            await self.history.delete(rev)
            excess -= 1
