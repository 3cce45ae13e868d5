"""The scheduling queue: pending pods in three places, as kube-scheduler's PriorityQueue.

* **active** — ready to be tried, highest ``spec.priority`` first, then oldest
  ``creationTimestamp``, then arrival;
* **backoff** — tried and failed recently; each waits ``1 s · 2^(attempts-1)`` (at most 10 s)
  before going back to active;
* **unschedulable** — no node fit.  Such a pod stays until a cluster event that could help
  it happens (a node added, a node's allocatable, labels, taints or cordon changed, a placed
  pod deleted or relabelled — matched against the plugins that rejected it), or until it has
  waited ``max_unschedulable`` (5 minutes) as a safety net.  An event that happens while a
  pod is being tried sends that pod to backoff, not unschedulable, so it is not lost.

Pure and synchronous with an injected :class:`~control.api.clock.Clock`; the process wakes
its loop with :meth:`next_due`.  A pod is in at most one place (and not queued at all while
being tried: between :meth:`pop` and :meth:`done`/requeue).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from control.api.clock import Clock

from .podinfo import PodInfo

__all__ = ["EVENTS", "QueuedPod", "SchedulingQueue"]

_ALL = frozenset({"NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity",
                  "NodePorts", "NodeResourcesFit", "PodTopologySpread", "InterPodAffinity"})
# cluster event -> the plugins whose rejection it may undo (kube's EventsToRegister)
EVENTS: dict[str, frozenset[str]] = {
    "NodeAdd": _ALL,
    "NodeAllocatable": frozenset({"NodeResourcesFit"}),
    "NodeLabel": frozenset({"NodeAffinity", "PodTopologySpread", "InterPodAffinity"}),
    "NodeTaint": frozenset({"TaintToleration", "NodeUnschedulable"}),
    "NodeSchedulable": frozenset({"NodeUnschedulable"}),
    "AssignedPodAdd": frozenset({"InterPodAffinity", "PodTopologySpread"}),
    "AssignedPodUpdate": frozenset({"InterPodAffinity", "PodTopologySpread"}),
    "AssignedPodDelete": frozenset({"NodeResourcesFit", "NodePorts", "InterPodAffinity",
                                    "PodTopologySpread"}),
    "NamespaceLabel": frozenset({"InterPodAffinity"}),
    "Other": _ALL,
}


@dataclass(eq=False)
class QueuedPod:
    info: PodInfo
    first_seen: float  # monotonic: when the pod first entered the queue (e2e latency)
    attempts: int = 0
    plugins: frozenset[str] = frozenset()
    cycle: int = 0
    ready_at: float = 0.0
    since: float = 0.0  # when it entered its current place
    seq: int = 0
    order: tuple[int, str, int] = field(default=(0, "", 0))


class SchedulingQueue:
    def __init__(self, clock: Clock, *, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable: float = 300.0) -> None:
        self._clock = clock
        self._initial, self._max = initial_backoff, max_backoff
        self._max_unschedulable = max_unschedulable
        self._seq = itertools.count()
        self._active: list[tuple[tuple[int, str, int], QueuedPod]] = []
        self._active_set: dict[str, QueuedPod] = {}
        self._backoff: list[tuple[float, int, QueuedPod]] = []
        self._backoff_set: dict[str, QueuedPod] = {}
        self._unschedulable: dict[str, QueuedPod] = {}
        self._by_plugin: dict[str, set[str]] = {}  # plugin ("" = any event) -> uids
        self._in_flight: dict[str, QueuedPod] = {}
        self.cycle = 0
        self._move_cycle = -1

    # --- placing --------------------------------------------------------------------------

    def _to_active(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        qp.order = (-qp.info.priority, qp.info.created, qp.seq)
        qp.since = self._clock.monotonic()
        self._active_set[qp.info.uid] = qp
        heapq.heappush(self._active, (qp.order, qp))

    def _to_backoff(self, qp: QueuedPod) -> None:
        delay = min(self._max, self._initial * 2 ** max(0, qp.attempts - 1))
        now = self._clock.monotonic()
        qp.ready_at = now + delay
        qp.since = now
        self._backoff_set[qp.info.uid] = qp
        heapq.heappush(self._backoff, (qp.ready_at, next(self._seq), qp))

    def _park(self, qp: QueuedPod) -> None:
        self._unschedulable[qp.info.uid] = qp
        for plugin in qp.plugins or ("",):
            self._by_plugin.setdefault(plugin, set()).add(qp.info.uid)

    def _unpark(self, uid: str) -> QueuedPod | None:
        qp = self._unschedulable.pop(uid, None)
        if qp is not None:
            for plugin in qp.plugins or ("",):
                uids = self._by_plugin.get(plugin)
                if uids is not None:
                    uids.discard(uid)
                    if not uids:
                        del self._by_plugin[plugin]
        return qp

    def _take(self, uid: str) -> QueuedPod | None:
        """Remove ``uid`` from wherever it waits (heaps are cleaned lazily)."""
        for place in (self._active_set, self._backoff_set):
            qp = place.pop(uid, None)
            if qp is not None:
                return qp
        return self._unpark(uid)

    def add(self, info: PodInfo) -> None:
        """A new pending pod (or one seen again after a relist): to active, unless known."""
        uid = info.uid
        if uid in self._in_flight:
            self._in_flight[uid].info = info
            return
        if uid in self._active_set or uid in self._backoff_set or uid in self._unschedulable:
            self.update(info)
            return
        self._to_active(QueuedPod(info, self._clock.monotonic()))

    def update(self, info: PodInfo) -> None:
        """The pending pod changed.  In active or backoff it keeps its place; an
        unschedulable pod whose scheduling-relevant spec changed is tried again (after what
        is left of its back-off)."""
        uid = info.uid
        if uid in self._in_flight:
            self._in_flight[uid].info = info
            return
        was_active, was_backoff = uid in self._active_set, uid in self._backoff_set
        qp = self._take(uid)
        if qp is None:
            self.add(info)
            return
        changed = qp.info.template is not info.template
        qp.info = info
        if was_active:
            self._to_active(qp)
        elif was_backoff:
            self._backoff_set[uid] = qp
            heapq.heappush(self._backoff, (qp.ready_at, next(self._seq), qp))
        elif changed:
            self._wake(qp, self._clock.monotonic())
        else:
            self._park(qp)

    def _wake(self, qp: QueuedPod, now: float) -> None:
        delay = min(self._max, self._initial * 2 ** max(0, qp.attempts - 1))
        if qp.since + delay > now:
            self._to_backoff(qp)
        else:
            self._to_active(qp)

    def delete(self, uid: str) -> None:
        self._take(uid)
        self._in_flight.pop(uid, None)

    # --- the scheduling loop's side ----------------------------------------------------------

    def pop(self) -> QueuedPod | None:
        """The next pod to try, or None when active is empty (call :meth:`flush` first)."""
        while self._active:
            _, qp = heapq.heappop(self._active)
            if self._active_set.get(qp.info.uid) is qp:
                del self._active_set[qp.info.uid]
                self.cycle += 1
                qp.cycle = self.cycle
                qp.attempts += 1
                self._in_flight[qp.info.uid] = qp
                return qp
        return None

    def done(self, uid: str) -> None:
        """The pod was placed (or is gone): it leaves the queue for good."""
        self._in_flight.pop(uid, None)

    def unschedulable(self, qp: QueuedPod, plugins: Iterable[str]) -> None:
        """No node fit; ``plugins`` rejected it.  If an event came in meanwhile, back off
        instead of waiting for the next event."""
        if self._in_flight.pop(qp.info.uid, None) is None:
            return  # deleted while being tried
        qp.plugins = frozenset(plugins)
        if self._move_cycle >= qp.cycle:
            self._to_backoff(qp)
        else:
            qp.since = self._clock.monotonic()
            self._park(qp)

    def retry(self, qp: QueuedPod) -> None:
        """An error (a failed bind, an API fault): try again after the back-off.  Also for a
        pod already handed to :meth:`done` whose bind then failed."""
        self._in_flight.pop(qp.info.uid, None)
        if qp.info.uid not in self:
            self._to_backoff(qp)

    def on_event(self, event: str) -> int:
        """A cluster event: move the unschedulable pods it may help; how many moved."""
        helps = EVENTS.get(event, EVENTS["Other"])
        self._move_cycle = self.cycle
        uids: set[str] = set()
        for plugin in ("", *helps):
            uids |= self._by_plugin.get(plugin, set())
        now = self._clock.monotonic()
        for uid in uids:
            qp = self._unpark(uid)
            if qp is not None:
                self._wake(qp, now)
        return len(uids)

    def flush(self) -> None:
        """Move due back-offs to active, and pods unschedulable for too long."""
        now = self._clock.monotonic()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, qp = heapq.heappop(self._backoff)
            if self._backoff_set.get(qp.info.uid) is qp:
                del self._backoff_set[qp.info.uid]
                self._to_active(qp)
        if self._unschedulable and self._oldest_parked() + self._max_unschedulable <= now:
            stale = [qp.info.uid for qp in self._unschedulable.values()
                     if now - qp.since >= self._max_unschedulable]
            for uid in stale:
                parked = self._unpark(uid)
                if parked is not None:
                    self._to_active(parked)

    def _oldest_parked(self) -> float:
        # dicts keep insertion order and ``since`` is set on insertion: the first is oldest
        return next(iter(self._unschedulable.values())).since

    def next_due(self) -> float | None:
        """The monotonic time the next back-off ends or an unschedulable pod times out."""
        due = [self._backoff[0][0]] if self._backoff else []
        if self._unschedulable:
            due.append(self._oldest_parked() + self._max_unschedulable)
        return min(due) if due else None

    def sizes(self) -> dict[str, int]:
        return {"active": len(self._active_set), "backoff": len(self._backoff_set),
                "unschedulable": len(self._unschedulable)}

    def pending(self) -> Iterable[QueuedPod]:
        """Every queued pod (for diagnostics and preemption's nominated view)."""
        yield from self._active_set.values()
        yield from self._backoff_set.values()
        yield from self._unschedulable.values()

    def __contains__(self, uid: object) -> bool:
        return uid in self._active_set or uid in self._backoff_set \
            or uid in self._unschedulable or uid in self._in_flight
