"""Score plugins with kube-scheduler's arithmetic (integer division, normalization), and the
decision they add up to."""

from __future__ import annotations

from typing import Any

import pytest

from control.api.selectors import parse_label_selector
from control.scheduler.algorithm import Algorithm
from control.scheduler.cache import SchedulerCache
from control.scheduler.nodeinfo import NodeInfo
from control.scheduler.plugins.noderesources import balanced_allocation, least_allocated
from control.scheduler.plugins.spread import spread_scores
from control.scheduler.plugins.taints import prefer_no_schedule_count

from .scheduler_objects import cluster, container, node, pod

T = dict[str, Any]


def _info(n: T, *placed: T) -> tuple[SchedulerCache, NodeInfo]:
    cache, _ = cluster(n, placed=placed)
    return cache, cache.nodes[n["metadata"]["name"]]


@pytest.mark.parametrize("alloc, placed, p, least, balanced", [
    # kube's least_allocated_test: cpu 4000m/memory 10000 bytes
    pytest.param(("4000m", "10000"), (), pod("p", cpu="0", memory="0"), 100, 100,
                 id="explicit-zero-requests-stay-zero"),
    pytest.param(("4000m", "10000"), (), pod("p", cpu="3000m", memory="5000"), 37, 87,
                 id="cpu-and-memory"),
    pytest.param(("4000m", "10000"), (pod("q", cpu="3000m", memory="5000", node_name="n"),),
                 pod("p", cpu="1000m", memory="5000"), 0, 100, id="full-node"),
    pytest.param(("4000m", "10000"), (), pod("p", cpu="5000m", memory="1000"), 45, 55,
                 id="over-capacity-scores-zero-fraction-capped"),
    pytest.param(("4", "8Gi"), (), pod("p", containers=[container(None, None)]), 97, 100,
                 id="missing-requests-score-as-100m-200Mi"),
])
def test_allocation_scores(alloc: tuple[str, str], placed: tuple[T, ...], p: T, least: int,
                           balanced: int) -> None:
    cache, n = _info(node("n", cpu=alloc[0], memory=alloc[1]), *placed)
    t = cache.pod_info(p).template
    assert least_allocated(t, n) == least
    assert balanced_allocation(t, n) == balanced


def test_prefer_no_schedule_counts_untolerated_soft_taints() -> None:
    taints = [{"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "effect":
                                                           "PreferNoSchedule"},
              {"key": "c", "effect": "NoSchedule"}]
    cache, n = _info(node("n", taints=taints))
    assert prefer_no_schedule_count(cache.pod_info(pod("p")).template, n) == 2
    tol = [{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"},
           {"key": "b", "operator": "Exists", "effect": "NoSchedule"}]
    assert prefer_no_schedule_count(cache.pod_info(pod("p", tolerations=tol)).template, n) == 1


def _decide(alg: Algorithm, cache: SchedulerCache, p: T) -> str:
    return alg.schedule(cache.pod_info(p)).node


def test_taint_preference_steers_away() -> None:
    cache, alg = cluster(node("soft", taints=[{"key": "k", "effect": "PreferNoSchedule"}]),
                         node("clean"))
    assert {_decide(alg, cache, pod(f"p{i}")) for i in range(5)} == {"clean"}


def test_preferred_node_affinity_wins_over_allocation() -> None:
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}
    cache, alg = cluster(node("ssd", labels={"disk": "ssd"}),
                         node("big", cpu="64", memory="256Gi"))
    assert _decide(alg, cache, pod("p", affinity=pref)) == "ssd"


def test_least_allocated_prefers_emptier_node() -> None:
    cache, alg = cluster(node("busy"), node("idle"),
                         placed=(pod("q", cpu="3", memory="6Gi", node_name="busy"),))
    assert _decide(alg, cache, pod("p")) == "idle"


def test_spread_score_normalization_matches_kube() -> None:
    # 3 hostname domains with 2, 1, 0 matching pods, maxSkew 1: raw = cnt*log(5)
    nodes = [node("a"), node("b"), node("c")]
    placed = (pod("w1", node_name="a"), pod("w2", node_name="a"), pod("w3", node_name="b"))
    cache, _ = cluster(*nodes, placed=placed)
    p = cache.pod_info(pod("p", topologySpreadConstraints=[{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]))
    scores = spread_scores(p, cache, cache.ordered_nodes(), p.template.spread, True)
    # raw: round(2*1.609)=3, round(1.609)=2, 0; normalized 100*(3+0-s)//3
    assert scores == [0, 33, 100]


def test_default_spreading_spreads_a_replicaset() -> None:
    nodes = [node(f"n{i}", cpu="64", memory="256Gi") for i in range(3)]
    cache, alg = cluster(*nodes)
    alg = Algorithm(cache, seed=3, default_selector=lambda p: parse_label_selector("app=web"))
    counts: dict[str, int] = {}
    for i in range(6):
        info = cache.pod_info(pod(f"r{i}", owner="rs1"))
        chosen = alg.schedule(info).node
        cache.assume(info, chosen)
        counts[chosen] = counts.get(chosen, 0) + 1
    assert sorted(counts.values()) == [2, 2, 2]


def test_preferred_pod_anti_affinity_scores_away() -> None:
    anti = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                            "labelSelector": {"matchLabels": {"app": "db"}}}}]}}
    cache, alg = cluster(node("a"), node("b"), placed=(
        pod("db", node_name="b", labels={"app": "db"}, cpu="1m", memory="1Mi"),
        pod("filler", node_name="a", cpu="1", memory="2Gi")))
    assert _decide(alg, cache, pod("p", affinity=anti)) == "a"


def test_zone_sums_follow_pods_and_node_relabels() -> None:
    nodes = [node(f"n{i}", labels={"topology.kubernetes.io/zone": "ab"[i % 2]})
             for i in range(4)]
    cache, _ = cluster(*nodes)
    sel = parse_label_selector("app=web")

    def match(p: Any) -> bool:
        return bool(p.namespace == "default" and sel.matches(p.labels))

    def brute() -> dict[str, int]:
        out: dict[str, int] = {}
        for n in cache.nodes.values():
            for p in n.pods.values():
                if match(p):
                    z = n.labels.get("topology.kubernetes.io/zone", "")
                    out[z] = out.get(z, 0) + 1
        return {k: v for k, v in out.items() if v}

    key = ("spread", "default", sel)
    live = cache.counters.domain_counts(key, match, "topology.kubernetes.io/zone")
    for i in range(6):
        cache.add_pod(pod(f"w{i}", node_name=f"n{i % 4}"))
    assert {k: v for k, v in live.items() if v} == brute() == {"a": 3, "b": 3}
    cache.remove_pod(cache.pod_info(pod("w0")).uid)
    cache.set_node(node("n1", labels={"topology.kubernetes.io/zone": "a"}))
    live = cache.counters.domain_counts(key, match, "topology.kubernetes.io/zone")
    assert {k: v for k, v in live.items() if v} == brute() == {"a": 4, "b": 1}
