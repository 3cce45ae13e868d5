"""What a pod worker does next, decided from the spec and the runtime's containers (the
kubelet's ``computePodActions``).  Pure: the worker executes the plan.

* Init containers run one at a time, in order, each to success; a restartable init container
  (sidecar) only has to have *started*.  One that fails is restarted (with back-off) unless
  ``restartPolicy`` is Never: then the pod has failed.
* Then the app containers (and sidecars) start; one that exits is restarted when the policy
  says so (Always; OnFailure after a non-zero exit), after its back-off (CrashLoopBackOff).
* When every app container has exited for good, the pod is done (Succeeded or Failed), and its
  sidecars are stopped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.runtime.api import ContainerState, ContainerStatus

from .containers import is_sidecar

__all__ = ["Plan", "finished_at", "go_duration", "newest_first", "plan_pod", "should_restart"]


@dataclass
class Plan:
    start: list[tuple[Mapping[str, Any], bool]] = field(default_factory=list)  # (spec, init?)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # held by back-off
    restarting: set[str] = field(default_factory=set)  # names the worker means to (re)start
    init_failed: bool = False
    done: bool = False  # every app container has finished for good
    initialized: bool = False
    next_wakeup: float | None = None  # seconds until a back-off ends


def should_restart(policy: str, latest: ContainerStatus) -> bool:
    if latest.state is not ContainerState.EXITED:
        return False
    return policy == "Always" or (policy == "OnFailure" and latest.exit_code != 0)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration`` text for whole seconds: ``10s``, ``1m20s``, ``5m0s``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s}s"
    h, m = divmod(m, 60)
    return f"{h}h{m}m{s}s"


def plan_pod(pod: Mapping[str, Any], instances: Mapping[str, Sequence[ContainerStatus]], *,
             started: Callable[[ContainerStatus], bool],
             backoff_left: Callable[[str, ContainerStatus], float],
             backoff_window: Callable[[str], float]) -> Plan:
    """``instances``: each container name's runtime instances, newest first.  ``started``:
    whether a running instance has started (its startup probe passed).  ``backoff_left``:
    seconds before a container may restart after its latest exit; ``backoff_window``: the
    back-off it will then serve (for the CrashLoopBackOff message)."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    policy = spec.get("restartPolicy") or "Always"
    plan = Plan()
    pod_ref = f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"

    def restart(c: Mapping[str, Any], latest: ContainerStatus, init: bool) -> None:
        name = c.get("name", "")
        plan.restarting.add(name)
        left = backoff_left(name, latest)
        if left > 0:
            window = go_duration(backoff_window(name))
            message = f"back-off {window} restarting failed container={name} pod={pod_ref}"
            plan.waiting[name] = ("CrashLoopBackOff", message)
            plan.next_wakeup = left if plan.next_wakeup is None else min(plan.next_wakeup,
                                                                         left)
        else:
            plan.start.append((c, init))

    def first_start(c: Mapping[str, Any], init: bool) -> None:
        plan.restarting.add(c.get("name", ""))
        plan.start.append((c, init))

    apps = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    plan.initialized = any(instances.get(c.get("name", "")) for c in apps)
    if not plan.initialized:
        for c in inits:
            latest = _latest(instances, c)
            if latest is None:
                first_start(c, True)
                break
            if is_sidecar(c):
                if latest.state is ContainerState.RUNNING:
                    if started(latest):
                        continue
                    break
                if latest.state is ContainerState.EXITED:
                    restart(c, latest, True)
                break
            if latest.state is ContainerState.EXITED and latest.exit_code == 0:
                continue
            if latest.state is ContainerState.EXITED:
                if policy == "Never":
                    plan.init_failed = True
                else:
                    restart(c, latest, True)
            break
        else:
            plan.initialized = True
        if not plan.initialized:
            return plan
    for c in inits:
        if is_sidecar(c):
            latest = _latest(instances, c)
            if latest is None:
                first_start(c, True)
            elif latest.state is ContainerState.EXITED:
                restart(c, latest, True)
    finished = 0
    for c in apps:
        latest = _latest(instances, c)
        if latest is None:
            first_start(c, False)
        elif should_restart(policy, latest):
            restart(c, latest, False)
        elif latest.state is ContainerState.EXITED:
            finished += 1
    plan.done = bool(apps) and finished == len(apps)
    return plan


def _latest(instances: Mapping[str, Sequence[ContainerStatus]],
            c: Mapping[str, Any]) -> ContainerStatus | None:
    found = instances.get(c.get("name", ""))
    return found[0] if found else None


def newest_first(containers: Sequence[ContainerStatus]) -> dict[str, list[ContainerStatus]]:
    """Group runtime instances by container name, newest (highest attempt) first."""
    out: dict[str, list[ContainerStatus]] = {}
    for c in sorted(containers, key=lambda c: (c.attempt, c.created_at), reverse=True):
        out.setdefault(c.name, []).append(c)
    return out


def finished_at(c: ContainerStatus) -> dt.datetime:
    return c.finished_at or c.created_at
