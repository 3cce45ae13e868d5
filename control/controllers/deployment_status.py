"""A Deployment's status and its conditions (kubernetes ``deployment_util.go`` conditions,
``sync.go`` ``calculateStatus`` and ``progress.go``): counts from its ReplicaSets, Available
against ``replicas - maxUnavailable``, and the Progressing condition that `kubectl rollout
status` reads — with the reasons Kubernetes gives — including when the progress deadline is
due to be checked.  Pure: callers pass ``now``.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Sequence
from typing import Any

from control.api.clock import format_time, parse_time

from .deployment_util import desired, max_unavailable, spec_replicas, status_int

__all__ = [
    "AVAILABLE", "FAILED_RS_CREATE", "FOUND_NEW_RS", "MIN_AVAILABLE", "MIN_UNAVAILABLE",
    "NEW_RS_AVAILABLE", "NEW_RS_CREATED", "PAUSED", "PROGRESSING", "REPLICA_FAILURE",
    "RESUMED", "RS_UPDATED", "TIMED_OUT", "calculate_status", "deployment_complete",
    "deployment_progressing", "deployment_timed_out", "get_condition",
    "has_progress_deadline", "new_condition", "remove_condition", "requeue_after",
    "rollout_status", "set_condition",
]

Obj = dict[str, Any]
_MAX_INT32 = 2**31 - 1

# Condition types and reasons (``util.*Reason``): what `kubectl rollout status` reads.
PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"
RS_UPDATED = "ReplicaSetUpdated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


# --- conditions ------------------------------------------------------------------------------


def new_condition(kind: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def get_condition(status: Obj | None, kind: str) -> Obj | None:
    for c in (status or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    """Kube's ``SetDeploymentCondition``: nothing changes when the status and reason are the
    same; the transition time is kept when only the reason changes; the condition moves to
    the end of the list."""
    cur = get_condition(status, cond["type"])
    if cur is not None and (cur.get("status"), cur.get("reason")) == (cond["status"],
                                                                       cond["reason"]):
        return
    if cur is not None and cur.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": cur.get("lastTransitionTime")}
    status["conditions"] = [*(c for c in status.get("conditions") or ()
                              if c.get("type") != cond["type"]), cond]


def remove_condition(status: Obj, kind: str) -> None:
    kept = [c for c in status.get("conditions") or () if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


# --- progress --------------------------------------------------------------------------------


def has_progress_deadline(d: Obj) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and value != _MAX_INT32


def deployment_complete(d: Obj, status: Obj) -> bool:
    """Every desired replica updated and available, no old ones, the spec observed."""
    want = desired(d)
    return (int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0)
            >= int((d.get("metadata") or {}).get("generation") or 0))


def deployment_progressing(d: Obj, new: Obj) -> bool:
    """New pods came up, became ready or available, or old ones went, since ``d.status``."""
    old = d.get("status") or {}

    def n(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)

    return (n(new, "updatedReplicas") > n(old, "updatedReplicas")
            or n(new, "replicas") - n(new, "updatedReplicas")
            < n(old, "replicas") - n(old, "updatedReplicas")
            or n(new, "readyReplicas") > n(old, "readyReplicas")
            or n(new, "availableReplicas") > n(old, "availableReplicas"))


def deployment_timed_out(d: Obj, status: Obj, now: dt.datetime) -> bool:
    """The Progressing condition last moved more than ``progressDeadlineSeconds`` ago."""
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    deadline = dt.timedelta(seconds=int((d.get("spec") or {})["progressDeadlineSeconds"]))
    return since is not None and since + deadline < now


def calculate_status(all_rss: Sequence[Obj | None], new: Obj | None, d: Obj, now: str) -> Obj:
    """The Deployment's status from its ReplicaSets' (``calculateStatus``), with the Available
    condition; zero counts are left out as Go's omitempty does."""
    rss = [rs for rs in all_rss if rs is not None]
    avail = sum(status_int(rs, "availableReplicas") for rs in rss)
    total = sum(spec_replicas(rs) for rs in rss)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": int((d.get("metadata") or {}).get("generation") or 0),
        "replicas": sum(status_int(rs, "replicas") for rs in rss),
        "updatedReplicas": status_int(new, "replicas"),
        "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in rss),
        "availableReplicas": avail,
        "unavailableReplicas": max(0, total - avail),
    }
    status = {k: v for k, v in status.items() if v}
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if avail >= desired(d) - max_unavailable(d):
        cond = new_condition(AVAILABLE, "True", MIN_AVAILABLE,
                             "Deployment has minimum availability.", now)
    else:
        cond = new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                             "Deployment does not have minimum availability.", now)
    set_condition(status, cond)
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    return status


# --- status and progress ---------------------------------------------------------------------


def _progress_message(d: Obj, new: Obj | None, what: str) -> str:
    return (f'ReplicaSet "{_name(new)}" {what}.' if new is not None
            else f'Deployment "{_name(d)}" {what}.')


def rollout_status(d: Obj, all_rss: Sequence[Obj | None], new: Obj | None,
                   now: dt.datetime) -> Obj:
    """The status after a rollout step (``syncRolloutStatus``): counts, Available, and the
    Progressing condition — NewReplicaSetAvailable when complete, ReplicaSetUpdated (its
    update time moved) on any progress, ProgressDeadlineExceeded once the condition has not
    moved for ``progressDeadlineSeconds`` — and the newest ReplicaFailure of the sets."""
    stamp = format_time(now)
    status = calculate_status(all_rss, new, d, stamp)
    deadline = has_progress_deadline(d)
    if not deadline:
        remove_condition(status, PROGRESSING)
    cur = get_condition(d.get("status"), PROGRESSING)
    settled = (status.get("replicas", 0) == status.get("updatedReplicas", 0)
               and cur is not None and cur.get("reason") == NEW_RS_AVAILABLE)
    if deadline and not settled:
        if deployment_complete(d, status):
            set_condition(status, new_condition(
                PROGRESSING, "True", NEW_RS_AVAILABLE,
                _progress_message(d, new, "has successfully progressed"), stamp))
        elif deployment_progressing(d, status):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED,
                                 _progress_message(d, new, "is progressing"), stamp)
            if cur is not None:
                if cur.get("status") == "True":
                    cond["lastTransitionTime"] = cur.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            set_condition(status, new_condition(
                PROGRESSING, "False", TIMED_OUT,
                _progress_message(d, new, "has timed out progressing"), stamp))
    failures = _replica_failures(all_rss, new)
    if failures:
        set_condition(status, failures[0])
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def _replica_failures(all_rss: Sequence[Obj | None], new: Obj | None) -> list[Obj]:
    def of(rs: Obj) -> list[Obj]:
        return [{"type": REPLICA_FAILURE, "status": c.get("status"),
                 "lastUpdateTime": c.get("lastTransitionTime"),
                 "lastTransitionTime": c.get("lastTransitionTime"),
                 "reason": c.get("reason"), "message": c.get("message")}
                for c in (rs.get("status") or {}).get("conditions") or ()
                if c.get("type") == REPLICA_FAILURE]

    if new is not None and (found := of(new)):
        return found
    return [c for rs in all_rss if rs is not None for c in of(rs)]


def requeue_after(d: Obj, status: Obj, now: dt.datetime) -> float | None:
    """Seconds until the progress deadline should be checked again (``requeueStuckDeployment``,
    one second late to be sure it has passed); None when there is none to watch."""
    cond = get_condition(status, PROGRESSING)
    if not has_progress_deadline(d) or cond is None:
        return None
    if deployment_complete(d, status) or cond.get("reason") == TIMED_OUT:
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    deadline = since + dt.timedelta(seconds=int((d.get("spec") or {})["progressDeadlineSeconds"]))
    return max(0.0, (deadline - now).total_seconds()) + 1.0
