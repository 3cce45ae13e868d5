"""Hollow nodes in process: several real agents in one event loop, each with its own identity,
Lease and pod informer, over the fake runtime — they register, heartbeat, run the pods bound to
them (and only those), restart after a failure, and stop together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from control.api.errors import Forbidden
from control.client import ApiClient
from control.client import resources as R
from node.hollow import HollowConfig, HollowNodes
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]


async def _until(probe: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await probe()
        if got:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"not reached in {timeout}s: {got!r}")


@asynccontextmanager
async def hollow(api: InProcessAPI, tmp: Path, count: int, **kw: Any
                 ) -> AsyncIterator[HollowNodes]:
    config = HollowConfig(count=count, dir=str(tmp), certs=str(api.certs),
                          servers=(api.url,), prefix="h", start_rate=0,
                          agent={"pod_cidr_wait": 0.0, **kw})
    nodes = HollowNodes(config)
    task = asyncio.create_task(nodes.run())
    try:
        yield nodes
    finally:
        nodes.stop()
        await asyncio.wait_for(task, 30)


def _pod(name: str, node: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "whatever:1"}]}}


def _ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


async def test_hollow_nodes_register_heartbeat_and_run_their_pods(
        api: InProcessAPI, tmp_path: Path) -> None:
    async with api.client() as admin, hollow(api, tmp_path, 3) as nodes:
        async def all_ready() -> bool:
            items = (await admin.list(R.NODES))["items"]
            return nodes.ready == 3 and sum(1 for n in items if _ready(n)) == 3

        await _until(all_ready)
        leases = (await admin.list(R.LEASES, "kube-node-lease"))["items"]
        assert sorted(ls["spec"]["holderIdentity"] for ls in leases) == ["h-1", "h-2", "h-3"]
        for i in range(6):
            await admin.create(R.PODS, _pod(f"p{i}", f"h-{i % 3 + 1}"), "default")

        async def running() -> list[Obj]:
            pods = (await admin.list(R.PODS, "default"))["items"]
            ok = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            return pods if len(ok) == 6 else []

        pods = await _until(running)
        for p in pods:  # each pod run by its own node: hostIP is that node's address
            node = await admin.get(R.NODES, p["spec"]["nodeName"])
            addresses = {a["address"] for a in node["status"]["addresses"]}
            assert p["status"]["hostIP"] in addresses
            assert all(c["ready"] for c in p["status"]["containerStatuses"])
        assert nodes.failures == {}


async def test_a_hollow_node_whose_agent_fails_is_reported_and_restarted(
        api: InProcessAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import node.hollow as hollow_mod

    monkeypatch.setattr(hollow_mod, "_RESTART_DELAY", 0.05)
    async with api.client() as admin, hollow(api, tmp_path, 2) as nodes:
        await _until(lambda: _value(nodes.ready == 2))
        victim = nodes.nodes[0]
        assert victim.agent is not None
        first = victim.agent
        first._failed = RuntimeError("boom")  # what a failed part of the agent leaves
        first.stop()
        await _until(lambda: _value(victim.agent is not first and victim.ready))
        assert nodes.failures == {"h-1": "RuntimeError: boom"}
        node = await admin.get(R.NODES, "h-1")
        assert node["metadata"]["name"] == "h-1"


async def _value(v: Any) -> Any:
    return v


async def test_hollow_clients_are_node_identities(api: InProcessAPI, tmp_path: Path) -> None:
    """NodeRestriction holds for hollow nodes as for real ones: h-1 cannot touch h-2's Lease."""
    async with api.client() as admin, hollow(api, tmp_path, 2) as nodes:
        await _until(lambda: _value(nodes.ready == 2))
        agent = nodes.nodes[0].agent
        assert agent is not None
        client: ApiClient = agent.client
        lease = await admin.get(R.LEASES, "h-2", "kube-node-lease")
        lease["spec"]["holderIdentity"] = "h-1"
        with pytest.raises(Forbidden):
            await client.update(R.LEASES, lease)


def test_the_sync_frequency_flag_reaches_real_and_hollow_agents(tmp_path: Path) -> None:
    # kubelet's --sync-frequency, 1 min by default (at 10 s, 30,000 pods on 1,000 hollow
    # nodes were 3,000 idle syncs a second); a bad value is refused with the flag's name
    import argparse

    from certs import init_cluster_certs
    from certs.kubeconfig import write_kubeconfig
    from node.__main__ import add_arguments, config_of
    from node.hollow_cli import hollow_config

    p = argparse.ArgumentParser()
    add_arguments(p)
    base = ["--kubeconfig", "k", "--name", "n1", "--dir", str(tmp_path)]
    assert config_of(p.parse_args(base)).sync_seconds == 60.0
    assert config_of(p.parse_args([*base, "--sync-frequency", "5"])).sync_seconds == 5.0
    with pytest.raises(ValueError, match="--sync-frequency"):
        config_of(p.parse_args([*base, "--sync-frequency", "0"]))
    certs = tmp_path / "certs"
    init_cluster_certs(certs, replicas=["s1"])
    kc = tmp_path / "kc"
    write_kubeconfig(kc, server="https://127.0.0.1:6443", ca=certs / "ca.crt",
                     cert=certs / "admin.crt", key=certs / "admin.key", user="admin")
    hollow = ["--kubeconfig", str(kc), "--name", "h", "--dir", str(tmp_path), "--hollow",
              "--certs", str(certs), "--sync-frequency", "30"]
    assert hollow_config(p.parse_args(hollow)).agent["sync_seconds"] == 30.0
