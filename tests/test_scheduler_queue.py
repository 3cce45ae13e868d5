"""The scheduling queue on a FakeClock: priority order, back-off, unschedulable pods moved by
the events that could help them (and only those), events during a scheduling attempt."""

from __future__ import annotations

from control.api.clock import FakeClock
from control.scheduler.cache import SchedulerCache
from control.scheduler.podinfo import PodInfo
from control.scheduler.queue import SchedulingQueue

from .scheduler_objects import pod

CACHE = SchedulerCache()


def info(name: str, **kw: object) -> PodInfo:
    return CACHE.pod_info(pod(name, **kw))  # type: ignore[arg-type]


def names(q: SchedulingQueue) -> list[str]:
    out = []
    while (qp := q.pop()) is not None:
        out.append(qp.info.name)
    return out


def test_priority_then_creation_then_arrival() -> None:
    q = SchedulingQueue(FakeClock())
    q.add(info("old-low", priority=1, created="2026-01-01T00:00:00Z"))
    q.add(info("new-high", priority=10, created="2026-01-02T00:00:00Z"))
    q.add(info("old-high", priority=10, created="2026-01-01T00:00:00Z"))
    q.add(info("old-low-2", priority=1, created="2026-01-01T00:00:00Z"))
    assert names(q) == ["old-high", "new-high", "old-low", "old-low-2"]


def test_backoff_doubles_to_ten_seconds() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(info("p"))
    waits = []
    for _ in range(6):
        qp = q.pop()
        assert qp is not None
        q.retry(qp)
        start = clock.monotonic()
        due = q.next_due()
        assert due is not None
        waits.append(due - start)
        clock.advance(due - start - 0.01)
        q.flush()
        assert q.pop() is None
        clock.advance(0.01)
        q.flush()
        assert q.sizes()["active"] == 1
    assert waits == [1, 2, 4, 8, 10, 10]


def test_unschedulable_pod_moves_only_on_helpful_events() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(info("p"))
    qp = q.pop()
    assert qp is not None
    q.unschedulable(qp, {"NodeAffinity"})
    assert q.sizes() == {"active": 0, "backoff": 0, "unschedulable": 1}
    assert q.on_event("AssignedPodDelete") == 0
    assert q.on_event("NodeAllocatable") == 0
    clock.advance(2)
    assert q.on_event("NodeLabel") == 1
    assert q.sizes()["active"] == 1


def test_event_inside_backoff_window_goes_to_backoff() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(info("p"))
    qp = q.pop()
    assert qp is not None
    q.unschedulable(qp, {"NodeResourcesFit"})
    q.on_event("AssignedPodDelete")
    assert q.sizes() == {"active": 0, "backoff": 1, "unschedulable": 0}


def test_event_during_attempt_sends_pod_to_backoff_not_unschedulable() -> None:
    q = SchedulingQueue(FakeClock())
    q.add(info("p"))
    qp = q.pop()
    assert qp is not None
    q.on_event("NodeAdd")  # arrives while the pod is being tried
    q.unschedulable(qp, {"NodeResourcesFit"})
    assert q.sizes() == {"active": 0, "backoff": 1, "unschedulable": 0}


def test_unschedulable_pods_retried_after_five_minutes_anyway() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(info("p"))
    qp = q.pop()
    assert qp is not None
    q.unschedulable(qp, {"NodeAffinity"})
    assert q.next_due() == clock.monotonic() + 300
    clock.advance(300)
    q.flush()
    assert names(q) == ["p"]


def test_update_of_unschedulable_pod_with_new_spec_retries_it() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(info("p"))
    qp = q.pop()
    assert qp is not None
    q.unschedulable(qp, {"NodeAffinity"})
    q.update(info("p"))  # same template: stays
    assert q.sizes()["unschedulable"] == 1
    clock.advance(5)
    q.update(info("p", nodeSelector={"disk": "ssd"}))
    assert q.sizes()["active"] == 1


def test_delete_and_in_flight() -> None:
    q = SchedulingQueue(FakeClock())
    q.add(info("a"))
    q.add(info("b"))
    q.delete(info("b").uid)
    qp = q.pop()
    assert qp is not None and qp.info.name == "a"
    assert qp.info.uid in q
    q.add(info("a"))  # a relist while in flight does not queue it twice
    q.delete(qp.info.uid)
    q.unschedulable(qp, {"NodeAffinity"})  # deleted meanwhile: dropped
    assert q.sizes() == {"active": 0, "backoff": 0, "unschedulable": 0}
    assert q.pop() is None
