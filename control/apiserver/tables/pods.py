"""The Pod table: the READY/STATUS/RESTARTS summary kubectl shows for ``get pods``.

STATUS follows kube-apiserver's rules: the phase (or ``status.reason``), overridden by the
first unfinished init container ("Init:1/2", "Init:CrashLoopBackOff"), then by the waiting or
terminated reason of a regular container ("CrashLoopBackOff", "Completed", "ExitCode:1"), then
"Terminating" while a deletion is pending.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control.apiserver.tables._columns import AGE, NAME, Column, Printer
from control.apiserver.tables._fields import (
    NONE,
    age,
    aware,
    condition_status,
    field,
    human_duration,
    items,
    mapping,
    number,
    parse_time,
    text,
)

__all__ = ["PRINTERS"]

_NODE_LOST = "NodeLost"
_TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass
class _Tally:
    """What the container statuses add up to while a pod row is being built."""

    reason: str
    ready: int = 0
    restarts: int = 0
    last_restart: datetime.datetime | None = None

    def count_restarts(self, status: Mapping[str, Any]) -> None:
        """Add a container's restarts and remember its latest termination time."""
        self.restarts += number(status, "restartCount")
        finished = parse_time(field(status, "lastState", "terminated", "finishedAt"))
        if finished and (self.last_restart is None or finished > self.last_restart):
            self.last_restart = finished


def _has(state: Mapping[str, Any], key: str) -> bool:
    """Whether a container state has the sub-state ``key`` (waiting, running, terminated)."""
    return isinstance(state.get(key), Mapping)


def _is_sidecar(container: Mapping[str, Any]) -> bool:
    """A restartable init container (restartPolicy Always) runs alongside the main ones."""
    return container.get("restartPolicy") == "Always"


def _terminated_reason(terminated: Mapping[str, Any]) -> str:
    reason = text(terminated, "reason")
    if reason:
        return reason
    if number(terminated, "signal"):
        return f"Signal:{number(terminated, 'signal')}"
    return f"ExitCode:{number(terminated, 'exitCode')}"


def _init_containers(pod: Mapping[str, Any], tally: _Tally) -> tuple[bool, _Tally]:
    """Walk init container statuses; return whether the pod is still initializing and a tally
    of the sidecars' restarts alone (those still count once the pod is initialized)."""
    specs = items(pod, "spec", "initContainers")
    sidecars = {text(c, "name") for c in specs if _is_sidecar(c)}
    sidecar_tally = _Tally(reason="")
    for index, status in enumerate(items(pod, "status", "initContainerStatuses")):
        tally.count_restarts(status)
        is_sidecar = text(status, "name") in sidecars
        if is_sidecar:
            sidecar_tally.count_restarts(status)
        state = mapping(status, "state")
        terminated, waiting = mapping(state, "terminated"), mapping(state, "waiting")
        if _has(state, "terminated") and number(terminated, "exitCode") == 0:
            continue
        if is_sidecar and status.get("started") is True:
            if status.get("ready") is True:
                tally.ready += 1
            continue
        if _has(state, "terminated"):
            tally.reason = "Init:" + _terminated_reason(terminated)
        elif text(waiting, "reason") not in ("", "PodInitializing"):
            tally.reason = "Init:" + text(waiting, "reason")
        else:
            tally.reason = f"Init:{index}/{len(specs)}"
        return True, sidecar_tally
    return False, sidecar_tally


def _main_containers(pod: Mapping[str, Any], tally: _Tally) -> None:
    """Fold the regular container statuses into ``tally``; the first container listed wins
    the STATUS, as kube walks them from last to first."""
    has_running = False
    for status in reversed(items(pod, "status", "containerStatuses")):
        tally.count_restarts(status)
        state = mapping(status, "state")
        waiting, terminated = mapping(state, "waiting"), mapping(state, "terminated")
        if text(waiting, "reason"):
            tally.reason = text(waiting, "reason")
        elif _has(state, "terminated"):
            tally.reason = _terminated_reason(terminated)
        elif status.get("ready") is True and _has(state, "running"):
            has_running = True
            tally.ready += 1
    if tally.reason == "Completed" and has_running:
        ready = condition_status(items(pod, "status", "conditions"), "Ready") == "True"
        tally.reason = "Running" if ready else "NotReady"


def _status_reason(pod: Mapping[str, Any]) -> str:
    reason = text(pod, "status", "reason") or text(pod, "status", "phase", default="Pending")
    for cond in items(pod, "status", "conditions"):
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    return reason


def _summary(pod: Mapping[str, Any]) -> _Tally:
    """READY, STATUS and RESTARTS of a pod, before the deletion override."""
    tally = _Tally(reason=_status_reason(pod))
    initializing, sidecars = _init_containers(pod, tally)
    initialized = condition_status(items(pod, "status", "conditions"), "Initialized") == "True"
    if not initializing or initialized:
        # Once initialized, only sidecar restarts still count among the init containers.
        tally.restarts, tally.last_restart = sidecars.restarts, sidecars.last_restart
        _main_containers(pod, tally)
    if field(pod, "metadata", "deletionTimestamp"):
        if text(pod, "status", "reason") == _NODE_LOST:
            tally.reason = "Unknown"
        elif text(pod, "status", "phase") not in _TERMINAL_PHASES:
            tally.reason = "Terminating"
    return tally


def _restarts_cell(tally: _Tally, now: datetime.datetime) -> str:
    if tally.restarts and tally.last_restart is not None:
        ago = human_duration((aware(now) - tally.last_restart).total_seconds())
        return f"{tally.restarts} ({ago} ago)"
    return str(tally.restarts)


def _readiness_gates(pod: Mapping[str, Any]) -> str:
    gates = items(pod, "spec", "readinessGates")
    if not gates:
        return NONE
    conditions = items(pod, "status", "conditions")
    passed = sum(condition_status(conditions, text(g, "conditionType")) == "True" for g in gates)
    return f"{passed}/{len(gates)}"


def _pod_ip(pod: Mapping[str, Any]) -> str:
    ips = items(pod, "status", "podIPs")
    return (text(ips[0], "ip") if ips else "") or text(pod, "status", "podIP", default=NONE)


def _pod_cells(pod: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    tally = _summary(pod)
    statuses = items(pod, "status", "containerStatuses")
    total = len(items(pod, "spec", "containers")) or len(statuses)
    total += sum(_is_sidecar(c) for c in items(pod, "spec", "initContainers"))
    return [
        text(pod, "metadata", "name"),
        f"{tally.ready}/{total}",
        tally.reason,
        _restarts_cell(tally, now),
        age(pod, now),
        _pod_ip(pod),
        text(pod, "spec", "nodeName", default=NONE),
        text(pod, "status", "nominatedNodeName", default=NONE),
        _readiness_gates(pod),
    ]


_POD_COLUMNS = (
    NAME,
    Column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", "The aggregate status of the containers in this pod."),
    Column(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the "
        "last container in this pod has restarted.",
    ),
    AGE,
    Column("IP", "The pod's IP address (status.podIP).", priority=1),
    Column("Node", "The node the pod is bound to (spec.nodeName).", priority=1),
    Column(
        "Nominated Node",
        "The node the scheduler nominated for the pod (status.nominatedNodeName).",
        priority=1,
    ),
    Column(
        "Readiness Gates",
        "Passed and total readiness gates of the pod (spec.readinessGates).",
        priority=1,
    ),
)

PRINTERS: dict[str, Printer] = {"Pod": Printer(_POD_COLUMNS, _pod_cells)}
