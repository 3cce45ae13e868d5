"""The decision as a whole: sampling and round-robin, the equivalence-class fast path agreeing
with the node-by-node path, Kubernetes' failure messages, malformed pods, nominated nodes."""

from __future__ import annotations

import pytest

from control.scheduler.algorithm import Algorithm, FilterStates
from control.scheduler.messages import FitError
from control.scheduler.sampling import num_feasible_nodes_to_find

from .scheduler_objects import cluster, node, pod


@pytest.mark.parametrize("nodes, percentage, want", [
    pytest.param(50, 0, 50, id="small-cluster-all"),
    pytest.param(100, 0, 100, id="100-nodes-min-100"),
    pytest.param(1000, 0, 420, id="1000-nodes-42pct"),
    pytest.param(5000, 0, 500, id="5000-nodes-10pct"),
    pytest.param(10000, 0, 500, id="floor-5pct"),
    pytest.param(1000, 100, 1000, id="explicit-100"),
    pytest.param(1000, 5, 100, id="explicit-below-minimum"),
])
def test_num_feasible_nodes_to_find(nodes: int, percentage: int, want: int) -> None:
    assert num_feasible_nodes_to_find(nodes, percentage) == want


def test_round_robin_start_advances_by_nodes_processed() -> None:
    cache, alg = cluster(*[node(f"n{i:03}") for i in range(200)])
    info = cache.pod_info(pod("p"))
    d = alg.schedule(info)
    assert d.evaluated == 100 and alg.next_start == 100
    alg.schedule(info)
    assert alg.next_start == 0


def test_fit_error_message_is_kubes() -> None:
    cache, alg = cluster(node("a", cpu="1"), node("b", labels={"disk": "hdd"}),
                         node("c", labels={"disk": "hdd"}))
    p = pod("p", cpu="2", affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["hdd"]}]}]}}})
    with pytest.raises(FitError) as exc:
        alg.schedule(cache.pod_info(p))
    assert str(exc.value) == ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't "
                              "match Pod's node affinity/selector.")
    assert exc.value.plugins == {"NodeResourcesFit", "NodeAffinity"}


def test_no_nodes() -> None:
    cache, alg = cluster()
    with pytest.raises(FitError, match="^no nodes available to schedule pods$"):
        alg.schedule(cache.pod_info(pod("p")))


@pytest.mark.parametrize("spec, fragment", [
    pytest.param({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "a", "operator": "Near", "values": ["x"]}]}]}}}},
        'operator: Unsupported value: "Near"', id="node-affinity-operator"),
    pytest.param({"topologySpreadConstraints": [{"maxSkew": 0, "topologyKey": "zone",
                                                 "whenUnsatisfiable": "DoNotSchedule"}]},
                 "maxSkew: Invalid value: 0", id="spread-max-skew"),
    pytest.param({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "",
                                                 "whenUnsatisfiable": "DoNotSchedule"}]},
                 "topologyKey: Required value", id="spread-empty-key"),
    pytest.param({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "zone", "labelSelector": {"matchExpressions": [
            {"key": "app", "operator": "Like", "values": ["x"]}]}}]}}},
        '"Like" is not a valid label selector operator', id="pod-affinity-selector"),
    pytest.param({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                                                   [{"labelSelector": {}}]}}},
                 "topologyKey: Required value", id="anti-affinity-no-key"),
    pytest.param({"containers": [{"name": "c", "resources": {"requests": {"cpu": "two"}}}]},
                 "quantities must match", id="bad-quantity"),
])
def test_malformed_pods_are_unschedulable_with_a_message(spec: dict, fragment: str) -> None:
    cache, alg = cluster(node("a"), node("b"), node("c"))
    with pytest.raises(FitError) as exc:
        alg.schedule(cache.pod_info(pod("p", **spec)))
    text = str(exc.value)
    assert text.startswith("0/3 nodes are available: ") and fragment in text, text


def test_fast_path_sees_capacity_assumed_by_previous_decision() -> None:
    cache, alg = cluster(node("a", cpu="1"), node("b", cpu="1"))
    placed = []
    for i in range(2):
        info = cache.pod_info(pod(f"p{i}", cpu="600m"))
        d = alg.schedule(info)
        cache.assume(info, d.node)
        placed.append(d.node)
    assert sorted(placed) == ["a", "b"]
    with pytest.raises(FitError, match="2 Insufficient cpu"):
        alg.schedule(cache.pod_info(pod("p3", cpu="600m")))
    cache.forget(cache.pod_info(pod("p0", cpu="600m")).uid)
    assert alg.schedule(cache.pod_info(pod("p3", cpu="600m"))).node == placed[0]


def test_node_update_invalidates_class_cache() -> None:
    cache, alg = cluster(node("a"))
    info = cache.pod_info(pod("p", nodeSelector={"disk": "ssd"}))
    with pytest.raises(FitError):
        alg.schedule(info)
    cache.set_node(node("a", labels={"disk": "ssd"}))
    assert alg.schedule(info).node == "a"
    cache.set_node(node("b", labels={"disk": "ssd"}, cpu="64", memory="256Gi"))
    assert alg.schedule(info).node in ("a", "b")
    cache.set_node(node("a", taints=[{"key": "x", "effect": "NoSchedule"}]))
    cache.remove_node("b")
    with pytest.raises(FitError, match="1 node\\(s\\) had untolerated taint"):
        alg.schedule(info)


def test_fast_and_slow_paths_agree() -> None:
    nodes = [node(f"n{i}", cpu=str(1 + i % 3), labels={"zone": "abc"[i % 3]},
                  taints=[{"key": "t", "effect": "NoSchedule"}] if i % 5 == 0 else [])
             for i in range(30)]
    cache, alg = cluster(*nodes)
    for i in range(40):
        info = cache.pod_info(pod(f"p{i}", cpu=f"{300 + 100 * (i % 4)}m"))
        cls = alg.classes.get(info.template)
        ordered = cache.ordered_nodes()
        slow = {n.name for n in ordered if alg.run_filters(cls, n, FilterStates()) is None}
        try:
            d = alg.schedule(info)
        except FitError:
            assert not slow
            continue
        fast = {ordered[p].name for p in cls.feasible}
        assert fast == slow
        cache.assume(info, d.node)


def test_nominated_node_is_tried_first() -> None:
    cache, alg = cluster(*[node(f"n{i}") for i in range(5)])
    raw = pod("p")
    raw["status"] = {"nominatedNodeName": "n3"}
    assert alg.schedule(cache.pod_info(raw)).node == "n3"


def test_nominated_pods_reserve_their_node_for_lower_priority() -> None:
    cache, alg = cluster(node("a", cpu="1"))
    high = cache.pod_info(pod("high", cpu="800m", priority=100))
    cache.nominate(high, "a")
    with pytest.raises(FitError, match="Insufficient cpu"):
        alg.schedule(cache.pod_info(pod("low", cpu="500m", priority=1)))
    assert alg.schedule(cache.pod_info(pod("peer", cpu="100m", priority=100))).node == "a"


def test_algorithm_is_deterministic_for_a_seed() -> None:
    def run() -> list[str]:
        cache, _ = cluster(*[node(f"n{i}") for i in range(20)])
        alg = Algorithm(cache, seed=7)
        out = []
        for i in range(30):
            info = cache.pod_info(pod(f"p{i}"))
            out.append(alg.schedule(info).node)
            cache.assume(info, out[-1])
        return out
    assert run() == run()
