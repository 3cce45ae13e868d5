"""Each filter plugin with kube-scheduler's semantics and reason texts, table-driven: a small
cluster, a pod, and the verdict per node (None = fits, else the reasons)."""

from __future__ import annotations

from typing import Any

import pytest

from control.scheduler.framework import Code

from .scheduler_objects import cluster, container, node, pod

T = dict[str, Any]


def verdicts(nodes: list[T], p: T, placed: tuple[T, ...] = ()) -> dict[str, Any]:
    cache, alg = cluster(*nodes, placed=placed)
    info = cache.pod_info(p)
    assert not info.template.errors, info.template.errors
    cls = alg.classes.get(info.template)
    states = alg.states(info, cache.ordered_nodes())
    out = {}
    for n in cache.ordered_nodes():
        st = alg.run_filters(cls, n, states)
        out[n.name] = None if st is None else st.reasons
    return out


def one(n: T, p: T, placed: tuple[T, ...] = ()) -> Any:
    return verdicts([n], p, placed)[n["metadata"]["name"]]


# --- NodeResourcesFit ------------------------------------------------------------------------

RESOURCE_CASES = [
    pytest.param(node("n", cpu="1"), pod("p", cpu="1"), (), None, id="exactly-fits"),
    pytest.param(node("n", cpu="1"), pod("p", cpu="1001m"), (), ("Insufficient cpu",),
                 id="one-milli-over"),
    pytest.param(node("n", cpu="1"), pod("p", cpu="0.0001"), (pod("q", cpu="1", node_name="n"),),
                 ("Insufficient cpu",), id="sub-milli-request-rounds-up-to-1m"),
    pytest.param(node("n", memory="1Gi"), pod("p", memory="1Gi"), (), None, id="memory-fits"),
    pytest.param(node("n", memory="1Gi"), pod("p", memory="1073741824.5"), (),
                 ("Insufficient memory",), id="fractional-bytes-round-up"),
    pytest.param(node("n", cpu="1", memory="1Gi"), pod("p", cpu="2", memory="2Gi"), (),
                 ("Insufficient cpu", "Insufficient memory"), id="all-shortfalls-reported"),
    pytest.param(node("n", pods="1"), pod("p"), (pod("q", node_name="n"),), ("Too many pods",),
                 id="pod-count"),
    pytest.param(node("n", cpu="1"), pod("p", cpu=None, memory=None),
                 (pod("q", cpu="1", node_name="n"),), None,
                 id="zero-request-pod-fits-a-full-node"),
    pytest.param(node("n", cpu="1"), pod("p", cpu="600m"), (pod("q", cpu="500m", node_name="n"),),
                 ("Insufficient cpu",), id="placed-pods-count"),
    pytest.param(node("n", cpu="2"), pod("p", containers=[container("1"), container("1")],
                                         initContainers=[container("1500m")]),
                 (), None, id="init-container-peak-below-sum"),
    pytest.param(node("n", cpu="2"), pod("p", containers=[container("1")],
                                         initContainers=[container("2500m")]),
                 (), ("Insufficient cpu",), id="init-container-peak-above-sum"),
    pytest.param(node("n", cpu="2"), pod("p", containers=[container("1")],
                                         initContainers=[container("500m", restart="Always"),
                                                         container("1500m")]),
                 (), None, id="sidecar-plus-init-step-fits"),
    pytest.param(node("n", cpu="2"), pod("p", containers=[container("1600m")],
                                         initContainers=[container("500m", restart="Always")]),
                 (), ("Insufficient cpu",), id="sidecar-adds-to-containers"),
    pytest.param(node("n", cpu="1"), pod("p", cpu="900m", overhead={"cpu": "200m"}), (),
                 ("Insufficient cpu",), id="overhead-counts"),
    pytest.param(node("n"), pod("p", containers=[container(**{"example.com/gpu": "1"})]), (),
                 ("Insufficient example.com/gpu",), id="extended-resource-absent-on-node"),
    pytest.param(node("n", **{"example.com/gpu": "2"}),
                 pod("p", containers=[container(**{"example.com/gpu": "2"})]), (), None,
                 id="extended-resource-fits"),
    pytest.param(node("n", cpu="1"), pod("p", containers=[container(
        None, None, limits={"cpu": "2"})]), (), ("Insufficient cpu",),
        id="limit-only-counts-as-request"),
    pytest.param(node("n", allocatable={}), pod("p"), (),
                 ("Too many pods", "Insufficient cpu", "Insufficient memory"),
                 id="node-without-allocatable-fits-nothing"),
    pytest.param(node("n", allocatable={"cpu": "lots", "memory": "1Gi", "pods": "10"}),
                 pod("p", cpu="1m"), (), ("Insufficient cpu",), id="malformed-allocatable-is-zero"),
    pytest.param(node("n", ephemeral="1Gi"), pod("p", containers=[container(
        **{"ephemeral-storage": "2Gi"})]), (), ("Insufficient ephemeral-storage",),
        id="ephemeral-storage"),
]


@pytest.mark.parametrize("n, p, placed, want", RESOURCE_CASES)
def test_node_resources_fit(n: T, p: T, placed: tuple[T, ...], want: Any) -> None:
    if "ephemeral" in n["status"]["allocatable"]:
        n["status"]["allocatable"]["ephemeral-storage"] = n["status"]["allocatable"].pop(
            "ephemeral")
    assert one(n, p, placed) == want


# --- NodeUnschedulable, NodeName, NodePorts, TaintToleration, NodeAffinity -----------------

def _port(port: int, ip: str = "", proto: str = "TCP") -> list[T]:
    return [{"containerPort": 80, "hostPort": port, "hostIP": ip, "protocol": proto}]


NOSCHED = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}


@pytest.mark.parametrize("n, p, placed, want", [
    pytest.param(node("n", unschedulable=True), pod("p"), (), ("node(s) were unschedulable",),
                 id="cordoned"),
    pytest.param(node("n", unschedulable=True), pod("p", tolerations=[
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
         "effect": "NoSchedule"}]), (), None, id="cordon-tolerated"),
    pytest.param(node("n"), pod("p", nodeName="other"), (),
                 ("node(s) didn't match the requested node name",), id="node-name"),
    pytest.param(node("n"), pod("p", containers=[container(ports=_port(8080))]),
                 (pod("q", node_name="n", containers=[container(ports=_port(8080))]),),
                 ("node(s) didn't have free ports for the requested pod ports",),
                 id="host-port-taken"),
    pytest.param(node("n"), pod("p", containers=[container(ports=_port(8080, "10.0.0.1"))]),
                 (pod("q", node_name="n", containers=[container(ports=_port(8080, "10.0.0.2"))]),),
                 None, id="host-port-other-ip"),
    pytest.param(node("n"), pod("p", containers=[container(ports=_port(8080, "10.0.0.1"))]),
                 (pod("q", node_name="n", containers=[container(ports=_port(8080))]),),
                 ("node(s) didn't have free ports for the requested pod ports",),
                 id="wildcard-ip-clashes-with-any"),
    pytest.param(node("n"), pod("p", containers=[container(ports=_port(53, proto="UDP"))]),
                 (pod("q", node_name="n", containers=[container(ports=_port(53))]),),
                 None, id="host-port-other-protocol"),
    pytest.param(node("n", taints=[NOSCHED]), pod("p"), (),
                 ("node(s) had untolerated taint {dedicated: db}",), id="taint"),
    pytest.param(node("n", taints=[{**NOSCHED, "effect": "NoExecute"}]), pod("p"), (),
                 ("node(s) had untolerated taint {dedicated: db}",), id="noexecute-taint"),
    pytest.param(node("n", taints=[{**NOSCHED, "effect": "PreferNoSchedule"}]), pod("p"), (),
                 None, id="prefer-no-schedule-only-scores"),
    pytest.param(node("n", taints=[NOSCHED]), pod("p", tolerations=[
        {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]), (),
        None, id="taint-tolerated"),
    pytest.param(node("n"), pod("p", nodeSelector={"disk": "ssd"}), (),
                 ("node(s) didn't match Pod's node affinity/selector",), id="node-selector"),
])
def test_simple_filters(n: T, p: T, placed: tuple[T, ...], want: Any) -> None:
    assert one(n, p, placed) == want


@pytest.mark.parametrize("status, reason", [
    pytest.param("False", "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
                 id="not-ready"),
    pytest.param("Unknown", "node(s) had untolerated taint {node.kubernetes.io/unreachable: }",
                 id="unknown"),
    pytest.param("True", None, id="ready"),
])
def test_only_ready_nodes(status: str, reason: str | None) -> None:
    n = node("n")
    n["status"]["conditions"] = [{"type": "Ready", "status": status}]
    assert one(n, pod("p")) == (None if reason is None else (reason,))


def test_filters_stop_at_first_failure_in_kube_order() -> None:
    n = node("n", cpu="1", taints=[NOSCHED], unschedulable=True)
    assert one(n, pod("p", cpu="2", nodeSelector={"x": "y"})) == ("node(s) were unschedulable",)


# --- PodTopologySpread ------------------------------------------------------------------------

def _spread(key: str, skew: int = 1, hard: bool = True, **extra: Any) -> list[T]:
    return [{"maxSkew": skew, "topologyKey": key,
             "whenUnsatisfiable": "DoNotSchedule" if hard else "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]


ZONED = [node("a1", labels={"zone": "a"}), node("a2", labels={"zone": "a"}),
         node("b1", labels={"zone": "b"}), node("x", labels={})]


def test_spread_hard_skew_and_missing_label() -> None:
    placed = (pod("w1", node_name="a1"), pod("w2", node_name="a2"))
    got = verdicts(ZONED, pod("p", topologySpreadConstraints=_spread("zone")), placed)
    assert got["a1"] == got["a2"] == ("node(s) didn't match pod topology spread constraints",)
    assert got["b1"] is None
    assert got["x"] == (
        "node(s) didn't match pod topology spread constraints (missing required label)",)


def test_spread_counts_only_matching_pods_in_namespace_not_terminating() -> None:
    placed = (pod("other", node_name="a1", labels={"app": "db"}),
              pod("elsewhere", node_name="a1", namespace="prod"),
              {**pod("dying", node_name="a2"),
               "metadata": {**pod("dying")["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    got = verdicts(ZONED[:3], pod("p", topologySpreadConstraints=_spread("zone")), placed)
    assert got == {"a1": None, "a2": None, "b1": None}


def test_spread_min_domains_treats_global_minimum_as_zero() -> None:
    placed = (pod("w1", node_name="a1"), pod("w2", node_name="b1"))
    hard = _spread("zone", minDomains=3)
    got = verdicts(ZONED[:3], pod("p", topologySpreadConstraints=hard), placed)
    assert all(v == ("node(s) didn't match pod topology spread constraints",)
               for v in got.values())


def test_spread_node_affinity_policy_honor_ignores_excluded_domains() -> None:
    placed = (pod("w1", node_name="a1"),)
    spec = {"topologySpreadConstraints": _spread("zone"), "nodeSelector": {"zone": "a"}}
    got = verdicts(ZONED[:3], pod("p", **spec), placed)
    # zone b is not eligible (selector), so the minimum is zone a's own count
    assert got["a2"] is None
    spec["topologySpreadConstraints"] = _spread("zone", nodeAffinityPolicy="Ignore")
    got = verdicts(ZONED[:3], pod("p", **spec), placed)
    assert got["a2"] == ("node(s) didn't match pod topology spread constraints",)


def test_spread_match_label_keys_narrow_the_selector() -> None:
    placed = (pod("old", node_name="a1", labels={"app": "web", "hash": "v1"}),)
    c = _spread("zone", matchLabelKeys=["hash"])
    got = verdicts(ZONED[:3], pod("p", labels={"app": "web", "hash": "v2"},
                                  topologySpreadConstraints=c), placed)
    assert got == {"a1": None, "a2": None, "b1": None}


# --- InterPodAffinity ------------------------------------------------------------------------

def _pod_aff(kind: str, key: str = "zone", labels: T | None = None, **extra: Any) -> T:
    term = {"topologyKey": key, "labelSelector": {"matchLabels": labels or {"app": "db"}},
            **extra}
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def test_pod_affinity_requires_a_matching_pod_in_the_domain() -> None:
    placed = (pod("db", node_name="a1", labels={"app": "db"}),)
    got = verdicts(ZONED, pod("p", affinity=_pod_aff("podAffinity")), placed)
    assert got["a1"] is None and got["a2"] is None
    assert got["b1"] == ("node(s) didn't match pod affinity rules",)
    assert got["x"] == ("node(s) didn't match pod affinity rules",)


def test_pod_affinity_first_of_a_group_may_go_anywhere_with_the_key() -> None:
    p = pod("p", labels={"app": "db"}, affinity=_pod_aff("podAffinity"))
    got = verdicts(ZONED, p)
    assert got["a1"] is None and got["b1"] is None
    assert got["x"] == ("node(s) didn't match pod affinity rules",)


def test_pod_anti_affinity_and_existing_anti_affinity() -> None:
    placed = (pod("db", node_name="a1", labels={"app": "db"}),)
    got = verdicts(ZONED, pod("p", affinity=_pod_aff("podAntiAffinity")), placed)
    assert got["a2"] == ("node(s) didn't match pod anti-affinity rules",)
    assert got["b1"] is None and got["x"] is None
    # the placed pod refuses web pods in its zone
    placed = (pod("db", node_name="a1", labels={"app": "db"},
                  affinity=_pod_aff("podAntiAffinity", labels={"app": "web"})),)
    got = verdicts(ZONED, pod("p"), placed)
    assert got["a2"] == ("node(s) didn't satisfy existing pods anti-affinity rules",)
    assert got["b1"] is None


def test_pod_affinity_namespaces_and_namespace_selector() -> None:
    placed = (pod("db", node_name="a1", labels={"app": "db"}, namespace="data"),)
    got = verdicts(ZONED[:3], pod("p", affinity=_pod_aff("podAffinity")), placed)
    assert got["a1"] == ("node(s) didn't match pod affinity rules",)  # own namespace only
    got = verdicts(ZONED[:3], pod("p", affinity=_pod_aff("podAffinity", namespaces=["data"])),
                   placed)
    assert got["a1"] is None
    got = verdicts(ZONED[:3], pod("p", affinity=_pod_aff("podAffinity", namespaceSelector={})),
                   placed)
    assert got["a1"] is None and got["b1"] is not None


def test_unresolvable_codes() -> None:
    cache, alg = cluster(node("n", taints=[NOSCHED]))
    info = cache.pod_info(pod("p"))
    st = alg.run_filters(alg.classes.get(info.template), cache.ordered_nodes()[0],
                         alg.states(info, cache.ordered_nodes()))
    assert st is not None and st.code == Code.UNRESOLVABLE and not st.resolvable
