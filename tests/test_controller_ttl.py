"""The ttl controller: every Node gets node.alpha.kubernetes.io/ttl from Kubernetes' table by
cluster size, with hysteresis, and node.ketch.io/lease-renew-seconds (Nomad's cap of 50
heartbeats a second); the node agent's ConfigMap/Secret cache and its Lease heartbeat honour
them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from control.api.objects import (
    NODE_LEASE_RENEW_ANNOTATION,
    NODE_TTL_ANNOTATION,
    node_lease_renew_seconds,
    node_ttl_seconds,
)
from control.client import resources as R
from control.controllers.ttl import lease_renew_for, step_for
from tests.controllers_env import controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]


@pytest.mark.parametrize(("count", "start", "ttl"), [
    (0, 0, 0), (100, 0, 0), (101, 0, 15), (1000, 0, 30), (1001, 0, 60), (5000, 0, 300),
    (95, 1, 15),    # inside the overlap: stays up
    (89, 1, 0),     # below the range: steps down
    (460, 2, 30), (449, 2, 15), (10, 4, 0),
])
def test_the_step_walks_kubernetes_table_with_hysteresis(count: int, start: int,
                                                         ttl: int) -> None:
    from control.controllers.ttl import BOUNDARIES
    assert BOUNDARIES[step_for(count, start)].ttl_seconds == ttl


def test_the_lease_renewal_floor_keeps_the_largest_cluster_of_a_step_at_50_a_second() -> None:
    # up to 100, 500, 1,000, 2,000 nodes; past that the agent's own cap (half its Lease) rules
    assert [lease_renew_for(step) for step in range(5)] == [2, 10, 20, 40, 300]


@pytest.mark.parametrize(("annotations", "seconds"), [
    ({NODE_LEASE_RENEW_ANNOTATION: "20"}, 20), ({NODE_LEASE_RENEW_ANNOTATION: "0"}, None),
    ({NODE_LEASE_RENEW_ANNOTATION: "-5"}, None), ({NODE_LEASE_RENEW_ANNOTATION: "x"}, None),
    ({}, None)])
def test_the_renewal_floor_is_read_as_positive_whole_seconds_or_not_at_all(
        annotations: Any, seconds: int | None) -> None:
    assert node_lease_renew_seconds({"metadata": {"annotations": annotations}}) == seconds


@pytest.mark.parametrize(("renew", "duration", "floor", "interval"), [
    pytest.param(10.0, 40, None, 10.0, id="no-floor"),
    pytest.param(10.0, 40, 5, 10.0, id="floor-below-own"),
    pytest.param(10.0, 40, 20, 20.0, id="1000-nodes"),
    pytest.param(10.0, 40, 40, 20.0, id="capped-at-half-the-lease"),
    pytest.param(2.5, 10, 20, 5.0, id="chaos-short-lease"),
])
def test_the_heartbeat_stretches_to_the_floor_but_renews_twice_per_lease(
        renew: float, duration: int, floor: int | None, interval: float) -> None:
    from control.api.clock import FakeClock
    from node.heartbeat import LeaseHeartbeat
    hb = LeaseHeartbeat(None, "n1", clock=FakeClock(), duration=duration,  # type: ignore[arg-type]
                        renew_seconds=renew, renew_floor=lambda: floor)
    assert hb.interval() == interval


@pytest.mark.parametrize(("annotations", "seconds"), [
    ({NODE_TTL_ANNOTATION: "30"}, 30), ({NODE_TTL_ANNOTATION: "thirty"}, None), ({}, None),
    (None, None)])
def test_the_annotation_is_read_as_whole_seconds_or_not_at_all(annotations: Any,
                                                               seconds: int | None) -> None:
    assert node_ttl_seconds({"metadata": {"annotations": annotations}}) == seconds


def _node(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


async def _ttls(env: Any) -> set[str | None]:
    """Every Node's TTL; each must carry its step's renewal floor with it."""
    nodes, _ = await env.admin.list_all(R.NODES)
    renewals = {"0": "2", "15": "10"}
    out = set()
    for n in nodes:
        notes = n["metadata"].get("annotations") or {}
        ttl = notes.get(NODE_TTL_ANNOTATION)
        out.add(ttl if notes.get(NODE_LEASE_RENEW_ANNOTATION) == renewals.get(ttl) else None)
    return out


async def test_every_node_is_annotated_and_a_bigger_cluster_raises_them_all(
        api: InProcessAPI) -> None:
    async with controller_env(api, "ttl") as env:
        for i in range(3):
            await env.admin.create(R.NODES, _node(f"n{i}"))
        for i in range(3):
            await env.reconcile("ttl", f"n{i}")
        assert await _ttls(env) == {"0"}
        # an admin's edit is put back
        await env.admin.patch(R.NODES, "n1", {"metadata": {"annotations": {
            NODE_TTL_ANNOTATION: "999"}}})
        await env.reconcile("ttl", "n1")
        assert await _ttls(env) == {"0"}
        # past 100 nodes every node, the old ones included, goes to 15 s — written by the
        # workers from the queue the step change filled
        env["ttl"].start_term()
        async with env.running("ttl"):
            for i in range(3, 102):
                await env.admin.create(R.NODES, _node(f"n{i}"))
            await env.until(lambda: _is(env, {"15"}), timeout=20)
            # and back below 90: down to 0 s
            for i in range(15, 102):
                await env.admin.delete(R.NODES, f"n{i}")
            await env.until(lambda: _is(env, {"0"}), timeout=20)


async def _is(env: Any, want: set[str]) -> bool:
    return await _ttls(env) == want


@pytest.mark.parametrize(("annotation", "fresh_after"), [(None, 2.0), ("0", 2.0), ("30", 30.0)])
async def test_the_agent_rereads_a_configmap_after_its_nodes_ttl_and_never_under_2s(
        api: InProcessAPI, annotation: str | None, fresh_after: float) -> None:
    from control.api.clock import FakeClock
    from control.client import Informer
    from node.sources import ClusterSources

    node = _node("n1")
    if annotation is not None:
        node["metadata"]["annotations"] = {NODE_TTL_ANNOTATION: annotation}
    clock = FakeClock()
    async with api.client() as admin:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
              "data": {"v": "1"}}
        await admin.create(R.CONFIGMAPS, cm, "default")
        sources = ClusterSources(admin, Informer(admin, R.SERVICES), clock=clock,
                                 node=lambda: node)
        assert sources.ttl() == fresh_after
        assert (await sources.configmap("default", "c") or {})["data"] == {"v": "1"}
        await admin.patch(R.CONFIGMAPS, "c", {"data": {"v": "2"}}, "default")
        clock.advance(fresh_after - 0.5)
        assert (await sources.configmap("default", "c") or {})["data"] == {"v": "1"}
        # The refresh is read from the watch cache, which follows the store: poll for it.
        await _until(lambda: _data(sources), {"v": "2"}, clock, fresh_after + 0.5)


async def _data(sources: Any) -> Any:
    return (await sources.configmap("default", "c") or {}).get("data")


async def _until(read: Any, want: Any, clock: Any, step: float) -> None:
    deadline = time.monotonic() + 10
    while (got := await read()) != want:
        assert time.monotonic() < deadline, f"still {got}, not {want}"
        clock.advance(step)
        await asyncio.sleep(0.02)


async def test_a_refresh_reads_the_watch_cache_a_first_read_and_a_missing_object_the_store(
        api: InProcessAPI) -> None:
    from control.api.clock import FakeClock
    from control.client import Informer
    from node.sources import ClusterSources

    clock = FakeClock()
    async with api.client() as admin:
        asked: list[tuple[str, str]] = []
        get = admin.get

        async def recording_get(res: Any, name: str, namespace: str = "", **kw: Any) -> Any:
            asked.append((name, (kw.get("params") or {}).get("resourceVersion", "")))
            return await get(res, name, namespace, **kw)

        admin.get = recording_get  # type: ignore[method-assign]
        sources = ClusterSources(admin, Informer(admin, R.SERVICES), clock=clock,
                                 node=lambda: _node("n1"))
        assert await sources.configmap("default", "later") is None
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"},
              "data": {"v": "1"}}
        await admin.create(R.CONFIGMAPS, cm, "default")
        clock.advance(2.5)
        assert (await sources.configmap("default", "later") or {}).get("data") == {"v": "1"}
        clock.advance(2.5)
        assert (await sources.configmap("default", "later") or {}).get("data") == {"v": "1"}
        assert asked == [("later", ""), ("later", ""), ("later", "0")]
