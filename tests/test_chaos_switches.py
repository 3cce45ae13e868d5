"""The product-side switches of the chaos cluster: sabotage (refused without
KETCH_ALLOW_SABOTAGE=1; each breaks exactly what it says) and the write log that attributes a
leader's writes to its lease term."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from control.api import sabotage
from control.api.clock import FakeClock
from control.client import LeaderElector, LeaseConfig
from control.client import resources as R
from control.client.writelog import WriteLog
from control.controllers import expectations
from tests.inprocess import InProcessAPI


@pytest.mark.parametrize("component, kind", [
    pytest.param("controller-manager", "skip-expectations", id="skip-expectations"),
    pytest.param("controller-manager", "keep-leading", id="cm-keep-leading"),
    pytest.param("scheduler", "keep-leading", id="scheduler-keep-leading"),
    pytest.param("node", "keep-replaced-pods", id="keep-replaced-pods"),
])
def test_sabotage_needs_explicit_permission(monkeypatch: pytest.MonkeyPatch, component: str,
                                            kind: str) -> None:
    monkeypatch.delenv(sabotage.ALLOW_ENV, raising=False)
    with pytest.raises(ValueError, match="KETCH_ALLOW_SABOTAGE=1"):
        sabotage.permit(component, kind)
    monkeypatch.setenv(sabotage.ALLOW_ENV, "1")
    assert sabotage.permit(component, kind) == kind
    assert sabotage.permit(component, None) is None
    with pytest.raises(ValueError, match="unknown sabotage"):
        sabotage.permit("node", "keep-leading")


@pytest.mark.parametrize("module, argv", [
    pytest.param("control.controllers", ["--kubeconfig", "x", "--sabotage", "keep-leading"],
                 id="controller-manager"),
    pytest.param("control.scheduler", ["--kubeconfig", "x", "--sabotage", "keep-leading"],
                 id="scheduler"),
    pytest.param("node", ["--kubeconfig", "x", "--name", "n", "--dir", "d",
                          "--sabotage", "keep-replaced-pods"], id="node"),
])
async def test_a_component_refuses_to_start_sabotaged_without_permission(
        monkeypatch: pytest.MonkeyPatch, module: str, argv: list[str]) -> None:
    import sys

    monkeypatch.delenv(sabotage.ALLOW_ENV, raising=False)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, out.decode()
    assert b"KETCH_ALLOW_SABOTAGE=1" in out


def test_skip_expectations_acts_on_outstanding_creations(monkeypatch: pytest.MonkeyPatch) -> None:
    e = expectations.Expectations(FakeClock())
    e.expect("ns/rs", adds=3)
    assert not e.satisfied("ns/rs")
    monkeypatch.setattr(expectations, "SKIP_FOR_SABOTAGE", True)
    assert e.satisfied("ns/rs")


def _config(identity: str) -> LeaseConfig:
    return LeaseConfig("kube-system", "test-lock", identity, lease_duration=8.0,
                       renew_deadline=5.0, retry_period=1.0)


@pytest.mark.parametrize("sabotaged", [False, True], ids=["steps-down", "keep-leading"])
async def test_a_leader_that_cannot_renew(api: InProcessAPI, sabotaged: bool) -> None:
    """Someone else takes the Lease; the leader can no longer renew.  It steps down after
    its renew deadline — unless sabotaged, when it goes on leading and writing."""
    clock = FakeClock()
    async with api.client(clock=clock) as c, api.client() as admin:
        me = LeaderElector(c, _config("me"), clock=clock)
        me.keep_leading_for_sabotage = sabotaged
        c.fence = me.is_leading
        working = asyncio.Event()
        cancelled = asyncio.Event()

        async def lead() -> None:
            working.set()
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.set()

        task = asyncio.create_task(me.run(lead))
        await asyncio.wait_for(working.wait(), 5)
        lease = await admin.get(R.LEASES, "test-lock", "kube-system")
        lease["spec"]["holderIdentity"] = "thief"
        await admin.update(R.LEASES, lease)
        for _ in range(13):  # 6.5 s of its own time: past its renew deadline, not the lease
            clock.advance(0.5)
            await asyncio.sleep(0.02)
        assert me.is_leading() is sabotaged
        assert cancelled.is_set() is not sabotaged
        if sabotaged:
            await c.create(R.CONFIGMAPS, {"metadata": {"name": "zombie"}}, "default")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_write_log_attributes_writes_to_the_lease_term(
        api: InProcessAPI, tmp_path: Path) -> None:
    path = tmp_path / "writes.jsonl"
    log = WriteLog(str(path), "me")
    async with api.client(on_request=log) as c:
        elector = LeaderElector(c, _config("me"))
        log.follow(elector)
        c.fence = elector.is_leading
        leading = asyncio.Event()

        async def lead() -> None:
            leading.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(elector.run(lead))
        await asyncio.wait_for(leading.wait(), 5)
        await c.create(R.CONFIGMAPS, {"metadata": {"name": "mine"}}, "default")
        await c.get(R.CONFIGMAPS, "mine", "default")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    log.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert all(x["method"] != "GET" for x in lines)
    mine = [x for x in lines if x["path"] == "configmaps"]
    assert len(mine) == 1 and mine[0]["code"] == 201
    assert mine[0]["identity"] == "me" and mine[0]["term"] == elector.transitions
    assert mine[0]["invoke"] <= mine[0]["complete"]
    assert any(x["path"] == "leases.coordination.k8s.io" for x in lines)  # its own lease
