"""What one sync of a Job knows and concludes before it writes anything (kubernetes
``job_controller.go`` ``syncJob``'s first half, ``getNewFinishedPods``,
``calculateSucceededIndexes``, ``pastActiveDeadline``).

Pure: :func:`begin` builds a :class:`SyncState` from the Job (a private copy), its claimed
pods and what the controller remembers; :func:`judge` decides the terminal condition the
sync works toward — ``FailureTarget`` for ``BackoffLimitExceeded`` or ``DeadlineExceeded``,
or a ``SuccessCriteriaMet``/``FailureTarget`` an earlier sync already wrote.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from control.api.clock import format_time, parse_time
from control.api.errors import APIError

from .jobindexes import (
    UNKNOWN,
    Intervals,
    absolute_failure_count,
    completion_index,
    has,
    index_failure_count,
    merge,
    parse_intervals,
    total,
    with_indexes,
)
from .jobutil import (
    Backoff,
    find_condition,
    finish_time,
    has_tracking_finalizer,
    is_pod_failed,
    is_terminating,
    new_condition,
    past_backoff_limit_on_failure,
)
from .podutil import is_pod_active, is_pod_ready

__all__ = ["SyncState", "begin", "complete", "deadline_left", "is_indexed", "judge",
           "per_index"]

Obj = dict[str, Any]


@dataclass
class SyncState:
    """One sync of one Job (``syncJobCtx``).  ``job`` is a private copy whose status is
    being rebuilt; ``uncounted_*`` are the UIDs its status listed when the sync began."""

    key: str
    job: Obj
    pods: list[Obj]
    active: list[Obj]
    now: str
    backoff: Backoff = field(default_factory=Backoff)
    expected_rm: set[str] = field(default_factory=set)
    uncounted_succeeded: set[str] = field(default_factory=set)
    uncounted_failed: set[str] = field(default_factory=set)
    finished: Obj | None = None
    succeeded: int = 0
    failed: int = 0
    prev_indexes: Intervals = field(default_factory=list)
    indexes: Intervals = field(default_factory=list)
    #: backoffLimitPerIndex: indexes out of retries, and per index the failed pod whose
    #: finalizer is kept until its replacement carries its failure count.
    failed_indexes: Intervals | None = None
    delayed: dict[int, Obj] = field(default_factory=dict)
    terminating: int = 0
    ready: int = 0
    error: APIError | None = None
    requeue: float | None = None

    def again(self, seconds: float) -> None:
        """Look at this Job again in ``seconds`` (the soonest of all asks wins)."""
        if self.requeue is None or seconds < self.requeue:
            self.requeue = max(0.0, seconds)


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def per_index(job: Obj) -> bool:
    """backoffLimitPerIndex is set (Indexed Jobs only: the apiserver refuses it otherwise)."""
    return is_indexed(job) and (job.get("spec") or {}).get("backoffLimitPerIndex") is not None


def _uid(o: Obj) -> str:
    return str((o.get("metadata") or {}).get("uid", ""))


def begin(key: str, job: Obj, pods: list[Obj], *, now: dt.datetime, remembered: Backoff,
          expected_rm: set[str]) -> SyncState:
    """The sync's state: active pods, newly finished pods counted provisionally, startTime
    set (unless suspended), the back-off record advanced by the newly finished pods."""
    status = job.setdefault("status", {})
    uncounted = status.get("uncountedTerminatedPods") or {}
    status["uncountedTerminatedPods"] = {k: list(uncounted[k]) for k in (
        "succeeded", "failed") if uncounted.get(k)}
    active = [p for p in pods if is_pod_active(p)]
    st = SyncState(key=key, job=job, pods=pods, active=active, now=format_time(now),
                   expected_rm=expected_rm,
                   uncounted_succeeded=set(uncounted.get("succeeded") or ()),
                   uncounted_failed=set(uncounted.get("failed") or ()),
                   terminating=sum(1 for p in pods if is_terminating(p)),
                   ready=sum(1 for p in active if is_pod_ready(p)))
    new_ok, new_failed = _new_finished(st)
    st.succeeded = int(status.get("succeeded") or 0) + len(new_ok) + len(
        st.uncounted_succeeded)
    st.failed = int(status.get("failed") or 0) + len(new_failed) + len(st.uncounted_failed)
    if not status.get("startTime") and not (job.get("spec") or {}).get("suspend"):
        status["startTime"] = st.now
    st.backoff = remembered.after(new_ok, new_failed)
    return st


def _valid_index(pod: Obj, job: Obj) -> bool:
    ix = completion_index(pod)
    return ix != UNKNOWN and ix < int((job.get("spec") or {}).get("completions") or 0)


def _new_finished(st: SyncState) -> tuple[list[Obj], list[Obj]]:
    """Finished pods still carrying the finalizer and not yet listed as uncounted."""
    ok, failed = [], []
    for p in st.pods:
        uid = _uid(p)
        if not has_tracking_finalizer(p) or uid in st.expected_rm:
            continue
        if is_indexed(st.job) and not _valid_index(p, st.job):
            continue
        if (p.get("status") or {}).get("phase") == "Succeeded":
            if uid not in st.uncounted_succeeded:
                ok.append(p)
        elif is_pod_failed(p, st.job) and uid not in st.uncounted_failed:
            failed.append(p)
    return ok, failed


def deadline_left(job: Obj, now: dt.datetime) -> float | None:
    """Seconds until ``activeDeadlineSeconds`` runs out (negative: past); None without a
    deadline, before the start or while suspended."""
    spec = job.get("spec") or {}
    deadline = spec.get("activeDeadlineSeconds")
    started = parse_time((job.get("status") or {}).get("startTime"))
    if deadline is None or started is None or spec.get("suspend"):
        return None
    return float(deadline) - (now - started).total_seconds()


def judge(st: SyncState, now: dt.datetime) -> None:
    """Set ``st.finished`` to the terminal condition this sync works toward, ask to look
    again when the deadline will pass, and count an Indexed Job's succeeded indexes."""
    job, status = st.job, st.job["status"]
    spec = job.get("spec") or {}
    conds = status.get("conditions") or []
    met = find_condition(conds, "SuccessCriteriaMet")
    target = find_condition(conds, "FailureTarget")
    left = deadline_left(job, now)
    if met is not None and met.get("status") == "True":
        st.finished = met
    elif target is not None and target.get("status") == "True":
        st.finished = new_condition("Failed", "True", target.get("reason", ""),
                                    target.get("message", ""), st.now)
    elif st.failed > int(spec.get("backoffLimit", 6)) \
            or past_backoff_limit_on_failure(job, st.pods):
        st.finished = new_condition("FailureTarget", "True", "BackoffLimitExceeded",
                                    "Job has reached the specified backoff limit", st.now)
    elif left is not None and left <= 0:
        st.finished = new_condition("FailureTarget", "True", "DeadlineExceeded",
                                    "Job was active longer than specified deadline", st.now)
    elif left is not None:
        st.again(left)
    if is_indexed(job):
        completions = int(spec.get("completions") or 0)
        st.prev_indexes = parse_intervals(status.get("completedIndexes"), completions)
        new = {completion_index(p) for p in st.pods
               if (p.get("status") or {}).get("phase") == "Succeeded"
               and _valid_index(p, job) and has_tracking_finalizer(p)}
        st.indexes = with_indexes(st.prev_indexes, (ix for ix in new
                                                    if not has(st.prev_indexes, ix)))
        st.succeeded = total(st.indexes)
        if per_index(job):
            _judge_indexes(st, completions)


def _judge_indexes(st: SyncState, completions: int) -> None:
    """``calculateFailedIndexes`` and the conditions it leads to; which failed pods wait
    for their replacement (``getPodsWithDelayedDeletionPerIndex``)."""
    job, spec = st.job, st.job.get("spec") or {}
    limit = int(spec.get("backoffLimitPerIndex") or 0)
    failed = {completion_index(p) for p in st.pods
              if _valid_index(p, job) and has_tracking_finalizer(p)
              and is_pod_failed(p, job) and index_failure_count(p) >= limit}
    st.failed_indexes = with_indexes(
        parse_intervals(st.job["status"].get("failedIndexes"), completions), failed)
    n_failed = total(st.failed_indexes)
    max_failed = spec.get("maxFailedIndexes")
    if st.finished is None and max_failed is not None and n_failed > int(max_failed):
        st.finished = new_condition(
            "FailureTarget", "True", "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes", st.now)
    elif st.finished is None and n_failed > 0 and n_failed + st.succeeded >= completions:
        st.finished = new_condition("FailureTarget", "True", "FailedIndexes",
                                    "Job has failed indexes", st.now)
    taken = merge(st.indexes, st.failed_indexes)
    active = {completion_index(p) for p in st.active}
    for p in st.pods:
        ix = completion_index(p)
        if not has_tracking_finalizer(p) or _uid(p) in st.expected_rm \
                or not _valid_index(p, job) or not is_pod_failed(p, job) \
                or has(taken, ix) or ix in active:
            continue
        last = st.delayed.get(ix)
        if last is None or (absolute_failure_count(last) <= absolute_failure_count(p)
                            and finish_time(p) >= finish_time(last)):
            st.delayed[ix] = p


def complete(job: Obj, st: SyncState, active: int) -> bool:
    """Enough successes and nothing still running: ``completions`` of them, or any one when
    the Job has no completions (each pod can tell the whole work is done)."""
    completions = (job.get("spec") or {}).get("completions")
    if completions is None:
        return st.succeeded > 0 and active == 0
    return st.succeeded >= int(completions) and active == 0
