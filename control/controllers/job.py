"""The Job controller: run pods to completion (kubernetes ``pkg/controller/job``).

One reconcile per Job key (``syncJob``):

1. **Claim** the Job's pods — every pod it controls, terminal ones too; orphans matching its
   selector are adopted (owner reference and tracking finalizer added, after a fresh read
   shows the Job is not being deleted), pods that stopped matching are released.
2. **Judge**: failures beyond ``backoffLimit`` (or, for OnFailure pods, container restarts)
   → ``BackoffLimitExceeded``; active longer than ``activeDeadlineSeconds`` →
   ``DeadlineExceeded``; enough successes (``completions``, every index of an Indexed Job, or
   any success without completions) → ``CompletionsReached``.
3. **Act** when the Job's expectations are satisfied: a finishing Job's active pods are
   deleted; otherwise :func:`~.jobpods.manage_job` creates or deletes pods (a suspended Job
   has none) and the ``Suspended`` condition follows ``spec.suspend``.
4. **Count and write status** (:mod:`.jobtracking`): active, ready, terminating, succeeded,
   failed, completedIndexes, startTime, completionTime and the conditions.

Keys ``pod:<namespace>/<name>`` name pods that still carry the tracking finalizer but whose
Job is gone or finished (``syncOrphanPod``): their finalizer is removed.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from control.api.clock import parse_time
from control.api.errors import Conflict, NotFound
from control.api.objects import meta as _meta
from control.api.selectors import LabelSelector, SelectorError, from_label_selector
from control.client import WARNING, object_key
from control.client import resources as R

from .base import Controller, ControllerContext
from .jobpods import delete_active_pods, manage_job, remove_finalizer_patch
from .jobstate import SyncState, begin, complete, judge
from .jobtracking import track_status
from .jobutil import (
    JOB_CONTROLLER,
    TRACKING_FINALIZER,
    Backoff,
    ensure_condition,
    has_tracking_finalizer,
    is_finished,
    new_condition,
)
from .owners import controller_of, owner_ref

__all__ = ["JobController"]

log = logging.getLogger("ketch.controllers.job")

Obj = dict[str, Any]
_ORPHAN = "pod:"



def _uid(o: Obj) -> str:
    return str(_meta(o).get("uid", ""))


def _selector(job: Obj) -> LabelSelector | None:
    try:
        sel = from_label_selector((job.get("spec") or {}).get("selector"))
    except SelectorError:
        return None
    return None if sel.empty else sel


class JobController(Controller):
    name = "job"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informer(R.JOBS)
        self.pods = ctx.informer(R.PODS)
        #: Job key -> pod UIDs whose finalizer removal is not yet seen in the cache.
        self.finalizers_expected: dict[str, set[str]] = {}
        #: Job key -> failures since the last success (memory only, as in Kubernetes).
        self.backoffs: dict[str, Backoff] = {}
        self.jobs.add_handler(on_add=self.enqueue, on_update=self._job_updated,
                              on_delete=self._job_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=lambda p: self._pod_deleted(p, final=True))

    def primary(self) -> Any:
        return self.jobs

    def start_term(self) -> None:
        self.finalizers_expected.clear()
        super().start_term()

    # --- finalizer expectations (uidTrackingExpectations) ---------------------------------

    def expect_finalizers_removed(self, key: str, uids: list[str]) -> None:
        self.finalizers_expected.setdefault(key, set()).update(uids)

    def finalizer_removal_observed(self, key: str, uid: str) -> None:
        expected = self.finalizers_expected.get(key)
        if expected is not None:
            expected.discard(uid)

    # --- handlers (only enqueue) -------------------------------------------------------------

    def _job_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)
        if is_finished(new):
            self._cleanup_finalizers(new)  # a backup: the sync removes them first
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        started = parse_time((new.get("status") or {}).get("startTime"))
        deadline = spec.get("activeDeadlineSeconds")
        if started is not None and deadline is not None \
                and old_spec.get("activeDeadlineSeconds") != deadline:
            passed = (self.clock.now() - started).total_seconds()
            self.enqueue_after(object_key(new), max(0.0, deadline - passed))

    def _job_deleted(self, job: Obj) -> None:
        self.enqueue(job)
        self._cleanup_finalizers(job)

    def _cleanup_finalizers(self, job: Obj) -> None:
        for pod in self.pods.cache.by_index("owner", _uid(job)):
            if (controller_of(pod) or {}).get("uid") == _uid(job) \
                    and has_tracking_finalizer(pod):
                self.enqueue(_ORPHAN + object_key(pod))

    def _job_of(self, pod: Obj, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != "Job":
            return None
        job = self.jobs.cache.get_by(_meta(pod).get("namespace", ""), ref.get("name", ""))
        return job if job is not None and _uid(job) == ref.get("uid") else None

    def _matching_jobs(self, pod: Obj) -> list[Obj]:
        labels = _meta(pod).get("labels") or {}
        found = []
        for job in self.jobs.cache.by_index("namespace", _meta(pod).get("namespace", "")):
            sel = _selector(job)
            if sel is not None and sel.matches(labels):
                found.append(job)
        return found

    def _pod_added(self, pod: Obj) -> None:
        if _meta(pod).get("deletionTimestamp"):
            self._pod_deleted(pod, final=False)
            return
        ref = controller_of(pod)
        job = self._job_of(pod, ref)
        if job is not None:
            self.expectations.creation_observed(object_key(job))
            self.enqueue(job)
            return
        if ref is None:
            if has_tracking_finalizer(pod):
                self.enqueue(_ORPHAN + object_key(pod))
            for j in self._matching_jobs(pod):
                self.enqueue(j)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old is new:
            return
        if _meta(new).get("deletionTimestamp"):
            self._pod_deleted(new, final=False)
            return
        removed = not has_tracking_finalizer(new)
        old_ref, new_ref = controller_of(old), controller_of(new)
        if old_ref != new_ref and old_ref is not None:
            old_job = self._job_of(old, old_ref)
            if old_job is not None:
                if removed:
                    self.finalizer_removal_observed(object_key(old_job), _uid(new))
                self.enqueue(old_job)
        if new_ref is not None:
            job = self._job_of(new, new_ref)
            if job is not None:
                if removed:
                    self.finalizer_removal_observed(object_key(job), _uid(new))
                self.enqueue(job)
            return
        if not removed:
            self.enqueue(_ORPHAN + object_key(new))
        if _meta(old).get("labels") != _meta(new).get("labels") or old_ref != new_ref:
            for j in self._matching_jobs(new):
                self.enqueue(j)

    def _pod_deleted(self, pod: Obj, *, final: bool) -> None:
        ref = controller_of(pod)
        job = self._job_of(pod, ref)
        if job is None or is_finished(job):
            if has_tracking_finalizer(pod) and not final:
                self.enqueue(_ORPHAN + object_key(pod))
            return
        key = object_key(job)
        self.expectations.deletion_observed(key, object_key(pod))
        if final or not has_tracking_finalizer(pod):
            self.finalizer_removal_observed(key, _uid(pod))
        self.enqueue(key)

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(_ORPHAN):
            await self._sync_orphan(key[len(_ORPHAN):])
            return None
        return await self._sync_job(key)

    async def _sync_orphan(self, key: str) -> None:
        """Remove the tracking finalizer from a pod no unfinished Job of ours controls."""
        pod = self.pods.cache.get(key)
        if pod is None or not has_tracking_finalizer(pod):
            return
        ref = controller_of(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
                return
            job = self._job_of(pod, ref)
            if job is not None and (_managed_elsewhere(job) or not is_finished(job)):
                return
        meta = _meta(pod)
        try:
            await self.client.patch(R.PODS, meta["name"], remove_finalizer_patch(),
                                    meta.get("namespace", ""), patch_type="strategic")
        except NotFound:
            pass

    async def _sync_job(self, key: str) -> float | None:
        shared = self.jobs.cache.get(key)
        if shared is None:
            self.expectations.forget(key)
            self.finalizers_expected.pop(key, None)
            self.backoffs.pop(key, None)
            return None
        if _managed_elsewhere(shared):
            return None
        if is_finished(shared):
            self.backoffs.pop(key, None)
            return None
        spec = shared.get("spec") or {}
        if spec.get("completionMode", "NonIndexed") not in ("NonIndexed", "Indexed"):
            self.recorder.event(shared, WARNING, "UnknownCompletionMode",
                                "Skipped Job sync because completion mode is unknown")
            return None
        selector = _selector(shared)
        if selector is None:
            self.recorder.event(shared, WARNING, "InvalidSelector",
                                "couldn't convert Job selector")
            return None
        job = copy.deepcopy(shared)
        shared_status = shared.get("status") or {}
        satisfied = self.expectations.satisfied(key)
        now = self.clock.now()
        st = begin(key, job, await self._claim(job, selector), now=now,
                   remembered=self.backoffs.get(key, Backoff()),
                   expected_rm=set(self.finalizers_expected.get(key, ())))
        judge(st, now)
        active = len(st.active)
        suspend_changed = False
        if st.finished is not None:
            deleted = await delete_active_pods(self, st)
            if deleted != active or not satisfied:
                st.finished = None  # pods still to go or to appear in the cache
            active -= deleted
        else:
            managed = satisfied and not _meta(job).get("deletionTimestamp")
            if managed:
                active = await manage_job(self, st)
            if complete(job, st, active):
                st.finished = new_condition(
                    "SuccessCriteriaMet", "True", "CompletionsReached",
                    "Reached expected number of succeeded pods", st.now)
            elif managed:
                suspend_changed = self._suspend_condition(st)
        status = job["status"]
        needs_flush = suspend_changed or status.get("startTime") != shared_status.get(
            "startTime")
        needs_flush = needs_flush or active != status.get("active", 0) \
            or st.ready != status.get("ready") or st.terminating != status.get("terminating")
        status.update(active=active, ready=st.ready, terminating=st.terminating)
        await track_status(self, st, needs_flush)
        if st.error is not None:
            raise st.error
        return st.requeue

    def _suspend_condition(self, st: SyncState) -> bool:
        job = st.job
        conds = job["status"].setdefault("conditions", [])
        if (job.get("spec") or {}).get("suspend"):
            changed = ensure_condition(conds, "Suspended", "True", "JobSuspended",
                                       "Job suspended", st.now)
            if changed:
                self.recorder.event(job, "Normal", "Suspended", "Job suspended")
        else:
            changed = ensure_condition(conds, "Suspended", "False", "JobResumed",
                                       "Job resumed", st.now)
            if changed:
                self.recorder.event(job, "Normal", "Resumed", "Job resumed")
                # activeDeadlineSeconds counts continuous activity: it restarts on resume
                job["status"]["startTime"] = st.now
        if not conds:
            del job["status"]["conditions"]
        return changed

    # --- claiming ----------------------------------------------------------------------------

    async def _claim(self, job: Obj, selector: LabelSelector) -> list[Obj]:
        uid, deleting = _uid(job), bool(_meta(job).get("deletionTimestamp"))
        claimed: list[Obj] = []
        for pod in self.pods.cache.by_index("owner", uid):
            if (controller_of(pod) or {}).get("uid") != uid:
                continue
            if selector.matches(_meta(pod).get("labels") or {}):
                claimed.append(pod)
            elif not deleting:
                await self._patch_pod(pod, {"ownerReferences": [
                    r for r in _meta(pod).get("ownerReferences") or ()
                    if r.get("uid") != uid] or None})
        ns = _meta(job).get("namespace", "")
        orphans = [p for p in self.pods.cache.list(ns, selector)
                   if controller_of(p) is None and not _meta(p).get("deletionTimestamp")]
        if orphans and not deleting and await self._can_adopt(job):
            for pod in orphans:
                meta = _meta(pod)
                finalizers = list(meta.get("finalizers") or [])
                if TRACKING_FINALIZER not in finalizers:
                    finalizers.append(TRACKING_FINALIZER)
                adopted = await self._patch_pod(pod, {
                    "ownerReferences": [*(meta.get("ownerReferences") or []),
                                        owner_ref(job, controller=True,
                                                  block_owner_deletion=True)],
                    "finalizers": finalizers})
                if adopted is not None:
                    claimed.append(adopted)
        return claimed

    async def _can_adopt(self, job: Obj) -> bool:
        try:
            fresh = await self.client.get(R.JOBS, _meta(job)["name"], _meta(job)["namespace"])
        except NotFound:
            return False
        return _uid(fresh) == _uid(job) and not _meta(fresh).get("deletionTimestamp")

    async def _patch_pod(self, pod: Obj, meta_patch: Obj) -> Obj | None:
        meta = _meta(pod)
        patch = {"metadata": {**meta_patch, "uid": meta.get("uid"),
                              "resourceVersion": meta.get("resourceVersion")}}
        try:
            return await self.client.patch(R.PODS, meta["name"], patch, meta["namespace"])
        except (NotFound, Conflict):
            return None  # gone or changed: the next sync sees the new state


def _managed_elsewhere(job: Obj) -> bool:
    managed = (job.get("spec") or {}).get("managedBy")
    return managed is not None and managed != JOB_CONTROLLER
