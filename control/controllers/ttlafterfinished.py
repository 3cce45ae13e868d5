"""The ttl-after-finished controller: delete a finished Job ``ttlSecondsAfterFinished``
after it finished (kubernetes ``pkg/controller/ttlafterfinished``).

A Job is finished when its Complete or Failed condition is True; it finished at that
condition's lastTransitionTime.  Before deleting, the Job is read again from the apiserver
(the TTL may have been changed since the cache saw it) and deleted with propagationPolicy
Foreground, preconditioned on its uid, so its pods go first and a new Job of the same name
is never touched.  A Job whose time has not come is looked at again when it will have; the
injected clock decides.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from control.api.clock import parse_time
from control.api.errors import NotFound
from control.client import resources as R

from .base import Controller, ControllerContext
from .jobutil import find_condition, finished_type

__all__ = ["TTLAfterFinishedController", "expires_at"]

log = logging.getLogger("ketch.controllers.ttlafterfinished")

Obj = dict[str, Any]


def _needs_cleanup(job: Obj) -> bool:
    return (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None \
        and finished_type(job) is not None


def expires_at(job: Obj) -> dt.datetime | None:
    """When a finished Job with a TTL may be deleted; None if it has no TTL, has not
    finished, or its finishing condition carries no time (``jobFinishTime``'s error)."""
    kind = finished_type(job)
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if kind is None or ttl is None:
        return None
    cond = find_condition((job.get("status") or {}).get("conditions") or (), kind)
    finished = parse_time((cond or {}).get("lastTransitionTime"))
    if finished is None:
        return None
    return finished + dt.timedelta(seconds=int(ttl))


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informer(R.JOBS)
        self.jobs.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n))

    def primary(self) -> Any:
        return self.jobs

    def _changed(self, job: Obj) -> None:
        if not (job.get("metadata") or {}).get("deletionTimestamp") and _needs_cleanup(job):
            self.enqueue(job)

    def _left(self, job: Obj) -> float | None:
        """Seconds until ``job`` expires (<= 0: expired); None if it never will."""
        if (job.get("metadata") or {}).get("deletionTimestamp") or not _needs_cleanup(job):
            return None
        at = expires_at(job)
        if at is None:
            log.warning("job %s: unable to find the time when it finished",
                        (job.get("metadata") or {}).get("name"))
            return None
        return (at - self.clock.now()).total_seconds()

    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.cache.get(key)
        if job is None:
            return None
        left = self._left(job)
        if left is None:
            return None
        if left > 0:
            return left
        meta = job["metadata"]
        try:  # the cached TTL may be stale: decide on the live object
            fresh = await self.client.get(R.JOBS, meta["name"], meta.get("namespace", ""))
        except NotFound:
            return None
        left = self._left(fresh)
        if left is None:
            return None
        if left > 0:
            return left
        fmeta = fresh["metadata"]
        try:
            await self.client.delete(R.JOBS, fmeta["name"], fmeta.get("namespace", ""),
                                     propagation_policy="Foreground",
                                     preconditions={"uid": fmeta.get("uid", "")})
        except NotFound:
            pass
        return None
