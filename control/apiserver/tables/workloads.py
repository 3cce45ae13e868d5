"""Tables for the workload controllers' objects: Deployment, ReplicaSet, DaemonSet,
StatefulSet, Job, CronJob and ControllerRevision.

Counts come from ``status`` as the controllers last wrote it and desired sizes from ``spec``;
a missing count prints as 0, as kube prints a nil ``*int32``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from control.apiserver.tables._columns import (
    AGE,
    CONTAINERS,
    IMAGES,
    NAME,
    SELECTOR,
    Column,
    Printer,
)
from control.apiserver.tables._fields import (
    NONE,
    age,
    aware,
    condition_status,
    field,
    format_label_selector,
    format_labels,
    human_duration,
    items,
    mapping,
    number,
    optional_number,
    parse_time,
    since,
    template_containers,
    text,
)

__all__ = ["PRINTERS"]


def _wide(obj: Mapping[str, Any], *, selector: bool = True) -> list[Any]:
    names, images = template_containers(obj)
    cells: list[Any] = [names, images]
    if selector:
        cells.append(format_label_selector(field(obj, "spec", "selector")))
    return cells


def _name(obj: Mapping[str, Any]) -> str:
    return text(obj, "metadata", "name")


# --- Deployment, ReplicaSet, StatefulSet --------------------------------------------------


def _deployment_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    ready = f"{number(obj, 'status', 'readyReplicas')}/{number(obj, 'spec', 'replicas')}"
    return [
        _name(obj),
        ready,
        number(obj, "status", "updatedReplicas"),
        number(obj, "status", "availableReplicas"),
        age(obj, now),
        *_wide(obj),
    ]


def _replicaset_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [
        _name(obj),
        number(obj, "spec", "replicas"),
        number(obj, "status", "replicas"),
        number(obj, "status", "readyReplicas"),
        age(obj, now),
        *_wide(obj),
    ]


def _statefulset_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    ready = f"{number(obj, 'status', 'readyReplicas')}/{number(obj, 'spec', 'replicas')}"
    return [_name(obj), ready, age(obj, now), *_wide(obj, selector=False)]


# --- DaemonSet ------------------------------------------------------------------------------


def _daemonset_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    status = mapping(obj, "status")
    return [
        _name(obj),
        number(status, "desiredNumberScheduled"),
        number(status, "currentNumberScheduled"),
        number(status, "numberReady"),
        number(status, "updatedNumberScheduled"),
        number(status, "numberAvailable"),
        format_labels(mapping(obj, "spec", "template", "spec", "nodeSelector")),
        age(obj, now),
        *_wide(obj),
    ]


# --- Job ------------------------------------------------------------------------------------

# Condition types shown as the job's status, in precedence order: a finished job is Complete
# or Failed even while it is being deleted; a deleted one is Terminating even if suspended.
_FINISHED = ("Complete", "Failed")
_HELD = ("Suspended", "FailureTarget")


def _job_status(obj: Mapping[str, Any]) -> str:
    conditions = items(obj, "status", "conditions")
    for kind in _FINISHED:
        if condition_status(conditions, kind) == "True":
            return kind
    if field(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for kind in _HELD:
        if condition_status(conditions, kind) == "True":
            return kind
    return "Running"


def _job_completions(obj: Mapping[str, Any]) -> str:
    succeeded = number(obj, "status", "succeeded")
    completions = optional_number(obj, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = number(obj, "spec", "parallelism")
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def _job_duration(obj: Mapping[str, Any], now: datetime.datetime) -> str:
    """Start to completion, or start to ``now`` while running; "" before the job starts."""
    started = parse_time(field(obj, "status", "startTime"))
    if started is None:
        return ""
    finished = parse_time(field(obj, "status", "completionTime")) or aware(now)
    return human_duration((finished - started).total_seconds())


def _job_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [
        _name(obj),
        _job_status(obj),
        _job_completions(obj),
        _job_duration(obj, now),
        age(obj, now),
        *_wide(obj),
    ]


# --- CronJob, ControllerRevision --------------------------------------------------------------


def _cronjob_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    last = field(obj, "status", "lastScheduleTime")
    suspend = field(obj, "spec", "suspend")
    template = mapping(obj, "spec", "jobTemplate")
    names, images = template_containers(template)
    return [
        _name(obj),
        text(obj, "spec", "schedule"),
        text(obj, "spec", "timeZone", default=NONE),
        ("True" if suspend else "False") if isinstance(suspend, bool) else "<unset>",
        len(items(obj, "status", "active")),
        since(last, now) if last else NONE,
        age(obj, now),
        names,
        images,
        format_label_selector(field(template, "spec", "selector")),
    ]


def _controller_of(obj: Mapping[str, Any]) -> str:
    """``<kind>.<group>/<name>`` of the controlling owner, lower-cased kind and group as
    kubectl prints a resource name (``daemonset.apps/web``); "<none>" without one."""
    for ref in items(obj, "metadata", "ownerReferences"):
        if ref.get("controller") is True:
            group = text(ref, "apiVersion").rpartition("/")[0]
            kind = text(ref, "kind")
            qualified = f"{kind}.{group}" if group else kind
            return f"{qualified.lower()}/{text(ref, 'name')}" if kind else text(ref, "name")
    return NONE


def _revision_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [_name(obj), _controller_of(obj), number(obj, "revision"), age(obj, now)]


# --- registry -------------------------------------------------------------------------------

_READY_REPLICAS = Column("Ready", "Number of ready pods out of the desired replicas.")
_UP_TO_DATE = Column(
    "Up-to-date", "Number of pods running the latest pod template.", type="integer"
)
_AVAILABLE = Column(
    "Available", "Number of pods ready for at least minReadySeconds.", type="integer"
)


def _count(name: str, description: str) -> Column:
    return Column(name, description, type="integer")


PRINTERS: dict[str, Printer] = {
    "Deployment": Printer(
        (NAME, _READY_REPLICAS, _UP_TO_DATE, _AVAILABLE, AGE, CONTAINERS, IMAGES, SELECTOR),
        _deployment_cells,
    ),
    "ReplicaSet": Printer(
        (
            NAME,
            _count("Desired", "Number of desired pods (spec.replicas)."),
            _count("Current", "Number of pods the controller has created (status.replicas)."),
            _count("Ready", "Number of ready pods (status.readyReplicas)."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ),
        _replicaset_cells,
    ),
    "DaemonSet": Printer(
        (
            NAME,
            _count("Desired", "Number of nodes that should run the daemon pod."),
            _count("Current", "Number of nodes running at least one daemon pod."),
            _count("Ready", "Number of nodes whose daemon pod is ready."),
            _count("Up-to-date", "Number of nodes running the updated daemon pod."),
            _count("Available", "Number of nodes whose daemon pod is available."),
            Column("Node Selector", "Labels a node must have to run the daemon pod."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ),
        _daemonset_cells,
    ),
    "StatefulSet": Printer(
        (NAME, _READY_REPLICAS, AGE, CONTAINERS, IMAGES),
        _statefulset_cells,
    ),
    "Job": Printer(
        (
            NAME,
            Column("Status", "Status of the job."),
            Column("Completions", "Succeeded pods out of the desired completions."),
            Column("Duration", "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ),
        _job_cells,
    ),
    "CronJob": Printer(
        (
            NAME,
            Column("Schedule", "The schedule in Cron format."),
            Column("Timezone", "The time zone the schedule is read in."),
            Column("Suspend", "Whether the cron job creates no more jobs.", type="boolean"),
            _count("Active", "Number of currently running jobs."),
            Column("Last Schedule", "Time since a job was last scheduled."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ),
        _cronjob_cells,
    ),
    "ControllerRevision": Printer(
        (
            NAME,
            Column("Controller", "Controller of the object"),
            Column("Revision", "Revision indicates the revision of the state represented by "
                   "Data."),
            AGE,
        ),
        _revision_cells,
    ),
}
