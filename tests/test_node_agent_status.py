"""The pod status writer against the in-process apiserver, as the node: statuses batched per
pod, writes guarded by resourceVersion (a stale copy costs a 409 and a re-read, never a lost
condition), terminal phases kept, the final status written before the grace-0 delete, and the
delete never touching a new pod of the same name."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from control.api.clock import FakeClock
from control.client import ApiClient, Informer, ObjectCache
from control.client import resources as R
from node.status_sink import PodStatusWriter, merge_status
from tests.agentenv import create_pod, node_client, pod, until
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]


class _Pods:
    """An informer stand-in whose cache holds what the test puts there (a stale copy)."""

    def __init__(self) -> None:
        self.cache = ObjectCache()


@contextlib.asynccontextmanager
async def writer_of(client: ApiClient, pods: _Pods) -> AsyncIterator[PodStatusWriter]:
    w = PodStatusWriter(client, cast(Informer, pods), clock=FakeClock(), writers=2)
    task = asyncio.create_task(w.run())
    try:
        yield w
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _status(phase: str, ready: str = "False", **extra: Any) -> Obj:
    return {"phase": phase, "conditions": [
        {"type": "Ready", "status": ready, "lastProbeTime": None,
         "lastTransitionTime": "2026-01-01T00:00:00Z"}], **extra}


def _condition(p: Obj, kind: str) -> Obj | None:
    return next((c for c in (p.get("status") or {}).get("conditions") or []
                 if c["type"] == kind), None)


@pytest.mark.parametrize(("api_status", "ours", "want_phase", "want_types"), [
    pytest.param({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"},
                                                     {"type": "example.com/gate",
                                                      "status": "True"}]},
                 _status("Running", "True"), "Running", ["example.com/gate", "Ready"],
                 id="foreign-condition-kept"),
    pytest.param({"phase": "Failed", "conditions": []}, _status("Running"), "Failed",
                 ["Ready"], id="terminal-phase-stays"),
    pytest.param({"phase": "Running", "conditions": [{"type": "DisruptionTarget",
                                                      "status": "True"}]},
                 _status("Running"), "Running", ["DisruptionTarget", "Ready"],
                 id="others-disruption-target-kept"),
])
def test_merge_status(api_status: Obj, ours: Obj, want_phase: str,
                      want_types: list[str]) -> None:
    merged = merge_status(api_status, ours)
    assert merged["phase"] == want_phase
    assert [c["type"] for c in merged["conditions"]] == want_types


async def test_statuses_are_batched_per_pod(api: InProcessAPI, tmp_path: Path) -> None:
    async with api.client() as admin, node_client(api, "node-1") as node:
        made = await create_pod(admin, pod("p"))
        pods = _Pods()
        pods.cache.put(made)
        w = PodStatusWriter(node, cast(Informer, pods), clock=FakeClock(), writers=2)
        for i in range(10):  # ten statuses before the writer runs: one write, the last
            w.set_status(made, _status("Pending", message=f"step {i}"))
        task = asyncio.create_task(w.run())
        try:
            await asyncio.wait_for(w.flush(), 10)
        finally:
            task.cancel()
        assert w.writes == 1
        got = await admin.get(R.PODS, "p", "default")
        assert got["status"]["message"] == "step 9"


async def test_a_stale_copy_costs_a_conflict_not_a_condition(api: InProcessAPI) -> None:
    async with api.client() as admin, node_client(api, "node-1") as node:
        made = await create_pod(admin, pod("p"))
        stale = copy.deepcopy(made)
        fresh = copy.deepcopy(made)
        fresh["status"] = {**(fresh.get("status") or {}), "conditions": [
            {"type": "example.com/gate", "status": "True"}]}
        await admin.update_status(R.PODS, fresh)  # someone else's condition, after our copy
        pods = _Pods()
        pods.cache.put(stale)
        async with writer_of(node, pods) as w:
            w.set_status(made, _status("Running", "True"))
            await asyncio.wait_for(w.flush(), 10)
            assert w.conflicts == 1 and w.writes == 1
        got = await admin.get(R.PODS, "p", "default")
        assert got["status"]["phase"] == "Running"
        assert _condition(got, "example.com/gate") is not None
        assert (_condition(got, "Ready") or {}).get("status") == "True"


async def test_final_status_then_grace_zero_delete(api: InProcessAPI) -> None:
    async with api.client() as admin, node_client(api, "node-1") as node:
        made = await create_pod(admin, pod("p"))
        _, rv = await admin.list_all(R.PODS, "default")
        await admin.delete(R.PODS, "p", "default", grace_period_seconds=30)
        seen: list[tuple[str, str]] = []

        async def watch() -> None:
            async for ev in admin.watch(R.PODS, "default", resource_version=rv):
                seen.append((ev.type, (ev.object.get("status") or {}).get("phase", "")))
                if ev.type == "DELETED":
                    return

        watcher = asyncio.create_task(watch())
        pods = _Pods()
        async with writer_of(node, pods) as w:
            w.set_status(made, _status("Succeeded"))
            w.pod_terminated(made)
            await asyncio.wait_for(watcher, 10)
        assert ("MODIFIED", "Succeeded") in seen
        assert seen[-1][0] == "DELETED"
        assert seen.index(("MODIFIED", "Succeeded")) < len(seen) - 1


async def test_delete_never_touches_a_new_pod_of_the_same_name(api: InProcessAPI) -> None:
    async with api.client() as admin, node_client(api, "node-1") as node:
        old = await create_pod(admin, pod("p"))
        await admin.delete(R.PODS, "p", "default", grace_period_seconds=0)
        new = await create_pod(admin, pod("p"))
        pods = _Pods()
        async with writer_of(node, pods) as w:
            w.set_status(old, _status("Succeeded"))
            w.pod_terminated(old)
            await asyncio.wait_for(w.flush(), 10)
        got = await admin.get(R.PODS, "p", "default")
        assert got["metadata"]["uid"] == new["metadata"]["uid"]
        assert (got.get("status") or {}).get("phase") != "Succeeded"


async def test_final_delete_ends_when_the_name_is_another_nodes_pod(api: InProcessAPI) -> None:
    """NodeRestriction refuses node-1 the delete (403): the name is now a pod bound to node-2,
    and a pod never changes node, so node-1's pod is gone — nothing to retry."""
    async with api.client() as admin, node_client(api, "node-1") as node:
        old = await create_pod(admin, pod("p"))
        await admin.delete(R.PODS, "p", "default", grace_period_seconds=0)
        new = await create_pod(admin, pod("p", node="node-2"))
        async with writer_of(node, _Pods()) as w:
            w.pod_terminated(old)
            await asyncio.wait_for(w.flush(), 10)
            assert w.pending == 0 and not w._retry
        got = await admin.get(R.PODS, "p", "default")
        assert got["metadata"]["uid"] == new["metadata"]["uid"]
        assert not got["metadata"].get("deletionTimestamp")


async def test_writes_wait_out_an_unreachable_apiserver(api: InProcessAPI) -> None:
    from tests.agentenv import Relay

    relay = Relay("127.0.0.1", int(api.url.rsplit(":", 1)[1]))
    await relay.restore()
    try:
        async with api.client() as admin, node_client(api, "node-1", relay.url,
                                                       timeout=0.5) as node:
            made = await create_pod(admin, pod("p"))
            await relay.cut()
            pods = _Pods()
            async with writer_of(node, pods) as w:
                w.set_status(made, _status("Running", "True"))

                async def tried() -> bool:
                    return w.pending == 1 and bool(w._retry)

                await until(tried)
                await relay.restore()
                await asyncio.wait_for(w.flush(), 10)
            assert (await admin.get(R.PODS, "p", "default"))["status"]["phase"] == "Running"
    finally:
        await relay.close()
