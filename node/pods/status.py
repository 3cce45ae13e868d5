"""A pod's ``status`` as the kubelet computes it (``generateAPIPodStatus``, ``getPhase``,
``convertToAPIContainerStatuses`` in ``pkg/kubelet/kubelet_pods.go``; the conditions of
``pkg/kubelet/status/generate.go``).  Pure: the worker passes what the runtime reports and what
it knows itself (probe results, why a container waits).

Container state: the newest runtime instance gives ``state``, the one before it
``lastState``; ``restartCount`` is the newest instance's attempt.  A container the worker will
(re)start shows the reason it waits (``CrashLoopBackOff``, ``ErrImagePull``,
``ImagePullBackOff``, ``CreateContainerConfigError``, ``RunContainerError``...) with its last
termination as ``lastState``.  A container never started waits with ``ContainerCreating``
(``PodInitializing`` while the pod has init containers).

Phase (``getPhase``): Failed as soon as an init container fails under ``restartPolicy: Never``;
Pending while an init container has not completed or an app container waits; Running once all
app containers have started and one runs; with all stopped: Succeeded or Failed when the pod is
terminal or no container will restart (Never, or OnFailure with all succeeded), else Running
(they are restarting).  A terminal pod that did not finish (deleted while Pending, an init
container or a restart still to come) is Failed.  A terminal phase never goes back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from control.api.clock import format_time
from node.runtime.api import ContainerState, ContainerStatus, format_container_id

from .containers import is_sidecar

__all__ = ["KUBELET_CONDITIONS", "ContainerView", "PodFacts", "container_status",
           "needs_reconcile", "pod_phase", "pod_status", "qos_class"]

TERMINAL = ("Succeeded", "Failed")
#: The pod conditions the kubelet owns: it computes them, and others' writes of them are undone.
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled")


@dataclass(frozen=True)
class ContainerView:
    """What the worker knows of one container of the spec.  ``instances``: its runtime
    instances, newest first.  ``waiting``: why it waits, when the worker means to (re)start it
    (``restarting``)."""

    instances: tuple[ContainerStatus, ...] = ()
    waiting: tuple[str, str] | None = None
    restarting: bool = False
    ready: bool = False
    started: bool = False


@dataclass(frozen=True)
class PodFacts:
    """The pod-level inputs besides the spec and the containers."""

    runtime: str
    pod_ip: str = ""
    host_ip: str = ""
    sandbox_ready: bool = False
    start_time: dt.datetime | None = None
    terminal: bool = False  # the worker has finished with the pod (terminated or completed)


def _time(t: dt.datetime | None) -> str | None:
    return format_time(t) if t is not None else None


def _state(c: ContainerStatus, runtime: str) -> dict[str, Any]:
    if c.state is ContainerState.RUNNING:
        return {"running": {"startedAt": _time(c.started_at)}}
    if c.state is ContainerState.EXITED:
        term = {"exitCode": c.exit_code if c.exit_code is not None else 137,
                "reason": c.reason or ("Completed" if c.exit_code == 0 else "Error"),
                "startedAt": _time(c.started_at), "finishedAt": _time(c.finished_at),
                "containerID": format_container_id(runtime, c.id)}
        if c.message:
            term["message"] = c.message
        return {"terminated": term}
    if c.state is ContainerState.UNKNOWN:
        return {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                               "message": "The container could not be located when the pod "
                                          "was terminated",
                               "containerID": format_container_id(runtime, c.id)}}
    return {"waiting": {"reason": "ContainerCreating"}}


def container_status(spec: Mapping[str, Any], view: ContainerView, *, runtime: str,
                     default_reason: str, is_init: bool,
                     old: Mapping[str, Any] | None) -> dict[str, Any]:
    """One entry of ``containerStatuses`` / ``initContainerStatuses``."""
    status: dict[str, Any] = {"name": spec.get("name", ""), "image": spec.get("image", ""),
                              "imageID": "", "state": {"waiting": {"reason": default_reason}},
                              "lastState": {}, "ready": False, "restartCount": 0,
                              "started": False}
    if old is not None and "terminated" not in (old.get("state") or {}):
        status["restartCount"] = old.get("restartCount", 0)
        status["lastState"] = dict(old.get("lastState") or {})
    if view.instances:
        latest = view.instances[0]
        status["state"] = _state(latest, runtime)
        status["containerID"] = format_container_id(runtime, latest.id)
        status["imageID"] = latest.image_ref
        status["restartCount"] = latest.attempt
        if len(view.instances) > 1:
            status["lastState"] = _state(view.instances[1], runtime)
        running = latest.state is ContainerState.RUNNING
        status["started"] = running and view.started
        if is_init and not is_sidecar(spec):
            status["ready"] = latest.state is ContainerState.EXITED and latest.exit_code == 0
        else:
            status["ready"] = running and view.ready
    elif old is not None and "terminated" in (old.get("state") or {}):
        status = {**dict(old), "ready": False, "started": False}
    if view.restarting and view.waiting is not None:
        if "terminated" in status["state"]:
            status["lastState"] = status["state"]
        reason, message = view.waiting
        status["state"] = {"waiting": {"reason": reason, **({"message": message}
                                                            if message else {})}}
        status["ready"] = status["started"] = False
    return status


def _by_name(statuses: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {s.get("name", ""): s for s in statuses}


def pod_phase(pod: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]], *,
              terminal: bool, initialized_before: bool) -> str:
    """``getPhase`` (without the ContainerRestartRules feature)."""
    spec = pod.get("spec") or {}
    by_name = _by_name(statuses)
    policy = spec.get("restartPolicy") or "Always"
    pending_init = pending_sidecars = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("initContainers") or []:
        s = by_name.get(c.get("name", ""))
        state = (s or {}).get("state") or {}
        last = ((s or {}).get("lastState") or {}).get("terminated")
        if is_sidecar(c):
            if s is None:
                unknown += 1
                pending_sidecars += 1
            elif "running" in state:
                running += 1
                if not s.get("started"):
                    pending_sidecars += 1
            elif "waiting" in state and last is None:
                pending_sidecars += 1
                waiting += 1
            continue
        if s is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            if state["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif "waiting" in state and last is not None:
            if last.get("exitCode", 0) != 0:
                failed_init += 1
        else:
            pending_init += 1
    for c in spec.get("containers") or []:
        s = by_name.get(c.get("name", ""))
        state = (s or {}).get("state") or {}
        if s is None:
            unknown += 1
        elif "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in state:
            if ((s.get("lastState") or {}).get("terminated")) is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if failed_init and policy == "Never":
        return "Failed"
    if terminal and not running:
        # Stopped for good: Succeeded only if every app container ran and succeeded.  A pod
        # deleted before it finished — maybe before it ever ran — is Failed, as the kubelet
        # ends a deleted pod, so a Job (podReplacementPolicy Failed) replaces it and removes
        # its finalizer instead of waiting on a Pending pod forever.
        done = stopped and stopped == succeeded and not (unknown or waiting or pending_init)
        return "Succeeded" if done else "Failed"
    if pending_init or (pending_sidecars and not initialized_before) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def qos_class(spec: Mapping[str, Any]) -> str:
    """Guaranteed (every container limits cpu and memory, requests equal to them),
    BestEffort (no requests or limits at all), else Burstable."""
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pod_status(pod: Mapping[str, Any], *, init: Mapping[str, ContainerView],
               app: Mapping[str, ContainerView], facts: PodFacts,
               now: dt.datetime) -> dict[str, Any]:
    """The pod's whole ``status``, from its current one (``pod["status"]``) and the views."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    init_specs = spec.get("initContainers") or []
    default = "PodInitializing" if init_specs else "ContainerCreating"
    old_app = _by_name(old.get("containerStatuses") or [])
    old_init = _by_name(old.get("initContainerStatuses") or [])
    app_statuses = sorted(
        (container_status(c, app.get(c.get("name", ""), ContainerView()),
                          runtime=facts.runtime, default_reason=default, is_init=False,
                          old=old_app.get(c.get("name", "")))
         for c in spec.get("containers") or []), key=lambda s: s["name"])
    init_statuses = [container_status(c, init.get(c.get("name", ""), ContainerView()),
                                      runtime=facts.runtime, default_reason="PodInitializing",
                                      is_init=True, old=old_init.get(c.get("name", "")))
                     for c in init_specs]
    started_before = any(v.instances for v in app.values())
    phase = pod_phase(pod, [*app_statuses, *init_statuses], terminal=facts.terminal,
                      initialized_before=started_before)
    if phase not in TERMINAL and old.get("phase") in TERMINAL:
        phase = old["phase"]  # a terminal phase is final
    status: dict[str, Any] = {"phase": phase}
    if phase == old.get("phase"):
        for key in ("reason", "message"):
            if old.get(key):
                status[key] = old[key]
    conditions = [c for c in old.get("conditions") or []
                  if c.get("type") not in KUBELET_CONDITIONS]
    conditions += _conditions(pod, app_statuses, init_statuses, phase, facts, started_before)
    status["conditions"] = _stamp(conditions, old.get("conditions") or [], now)
    if facts.host_ip:
        status["hostIP"] = facts.host_ip
        status["hostIPs"] = [{"ip": facts.host_ip}]
    if facts.pod_ip:
        status["podIP"] = facts.pod_ip
        status["podIPs"] = [{"ip": facts.pod_ip}]
    elif old.get("podIP"):
        status["podIP"], status["podIPs"] = old["podIP"], old.get("podIPs") or []
    start = old.get("startTime") or _time(facts.start_time)
    if start:
        status["startTime"] = start
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = app_statuses
    status["qosClass"] = old.get("qosClass") or qos_class(spec)
    return status


def _conditions(pod: Mapping[str, Any], app: Sequence[Mapping[str, Any]],
                init: Sequence[Mapping[str, Any]], phase: str, facts: PodFacts,
                started_before: bool) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    ready_to_start = {"type": "PodReadyToStartContainers",
                      "status": "True" if facts.sandbox_ready else "False"}
    # Initialized
    init_by_name = _by_name(init)
    unknown = [c["name"] for c in spec.get("initContainers") or [] if c["name"] not in
               init_by_name]
    incomplete = [c["name"] for c in spec.get("initContainers") or []
                  if c["name"] in init_by_name and not (
                      init_by_name[c["name"]].get("started") if is_sidecar(c)
                      else init_by_name[c["name"]].get("ready"))]
    if (phase == "Succeeded" and not unknown) or started_before or not (unknown or incomplete):
        initialized: dict[str, Any] = {"type": "Initialized", "status": "True"}
        if phase == "Succeeded" and not unknown:
            initialized["reason"] = "PodCompleted"
    else:
        initialized = {"type": "Initialized", "status": "False",
                       "reason": "ContainersNotInitialized",
                       "message": _message(unknown, incomplete, "incomplete")}
    # ContainersReady and Ready
    app_by_name = _by_name(app)
    unready, unknown_app = [], []
    for c in [*[c for c in spec.get("initContainers") or [] if is_sidecar(c)],
              *(spec.get("containers") or [])]:
        s = app_by_name.get(c["name"]) or init_by_name.get(c["name"])
        if s is None:
            unknown_app.append(c["name"])
        elif not s.get("ready"):
            unready.append(c["name"])
    if phase in TERMINAL and not (phase == "Succeeded" and unknown_app):
        reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        containers_ready = {"type": "ContainersReady", "status": "False", "reason": reason}
    elif unready or unknown_app:
        containers_ready = {"type": "ContainersReady", "status": "False",
                            "reason": "ContainersNotReady",
                            "message": _message(unknown_app, unready, "unready")}
    else:
        containers_ready = {"type": "ContainersReady", "status": "True"}
    ready = {**containers_ready, "type": "Ready"}
    if containers_ready["status"] == "True":
        gates = _readiness_gates(pod)
        if gates:
            ready = {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
                     "message": ", ".join(gates)}
    scheduled = {"type": "PodScheduled", "status": "True"}
    return [ready_to_start, initialized, ready, containers_ready, scheduled]


def _message(unknown: list[str], bad: list[str], word: str) -> str:
    parts = []
    if unknown:
        parts.append(f"containers with unknown status: [{' '.join(unknown)}]")
    if bad:
        parts.append(f"containers with {word} status: [{' '.join(bad)}]")
    return ", ".join(parts)


def _readiness_gates(pod: Mapping[str, Any]) -> list[str]:
    conditions = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    out = []
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        kind = gate.get("conditionType", "")
        c = conditions.get(kind)
        if c is None:
            out.append(f'corresponding condition of pod readiness gate "{kind}" does not '
                       "exist.")
        elif c.get("status") != "True":
            out.append(f'the status of pod readiness gate "{kind}" is not "True", but '
                       f"{c.get('status')}")
    return out


def _stamp(conditions: list[dict[str, Any]], old: Sequence[Mapping[str, Any]],
           now: dt.datetime) -> list[dict[str, Any]]:
    """``lastTransitionTime``: kept while a condition's status is unchanged, else now."""
    previous = {c.get("type"): c for c in old}
    out = []
    for c in conditions:
        before = previous.get(c["type"])
        c = {**c, "lastProbeTime": c.get("lastProbeTime")}
        if "lastTransitionTime" not in c or c["lastTransitionTime"] is None:
            same = before is not None and before.get("status") == c["status"]
            c["lastTransitionTime"] = (before.get("lastTransitionTime") if same and before
                                       else format_time(now))
        out.append(c)
    return out


def needs_reconcile(api: Mapping[str, Any], ours: Mapping[str, Any]) -> bool:
    """Whether the API's status ``api`` has lost what the kubelet last computed, ``ours`` (the
    status manager's ``needsReconcile``): a kubelet condition another writer changed (the node
    lifecycle controller marks a pod Ready=False when it loses sight of the node) or a
    non-terminal phase that differs.  Only types and statuses count, so neither timestamps nor
    a write still on its way make it true for long."""
    if api.get("phase") not in TERMINAL and ours.get("phase") != api.get("phase"):
        return True
    theirs = {c.get("type"): c.get("status") for c in api.get("conditions") or []}
    return any(theirs.get(c.get("type")) != c.get("status")
               for c in ours.get("conditions") or [] if c.get("type") in KUBELET_CONDITIONS)
