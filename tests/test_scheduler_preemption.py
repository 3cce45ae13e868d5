"""Preemption: the fewest, least important lower-priority victims; PodDisruptionBudgets
respected where possible; kube-scheduler's "preemption: ..." messages."""

from __future__ import annotations

from typing import Any

import pytest

from control.scheduler.messages import FitError
from control.scheduler.preemption import Preemption, preempt

from .scheduler_objects import cluster, node, pod


def _run(nodes: list[dict[str, Any]], placed: tuple[dict[str, Any], ...], p: dict[str, Any],
         pdbs: tuple[dict[str, Any], ...] = ()) -> tuple[Preemption | None, FitError]:
    cache, alg = cluster(*nodes, placed=placed)
    info = cache.pod_info(p)
    with pytest.raises(FitError) as exc:
        alg.schedule(info)
    return preempt(alg, info, exc.value, pdbs), exc.value


def test_fewest_victims_node_wins() -> None:
    placed = (pod("a1", cpu="500m", priority=1, node_name="a"),
              pod("a2", cpu="500m", priority=1, node_name="a"),
              pod("b1", cpu="1", priority=1, node_name="b"))
    got, _ = _run([node("a", cpu="1"), node("b", cpu="1")], placed,
                  pod("hi", cpu="1", priority=10))
    assert got is not None and got.node == "b" and [v.name for v in got.victims] == ["b1"]


def test_only_lower_priority_pods_are_victims_and_least_important_go_first() -> None:
    placed = (pod("peer", cpu="400m", priority=10, node_name="a"),
              pod("low", cpu="300m", priority=1, node_name="a"),
              pod("mid", cpu="300m", priority=5, node_name="a"))
    got, _ = _run([node("a", cpu="1")], placed, pod("hi", cpu="300m", priority=10))
    assert got is not None and [v.name for v in got.victims] == ["low"]


def test_lowest_highest_victim_priority_beats_fewer_victims() -> None:
    placed = (pod("a1", cpu="1", priority=5, node_name="a"),
              pod("b1", cpu="500m", priority=1, node_name="b"),
              pod("b2", cpu="500m", priority=1, node_name="b"))
    got, _ = _run([node("a", cpu="1"), node("b", cpu="1")], placed,
                  pod("hi", cpu="1", priority=10))
    assert got is not None and got.node == "b" and len(got.victims) == 2


def test_pdb_respected_where_possible() -> None:
    placed = (pod("guarded", cpu="1", priority=1, node_name="a", labels={"app": "db"}),
              pod("free", cpu="1", priority=1, node_name="b", labels={"app": "web"}))
    pdb = {"metadata": {"namespace": "default", "name": "db"},
           "spec": {"selector": {"matchLabels": {"app": "db"}}},
           "status": {"disruptionsAllowed": 0}}
    got, _ = _run([node("a", cpu="1"), node("b", cpu="1")], placed,
                  pod("hi", cpu="1", priority=10), (pdb,))
    assert got is not None and got.node == "b" and got.pdb_violations == 0
    # when only the guarded pod can make room, it is still chosen (violating the budget)
    got, _ = _run([node("a", cpu="1")], placed[:1], pod("hi", cpu="1", priority=10), (pdb,))
    assert got is not None and got.pdb_violations == 1


def test_preemption_not_helpful_message() -> None:
    got, err = _run([node("a", taints=[{"key": "k", "effect": "NoSchedule"}]),
                     node("b", cpu="1")], (), pod("hi", cpu="2", priority=10))
    assert got is None
    assert err.message() == (
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: }. "
        "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling.")


def test_preemption_policy_never() -> None:
    placed = (pod("low", cpu="1", priority=1, node_name="a"),)
    got, err = _run([node("a", cpu="1")], placed,
                    pod("hi", cpu="1", priority=10, preemptionPolicy="Never"))
    assert got is None
    assert err.message().endswith(
        "1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")


def test_victims_that_do_not_free_enough_are_not_a_candidate() -> None:
    placed = (pod("peer", cpu="800m", priority=10, node_name="a"),
              pod("low", cpu="200m", priority=1, node_name="a"))
    got, err = _run([node("a", cpu="1")], placed, pod("hi", cpu="500m", priority=10))
    assert got is None and "preemption: 0/1 nodes are available: 1 Insufficient cpu." \
        in err.message()
