"""The real kubectl's `rollout` against the Deployment and ReplicaSet controllers (running, in
process, over the in-process apiserver; pods are made ready by writing their status, as no
node agent runs): status, history, undo, pause/resume, restart and the pruned-revision error,
with kubectl's own messages."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from certs.kubeconfig import admin_kubeconfig
from control.api.clock import format_time
from control.api.errors import APIError
from control.client import resources as R
from control.controllers.deployment import DeploymentController
from control.controllers.podutil import is_pod_active, is_pod_ready
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI, serve_api
from tests.kube import kubectl_path

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(certs_dir_session: Any) -> Any:
    async with serve_api(certs_dir_session, progress_interval=0.01) as served:
        yield served


class _Kubectl:
    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.argv = [kubectl_path(), "--kubeconfig", str(kubeconfig), "--cache-dir",
                     str(cache), "--request-timeout=20s"]

    async def __call__(self, *args: str, ok: bool = True) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *self.argv, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        rc = proc.returncode or 0
        if ok and rc:
            raise AssertionError(f"kubectl {' '.join(args)}: rc {rc}\n{out.decode()}"
                                 f"{err.decode()}")
        return rc, out.decode(), err.decode()


async def _make_ready(env: Env) -> None:
    """The node agents' part: every pod that exists becomes Running and Ready."""
    while True:
        with contextlib.suppress(APIError, OSError, TimeoutError, RuntimeError):
            items, _ = await env.admin.list_all(R.PODS, "default")
            for pod in items:
                if is_pod_active(pod) and not is_pod_ready(pod):
                    p = copy.deepcopy(pod)
                    p["status"] = {"phase": "Running", "conditions": [{
                        "type": "Ready", "status": "True",
                        "lastTransitionTime": format_time(dt.datetime.now(dt.UTC))}]}
                    with contextlib.suppress(APIError):
                        await env.admin.update_status(R.PODS, p)
        await asyncio.sleep(0.05)


async def _dump(env: Env) -> str:
    """What the cluster looked like (for a failure's message)."""
    lines = []
    for res in (R.DEPLOYMENTS, R.REPLICASETS):
        items, _ = await env.admin.list_all(res, "default")
        for o in items:
            lines.append(f"{o['kind']} {o['metadata']['name']} gen "
                         f"{o['metadata'].get('generation')} spec.replicas "
                         f"{o['spec'].get('replicas')} status {o.get('status')}")
    pods, _ = await env.admin.list_all(R.PODS, "default")
    lines.append(f"pods ready: {[(p['metadata']['name'], is_pod_ready(p)) for p in pods]}")
    ctrl = env["deployment"]
    lines.append(f"deployment queue: ready {len(ctrl.queue)} delayed {ctrl.queue.delayed} "
                 f"processing {ctrl.queue.processing}")
    if isinstance(ctrl, DeploymentController):
        lines.append(f"unseen writes: {ctrl.written._records}")
    lines.append(f"store revision {env.api.store.machine.revision}; informers " + ", ".join(
        f"{inf.resource}@{inf.resource_version}" for inf in env.ctx.informers.informers))
    for metric in env.ctx.metrics.reconciles.collect():
        lines.append(str([(x.labels, x.value) for x in metric.samples]))
    return "\n".join(lines)


def _history(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[2:] if line.strip()]


async def test_kubectl_rollout_commands(api: InProcessAPI, tmp_path: Path) -> None:
    kubectl = _Kubectl(admin_kubeconfig(api.certs, tmp_path / "kubeconfig", server=api.url),
                       tmp_path / "cache")
    async with controller_env(api, "deployment", "replicaset") as env, env.running():
        readier = asyncio.create_task(_make_ready(env))
        try:
            await _scenario(env, kubectl)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{await _dump(env)}") from None
        finally:
            readier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readier


async def _scenario(env: Env, kubectl: _Kubectl) -> None:
    await kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
    _, out, _ = await kubectl("rollout", "status", "deploy/web", "--timeout=30s")
    assert out.strip().endswith('deployment "web" successfully rolled out')

    await kubectl("set", "image", "deploy/web", "nginx=nginx:2")
    await kubectl("rollout", "status", "deploy/web", "--timeout=30s")
    _, out, _ = await kubectl("rollout", "history", "deploy/web")
    assert out.splitlines()[0].strip() == "deployment.apps/web"
    assert _history(out) == ["1", "2"]

    _, out, _ = await kubectl("rollout", "undo", "deploy/web")
    assert out.strip() == "deployment.apps/web rolled back"
    await kubectl("rollout", "status", "deploy/web", "--timeout=30s")
    _, out, _ = await kubectl("rollout", "history", "deploy/web")
    assert _history(out) == ["2", "3"]
    _, out, _ = await kubectl("get", "deploy/web", "-o",
                              "jsonpath={.spec.template.spec.containers[0].image}")
    assert out == "nginx"

    await kubectl("rollout", "pause", "deploy/web")
    await kubectl("set", "image", "deploy/web", "nginx=nginx:3")
    _, out, _ = await kubectl("rollout", "status", "deploy/web", "--watch=false")
    assert "Waiting for deployment" in out or "successfully" in out
    rc, _, err = await kubectl("rollout", "restart", "deploy/web", ok=False)
    assert rc == 1 and "can't restart paused deployment (run rollout resume first)" \
        in err
    await kubectl("rollout", "resume", "deploy/web")
    await kubectl("rollout", "status", "deploy/web", "--timeout=30s")
    _, out, _ = await kubectl("rollout", "restart", "deploy/web")
    assert out.strip() == "deployment.apps/web restarted"
    await kubectl("rollout", "status", "deploy/web", "--timeout=30s")
    _, out, _ = await kubectl("rollout", "history", "deploy/web")
    assert _history(out) == ["2", "3", "4", "5"]

    await kubectl("patch", "deploy/web", "-p", '{"spec":{"revisionHistoryLimit":1}}')
    await kubectl("scale", "deploy/web", "--replicas=3")
    await kubectl("rollout", "status", "deploy/web", "--timeout=30s")

    async def pruned() -> bool:
        _, out, _ = await kubectl("rollout", "history", "deploy/web")
        return _history(out) == ["4", "5"]

    await env.until(pruned, timeout=20)
    rc, _, err = await kubectl("rollout", "undo", "deploy/web", "--to-revision=2",
                               ok=False)
    assert rc == 1
    assert err.strip() == "error: unable to find specified revision 2 in history"
    _, out, _ = await kubectl("get", "deploy/web", "-o", "jsonpath="
                              "{.status.readyReplicas}/{.status.updatedReplicas}")
    assert out == "3/3"
