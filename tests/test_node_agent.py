"""The node agent in process: the real agent against the in-process apiserver as
``system:node:NAME`` (so RBAC and NodeRestriction apply), over the fake runtime and a fake
clock — registration, the Lease heartbeat (also while pod work is stuck), node status and its
events, running only its own pods, graceful node shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from control.api.clock import FakeClock, parse_time
from control.client import resources as R
from node.runtime.api import PodSandbox, PodSandboxConfig
from node.runtime.fake import FakeRuntime
from tests.agentenv import (
    create_pod,
    pod,
    root_ca,
    running_agent,
    until,
)
from tests.inprocess import InProcessAPI


def _condition(node: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in node["status"]["conditions"] if c["type"] == kind)


async def test_registers_its_node_and_renews_its_lease(api: InProcessAPI, tmp_path: Path) -> None:
    clock = FakeClock()
    async with api.client() as admin, running_agent(api, tmp_path, clock=clock) as run:
        node = await admin.get(R.NODES, "node-1")
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == "node-1"
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
        st = node["status"]
        assert st["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"},
                                   {"type": "Hostname", "address": "node-1"}]
        assert st["capacity"]["cpu"] == "4" and st["capacity"]["pods"] == "110"
        assert st["capacity"]["memory"] == f"{8 << 20}Ki"
        assert st["allocatable"]["memory"] == f"{(8 << 20) - 100 * 1024}Ki"
        assert st["nodeInfo"]["kubeletVersion"] == "v1.37.0-ketch"
        assert st["nodeInfo"]["containerRuntimeVersion"] == "ketch-process://1"
        assert [c["type"] for c in st["conditions"]] == [
            "MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        ready = _condition(node, "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
        assert node["spec"]["podCIDR"] == run.agent.pod_cidr  # the fallback, claimed

        lease = await admin.get(R.LEASES, "node-1", "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == "node-1"
        assert lease["spec"]["leaseDurationSeconds"] == 40
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        first = parse_time(lease["spec"]["renewTime"])
        for _ in range(3):
            before = run.agent.heartbeat.renewals
            clock.advance(10)
            await until(lambda b=before: _more(run.agent.heartbeat.renewals, b))
        lease = await admin.get(R.LEASES, "node-1", "kube-node-lease")
        renewed = parse_time(lease["spec"]["renewTime"])
        assert first is not None and renewed is not None
        assert (renewed - first).total_seconds() == 30

        async def events() -> set[str]:
            got = await admin.list(R.EVENTS, "default",
                                   field_selector="involvedObject.name=node-1")
            reasons = {e["reason"] for e in got["items"] if
                       e["involvedObject"]["kind"] == "Node"}
            return reasons if {"Starting", "NodeReady"} <= reasons else set()

        reasons = await until(events)
        assert {"NodeHasSufficientMemory", "NodeHasNoDiskPressure",
                "NodeHasSufficientPID"} <= reasons


async def _more(now: int, before: int) -> bool:
    return now > before


async def test_node_status_is_posted_on_change_and_corrects_others(api: InProcessAPI,
                                                                   tmp_path: Path) -> None:
    clock = FakeClock()
    async with api.client() as admin, running_agent(api, tmp_path, clock=clock) as run:
        posts = run.agent.status.posts
        clock.advance(10)  # nothing changed, 5 minutes not over: no post
        await asyncio.sleep(0.2)
        assert run.agent.status.posts == posts
        # the node lifecycle controller says Unknown while the agent was away
        node = await admin.get(R.NODES, "node-1")
        for c in node["status"]["conditions"]:
            if c["type"] == "Ready":
                c.update(status="Unknown", reason="NodeStatusUnknown",
                         message="Kubelet stopped posting node status.")
        await admin.update_status(R.NODES, node)
        await run.agent.nodes.wait_for_version(0)

        async def corrected() -> bool:
            clock.advance(10)
            got = await admin.get(R.NODES, "node-1")
            return _condition(got, "Ready")["status"] == "True"

        await until(corrected)
        clock.advance(300)  # then at least every 5 minutes
        await until(lambda: _more(run.agent.status.posts, posts + 1))


class _StuckRuntime(FakeRuntime):
    """A runtime whose sandboxes never come up: pod work hangs."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.gate = asyncio.Event()
        self.waiting = 0

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        self.waiting += 1
        await self.gate.wait()
        return await super().run_pod_sandbox(config)


async def test_heartbeats_continue_while_pod_work_is_stuck(api: InProcessAPI,
                                                           tmp_path: Path) -> None:
    clock = FakeClock()
    stuck: list[_StuckRuntime] = []

    async def factory(cidr: str) -> _StuckRuntime:
        stuck.append(_StuckRuntime(clock, any_image=True, pod_cidr=cidr))
        return stuck[0]

    async with api.client() as admin, running_agent(api, tmp_path, clock=clock,
                                                   runtime_factory=factory) as run:
        await root_ca(admin)
        for i in range(5):
            await create_pod(admin, pod(f"p{i}"))

        async def all_stuck() -> bool:
            return stuck[0].waiting == 5

        await until(all_stuck)
        for _ in range(4):
            before = run.agent.heartbeat.renewals
            clock.advance(10)
            await until(lambda b=before: _more(run.agent.heartbeat.renewals, b))
        got = await admin.get(R.NODES, "node-1")
        assert _condition(got, "Ready")["status"] == "True"
        stuck[0].gate.set()


async def test_runs_only_pods_bound_to_it(api: InProcessAPI, tmp_path: Path) -> None:
    async with api.client() as admin, running_agent(api, tmp_path) as run:
        await root_ca(admin)
        other = await create_pod(admin, pod("elsewhere", node="node-2"))
        mine = await create_pod(admin, pod("mine"))

        async def running() -> bool:
            got = await admin.get(R.PODS, "mine", "default")
            return (got.get("status") or {}).get("phase") == "Running"

        await until(running)
        rt = run.agent.runtime
        assert isinstance(rt, FakeRuntime)
        uids = {sb.uid for sb in await rt.list_pod_sandboxes()}
        assert uids == {mine["metadata"]["uid"]}
        # a pod for another node handed to the agent anyway (a buggy watch) is refused
        assert run.agent.feed is not None
        run.agent.feed._seen(other)
        assert run.agent.feed.refused == 1
        assert other["metadata"]["uid"] not in run.agent.workers.workers  # type: ignore[union-attr]
        got = await admin.get(R.PODS, "elsewhere", "default")
        assert (got.get("status") or {}).get("phase") != "Running"


async def test_a_deleted_pod_is_terminated_then_removed_by_the_agent(
        api: InProcessAPI, tmp_path: Path) -> None:
    async with api.client() as admin, running_agent(api, tmp_path) as run:
        await root_ca(admin)
        await create_pod(admin, pod("p"))

        async def running() -> bool:
            got = await admin.get(R.PODS, "p", "default")
            return (got.get("status") or {}).get("phase") == "Running"

        await until(running)
        await admin.delete(R.PODS, "p", "default", grace_period_seconds=1)

        async def gone() -> bool:
            got = await admin.list(R.PODS, "default", field_selector="metadata.name=p")
            return not got["items"]

        await until(gone)  # the agent deleted it with grace 0 once its containers stopped
        rt = run.agent.runtime
        assert isinstance(rt, FakeRuntime)

        async def removed() -> bool:
            return not await rt.list_pod_sandboxes()

        await until(removed)


async def test_graceful_node_shutdown_reports_pods_failed(api: InProcessAPI,
                                                          tmp_path: Path) -> None:
    async with api.client() as admin, running_agent(api, tmp_path) as run:
        await root_ca(admin)
        await create_pod(admin, pod("p"))

        async def running() -> bool:
            got = await admin.get(R.PODS, "p", "default")
            return (got.get("status") or {}).get("phase") == "Running"

        await until(running)
        await run.stop()
        got = await admin.get(R.PODS, "p", "default")
        st = got["status"]
        assert (st["phase"], st["reason"]) == ("Failed", "Terminated")
        assert st["message"] == "Pod was terminated in response to imminent node shutdown."
        target = next(c for c in st["conditions"] if c["type"] == "DisruptionTarget")
        assert (target["status"], target["reason"]) == ("True", "TerminationByKubelet")
        assert "terminated" in st["containerStatuses"][0]["state"]
        node = await admin.get(R.NODES, "node-1")
        ready = _condition(node, "Ready")
        assert (ready["status"], ready["message"]) == ("False", "node is shutting down")


async def test_keep_pods_on_exit_leaves_them_running(api: InProcessAPI, tmp_path: Path) -> None:
    async with api.client() as admin, running_agent(api, tmp_path,
                                                   keep_pods_on_exit=True) as run:
        await root_ca(admin)
        await create_pod(admin, pod("p"))

        async def running() -> bool:
            got = await admin.get(R.PODS, "p", "default")
            return (got.get("status") or {}).get("phase") == "Running"

        await until(running)
        rt = run.agent.runtime
        await run.stop()
        assert isinstance(rt, FakeRuntime)
        assert rt.running("c") is not None
        assert (await admin.get(R.PODS, "p", "default"))["status"]["phase"] == "Running"
