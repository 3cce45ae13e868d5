"""Property: whatever the order of events — nodes added, resized and removed, pods created,
binds confirmed by the watch or failed, pods deleted before or after their bind is seen —
no node is ever over-committed by the scheduler's own decisions, a node's totals are always
the sum over its pods, and no pod is ever on two nodes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from control.scheduler.algorithm import Algorithm
from control.scheduler.cache import SchedulerCache
from control.scheduler.messages import FitError

from .scheduler_objects import node, pod

NODES = [f"n{i}" for i in range(4)]

ops = st.lists(st.one_of(
    st.tuples(st.just("node"), st.sampled_from(NODES), st.integers(0, 4), st.integers(0, 4)),
    st.tuples(st.just("remove-node"), st.sampled_from(NODES), st.just(0), st.just(0)),
    st.tuples(st.just("create"), st.integers(0, 30), st.integers(0, 1500), st.integers(0, 3)),
    st.tuples(st.just("bound"), st.integers(0, 30), st.just(0), st.just(0)),
    st.tuples(st.just("bind-failed"), st.integers(0, 30), st.just(0), st.just(0)),
    st.tuples(st.just("delete"), st.integers(0, 30), st.just(0), st.just(0)),
), max_size=80)


def _check(cache: SchedulerCache, model: dict[str, str]) -> None:
    """``model``: where each pod the scheduler placed (and that still exists) should be."""
    seen: set[str] = set()
    for n in cache.nodes.values():
        assert {uid: n.name for uid in n.pods} == {u: m for u, m in model.items()
                                                   if m == n.name}
        assert n.cpu == sum(p.template.requests.cpu for p in n.pods.values())
        assert n.memory == sum(p.template.requests.memory for p in n.pods.values())
        assert not seen & n.pods.keys()
        seen |= n.pods.keys()
    assert seen == {uid for uid in seen if cache.placed(uid) is not None}
    assert cache.placed_count == len(seen)


@settings(max_examples=500, deadline=None)
@given(ops)
def test_never_overcommitted_by_own_binds(steps: list[tuple[str, Any, int, int]]) -> None:
    cache = SchedulerCache()
    alg = Algorithm(cache, seed=1)
    pods: dict[int, dict[str, Any]] = {}
    assumed: dict[int, str] = {}  # pod -> node, bind in flight
    model: dict[str, str] = {}  # uid -> node of every placed pod
    for op, a, b, c in steps:
        if op == "node":
            cache.set_node(node(a, cpu=f"{b}", memory=f"{c}Gi", pods="3"))
        elif op == "remove-node":
            cache.remove_node(a)
        elif op == "create" and a not in pods:
            pods[a] = pod(f"p{a}", cpu=f"{b}m", memory=f"{c * 256}Mi")
            info = cache.pod_info(pods[a])
            try:
                decision = alg.schedule(info)
            except FitError:
                continue
            n = cache.nodes[decision.node]
            cache.assume(info, decision.node)
            assumed[a] = model[info.uid] = decision.node
            # the scheduler's own decision never over-commits the node it chose (a pod that
            # requests none of a resource fits whatever, as in Kubernetes)
            r = info.template.requests
            assert r.cpu == 0 or n.cpu <= n.alloc.cpu
            assert r.memory == 0 or n.memory <= n.alloc.memory
            assert len(n.pods) <= n.alloc.pods
        elif op == "bound" and a in assumed:
            bound = dict(pods[a], spec={**pods[a]["spec"], "nodeName": assumed.pop(a)})
            pods[a] = bound
            cache.add_pod(bound)
        elif op == "bind-failed" and a in assumed:
            del assumed[a]
            uid = cache.pod_info(pods[a]).uid
            cache.forget(uid)
            del pods[a], model[uid]
        elif op == "delete" and a in pods:
            assumed.pop(a, None)
            uid = cache.pod_info(pods[a]).uid
            cache.remove_pod(uid)
            model.pop(uid, None)
            del pods[a]
        _check(cache, model)
