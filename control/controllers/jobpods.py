"""The Job controller's pod writes (kubernetes ``job_controller.go`` ``manageJob``,
``deleteJobPods``, ``deleteActivePods``): how many pods a Job wants active, which pods go
when there are too many (repeated or invalid indexes first, then the least valuable), and
the creation of missing pods — each carrying the ``batch.kubernetes.io/job-tracking``
finalizer so that it cannot vanish before the Job has counted it — in slow-start batches,
held back by the exponential back-off after failures.

:class:`~.jobstate.SyncState` is the sync's working state.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import TYPE_CHECKING, Any

from control.api.errors import APIError, Forbidden, NotFound
from control.api.objects import meta as _meta
from control.client import NORMAL, WARNING, object_key
from control.client import resources as R

from .jobindexes import (
    INDEX_FAILURE_COUNT,
    UNKNOWN,
    Intervals,
    absolute_failure_count,
    completion_index,
    duplicated_index_pods,
    first_pending,
    index_failure_count,
    merge,
    with_indexes,
)
from .jobstate import SyncState, is_indexed, per_index
from .jobutil import (
    COMPLETION_INDEX,
    TRACKING_FINALIZER,
    Backoff,
    finish_time,
    has_tracking_finalizer,
    is_terminating,
    only_replace_failed,
)
from .podutil import is_pod_ready, pod_from_template
from .replicaset import pods_to_delete, slow_start

if TYPE_CHECKING:
    from .job import JobController

__all__ = ["MAX_PER_SYNC", "delete_active_pods", "manage_job", "pods_for_removal",
           "remove_finalizer_patch"]

Obj = dict[str, Any]
#: At most this many pods created or deleted by one sync (``MaxPodCreateDeletePerSync``).
MAX_PER_SYNC = 500
_INDEX_ENV = "JOB_COMPLETION_INDEX"



def remove_finalizer_patch() -> Obj:
    """A strategic-merge patch taking the tracking finalizer (only) off a pod."""
    return {"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}}


def pods_for_removal(job: Obj, active: list[Obj], at_least: int) -> list[Obj]:
    """``activePodsForRemoval``: for Indexed Jobs every pod with a repeated, missing or
    out-of-range index, then (if still fewer than ``at_least``) the least valuable others."""
    remove: list[Obj] = []
    left = active
    if is_indexed(job):
        remove, left = duplicated_index_pods(active, int(job["spec"].get("completions") or 0))
    if len(remove) < at_least:
        remove += pods_to_delete(left, at_least - len(remove))
    return remove


def _want_active(job: Obj, st: SyncState, active: int) -> int:
    spec = job.get("spec") or {}
    parallelism = int(spec.get("parallelism", 1) or 0)
    completions = spec.get("completions")
    if completions is None:  # any success ends the Job: let running pods finish
        return active if st.succeeded > 0 else parallelism
    return max(0, min(int(completions) - st.succeeded, parallelism))


async def manage_job(ctl: JobController, st: SyncState) -> int:
    """Create or delete pods toward the wanted number of active pods; the number active
    afterwards.  A write error is kept in ``st.error`` (raised after status is written)."""
    job = st.job
    active = len(st.active)
    if (job.get("spec") or {}).get("suspend"):
        return active - await _delete_pods(ctl, st, pods_for_removal(job, st.active, active))
    want = _want_active(job, st, active)
    victims = pods_for_removal(job, st.active, max(0, active - want))[:MAX_PER_SYNC]
    if victims:  # deletion takes precedence: never create and delete in one sync
        return active - await _delete_pods(ctl, st, victims)
    terminating = st.terminating if only_replace_failed(job) else 0
    diff = want - terminating - active
    if diff <= 0:
        return active
    now = ctl.clock.now()
    wait = 0.0 if per_index(job) else st.backoff.remaining(now)
    if wait > 0:
        st.again(max(1.0, wait))
        return active
    indexes: list[int] | None = None
    if is_indexed(job):
        indexes = first_pending(min(diff, MAX_PER_SYNC), int(job["spec"]["completions"]),
                                _non_pending(job, st))
        if per_index(job):
            indexes, wait = _ready_indexes(st, indexes, now)
            if wait > 0:
                st.again(max(1.0, wait))
                return active
        diff = len(indexes)
    return active + await _create_pods(ctl, st, min(diff, MAX_PER_SYNC), indexes)


def _non_pending(job: Obj, st: SyncState) -> Intervals:
    taken = [completion_index(p) for p in st.active]
    if only_replace_failed(job):
        taken += [completion_index(p) for p in st.pods if is_terminating(p)]
    done = merge(st.indexes, st.failed_indexes or [])
    return with_indexes(done, (ix for ix in taken if ix != UNKNOWN))


def _ready_indexes(st: SyncState, indexes: list[int], now: dt.datetime
                   ) -> tuple[list[int], float]:
    """backoffLimitPerIndex: the indexes whose own back-off has passed (its last failed
    pod's failure count decides the delay), else the shortest wait among them."""
    ready, waits = [], []
    for ix in indexes:
        last = st.delayed.get(ix)
        left = 0.0 if last is None else Backoff(
            absolute_failure_count(last) + 1, finish_time(last)).remaining(now)
        if left <= 0:
            ready.append(ix)
        else:
            waits.append(left)
    return ready, (0.0 if ready or not waits else min(waits))


def _template(job: Obj, indexed: bool) -> Obj:
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    meta = template.setdefault("metadata", {})
    finalizers = meta.setdefault("finalizers", [])
    if TRACKING_FINALIZER not in finalizers:
        finalizers.append(TRACKING_FINALIZER)
    if indexed:
        spec = template.setdefault("spec", {})
        ref = {"fieldRef": {"fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}}
        for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
            env = c.setdefault("env", [])
            if not any(e.get("name") == _INDEX_ENV for e in env):
                env.append({"name": _INDEX_ENV, "valueFrom": copy.deepcopy(ref)})
    return template


def _generate_name(job_name: str, index: int | None) -> str:
    if index is None:
        return f"{job_name}-"
    suffix = f"-{index}-"
    prefix = job_name + suffix
    if len(prefix) > 58:  # names.MaxGeneratedNameLength: room for 5 random characters
        prefix = prefix[:58 - len(suffix)] + suffix
    return prefix


async def _create_pods(ctl: JobController, st: SyncState, count: int,
                       indexes: list[int] | None) -> int:
    job, key = st.job, st.key
    name, ns = _meta(job)["name"], _meta(job).get("namespace", "")
    base = _template(job, indexes is not None)
    queue = list(indexes) if indexes is not None else None
    ctl.expectations.expect(key, adds=count)

    async def one() -> None:
        template, index = base, None
        if queue is not None:
            index = queue.pop(0)
            template = copy.deepcopy(base)
            tmeta = template["metadata"]
            tmeta.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
            tmeta.setdefault("labels", {})[COMPLETION_INDEX] = str(index)
            template.setdefault("spec", {})["hostname"] = f"{name}-{index}"
            if per_index(job):
                replaced = st.delayed.get(index)
                count = 0 if replaced is None else index_failure_count(replaced) + 1
                tmeta["annotations"][INDEX_FAILURE_COUNT] = str(count)
        pod = pod_from_template(template, job, generate_name=_generate_name(name, index))
        try:
            made = await ctl.client.create(R.PODS, pod, ns)
        except APIError:
            ctl.expectations.creation_failed(key)
            raise
        ctl.recorder.event(job, NORMAL, "SuccessfulCreate",
                           f"Created pod: {_meta(made).get('name')}")

    created, errors = await slow_start(count, one)
    for _ in range(count - created - len(errors)):
        ctl.expectations.creation_failed(key)  # never attempted
    if errors:
        err = errors[0]
        if isinstance(err, Forbidden) and "being terminated" in str(err):
            return created  # the namespace is going away: every creation would fail
        ctl.recorder.event(job, WARNING, "FailedCreate", f"Error creating: {err}")
        st.error = err if isinstance(err, APIError) else st.error
    return created


async def _delete_pods(ctl: JobController, st: SyncState, victims: list[Obj]) -> int:
    """``deleteJobPods``: take the tracking finalizer off (an intentional deletion is not a
    failure) and delete; the number deleted.  Lowers ``st.terminating``/``st.ready``."""
    key, job = st.key, st.job
    if not victims:
        return 0
    ctl.expectations.expect(key, deletes=[object_key(p) for p in victims])

    async def one(pod: Obj) -> bool:
        meta = _meta(pod)
        try:
            if has_tracking_finalizer(pod):
                await ctl.client.patch(R.PODS, meta["name"], remove_finalizer_patch(),
                                       meta.get("namespace", ""), patch_type="strategic")
            await ctl.client.delete(R.PODS, meta["name"], meta.get("namespace", ""),
                                    preconditions={"uid": meta.get("uid", "")})
        except NotFound:
            ctl.expectations.deletion_observed(key, object_key(pod))
            return True
        except APIError:
            ctl.expectations.deletion_failed(key, object_key(pod))
            raise
        ctl.recorder.event(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta.get('name')}")
        return True

    results = await asyncio.gather(*(one(p) for p in victims), return_exceptions=True)
    deleted = 0
    for pod, r in zip(victims, results, strict=True):
        if r is True:
            deleted += 1
            st.terminating += 1
            st.ready -= is_pod_ready(pod)
        elif isinstance(r, APIError):
            ctl.recorder.event(job, WARNING, "FailedDelete", f"Error deleting: {r}")
            st.error = st.error or r
        elif isinstance(r, BaseException):
            raise r
    return deleted


async def delete_active_pods(ctl: JobController, st: SyncState) -> int:
    """A finishing Job's active pods are deleted keeping their finalizers (they are counted
    as failed once gone from the active set); the number deleted."""
    job = st.job

    async def one(pod: Obj) -> None:
        meta = _meta(pod)
        try:
            await ctl.client.delete(R.PODS, meta["name"], meta.get("namespace", ""),
                                    preconditions={"uid": meta.get("uid", "")})
        except NotFound:
            return
        ctl.recorder.event(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta.get('name')}")

    results = await asyncio.gather(*(one(p) for p in st.active), return_exceptions=True)
    deleted = 0
    for pod, r in zip(st.active, results, strict=True):
        if r is None:
            deleted += 1
            st.ready -= is_pod_ready(pod)
        elif isinstance(r, APIError):
            ctl.recorder.event(job, WARNING, "FailedDelete", f"Error deleting: {r}")
            st.error = st.error or r
        else:
            raise r
    st.terminating += deleted
    return deleted
