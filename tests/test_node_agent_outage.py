"""The node agent when the control plane goes away and when the agent itself restarts: pods
keep running while the apiserver is unreachable, a pod deleted meanwhile is stopped and a
status that changed is posted once it is back; a new agent over the same directory re-adopts
the processes the old one started instead of starting them again (the real process runtime);
a pod whose ConfigMap is missing waits in ContainerCreating with a FailedMount event."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from control.api.clock import FakeClock, RealClock
from control.client import resources as R
from node.runtime.api import ContainerState, Runtime
from node.runtime.fake import FakeRuntime
from tests.agentenv import Relay, create_pod, phase, pod, root_ca, running_agent, until
from tests.inprocess import InProcessAPI
from tests.nodefakes import process_runtimes


async def test_pods_survive_an_unreachable_apiserver_and_reconcile_after(
        api: InProcessAPI, tmp_path: Path) -> None:
    relay = Relay("127.0.0.1", int(api.url.rsplit(":", 1)[1]))
    await relay.restore()
    clock = FakeClock()
    try:
        async with api.client() as admin, running_agent(api, tmp_path, clock=clock,
                                                       url=relay.url, client_timeout=1.0) as run:
            await root_ca(admin)
            await create_pod(admin, pod("ends", restartPolicy="Never"))
            await create_pod(admin, pod("deleted"))

            async def both_running() -> bool:
                return {await phase(admin, "ends"), await phase(admin, "deleted")} == {
                    "Running"}

            await until(both_running)
            rt = run.agent.runtime
            assert isinstance(rt, FakeRuntime)
            uids = {(await admin.get(R.PODS, n, "default"))["metadata"]["uid"]: n
                    for n in ("ends", "deleted")}
            await relay.cut()
            ends = next(c for c in rt.containers.values()
                        if uids.get(c.pod_uid) == "ends")
            rt.exit(ends.id, 3)  # a status that changes while nobody can hear
            await admin.delete(R.PODS, "deleted", "default", grace_period_seconds=0)
            for _ in range(20):  # time passes on the node; its pods keep running
                clock.advance(1)
                await asyncio.sleep(0.01)
            gone_uid = next(u for u, n in uids.items() if n == "deleted")
            assert await rt.pod_sandbox(gone_uid) is not None
            assert await phase(admin, "ends") == "Running"  # not heard yet

            await relay.restore()

            async def reconciled() -> bool:
                clock.advance(1)
                sandbox = await rt.pod_sandbox(gone_uid)
                return sandbox is None and await phase(admin, "ends") == "Failed"

            await until(reconciled, timeout=30)
            got = await admin.get(R.PODS, "ends", "default")
            term = got["status"]["containerStatuses"][0]["state"]["terminated"]
            assert term["exitCode"] == 3
    finally:
        await relay.close()


async def test_a_restarted_agent_readopts_its_processes(api: InProcessAPI,
                                                        tmp_path: Path) -> None:
    async with process_runtimes(tmp_path / "node-1" / "runtime") as make, \
            api.client() as admin:
        async def factory(_cidr: str) -> Runtime:
            return await make()

        await root_ca(admin)
        clock = RealClock()
        async with running_agent(api, tmp_path, clock=clock, runtime_factory=factory,
                                 keep_pods_on_exit=True) as first:
            made = await create_pod(admin, pod("sleeper"))
            uid = made["metadata"]["uid"]

            async def running() -> Any:
                got = await admin.get(R.PODS, "sleeper", "default")
                statuses = (got.get("status") or {}).get("containerStatuses") or []
                return statuses and "running" in statuses[0]["state"] and statuses[0]
            status = await until(running, timeout=30)
            rt = first.agent.runtime
            assert rt is not None
            (before,) = await rt.list_containers(uid)
            pid = _pid(tmp_path, before.id)
            await first.stop()
        os.kill(pid, 0)  # still running without any agent

        async with running_agent(api, tmp_path, clock=clock, runtime_factory=factory) as second:
            rt = second.agent.runtime
            assert rt is not None

            async def adopted() -> bool:
                w = second.agent.workers.find("default", "sleeper") if \
                    second.agent.workers else None
                return w is not None and w.last_status is not None

            await until(adopted, timeout=30)
            instances = await rt.list_containers(uid)
            assert [(c.id, c.state) for c in instances] == [(before.id, ContainerState.RUNNING)]
            got = await admin.get(R.PODS, "sleeper", "default")
            now = got["status"]["containerStatuses"][0]
            assert now["containerID"] == status["containerID"] and now["restartCount"] == 0
            assert _pid(tmp_path, before.id) == pid
            await admin.delete(R.PODS, "sleeper", "default", grace_period_seconds=1)

            async def gone() -> bool:
                return not await rt.list_pod_sandboxes()

            await until(gone, timeout=30)


def _pid(tmp: Path, container_id: str) -> int:
    import json

    (state,) = (tmp / "node-1" / "runtime").rglob(f"{container_id}/state.json")
    return int(json.loads(state.read_text())["pid"])


async def test_a_missing_configmap_keeps_the_pod_creating_until_it_exists(
        api: InProcessAPI, tmp_path: Path) -> None:
    clock = FakeClock()
    async with api.client() as admin, running_agent(api, tmp_path, clock=clock):
        await root_ca(admin)
        p = pod("cfg")
        p["spec"]["volumes"] = [{"name": "conf", "configMap": {"name": "settings"}}]
        p["spec"]["containers"][0]["volumeMounts"] = [{"name": "conf",
                                                       "mountPath": "/etc/conf"}]
        await create_pod(admin, p)

        async def creating() -> Any:
            got = await admin.get(R.PODS, "cfg", "default")
            statuses = (got.get("status") or {}).get("containerStatuses") or []
            return statuses and statuses[0]["state"].get("waiting", {}).get("reason")

        assert await until(creating) == "ContainerCreating"

        async def failed_mount() -> Any:
            evs = await admin.list(R.EVENTS, "default", field_selector="involvedObject.name=cfg")
            return next((e for e in evs["items"] if e["reason"] == "FailedMount"), None)

        ev = await until(failed_mount)
        assert ev["type"] == "Warning"
        assert ev["message"] == ('MountVolume.SetUp failed for volume "conf" : '
                                 'configmap "settings" not found')
        await admin.create(R.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "settings"},
                                          "data": {"a": "b"}}, "default")

        async def started() -> bool:
            clock.advance(1)
            return await phase(admin, "cfg") == "Running"

        await until(started)
