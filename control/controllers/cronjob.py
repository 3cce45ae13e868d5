"""The CronJob controller: start a Job for each time a schedule comes due (kubernetes
``pkg/controller/cronjob/cronjob_controllerv2.go``).

One reconcile per CronJob key (``sync`` then ``syncCronJob``):

1. **History**: finished Jobs beyond ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit``
   are deleted, oldest first.
2. **Active list**: Jobs it owns are reconciled with ``status.active`` — finished ones leave
   it (``SawCompletedJob``), ones it did not create are reported (``UnexpectedJob``), vanished
   ones are dropped after a live read confirms (``MissingJob``); the latest completion
   becomes ``status.lastSuccessfulTime``.
3. **Schedule** (not when suspended or being deleted): the most recent due time not yet
   started (:mod:`.cronjob_schedule`); too late for ``startingDeadlineSeconds`` →
   ``MissSchedule``; ``concurrencyPolicy`` Forbid skips while a Job is active, Replace deletes
   the active ones; then the Job ``<name>-<minutes since epoch>`` is created from the
   template with the ``batch.kubernetes.io/cronjob-scheduled-timestamp`` annotation, and
   ``status.active``/``lastScheduleTime`` record it.

Status is written once per reconcile, guarded by resourceVersion.  The reconcile asks to
look again just after the next due time.  A schedule that cannot be parsed or never fires
again, or an unknown time zone, is a Warning event — the key then rests until the CronJob
changes.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import zoneinfo
from typing import Any

from control.api.clock import format_time, parse_time
from control.api.errors import AlreadyExists, APIError, Forbidden, NotFound
from control.api.objects import meta as _meta
from control.client import NORMAL, WARNING, object_key
from control.client import resources as R

from .base import Controller, ControllerContext
from .cronjob_schedule import (
    CronSchedule,
    Missed,
    ScheduleError,
    job_name,
    local_zone,
    next_delay,
    next_schedule_time,
    parse,
    scheduled_annotation,
)
from .jobutil import finished_type
from .owners import controller_of, controller_ref, is_controlled_by

__all__ = ["SCHEDULED_TIMESTAMP", "CronJobController"]

log = logging.getLogger("ketch.controllers.cronjob")

Obj = dict[str, Any]
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"



def _uid(o: Obj) -> str:
    return str(_meta(o).get("uid", ""))


def _active(cj: Obj) -> list[Obj]:
    active: list[Obj] = cj.setdefault("status", {}).setdefault("active", [])
    return active


def _drop_active(cj: Obj, uid: str) -> None:
    status = cj.setdefault("status", {})
    status["active"] = [r for r in status.get("active") or () if r.get("uid") != uid]


def _job_ref(job: Obj) -> Obj:
    meta = _meta(job)
    return {"kind": "Job", "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
            "uid": meta.get("uid", ""), "apiVersion": "batch/v1",
            "resourceVersion": meta.get("resourceVersion", "")}


def _by_start_time(job: Obj) -> tuple[bool, dt.datetime, str]:
    start = parse_time((job.get("status") or {}).get("startTime"))
    return (start is None, start or dt.datetime.max.replace(tzinfo=dt.UTC),
            _meta(job).get("name", ""))


def _rfc1123z(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


class CronJobController(Controller):
    name = "cronjob"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.cronjobs = ctx.informer(R.CRONJOBS)
        self.jobs = ctx.informer(R.JOBS)
        self.local = local_zone()
        self.cronjobs.add_handler(on_add=self.enqueue, on_update=self._cronjob_updated,
                                  on_delete=self.enqueue)
        self.jobs.add_handler(on_add=self._job_changed, on_update=lambda _o, n:
                              self._job_changed(n), on_delete=self._job_changed)

    def primary(self) -> Any:
        return self.cronjobs

    # --- handlers ----------------------------------------------------------------------------

    def _job_changed(self, job: Obj) -> None:
        ref = controller_of(job)
        if ref is None or ref.get("kind") != "CronJob":
            return
        owner = self.cronjobs.cache.get_by(_meta(job).get("namespace", ""), ref.get("name", ""))
        if owner is not None and _uid(owner) == ref.get("uid"):
            self.enqueue(owner)

    def _cronjob_updated(self, old: Obj, new: Obj) -> None:
        """A new schedule or zone moves the next look to the new schedule's next time."""
        o, n = old.get("spec") or {}, new.get("spec") or {}
        if (o.get("schedule"), o.get("timeZone")) == (n.get("schedule"), n.get("timeZone")):
            self.enqueue(new)
            return
        try:
            sched = parse(new, self.local)
        except ScheduleError:
            self.recorder.event(new, WARNING, "UnParseableCronJobSchedule",
                                f"unparseable schedule for cronjob: {n.get('schedule')}")
            return
        delay = next_delay(new, self.clock.now(), sched)
        if delay is not None:
            self.enqueue_after(object_key(new), delay)

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        cached = self.cronjobs.cache.get(key)
        if cached is None:
            return None
        uid = _uid(cached)
        jobs = [j for j in self.jobs.cache.by_index("owner", uid)
                if (controller_of(j) or {}).get("uid") == uid]
        cj = copy.deepcopy(cached)
        changed = await self._cleanup_finished(cj, jobs)
        error: APIError | None = None
        requeue: float | None = None
        try:
            requeue, synced = await self._sync(cj, jobs)
            changed = changed or synced
        except APIError as e:
            error = e
        if not (cj.get("status") or {}).get("active"):
            cj.get("status", {}).pop("active", None)
        if changed and cj.get("status") != (cached.get("status") or {}):
            await self.client.update_status(R.CRONJOBS, cj)
        if requeue is not None:
            return requeue
        if error is not None:
            raise error
        return None

    async def _sync(self, cj: Obj, jobs: list[Obj]) -> tuple[float | None, bool]:
        """``syncCronJob``: (seconds to look again, whether status changed)."""
        changed = await self._reconcile_active(cj, jobs)
        spec = cj.get("spec") or {}
        if _meta(cj).get("deletionTimestamp"):
            return None, changed
        tz = spec.get("timeZone")
        if tz is not None and not _known_zone(tz):
            self.recorder.event(cj, WARNING, "UnknownTimeZone",
                                f'invalid timeZone: "{tz}": unknown time zone {tz}')
            return None, changed
        if spec.get("suspend"):
            return None, changed
        schedule = str(spec.get("schedule") or "")
        if "TZ" in schedule:
            self.recorder.event(cj, WARNING, "UnsupportedSchedule",
                                f'CRON_TZ or TZ used in schedule "{schedule}" is not officially '
                                "supported, see https://kubernetes.io/docs/concepts/workloads/"
                                "controllers/cron-jobs/ for more details")
        try:
            sched = parse(cj, self.local)
        except ScheduleError as e:
            self.recorder.event(cj, WARNING, "UnparseableSchedule",
                                f'unparseable schedule: "{schedule}" : {e}')
            return None, changed
        now = self.clock.now()
        scheduled, missed, err = next_schedule_time(cj, now, sched)
        if missed is Missed.MANY and scheduled is not None:
            self.recorder.event(cj, WARNING, "TooManyMissedTimes",
                                "too many missed start times. Set or decrease "
                                ".spec.startingDeadlineSeconds or check clock skew")
        if err:
            self.recorder.event(cj, WARNING, "InvalidSchedule",
                                f"invalid schedule: {schedule} : {err}")
            return None, changed
        if scheduled is None:
            return next_delay(cj, now, sched), changed
        return await self._start(cj, sched, scheduled, now, changed)

    async def _start(self, cj: Obj, sched: CronSchedule, scheduled: dt.datetime,
                     now: dt.datetime, changed: bool) -> tuple[float | None, bool]:
        """Start the Job for ``scheduled`` if the deadline and concurrency policy allow."""
        spec = cj.get("spec") or {}
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + dt.timedelta(seconds=int(deadline)) < now:
            self.recorder.event(cj, WARNING, "MissSchedule",
                                f"Missed scheduled time to start a job: {_rfc1123z(scheduled)}")
            return next_delay(cj, now, sched), changed
        name = job_name(_meta(cj)["name"], scheduled)
        last = parse_time((cj.get("status") or {}).get("lastScheduleTime"))
        if any(r.get("name") == name for r in _active(cj)) or last == scheduled:
            return next_delay(cj, now, sched), changed
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and _active(cj):
            self.recorder.event(cj, NORMAL, "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid")
            return next_delay(cj, now, sched), changed
        if policy == "Replace":
            changed = await self._replace_active(cj) or changed
        made = await self._create_job(cj, name, scheduled)
        if made is None:
            return None, changed
        _active(cj).append(_job_ref(made))
        cj["status"]["lastScheduleTime"] = format_time(scheduled)
        return next_delay(cj, now, sched), True

    async def _create_job(self, cj: Obj, name: str, scheduled: dt.datetime) -> Obj | None:
        """Create the run's Job; the Job to add to ``status.active``, or None when there is
        nothing to record.  Raises what should be retried."""
        meta, ns = _meta(cj), _meta(cj).get("namespace", "")
        template = (cj.get("spec") or {}).get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        annotations = {**(tmeta.get("annotations") or {}), SCHEDULED_TIMESTAMP:
                       scheduled_annotation(scheduled, (cj.get("spec") or {}).get("timeZone"))}
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": ns, "labels": dict(
                   tmeta.get("labels") or {}), "annotations": annotations,
                            "ownerReferences": [controller_ref(cj)]},
               "spec": copy.deepcopy(template.get("spec") or {})}
        try:
            made = await self.client.create(R.JOBS, job, ns)
        except AlreadyExists:
            # created by an earlier sync whose status write was lost, or by someone else
            existing = await self.client.get(R.JOBS, name, ns)
            if not is_controlled_by(existing, cj) or any(
                    r.get("uid") == _uid(existing) for r in _active(cj)):
                return None
            return existing
        except Forbidden as e:
            if "being terminated" in str(e):
                return None  # the namespace is going away
            self.recorder.event(cj, WARNING, "FailedCreate", f"Error creating job: {e}")
            raise
        except APIError as e:
            self.recorder.event(cj, WARNING, "FailedCreate", f"Error creating job: {e}")
            raise
        self.recorder.event(cj, NORMAL, "SuccessfulCreate", f"Created job {name}")
        log.debug("cronjob %s/%s: created job %s", ns, meta.get("name"), name)
        return made

    async def _replace_active(self, cj: Obj) -> bool:
        changed = False
        for ref in list(_active(cj)):
            try:
                job = await self.client.get(R.JOBS, ref.get("name", ""), ref.get("namespace", ""))
            except APIError as e:
                self.recorder.event(cj, WARNING, "FailedGet", f"Get job: {e}")
                raise
            await self._delete_job(cj, job, strict=True)
            changed = True
        return changed

    async def _delete_job(self, cj: Obj, job: Obj, *, strict: bool = False) -> bool:
        """Delete a Job and its pods (background) and drop it from the active list."""
        meta = _meta(job)
        try:
            await self.client.delete(R.JOBS, meta["name"], meta.get("namespace", ""),
                                     propagation_policy="Background")
        except APIError as e:
            self.recorder.event(cj, WARNING, "FailedDelete", f"Deleted job: {e}")
            if strict:
                raise
            return False
        _drop_active(cj, _uid(job))
        self.recorder.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {meta['name']}")
        return True

    async def _reconcile_active(self, cj: Obj, jobs: list[Obj]) -> bool:
        changed = False
        active_uids = {r.get("uid") for r in _active(cj)}
        for job in jobs:
            found, finished = _uid(job) in active_uids, finished_type(job)
            if not found and finished is None:
                fresh = await self.client.get(R.CRONJOBS, _meta(cj)["name"],
                                              _meta(cj).get("namespace", ""))
                if any(r.get("uid") == _uid(job) for r in (fresh.get("status") or {}).get(
                        "active") or ()):
                    _active(cj).append(_job_ref(job))  # our cache was behind our own write
                    active_uids.add(_uid(job))
                    continue
                self.recorder.event(cj, WARNING, "UnexpectedJob", "Saw a job that the "
                                    f"controller did not create or forgot: {_meta(job)['name']}")
            elif found and finished is not None:
                _drop_active(cj, _uid(job))
                self.recorder.event(cj, NORMAL, "SawCompletedJob",
                                    f"Saw completed job: {_meta(job)['name']}, "
                                    f"status: {finished}")
                changed = True
            elif finished == "Complete":
                done = parse_time((job.get("status") or {}).get("completionTime"))
                last = parse_time((cj.get("status") or {}).get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    cj["status"]["lastSuccessfulTime"] = format_time(done)
                    changed = True
        children = {_uid(j) for j in jobs}
        for ref in list(_active(cj)):
            if ref.get("uid") in children:
                continue
            try:  # a live read: the cache may just not have the Job yet
                await self.client.get(R.JOBS, ref.get("name", ""), ref.get("namespace", ""))
            except NotFound:
                self.recorder.event(cj, NORMAL, "MissingJob",
                                    f"Active job went missing: {ref.get('name')}")
                _drop_active(cj, str(ref.get("uid", "")))
                changed = True
        return changed

    async def _cleanup_finished(self, cj: Obj, jobs: list[Obj]) -> bool:
        """Delete the oldest finished Jobs beyond the history limits."""
        spec = cj.get("spec") or {}
        changed = False
        for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit")),
                            ("Failed", spec.get("failedJobsHistoryLimit"))):
            if limit is None:
                continue
            done = sorted((j for j in jobs if finished_type(j) == kind), key=_by_start_time)
            for job in done[:max(0, len(done) - int(limit))]:
                changed = await self._delete_job(cj, job) or changed
        return changed


def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
