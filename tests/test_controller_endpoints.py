"""The Endpoints and EndpointSlice controllers over a real apiserver in process, and their pure
cores (slice planning, subset repacking and truncation)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from control.api.clock import FakeClock
from control.client import resources as R
from control.controllers.endpointslice import EndpointSliceController
from control.controllers.endpointsubsets import MAX_CAPACITY, repack, truncate
from control.controllers.endpointutil import TriggerTimeTracker, find_port, format_nano
from control.controllers.sliceplan import plan_slices
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
NS = "default"
T0 = "2026-01-01T00:00:00Z"


def svc(name: str = "web", selector: dict[str, str] | None = None, **spec: Any) -> Obj:
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": "http"}])
    body: Obj = {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": name, "namespace": NS, "labels": {"tier": "front"}},
                 "spec": {**spec}}
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


def pod(name: str, *, port: int = 8080, labels: dict[str, str] | None = None,
        node: str = "n1") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "web"}},
            "spec": {"nodeName": node, "containers": [
                {"name": "c", "image": "nginx",
                 "ports": [{"name": "http", "containerPort": port}]}]}}


def node(name: str, zone: str = "") -> Obj:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


async def run_pod(env: Env, name: str, ip: str, *, ready: bool, **kw: Any) -> Obj:
    made = await env.admin.create(R.PODS, pod(name, **kw), NS)
    return await set_status(env, made, ip, ready=ready)


async def set_status(env: Env, p: Obj, ip: str, *, ready: bool) -> Obj:
    p = await env.admin.get(R.PODS, p["metadata"]["name"], NS)
    p["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                   "lastTransitionTime": T0}]}
    return await env.admin.update_status(R.PODS, p)


async def slices(env: Env, service: str = "web") -> list[Obj]:
    items, _ = await env.admin.list_all(R.ENDPOINTSLICES, NS,
                                        label_selector=f"kubernetes.io/service-name={service}")
    return items


def endpoints_of(items: list[Obj]) -> dict[str, Obj]:
    return {ep["targetRef"]["name"]: ep for s in items for ep in s.get("endpoints") or ()}


async def test_slices_list_ready_and_not_ready_pods_with_their_own_ports(
        api: InProcessAPI) -> None:
    async with controller_env(api, "endpointslice") as env:
        await env.admin.create(R.NODES, node("n1", zone="z1"))
        made = await env.admin.create(R.SERVICES, svc(selector={"app": "web"}), NS)
        await run_pod(env, "a", "127.64.0.2", ready=True, port=8080)
        await run_pod(env, "b", "127.64.0.3", ready=False, port=9090)
        await env.admin.create(R.PODS, pod("no-ip"), NS)  # not running yet: left out
        await env.reconcile("endpointslice", "default/web")
        got = await slices(env)
        assert len(got) == 2  # one per resolved port set
        for s in got:
            meta = s["metadata"]
            assert meta["labels"]["endpointslice.kubernetes.io/managed-by"] == \
                "endpointslice-controller.k8s.io"
            assert meta["labels"]["tier"] == "front"
            assert meta["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
            assert meta["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
            assert s["addressType"] == "IPv4"
        eps = endpoints_of(got)
        assert set(eps) == {"a", "b"}
        assert eps["a"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert eps["b"]["conditions"] == {"ready": False, "serving": False,
                                          "terminating": False}
        assert eps["a"]["nodeName"] == "n1" and eps["a"]["zone"] == "z1"
        assert eps["a"]["addresses"] == ["127.64.0.2"]
        ports = {s["endpoints"][0]["targetRef"]["name"]: s["ports"] for s in got}
        assert ports["a"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        assert ports["b"] == [{"name": "http", "port": 9090, "protocol": "TCP"}]
        # nothing changed: nothing written
        before = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in got}
        await env.reconcile("endpointslice", "default/web")
        after = {s["metadata"]["name"]: s["metadata"]["resourceVersion"]
                 for s in await slices(env)}
        assert after == before


async def test_publish_not_ready_addresses_marks_every_endpoint_ready(api: InProcessAPI) -> None:
    async with controller_env(api, "endpointslice", "endpoint") as env:
        await env.admin.create(R.NODES, node("n1"))
        await env.admin.create(R.SERVICES, svc(selector={"app": "web"},
                                               publishNotReadyAddresses=True), NS)
        await run_pod(env, "b", "127.64.0.3", ready=False)
        await env.reconcile("endpointslice", "default/web")
        await env.reconcile("endpoint", "default/web")
        eps = endpoints_of(await slices(env))
        assert eps["b"]["conditions"] == {"ready": True, "serving": False,
                                          "terminating": False}
        ep = await env.admin.get(R.ENDPOINTS, "web", NS)
        [subset] = ep["subsets"]
        assert [a["ip"] for a in subset["addresses"]] == ["127.64.0.3"]
        assert "notReadyAddresses" not in subset


async def test_legacy_endpoints_ready_and_not_ready_named_ports(api: InProcessAPI) -> None:
    async with controller_env(api, "endpoint") as env:
        made = await env.admin.create(R.SERVICES, svc(selector={"app": "web"}), NS)
        await run_pod(env, "a", "127.64.0.2", ready=True, port=8080)
        await run_pod(env, "b", "127.64.0.3", ready=False, port=8080)
        await run_pod(env, "c", "127.64.0.4", ready=True, port=9090)
        await env.reconcile("endpoint", "default/web")
        ep = await env.admin.get(R.ENDPOINTS, "web", NS)
        assert ep["metadata"]["labels"] == {"tier": "front"}
        assert ep["metadata"]["annotations"][
            "endpoints.kubernetes.io/last-change-trigger-time"] == \
            made["metadata"]["creationTimestamp"]  # the first sync: the Service's creation
        by_port = {ss["ports"][0]["port"]: ss for ss in ep["subsets"]}
        assert [a["ip"] for a in by_port[8080]["addresses"]] == ["127.64.0.2"]
        assert [a["ip"] for a in by_port[8080]["notReadyAddresses"]] == ["127.64.0.3"]
        assert [a["targetRef"]["name"] for a in by_port[9090]["addresses"]] == ["c"]
        assert by_port[8080]["addresses"][0]["nodeName"] == "n1"
        rv = ep["metadata"]["resourceVersion"]
        await env.reconcile("endpoint", "default/web")
        assert (await env.admin.get(R.ENDPOINTS, "web", NS))["metadata"]["resourceVersion"] == rv
        # the Service goes: so do its Endpoints
        await env.admin.delete(R.SERVICES, "web", NS)
        await env.reconcile("endpoint", "default/web")
        items, _ = await env.admin.list_all(R.ENDPOINTS, NS)
        assert "web" not in {e["metadata"]["name"] for e in items}


async def test_services_without_selectors_are_left_alone(api: InProcessAPI) -> None:
    async with controller_env(api, "endpoint", "endpointslice") as env:
        await env.admin.create(R.SERVICES, svc("manual"), NS)
        mine = {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "manual", "namespace": NS},
                "subsets": [{"addresses": [{"ip": "127.1.2.3"}], "ports": [{"port": 80}]}]}
        made = await env.admin.create(R.ENDPOINTS, mine, NS)
        await env.reconcile("endpoint", "default/manual")
        await env.reconcile("endpointslice", "default/manual")
        again = await env.admin.get(R.ENDPOINTS, "manual", NS)
        assert again["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
        assert await slices(env, "manual") == []


async def test_readiness_change_reaches_the_slice_when_running(api: InProcessAPI) -> None:
    async with controller_env(api, "endpointslice") as env, env.running():
        await env.admin.create(R.NODES, node("n1"))
        await env.admin.create(R.SERVICES, svc(selector={"app": "web"}), NS)
        p = await run_pod(env, "a", "127.64.0.2", ready=False)

        async def ready_is(value: bool) -> bool:
            eps = endpoints_of(await slices(env))
            return "a" in eps and eps["a"]["conditions"]["ready"] is value

        await env.until(lambda: ready_is(False))
        await set_status(env, p, "127.64.0.2", ready=True)
        await env.until(lambda: ready_is(True), timeout=5)
        await env.admin.delete(R.PODS, "a", NS)  # graceful: terminating until its node says

        async def terminating() -> bool:
            eps = endpoints_of(await slices(env))
            return eps["a"]["conditions"] == {"ready": False, "serving": True,
                                              "terminating": True}

        await env.until(terminating, timeout=5)
        await env.admin.delete(R.PODS, "a", NS, grace_period_seconds=0)

        async def empty() -> bool:
            got = await slices(env)
            return len(got) == 1 and not got[0].get("endpoints")  # the placeholder

        await env.until(empty, timeout=5)


async def test_a_stale_slice_cache_is_waited_for_but_not_forever(api: InProcessAPI) -> None:
    clock = FakeClock()
    async with controller_env(api, "endpointslice", clock=clock) as env:
        await env.admin.create(R.SERVICES, svc(selector={"app": "web"}), NS)
        assert await env.reconcile("endpointslice", "default/web") is None
        [placeholder] = await slices(env)
        ctrl = env["endpointslice"]
        assert isinstance(ctrl, EndpointSliceController)
        # a write of ours the cache has not shown: wait for it
        ctrl.tracker.wrote("default/web", {"metadata": {"uid": "never-seen", "generation": 1}})
        assert await env.reconcile("endpointslice", "default/web") == pytest.approx(0.1)
        clock.advance(11)  # it never comes (created and deleted between two lists)
        assert await env.reconcile("endpointslice", "default/web") is None
        assert [s["metadata"]["uid"] for s in await slices(env)] == \
            [placeholder["metadata"]["uid"]]


# --- pure cores ---------------------------------------------------------------------------------

def _pure_svc(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": NS, "uid": "svc-uid"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "127.16.0.9",
                     "ipFamilies": ["IPv4"], "ports": [{"name": "http", "port": 80,
                                                        "targetPort": 8080}], **spec}}


def _pure_pod(i: int, *, ready: bool = True) -> Obj:
    return {"metadata": {"name": f"p{i}", "namespace": NS, "uid": f"u{i}"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "podIP": f"127.64.{i // 250}.{i % 250 + 2}",
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]}}


def _nodes(_: str) -> Obj:
    return {"metadata": {"name": "n1"}}


def _apply(existing: list[Obj], plan: Any) -> list[Obj]:
    """What the slices would be after the plan is written (names for the new ones)."""
    gone = {s["metadata"]["name"] for s in plan.delete}
    updated = {s["metadata"]["name"]: s for s in plan.update}
    out = [updated.get(s["metadata"]["name"], s) for s in existing
           if s["metadata"]["name"] not in gone]
    for i, s in enumerate(plan.create):
        out.append({**s, "metadata": {**s["metadata"], "name": f"new-{len(existing)}-{i}",
                                      "uid": f"new-{len(existing)}-{i}"}})
    return out


def test_slices_split_at_100_and_refill_in_place() -> None:
    service = _pure_svc()
    pods = [_pure_pod(i) for i in range(250)]
    plan = plan_slices(service, pods, _nodes, [])
    assert sorted(len(s["endpoints"]) for s in plan.create) == [50, 100, 100]
    assert not plan.update and not plan.delete
    state = _apply([], plan)
    # one pod goes away, three come: existing slices are updated, none created
    pods = pods[1:] + [_pure_pod(i) for i in range(250, 253)]
    plan = plan_slices(service, pods, _nodes, state)
    assert not plan.create and not plan.delete and plan.update
    state = _apply(state, plan)
    assert sorted(len(s["endpoints"]) for s in state) == [52, 100, 100]
    assert sum(len(s["endpoints"]) for s in state) == 252
    # no change at all: no writes
    plan = plan_slices(service, pods, _nodes, state)
    assert not (plan.create or plan.update or plan.delete)


def test_no_pods_keeps_one_placeholder_slice() -> None:
    service = _pure_svc()
    plan = plan_slices(service, [], _nodes, [])
    [placeholder] = plan.create
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    state = _apply([], plan)
    plan = plan_slices(service, [], _nodes, state)
    assert not (plan.create or plan.update or plan.delete)
    # pods appear: the placeholder is reused rather than deleted and recreated
    plan = plan_slices(service, [_pure_pod(1)], _nodes, state)
    assert not plan.create and not plan.delete and len(plan.update) == 1


def test_terminating_pods_are_serving_but_not_ready() -> None:
    p = _pure_pod(1)
    p["metadata"]["deletionTimestamp"] = T0
    [s] = plan_slices(_pure_svc(), [p], _nodes, []).create
    assert s["endpoints"][0]["conditions"] == {"ready": False, "serving": True,
                                               "terminating": True}


def test_a_pod_on_an_unknown_node_is_skipped_for_now() -> None:
    plan = plan_slices(_pure_svc(), [_pure_pod(1)], lambda _: None, [])
    assert plan.problems and plan.create[0]["endpoints"] == []


@pytest.mark.parametrize(("target", "want"), [
    pytest.param(8080, 8080, id="number"),
    pytest.param("http", 8080, id="name"),
    pytest.param("metrics", None, id="missing-name"),
    pytest.param("side", 9000, id="sidecar-init-container"),
])
def test_find_port(target: Any, want: int | None) -> None:
    p = {"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080},
                                            {"name": "dns", "containerPort": 53,
                                             "protocol": "UDP"}]}],
                  "initContainers": [{"restartPolicy": "Always",
                                      "ports": [{"name": "side", "containerPort": 9000}]}]}}
    assert find_port(p, {"port": 80, "targetPort": target}) == want
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "UDP"}) == 53
    assert find_port(p, {"port": 53, "targetPort": "dns"}) is None  # TCP asked, UDP named


def test_repack_groups_addresses_by_port_and_not_ready_wins() -> None:
    a = {"ip": "127.0.0.2", "targetRef": {"uid": "a"}}
    b = {"ip": "127.0.0.3", "targetRef": {"uid": "b"}}
    http, dns = {"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53,
                                                                 "protocol": "UDP"}
    out = repack([{"addresses": [a], "ports": [http]}, {"addresses": [a], "ports": [dns]},
                  {"notReadyAddresses": [a], "ports": [dns]},
                  {"addresses": [b], "ports": [http]}])
    by = {tuple(p["name"] for p in ss["ports"]): ss for ss in out}
    assert [x["ip"] for x in by[("http",)]["addresses"]] == ["127.0.0.2", "127.0.0.3"]
    assert [x["ip"] for x in by[("dns",)]["notReadyAddresses"]] == ["127.0.0.2"]
    assert repack(list(reversed(out))) == out
    # a headless Service without ports keeps its addresses
    assert repack([{"addresses": [a], "ports": []}]) == [{"addresses": [a]}]


def test_truncate_keeps_ready_first_in_proportion() -> None:
    def addrs(n: int, base: int) -> list[Obj]:
        return [{"ip": f"127.{base}.{i // 250}.{i % 250}"} for i in range(n)]

    subsets = [{"addresses": addrs(600, 1), "notReadyAddresses": addrs(300, 2)},
               {"addresses": addrs(300, 3), "notReadyAddresses": addrs(300, 4)}]
    assert truncate(subsets)
    total = sum(len(s["addresses"]) + len(s["notReadyAddresses"]) for s in subsets)
    assert total == MAX_CAPACITY
    assert [len(s["addresses"]) for s in subsets] == [600, 300]
    assert [len(s["notReadyAddresses"]) for s in subsets] == [50, 50]
    assert not truncate([{"addresses": addrs(10, 1)}])


def test_trigger_time_is_the_earliest_change_since_the_last_sync() -> None:
    t = TriggerTimeTracker()
    service = {"metadata": {"name": "web", "namespace": NS, "creationTimestamp": T0}}

    def p(name: str, at: str) -> Obj:
        return {"metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "lastTransitionTime": at}]}}

    first = t.compute(service, [p("a", "2026-01-01T00:00:05Z")])
    assert first == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert t.compute(service, [p("a", "2026-01-01T00:00:05Z")]) is None
    later = t.compute(service, [p("a", "2026-01-01T00:00:09Z"), p("b", "2026-01-01T00:00:07Z")])
    assert later == dt.datetime(2026, 1, 1, 0, 0, 7, tzinfo=dt.UTC)
    assert format_nano(dt.datetime(2026, 1, 1, 0, 0, 7, 250000, tzinfo=dt.UTC)) == \
        "2026-01-01T00:00:07.25Z"
