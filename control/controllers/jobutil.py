"""What the Job, CronJob and ttl-after-finished controllers ask of Jobs and their pods
(kubernetes ``pkg/controller/job``: ``job_controller.go`` helpers, ``backoff_utils.go``,
``util/utils.go``).

Pure functions over object dicts: Job conditions, which pods count as failed, when a pod
finished, and the exponential back-off between pod re-creations (10 s doubling, capped at
10 minutes: ``DefaultJobPodFailureBackOff``/``MaxJobPodFailureBackOff``) computed from the
failures seen since the last success.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from control.api.clock import parse_time
from control.api.objects import meta as _meta

__all__ = [
    "BACKOFF_BASE", "BACKOFF_MAX", "COMPLETION_INDEX", "CONTROLLER_UID_LABEL",
    "JOB_CONTROLLER", "JOB_NAME_LABEL", "TRACKING_FINALIZER", "Backoff", "ensure_condition",
    "find_condition", "finish_time", "finished_type", "has_tracking_finalizer", "is_finished",
    "is_pod_failed", "is_terminating", "new_condition", "only_replace_failed",
    "past_backoff_limit_on_failure",
]

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
#: ``spec.managedBy`` of Jobs this controller syncs (absent means the same).
JOB_CONTROLLER = "kubernetes.io/job-controller"
BACKOFF_BASE = 10.0
BACKOFF_MAX = 600.0

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)



def find_condition(conditions: Iterable[Obj], kind: str) -> Obj | None:
    for c in conditions:
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def finished_type(job: Obj) -> str | None:
    """"Complete" or "Failed" when that condition is True (``getFinishedStatus``)."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def is_finished(job: Obj) -> bool:
    return finished_type(job) is not None


def new_condition(kind: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": kind, "status": status, "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[Obj], kind: str, status: str, reason: str,
                     message: str, now: str) -> bool:
    """``ensureJobConditionStatus``: set the condition (replacing it whole when status, reason
    or message differ); a False condition is never added where none was.  True if changed."""
    cur = find_condition(conditions, kind)
    if cur is not None:
        if (cur.get("status"), cur.get("reason", ""), cur.get("message", "")) == (
                status, reason, message):
            return False
        cur.clear()
        cur.update(new_condition(kind, status, reason, message, now))
        return True
    if status == "False":
        return False
    conditions.append(new_condition(kind, status, reason, message, now))
    return True


def has_tracking_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (_meta(pod).get("finalizers") or ())


def is_terminating(pod: Obj) -> bool:
    """Being deleted and not yet terminal (``controller.IsPodTerminating``)."""
    phase = (pod.get("status") or {}).get("phase")
    return bool(_meta(pod).get("deletionTimestamp")) and phase not in ("Succeeded", "Failed")


def only_replace_failed(job: Obj) -> bool:
    """``podReplacementPolicy: Failed`` (or a podFailurePolicy): a terminating pod is replaced
    only once it has failed."""
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or bool(spec.get("podFailurePolicy"))


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed phase; or, unless only failed pods are replaced, deleted before succeeding
    (an orphaned pod may never reach the Failed phase)."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return bool(_meta(pod).get("deletionTimestamp")) and phase != "Succeeded"


def _containers_finished_at(pod: Obj) -> dt.datetime | None:
    latest: dt.datetime | None = None
    status = pod.get("status") or {}
    statuses = list(status.get("containerStatuses") or ())
    sidecars = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or ()
                if c.get("restartPolicy") == "Always"}
    statuses += [s for s in status.get("initContainerStatuses") or ()
                 if s.get("name") in sidecars]
    for cs in statuses:
        t = parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if t is None:
            return None
        latest = t if latest is None or t > latest else latest
    return latest


def finish_time(pod: Obj) -> dt.datetime:
    """When a pod finished (``getFinishedTime``): its containers' latest finishedAt, else the
    time Ready turned False, else deletionTimestamp minus its grace period, else its
    creation."""
    t = _containers_finished_at(pod)
    if t is not None:
        return t
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "False":
            ready_false = parse_time(c.get("lastTransitionTime"))
            if ready_false is not None:
                return ready_false
    meta = _meta(pod)
    deleted = parse_time(meta.get("deletionTimestamp"))
    if deleted is not None:
        return deleted - dt.timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))
    return parse_time(meta.get("creationTimestamp")) or _EPOCH


@dataclass(frozen=True)
class Backoff:
    """Failures since the last success and when the last of them happened
    (``backoffRecord``): what delays the next pod creation."""

    failures: int = 0
    last_failure: dt.datetime | None = None

    def after(self, succeeded: list[Obj], failed: list[Obj]) -> Backoff:
        """This record updated with newly finished pods (``newBackoffRecord``): a success
        resets the count to the failures that finished after the latest success."""
        if not succeeded:
            if not failed:
                return self
            latest = max(finish_time(p) for p in failed)
            return Backoff(self.failures + len(failed), latest)
        last_success = max(finish_time(p) for p in succeeded)
        later = sorted(t for t in map(finish_time, failed) if t > last_success)
        return Backoff(len(later), later[-1] if later else None)

    def remaining(self, now: dt.datetime, *, base: float = BACKOFF_BASE,
                  cap: float = BACKOFF_MAX) -> float:
        """Seconds until a pod may be created again: ``base * 2^(failures-1)`` (at most
        ``cap``) after the last failure; 0 without failures."""
        if self.failures <= 0 or self.last_failure is None:
            return 0.0
        delay = min(cap, base * 2 ** min(self.failures - 1, 32))
        elapsed = (now - self.last_failure).total_seconds()
        return max(0.0, delay - elapsed)


def _restarts(pod: Obj) -> int:
    status = pod.get("status") or {}
    return sum(int(cs.get("restartCount") or 0)
               for cs in [*(status.get("initContainerStatuses") or ()),
                          *(status.get("containerStatuses") or ())])


def past_backoff_limit_on_failure(job: Obj, pods: list[Obj]) -> bool:
    """For ``restartPolicy: OnFailure`` templates, container restarts of running and pending
    pods count against backoffLimit (``pastBackoffLimitOnFailure``)."""
    spec = job.get("spec") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(_restarts(p) for p in pods
                   if (p.get("status") or {}).get("phase") in ("Running", "Pending"))
    limit = int(spec.get("backoffLimit") or 0)
    return restarts > 0 if limit == 0 else restarts >= limit
