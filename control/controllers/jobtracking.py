"""Counting a Job's finished pods exactly once (kubernetes ``job_controller.go``
``trackJobStatusAndRemoveFinalizers``, ``flushUncountedAndRemoveFinalizers``,
``enactJobFinished``).

Every Job pod carries the ``batch.kubernetes.io/job-tracking`` finalizer, so it cannot be
deleted — by the garbage collector, podgc or a user — before the Job has counted it.  A
finished pod is counted in three steps, each surviving a crash between them:

1. its UID is added to ``status.uncountedTerminatedPods`` (succeeded or failed) and that
   status is written (for Indexed Jobs the index goes straight into ``completedIndexes``);
2. its finalizer is removed;
3. UIDs in the uncounted lists whose pods no longer carry the finalizer move into the
   ``succeeded``/``failed`` counters, and that status is written.

A terminal condition is set only once nothing is uncounted and no pod is still terminating:
first the interim ``SuccessCriteriaMet``/``FailureTarget``, then ``Complete``/``Failed``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from control.api.errors import APIError, NotFound
from control.api.objects import meta as _meta
from control.client import NORMAL, WARNING
from control.client import resources as R

from .jobindexes import UNKNOWN, completion_index, format_intervals, has, total, with_indexes
from .jobpods import remove_finalizer_patch
from .jobstate import SyncState, is_indexed
from .jobutil import (
    ensure_condition,
    find_condition,
    has_tracking_finalizer,
    is_pod_failed,
    new_condition,
)

if TYPE_CHECKING:
    from .job import JobController

__all__ = ["MAX_UNCOUNTED", "track_status"]

Obj = dict[str, Any]
#: At most this many UIDs in uncountedTerminatedPods (keeps status small, bounds one sync).
MAX_UNCOUNTED = 500


def _uid(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("uid", ""))


def _clean_uncounted(status: Obj, with_finalizer: set[str]) -> bool:
    """Move uncounted UIDs whose pods lost their finalizer into the counters."""
    changed = False
    uncounted = status.setdefault("uncountedTerminatedPods", {})
    for field, counter in (("succeeded", "succeeded"), ("failed", "failed")):
        uids = uncounted.get(field) or []
        keep = [u for u in uids if u in with_finalizer]
        if len(keep) != len(uids):
            changed = True
            status[counter] = int(status.get(counter) or 0) + len(uids) - len(keep)
            if keep:
                uncounted[field] = keep
            else:
                uncounted.pop(field, None)
    return changed


def _can_remove_finalizer(st: SyncState, pod: Obj, failed: bool) -> bool:
    """Anything once the Job finishes or goes; a succeeded pod; a failed one unless it
    waits for its index's replacement (backoffLimitPerIndex)."""
    if _meta(st.job).get("deletionTimestamp") or st.finished is not None:
        return True
    if (pod.get("status") or {}).get("phase") == "Succeeded":
        return True
    return failed and st.delayed.get(completion_index(pod)) is not pod



async def track_status(ctl: JobController, st: SyncState, needs_flush: bool) -> None:
    """Count finished pods, remove their finalizers, settle the terminal condition and write
    status when anything changed.  Raises the first write error after saving progress."""
    job = st.job
    status = job["status"]
    indexed = is_indexed(job)
    completions = int((job.get("spec") or {}).get("completions") or 0)
    pods = sorted(st.pods, key=completion_index) if indexed else st.pods
    with_finalizer = {_uid(p) for p in pods
                      if has_tracking_finalizer(p) and _uid(p) not in st.expected_rm}
    needs_flush = _clean_uncounted(status, with_finalizer) or needs_flush
    uncounted = status["uncountedTerminatedPods"]
    to_release: list[Obj] = []
    new_indexes: list[int] = []
    reached_max = False
    for pod in pods:
        uid = _uid(pod)
        if not has_tracking_finalizer(pod) or uid in st.expected_rm:
            continue  # counted by an earlier sync
        failed = is_pod_failed(pod, job)
        if not _can_remove_finalizer(st, pod, failed):
            continue
        to_release.append(pod)
        ix = completion_index(pod)
        valid_ix = ix != UNKNOWN and ix < completions
        if (pod.get("status") or {}).get("phase") == "Succeeded" \
                and uid not in st.uncounted_failed:
            if indexed:
                if valid_ix and not has(st.prev_indexes, ix):
                    new_indexes.append(ix)
                    needs_flush = True
            elif uid not in st.uncounted_succeeded:
                uncounted.setdefault("succeeded", []).append(uid)
                needs_flush = True
        elif (failed or (st.finished is not None
                         and st.finished["type"] != "SuccessCriteriaMet")) \
                and uid not in st.uncounted_failed and (not indexed or valid_ix):
            # once the Job is finishing, every pod not succeeded counts as failed
            uncounted.setdefault("failed", []).append(uid)
            needs_flush = True
        if len(new_indexes) + len(uncounted.get("succeeded") or ()) + len(
                uncounted.get("failed") or ()) >= MAX_UNCOUNTED:
            reached_max = True  # the status and pod updates bring this Job back
            break
    if indexed:
        st.indexes = with_indexes(st.indexes, new_indexes)
        text = format_intervals(st.indexes)
        needs_flush = needs_flush or text != (status.get("completedIndexes") or "")
        status["succeeded"] = total(st.indexes)
        status["completedIndexes"] = text
        if st.failed_indexes is not None:
            failed_text = format_intervals(st.failed_indexes)
            needs_flush = needs_flush or failed_text != status.get("failedIndexes")
            status["failedIndexes"] = failed_text
    needs_flush = _interim_condition(st) or needs_flush
    needs_flush = await _flush_and_release(ctl, st, to_release, with_finalizer, needs_flush)
    finished = not reached_max and _enact_finished(st)
    if needs_flush or finished:
        st.job = await ctl.client.update_status(R.JOBS, st.job)
        if finished:
            _record_finished(ctl, st)


def _interim_condition(st: SyncState) -> bool:
    """Write FailureTarget/SuccessCriteriaMet now; the final condition waits.  True if the
    status changed."""
    cond = st.finished
    if cond is None:
        return False
    conditions = st.job["status"].setdefault("conditions", [])
    if cond["type"] == "FailureTarget":
        conditions.append(cond)
        st.finished = new_condition("Failed", "True", cond["reason"], cond["message"], st.now)
        return True
    if cond["type"] == "SuccessCriteriaMet":
        added = find_condition(conditions, "SuccessCriteriaMet") is None
        if added:
            conditions.append(cond)
        st.finished = new_condition("Complete", "True", cond["reason"], cond["message"],
                                    st.now)
        return added
    return False


async def _flush_and_release(ctl: JobController, st: SyncState, pods: list[Obj],
                             with_finalizer: set[str], needs_flush: bool) -> bool:
    """Write the new uncounted UIDs, then remove those pods' finalizers, then count what was
    released.  Returns whether status still has unwritten changes."""
    if needs_flush:
        st.job = await ctl.client.update_status(R.JOBS, st.job)
        ctl.backoffs[st.key] = st.backoff
        needs_flush = False
    error: APIError | None = None
    if pods:
        released, error = await _remove_finalizers(ctl, st.key, pods)
        with_finalizer -= released
    if _clean_uncounted(st.job.setdefault("status", {}), with_finalizer):
        needs_flush = True
    if error is not None:
        if needs_flush:
            st.job = await ctl.client.update_status(R.JOBS, st.job)
        raise error
    return needs_flush


async def _remove_finalizers(ctl: JobController, key: str, pods: list[Obj]
                             ) -> tuple[set[str], APIError | None]:
    """The UIDs whose finalizer is gone (removed now, or the pod is gone), and the first
    error.  The removals are expected so a cache still showing them does not count twice."""
    ctl.expect_finalizers_removed(key, [_uid(p) for p in pods])

    async def one(pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await ctl.client.patch(R.PODS, meta["name"], remove_finalizer_patch(),
                                   meta.get("namespace", ""), patch_type="strategic")
        except NotFound:
            ctl.finalizer_removal_observed(key, _uid(pod))
        except APIError:
            ctl.finalizer_removal_observed(key, _uid(pod))
            raise

    results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
    released = {_uid(p) for p, r in zip(pods, results, strict=True) if r is None}
    error: APIError | None = None
    for r in results:
        if isinstance(r, APIError):
            error = error or r
        elif isinstance(r, BaseException):
            raise r
    return released, error


def _enact_finished(st: SyncState) -> bool:
    """Set Complete/Failed when nothing is uncounted and no pod is terminating."""
    cond = st.finished
    if cond is None:
        return False
    status = st.job["status"]
    uncounted = status.get("uncountedTerminatedPods") or {}
    if uncounted.get("succeeded") or uncounted.get("failed") or st.terminating > 0:
        return False
    ensure_condition(status.setdefault("conditions", []), cond["type"], cond["status"],
                     cond["reason"], cond["message"], st.now)
    if cond["type"] == "Complete":
        status["completionTime"] = cond["lastTransitionTime"]
    return True


def _record_finished(ctl: JobController, st: SyncState) -> None:
    job, cond = st.job, st.finished
    assert cond is not None
    if cond["type"] == "Complete":
        completions = (job.get("spec") or {}).get("completions")
        if completions is not None and int(job["status"].get("succeeded") or 0) > completions:
            ctl.recorder.event(job, WARNING, "TooManySucceededPods",
                               "Too many succeeded pods running after completion count "
                               "reached")
        ctl.recorder.event(job, NORMAL, "Completed", "Job completed")
    else:
        ctl.recorder.event(job, WARNING, cond["reason"], cond["message"])
