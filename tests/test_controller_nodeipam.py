"""The node IPAM controller: one podCIDR per node from the cluster CIDR, never two nodes the
same, released on delete, rebuilt by a new leader from the nodes; and the CIDR set itself."""

from __future__ import annotations

from typing import Any

import pytest

from control.client import resources as R
from control.controllers import Settings
from control.controllers.cidrset import CidrFull, CidrSet
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]


def node(name: str, cidr: str = "") -> Obj:
    n: Obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}}
    if cidr:
        n["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]}
    return n


async def cidr_of(env: Env, name: str) -> str:
    got = await env.admin.get(R.NODES, name)
    spec = got.get("spec") or {}
    assert spec.get("podCIDRs", [spec.get("podCIDR")]) == [spec.get("podCIDR")]
    return str(spec.get("podCIDR") or "")


async def test_each_node_gets_its_own_cidr_once(api: InProcessAPI) -> None:
    async with controller_env(api, "nodeipam") as env:
        for n in ("a", "b", "c"):
            await env.admin.create(R.NODES, node(n))
            await env.reconcile("nodeipam", n)
        got = {n: await cidr_of(env, n) for n in ("a", "b", "c")}
        assert got == {"a": "127.64.0.0/24", "b": "127.64.1.0/24", "c": "127.64.2.0/24"}
        await env.reconcile("nodeipam", "a")  # again: nothing changes
        assert await cidr_of(env, "a") == "127.64.0.0/24"


async def test_a_deleted_nodes_cidr_is_reused_and_a_full_range_is_an_event(
        api: InProcessAPI) -> None:
    settings = Settings(cluster_cidr="127.64.0.0/23", node_cidr_mask=24)  # two subnets
    async with controller_env(api, "nodeipam", settings=settings) as env:
        for n in ("a", "b", "c"):
            await env.admin.create(R.NODES, node(n))
            await env.reconcile("nodeipam", n)
        assert await cidr_of(env, "c") == ""
        events, _ = await env.admin.list_all(R.EVENTS, "default")
        [full] = [e for e in events if e["reason"] == "CIDRNotAvailable"]
        assert full["involvedObject"]["name"] == "c"
        assert full["message"] == "Node c status is now: CIDRNotAvailable"
        freed = await cidr_of(env, "a")
        await env.admin.delete(R.NODES, "a")
        await env.reconcile("nodeipam", "a")
        await env.reconcile("nodeipam", "c")
        assert await cidr_of(env, "c") == freed
        assert await cidr_of(env, "b") != freed


async def test_a_new_leader_rebuilds_the_map_from_the_nodes(api: InProcessAPI) -> None:
    async with controller_env(api, "nodeipam") as env:
        # nodes that already have CIDRs (a previous leader's, or set by hand)
        await env.admin.create(R.NODES, node("old1", "127.64.0.0/24"))
        await env.admin.create(R.NODES, node("old2", "127.64.1.0/24"))
        await env.admin.create(R.NODES, node("new"))
        ctrl = env["nodeipam"]
        ctrl.start_term()
        await env.reconcile("nodeipam", "new")
        assert await cidr_of(env, "new") == "127.64.2.0/24"
        # another term: the allocation map is rebuilt, the next node gets the next subnet
        ctrl.start_term()
        await env.admin.create(R.NODES, node("newer"))
        await env.reconcile("nodeipam", "newer")
        assert await cidr_of(env, "newer") == "127.64.3.0/24"
        cidrs = [await cidr_of(env, n) for n in ("old1", "old2", "new", "newer")]
        assert len(set(cidrs)) == 4


async def test_unique_cidrs_when_running(api: InProcessAPI) -> None:
    async with controller_env(api, "nodeipam") as env, env.running():
        for i in range(12):
            await env.admin.create(R.NODES, node(f"n{i}"))

        async def all_set() -> list[str] | None:
            items, _ = await env.admin.list_all(R.NODES)
            got = [(n.get("spec") or {}).get("podCIDR") for n in items]
            return got if all(got) and len(got) == 12 else None

        got = await env.until(all_set)
        assert len(set(got)) == 12


def test_cidr_set_allocates_round_robin_and_occupies() -> None:
    s = CidrSet("10.0.0.0/22", 24)
    assert s.size == 4
    assert s.occupy("10.0.1.0/24")
    assert [s.allocate() for _ in range(3)] == ["10.0.0.0/24", "10.0.2.0/24", "10.0.3.0/24"]
    with pytest.raises(CidrFull):
        s.allocate()
    s.release("10.0.2.0/24")
    assert s.allocate() == "10.0.2.0/24"
    assert not s.occupy("192.168.0.0/24")  # outside
    assert s.occupy("10.0.0.0/23") and s.taken("10.0.1.0/24")  # a larger block marks both
    with pytest.raises(ValueError):
        CidrSet("10.0.0.0/24", 16)
