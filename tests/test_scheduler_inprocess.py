"""The scheduler against a real apiserver in process (tests/inprocess.py): binds through
pods/binding as system:kube-scheduler, explains failures on the pod and in events, retries
when a node changes, forgets refused binds, preempts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from control.api.errors import AlreadyExists, Conflict, Forbidden
from control.client import EventRecorder, InformerFactory
from control.client import resources as R
from control.scheduler.queue import QueuedPod
from control.scheduler.scheduler import Scheduler
from tests.inprocess import InProcessAPI

from .scheduler_objects import node, pod

Obj = dict[str, Any]


async def eventually(check: Callable[[], Coroutine[Any, Any, Any]], *,
                     timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s: last {got!r}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(api: InProcessAPI) -> AsyncIterator[Scheduler]:
    async with api.scheduler() as client:
        factory = InformerFactory(client)
        recorder = EventRecorder(client, component="default-scheduler")
        sched = Scheduler(client, factory, recorder=recorder, seed=1)
        factory.start()
        tasks = [asyncio.create_task(sched.run()), asyncio.create_task(recorder.run())]
        try:
            yield sched
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await factory.stop()


async def add_nodes(admin: Any, *nodes: Obj) -> None:
    for n in nodes:
        made = await admin.create(R.NODES, n)
        if not (made.get("status") or {}).get("allocatable"):
            made["status"] = n["status"]
            await admin.update_status(R.NODES, made)


def _new(p: Obj) -> Obj:
    p = dict(p)
    p["metadata"] = {k: v for k, v in p["metadata"].items() if k not in ("uid",)}
    p.pop("status", None)
    return p


async def create_pod(admin: Any, p: Obj) -> Obj:
    """Create a pod; right after start-up admission may not see the bootstrap service
    account yet (Forbidden), so retry that for a moment."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            made: Obj = await admin.create(R.PODS, _new(p), "default")
            return made
        except Forbidden:
            if asyncio.get_running_loop().time() > deadline:
                raise
            try:  # the controller-manager's job, which does not run in process
                await admin.create(R.SERVICEACCOUNTS, {
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default"}}, "default")
            except (Conflict, AlreadyExists):
                pass
            await asyncio.sleep(0.05)


async def node_of(admin: Any, name: str) -> str:
    got = await admin.get(R.PODS, name, "default")
    return str(got["spec"].get("nodeName") or "")


async def test_binds_pending_pods_across_nodes(api: InProcessAPI) -> None:
    async with api.client() as admin, running(api):
        await add_nodes(admin, node("a"), node("b"))
        for i in range(6):
            await create_pod(admin, pod(f"p{i}", cpu="500m"))

        async def placed() -> dict[str, str] | None:
            got = {f"p{i}": await node_of(admin, f"p{i}") for i in range(6)}
            return got if all(got.values()) else None

        where = await eventually(placed)
        assert sorted(where.values()).count("a") == 3  # least-allocated spreads evenly
        bound = await admin.get(R.PODS, "p0", "default")
        cond = {c["type"]: c for c in bound["status"]["conditions"]}
        assert cond["PodScheduled"]["status"] == "True"


async def test_unschedulable_explained_then_placed_when_node_labelled(api: InProcessAPI) -> None:
    async with api.client() as admin, running(api):
        await add_nodes(admin, node("a"), node("b"))
        await create_pod(admin, pod("sel", nodeSelector={"disk": "ssd"}))
        want = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."

        async def explained() -> Obj | None:
            got = await admin.get(R.PODS, "sel", "default")
            for c in (got.get("status") or {}).get("conditions") or ():
                if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                    return dict(c)
            return None

        cond = await eventually(explained)
        assert cond["status"] == "False" and cond["message"].startswith(want), cond

        async def event() -> list[Obj]:
            evs = (await admin.list(R.EVENTS, "default"))["items"]
            return [e for e in evs if e.get("reason") == "FailedScheduling"
                    and e["involvedObject"]["name"] == "sel"]

        assert (await eventually(event))[0]["message"].startswith(want)
        b = await admin.get(R.NODES, "b")
        b["metadata"]["labels"]["disk"] = "ssd"
        await admin.update(R.NODES, b)
        assert await eventually(lambda: node_of(admin, "sel"), timeout=10) == "b"


async def test_insufficient_cpu_and_cordon(api: InProcessAPI) -> None:
    async with api.client() as admin, running(api):
        await add_nodes(admin, node("a", cpu="1"), node("c", unschedulable=True))
        await create_pod(admin, pod("big", cpu="2"))

        async def message() -> str:
            got = await admin.get(R.PODS, "big", "default")
            return next((c.get("message", "") for c in got["status"].get("conditions") or ()
                         if c["type"] == "PodScheduled"), "")

        text = await eventually(message)
        assert text.startswith("0/2 nodes are available: 1 Insufficient cpu, "
                               "1 node(s) were unschedulable."), text


async def test_refused_bind_is_forgotten(api: InProcessAPI) -> None:
    async with api.client() as admin, running(api) as sched:
        await add_nodes(admin, node("a"), node("b"))
        made = await create_pod(admin, pod("raced"))
        await eventually(lambda: node_of(admin, "raced"))
        # replay a decision for a pod someone already bound: the bind is refused, forgotten
        info = sched.cache.pod_info({**made, "spec": {**made["spec"], "nodeName": ""}})
        qp = QueuedPod(info, 0.0)
        entry = sched.cache.placed(info.uid)
        assert entry is not None
        sched.cache.remove_pod(info.uid)
        sched.cache.assume(info, "a" if entry[1] == "b" else "b")
        with_bind = sched._bind(qp, "a" if entry[1] == "b" else "b")
        await sched._bind_slots.acquire()
        await with_bind
        assert sched.cache.placed(info.uid) is None
        with_conflict = admin.create(R.PODS, {"apiVersion": "v1", "kind": "Binding",
                                              "metadata": {"name": "raced"},
                                              "target": {"kind": "Node", "name": "a"}},
                                     "default", subresource="binding", name="raced")
        try:
            await with_conflict
            raise AssertionError("a bound pod was bound again")
        except Conflict:
            pass


def _classed(p: Obj, cls: str) -> Obj:
    p["spec"].pop("priority", None)
    p["spec"]["priorityClassName"] = cls
    return p


async def test_higher_priority_pod_preempts(api: InProcessAPI) -> None:
    async with api.client() as admin, running(api):
        for name, value in (("low", 1), ("high", 100)):
            await admin.create(R.PRIORITYCLASSES, {
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value})
        await add_nodes(admin, node("a", cpu="1"))
        for i in range(2):
            await create_pod(admin, _classed(pod(f"low{i}", cpu="500m",
                                                 terminationGracePeriodSeconds=0), "low"))
        await eventually(lambda: node_of(admin, "low1"))
        await create_pod(admin, _classed(pod("high", cpu="500m"), "high"))
        assert await eventually(lambda: node_of(admin, "high"), timeout=20) == "a"
        left = [p["metadata"]["name"] for p in (await admin.list(R.PODS, "default"))["items"]
                if p["metadata"]["name"].startswith("low")]
        assert len(left) == 1
