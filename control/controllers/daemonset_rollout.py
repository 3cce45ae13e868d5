"""What a DaemonSet should create and delete, node by node and during a rolling update, and
the status it reports (kubernetes ``daemon_controller.go`` ``podsShouldBeOnNode``,
``updateDaemonSetStatus``; ``update.go`` ``rollingUpdate``).

Pure: the caller passes the nodes, the DaemonSet's claimed pods grouped by target node, the
current revision's hash and the time; it gets back pod names to delete, node names that need
a pod, and events to record.  Failed pods are deleted under a per-node back-off
(:class:`FailedPodBackoff`) so a node agent that keeps rejecting a pod is not fought in a hot
loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from control.api.objects import meta as _meta
from control.client import NORMAL, WARNING

from .daemonset_nodes import (
    allows_surge,
    creation_order,
    is_pod_updated,
    node_should_run,
    surge_count,
    template_generation,
    unavailable_count,
)
from .history import REVISION_LABEL
from .podutil import is_pod_available, is_pod_ready

__all__ = ["DaemonStatus", "FailedPodBackoff", "Plan", "daemon_status", "node_plan",
           "rolling_update_plan"]

Obj = dict[str, Any]
Event = tuple[str, str, str]  # (type, reason, message)



def _name(o: Obj) -> str:
    return str(_meta(o).get("name", ""))


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


class FailedPodBackoff:
    """``flowcontrol.Backoff(1s, 15min)`` keyed per DaemonSet generation and node, on the
    caller's monotonic clock: the first failed pod on a node is deleted at once, the next
    after 1 s, then 2 s, 4 s, … up to 15 minutes; quiet for 30 minutes starts over."""

    def __init__(self, initial: float = 1.0, maximum: float = 900.0) -> None:
        self.initial, self.maximum = initial, maximum
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (delay, last update)

    def _expired(self, now: float, last: float) -> bool:
        return now - last > 2 * self.maximum

    def in_backoff(self, key: str, now: float) -> float:
        """Seconds left before ``key`` may act again (0 when it may now)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry[1]):
            return 0.0
        delay, last = entry
        return max(0.0, delay - (now - last))

    def next(self, key: str, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry[1]):
            delay = self.initial
        else:
            delay = min(entry[0] * 2, self.maximum)
        self._entries[key] = (delay, now)
        if len(self._entries) > 1000:  # gc
            self._entries = {k: v for k, v in self._entries.items()
                             if not self._expired(now, v[1])}


@dataclass
class Plan:
    """Writes a sync wants: pods to delete (names), nodes to create a pod on, events, and a
    delay after which to look again (a back-off that has not run out)."""

    delete: list[str] = field(default_factory=list)
    create: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    again: float | None = None

    def later(self, seconds: float) -> None:
        self.again = seconds if self.again is None else min(self.again, seconds)


def node_plan(plan: Plan, ds: Obj, node: Obj, pods: list[Obj] | None, hash_: str,
              now: dt.datetime, failed_delay: Callable[[str], float]) -> None:
    """``podsShouldBeOnNode``: add to ``plan`` what ``node`` needs.  ``pods`` are the
    DaemonSet's pods targeting the node (None: none at all); ``failed_delay(node_name)``
    says how long a failed pod there must still wait before deletion (0: delete it now, and
    the back-off has been advanced)."""
    should_run, should_continue = node_should_run(node, ds)
    node_name = _name(node)
    if should_run and pods is None:
        plan.create.append(node_name)
        return
    if pods is None:
        return
    if not should_continue:
        plan.delete.extend(_name(p) for p in pods if not _meta(p).get("deletionTimestamp"))
        return
    running: list[Obj] = []
    for pod in pods:
        if _meta(pod).get("deletionTimestamp"):
            continue
        ns = _meta(pod).get("namespace", "")
        if _phase(pod) == "Failed":
            wait = failed_delay(node_name)
            if wait > 0:
                plan.later(wait)
                continue
            plan.events.append((WARNING, "FailedDaemonPod", (
                f"Found failed daemon pod {ns}/{_name(pod)} on node {node_name}, "
                "will try to kill it")))
            plan.delete.append(_name(pod))
        elif _phase(pod) == "Succeeded":
            plan.events.append((NORMAL, "SucceededDaemonPod", (
                f"Found succeeded daemon pod {ns}/{_name(pod)} on node {node_name}, "
                "will try to delete it")))
            plan.delete.append(_name(pod))
        else:
            running.append(pod)
    running.sort(key=creation_order)
    if not allows_surge(ds):
        plan.delete.extend(_name(p) for p in running[1:])  # keep the oldest
        return
    if len(running) <= 1:
        if not running and should_run:
            plan.create.append(node_name)  # surging: at least one live pod per node
        return
    # Surging: keep the oldest new pod, and the oldest old pod only while it is still ready
    # and the new one not yet available.
    newest: Obj | None = None
    oldest_old: Obj | None = None
    for pod in running:
        if (_meta(pod).get("labels") or {}).get(REVISION_LABEL) == hash_:
            if newest is None:
                newest = pod
                continue
        elif oldest_old is None:
            oldest_old = pod
            continue
        plan.delete.append(_name(pod))
    if newest is not None and oldest_old is not None:
        mrs = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if not is_pod_ready(oldest_old) or is_pod_available(newest, mrs, now):
            plan.delete.append(_name(oldest_old))


def _updated_on_node(pods: list[Obj], hash_: str, generation: str | None
                     ) -> tuple[Obj | None, Obj | None, bool]:
    """``findUpdatedPodsOnNode``: (new pod, old pod, at most one of each)."""
    new = old = None
    for pod in pods:
        if _meta(pod).get("deletionTimestamp"):
            continue
        if is_pod_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_update_plan(ds: Obj, nodes: list[Obj], node_pods: dict[str, list[Obj]],
                        hash_: str, now: dt.datetime) -> Plan:
    """``rollingUpdate``: old pods to delete (and, when surging, nodes to start a new pod on)
    within maxUnavailable/maxSurge.  Deleted pods do not count as unavailable, so an update
    progresses past nodes that are down."""
    by_name = {_name(n): n for n in nodes}
    node_pods = dict(node_pods)
    desired = 0
    for node in nodes:
        if node_should_run(node, ds)[0]:
            desired += 1
            node_pods.setdefault(_name(node), [])
    max_surge = surge_count(ds, desired)
    max_unavailable = unavailable_count(ds, desired)
    if desired > 0 and max_unavailable == 0 and max_surge == 0:
        max_unavailable = 1  # an impossible configuration: accept unavailability
    mrs = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    generation = template_generation(ds)

    def available(pod: Obj) -> bool:
        return is_pod_available(pod, mrs, now)

    plan = Plan()
    if max_surge == 0:
        unavailable = 0
        replace: list[str] = []
        candidates: list[str] = []
        for node_name in sorted(node_pods):
            new, old, ok = _updated_on_node(node_pods[node_name], hash_, generation)
            if not ok or (new is None) == (old is None):
                unavailable += 1  # the manage loop fixes this node first
            elif new is not None:
                unavailable += 0 if available(new) else 1
            elif old is not None and not available(old):
                replace.append(_name(old))
                unavailable += 1
            elif old is not None and unavailable < max_unavailable:
                candidates.append(_name(old))
        room = min(max(0, max_unavailable - unavailable), len(candidates))
        plan.delete = replace + candidates[:room]
        return plan

    surged = available_count = 0
    allowed: list[str] = []
    candidates = []
    off_node_pods: list[str] = []  # old pods on nodes the DaemonSet no longer wants
    for node_name in sorted(node_pods):
        new, old, ok = _updated_on_node(node_pods[node_name], hash_, generation)
        if not ok:
            surged += 1
            continue
        current = old if old is not None else new
        if current is not None and available(current):
            available_count += 1
        target = by_name.get(node_name)
        wanted = target is not None and node_should_run(target, ds)[0]
        if old is None:
            continue
        if new is None:
            if not available(old) and wanted:
                allowed.append(node_name)
            elif not available(old):
                plan.delete.append(_name(old))
            elif not wanted:
                off_node_pods.append(_name(old))
            elif surged < max_surge:
                candidates.append(node_name)
        elif not available(new):
            surged += 1
        else:
            plan.delete.append(_name(old))
    # With surge the owner expects full availability: a pod on a node no longer wanted goes
    # only once more pods are available than are desired.
    spare = min(max(0, available_count - desired), len(off_node_pods))
    plan.delete.extend(off_node_pods[:spare])
    room = min(max(0, max_surge - surged), len(candidates))
    plan.create = allowed + candidates[:room]
    return plan


@dataclass(frozen=True)
class DaemonStatus:
    desired: int = 0
    current: int = 0
    misscheduled: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0

    @property
    def unavailable(self) -> int:
        return self.desired - self.available


def daemon_status(ds: Obj, nodes: list[Obj], node_pods: dict[str, list[Obj]], hash_: str,
                  now: dt.datetime) -> DaemonStatus:
    """``updateDaemonSetStatus``'s counts: per node that should run a pod, its oldest pod
    decides ready/available/updated; a pod on a node that should not run one is
    misscheduled."""
    desired = current = misscheduled = ready = updated = available = 0
    mrs = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    generation = template_generation(ds)
    for node in nodes:
        should_run, _ = node_should_run(node, ds)
        pods = node_pods.get(_name(node)) or []
        if not should_run:
            misscheduled += 1 if pods else 0
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = min(pods, key=creation_order)
        if is_pod_ready(pod):
            ready += 1
            available += 1 if is_pod_available(pod, mrs, now) else 0
        updated += 1 if is_pod_updated(pod, hash_, generation) else 0
    return DaemonStatus(desired, current, misscheduled, ready, updated, available)
