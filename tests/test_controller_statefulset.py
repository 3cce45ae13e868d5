"""The StatefulSet controller over a real apiserver in process: ordered creation and scale
down, Parallel, partitioned rolling updates, revisions and their history, and the
at-most-one pod per ordinal guarantee (no agents: pod status is written with the admin
client)."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import pytest

from control.api.clock import FakeClock, format_time
from control.api.errors import AlreadyExists
from control.client import resources as R
from control.controllers.history import HASH_LABEL, REVISION_LABEL, hash_revision
from control.controllers.statefulset import StatefulSetController
from control.controllers.statefulset_pods import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    count_status,
    new_pod,
    parent_and_ordinal,
)
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
KEY = "default/web"
TS = "2025-12-31T00:00:00Z"


def sts(replicas: int = 3, **spec: Any) -> Obj:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "serviceName": "websvc",
                     "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                     **spec}}


@pytest.mark.parametrize(("name", "want"), [
    ("web-0", ("web", 0)), ("my-web-12", ("my-web", 12)), ("web", ("", -1)),
    ("web-x", ("", -1)), ("web-", ("", -1))])
def test_parent_and_ordinal(name: str, want: tuple[str, int]) -> None:
    assert parent_and_ordinal(name) == want


def test_new_pod_identity_and_claims_as_empty_dirs() -> None:
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}}])
    s["metadata"]["uid"] = "u1"
    template = {**s["spec"]["template"], "spec": {"containers": [
        {"name": "c", "image": "nginx", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}}
    pod = new_pod(s, template, 2, "web-abc")
    assert pod["metadata"]["name"] == "web-2"
    assert pod["metadata"]["labels"] == {"app": "web", POD_NAME_LABEL: "web-2",
                                         POD_INDEX_LABEL: "2", REVISION_LABEL: "web-abc"}
    assert pod["spec"]["hostname"] == "web-2" and pod["spec"]["subdomain"] == "websvc"
    assert pod["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert "volumes" not in template["spec"]  # the template is not changed


def test_status_counts_created_ready_and_revisions() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def pod(rev: str, phase: str = "Running", ready: bool = True, deleting: bool = False) -> Obj:
        meta: Obj = {"labels": {REVISION_LABEL: rev}}
        if deleting:
            meta["deletionTimestamp"] = TS
        return {"metadata": meta, "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False",
             "lastTransitionTime": TS}]}}

    pods = [pod("a"), pod("b"), pod("b", ready=False), pod("a", deleting=True),
            {"metadata": {"labels": {REVISION_LABEL: "b"}}}]  # planned, not created
    assert count_status(pods, 0, "a", "b", now) == {
        "replicas": 4, "readyReplicas": 3, "availableReplicas": 3, "currentReplicas": 1,
        "updatedReplicas": 2}


# --- in process ------------------------------------------------------------------------------------

async def _pods(env: Env) -> dict[str, Obj]:
    items, _ = await env.admin.list_all(R.PODS, "default")
    return {p["metadata"]["name"]: p for p in items}


async def _live(env: Env) -> list[str]:
    return sorted(n for n, p in (await _pods(env)).items()
                  if not p["metadata"].get("deletionTimestamp"))


async def _ready(env: Env, *names: str) -> None:
    for name in names:
        pod = await env.admin.get(R.PODS, name, "default")
        pod["status"] = {**pod.get("status", {}), "phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": TS}]}
        await env.admin.update_status(R.PODS, pod)


async def _status(env: Env) -> Obj:
    return (await env.admin.get(R.STATEFULSETS, "web", "default")).get("status") or {}


async def _events(env: Env) -> list[tuple[str, str]]:
    items, _ = await env.admin.list_all(R.EVENTS, "default")
    return [(e["reason"], e["message"]) for e in items]


async def test_ordered_ready_creates_one_at_a_time_and_scales_down_from_the_top(
        api: InProcessAPI) -> None:
    async with controller_env(api, "statefulset") as env:
        made = await env.admin.create(R.STATEFULSETS, sts(), "default")
        await env.reconcile("statefulset", KEY)
        assert await _live(env) == ["web-0"]
        await env.reconcile("statefulset", KEY)
        assert await _live(env) == ["web-0"]  # waits for web-0 to be Running and Ready
        pod = (await _pods(env))["web-0"]
        assert pod["spec"]["hostname"] == "web-0" and pod["spec"]["subdomain"] == "websvc"
        assert pod["metadata"]["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
        assert ("SuccessfulCreate", "create Pod web-0 in StatefulSet web successful") in \
            await _events(env)
        for i in (1, 2):
            await _ready(env, f"web-{i - 1}")
            await env.reconcile("statefulset", KEY)
            assert await _live(env) == [f"web-{j}" for j in range(i + 1)]
        await _ready(env, "web-2")
        await env.reconcile("statefulset", KEY)
        st = await _status(env)
        assert st["replicas"] == st["readyReplicas"] == st["availableReplicas"] == 3
        assert st["currentRevision"] == st["updateRevision"] == \
            pod["metadata"]["labels"][REVISION_LABEL]
        assert st["observedGeneration"] == 1 and st["collisionCount"] == 0
        await env.admin.patch(R.STATEFULSETS, "web", {"spec": {"replicas": 1}}, "default")
        await env.reconcile("statefulset", KEY)
        assert await _live(env) == ["web-0", "web-1"]
        await env.reconcile("statefulset", KEY)
        assert await _live(env) == ["web-0"]
        assert ("SuccessfulDelete", "delete Pod web-2 in StatefulSet web successful") in \
            await _events(env)


async def test_parallel_creates_all_and_scale_down_deletes_all_extra(
        api: InProcessAPI) -> None:
    async with controller_env(api, "statefulset") as env:
        await env.admin.create(R.STATEFULSETS, sts(4, podManagementPolicy="Parallel"),
                               "default")
        await env.reconcile("statefulset", KEY)
        assert await _live(env) == ["web-0", "web-1", "web-2", "web-3"]
        await env.admin.patch(R.STATEFULSETS, "web", {"spec": {"replicas": 1}}, "default")
        await env.reconcile("statefulset", KEY)
        assert await _live(env) == ["web-0"]


async def test_rolling_update_with_partition_goes_from_the_top(api: InProcessAPI) -> None:
    async with controller_env(api, "statefulset") as env:
        await env.admin.create(R.STATEFULSETS, sts(3, podManagementPolicy="Parallel"),
                               "default")
        await env.reconcile("statefulset", KEY)
        await _ready(env, "web-0", "web-1", "web-2")
        await env.reconcile("statefulset", KEY)
        old_rev = (await _status(env))["currentRevision"]
        await env.admin.patch(R.STATEFULSETS, "web", {"spec": {
            "updateStrategy": {"rollingUpdate": {"partition": 1}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}},
            "default")
        order = []
        for _ in range(8):
            before = {n: p["metadata"]["uid"] for n, p in (await _pods(env)).items()}
            await env.reconcile("statefulset", KEY)
            after = await _pods(env)
            order += [n for n, uid in before.items() if n not in after or
                      after[n]["metadata"]["uid"] != uid]
            fresh = [n for n, p in after.items() if n not in before or
                     p["metadata"]["uid"] != before[n]]
            await _ready(env, *fresh)
        assert order == ["web-2", "web-1"]  # highest first, web-0 is below the partition
        pods = await _pods(env)
        st = await _status(env)
        new_rev = st["updateRevision"]
        assert new_rev != old_rev and st["currentRevision"] == old_rev
        assert [pods[f"web-{i}"]["metadata"]["labels"][REVISION_LABEL] for i in range(3)] == \
            [old_rev, new_rev, new_rev]
        assert pods["web-1"]["spec"]["containers"][0]["image"] == "nginx:2"
        assert st["updatedReplicas"] == 2 and st["currentReplicas"] == 1
        # partition 0 finishes the rollout; currentRevision then moves on
        await env.admin.patch(R.STATEFULSETS, "web", {"spec": {"updateStrategy": {
            "rollingUpdate": {"partition": 0}}}}, "default")
        await env.reconcile("statefulset", KEY)
        await env.reconcile("statefulset", KEY)
        await _ready(env, "web-0")
        await env.reconcile("statefulset", KEY)
        st = await _status(env)
        assert st["currentRevision"] == new_rev and st["updatedReplicas"] == 3


@pytest.mark.parametrize("policy", ["OrderedReady", "Parallel"])
async def test_a_deleted_pod_comes_back_only_after_the_old_one_is_gone(
        api: InProcessAPI, policy: str) -> None:
    async with controller_env(api, "statefulset") as env:
        await env.admin.create(R.STATEFULSETS, sts(1, podManagementPolicy=policy), "default")
        await env.reconcile("statefulset", KEY)
        old = await env.admin.patch(R.PODS, "web-0", {"metadata": {"finalizers": [
            "example.com/hold"]}}, "default")
        await _ready(env, "web-0")
        await env.admin.delete(R.PODS, "web-0", "default")
        for _ in range(3):
            await env.reconcile("statefulset", KEY)
            [only] = (await _pods(env)).values()
            assert only["metadata"]["uid"] == old["metadata"]["uid"]
            assert only["metadata"]["deletionTimestamp"]
        # a sync from a cache that still shows no pod gets AlreadyExists, not a second pod
        ctrl = env["statefulset"]
        assert isinstance(ctrl, StatefulSetController)
        s = ctrl.sets.cache.get(KEY)
        assert s is not None
        current = await env.admin.get(R.CONTROLLERREVISIONS,
                                      (await _status(env))["updateRevision"], "default")
        _, error = await ctrl.control.update(s, current, current, 0, [])
        assert isinstance(error, AlreadyExists)
        assert len(await _pods(env)) == 1
        await env.admin.patch(R.PODS, "web-0", {"metadata": {"finalizers": None}}, "default")
        await env.reconcile("statefulset", KEY)
        [again] = (await _pods(env)).values()
        assert again["metadata"]["uid"] != old["metadata"]["uid"]
        assert not again["metadata"].get("deletionTimestamp")


async def test_failed_pod_is_deleted_then_recreated(api: InProcessAPI) -> None:
    async with controller_env(api, "statefulset") as env, env.running():
        await env.admin.create(R.STATEFULSETS, sts(1), "default")
        first = await env.until(lambda: _pod(env, "web-0"))
        first["status"] = {"phase": "Failed"}
        await env.admin.update_status(R.PODS, first)
        second = await env.until(lambda: _pod(env, "web-0", not_uid=first["metadata"]["uid"]))
        assert second["metadata"]["name"] == "web-0"


async def _pod(env: Env, name: str, not_uid: str = "") -> Obj | None:
    pod = (await _pods(env)).get(name)
    if pod is None or pod["metadata"]["uid"] == not_uid:
        return None
    return pod


async def test_revisions_history_limit_and_rollback(api: InProcessAPI) -> None:
    async with controller_env(api, "statefulset") as env:
        await env.admin.create(R.STATEFULSETS, sts(0, revisionHistoryLimit=1), "default")
        await env.reconcile("statefulset", KEY)
        revs, _ = await env.admin.list_all(R.CONTROLLERREVISIONS, "default")
        [first] = revs
        data = first["data"]
        assert data["spec"]["template"]["$patch"] == "replace"
        h = hash_revision(data, 0)
        assert first["metadata"]["name"] == f"web-{h}"
        assert first["metadata"]["labels"] == {"app": "web", HASH_LABEL: h}
        assert first["revision"] == 1 and first["metadata"]["ownerReferences"][0]["controller"]
        for image in ("nginx:2", "nginx:3", "nginx:4"):
            await env.admin.patch(R.STATEFULSETS, "web", {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": image}]}}}}, "default")
            await env.reconcile("statefulset", KEY)
        await env.reconcile("statefulset", KEY)  # history is trimmed from what a sync read
        revs, _ = await env.admin.list_all(R.CONTROLLERREVISIONS, "default")
        assert sorted(r["revision"] for r in revs) == [3, 4]
        st = await _status(env)
        assert st["currentRevision"] == st["updateRevision"]
        # rollback (what kubectl rollout undo sends): the old revision is renumbered
        old = next(r for r in revs if r["revision"] == 3)
        await env.admin.patch(R.STATEFULSETS, "web", old["data"], "default",
                              patch_type="strategic")
        await env.reconcile("statefulset", KEY)
        revs, _ = await env.admin.list_all(R.CONTROLLERREVISIONS, "default")
        assert {r["metadata"]["name"]: r["revision"] for r in revs}[old["metadata"]["name"]] == 5
        assert (await _status(env))["updateRevision"] == old["metadata"]["name"]


async def test_volume_claim_templates_become_empty_dirs_with_a_warning(
        api: InProcessAPI) -> None:
    async with controller_env(api, "statefulset") as env:
        s = sts(1, volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
        s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
            {"name": "data", "mountPath": "/data"}]
        await env.admin.create(R.STATEFULSETS, s, "default")
        await env.reconcile("statefulset", KEY)
        pod = (await _pods(env))["web-0"]
        assert {"name": "data", "emptyDir": {}} in pod["spec"]["volumes"]
        reasons = dict(await _events(env))
        assert "data-web-0" in reasons["ClaimsNotSupported"]


async def test_orderedready_end_to_end_with_workers(api: InProcessAPI) -> None:
    async with controller_env(api, "statefulset") as env, env.running():
        await env.admin.create(R.STATEFULSETS, sts(3), "default")
        for i in range(3):
            await env.until(functools.partial(_pod, env, f"web-{i}"))
            assert f"web-{i + 1}" not in await _live(env)
            await _ready(env, f"web-{i}")
        st = await env.until(lambda: _ready_status(env, 3))
        assert st["updateRevision"] == st["currentRevision"]


async def _ready_status(env: Env, n: int) -> Obj | None:
    st = await _status(env)
    return st if st.get("readyReplicas") == n else None


async def test_orphans_named_after_an_ordinal_are_adopted_others_are_not(
        api: InProcessAPI) -> None:
    async with controller_env(api, "statefulset") as env:
        for name in ("web-0", "stray"):
            await env.admin.create(R.PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": name, "labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "c", "image": "nginx"}]}}, "default")
        # OnDelete: a rolling update would replace the adoptee (it has no revision label)
        made = await env.admin.create(R.STATEFULSETS, sts(1, updateStrategy={
            "type": "OnDelete"}), "default")
        await env.reconcile("statefulset", KEY)
        pods = await _pods(env)
        assert set(pods) == {"web-0", "stray"}
        assert pods["web-0"]["metadata"]["ownerReferences"][0]["uid"] == \
            made["metadata"]["uid"]
        assert not pods["stray"]["metadata"].get("ownerReferences")
        await _ready(env, "web-0")  # OrderedReady touches a pod only once it is ready
        await env.reconcile("statefulset", KEY)  # identity labels restored on the adoptee
        labels = (await _pods(env))["web-0"]["metadata"]["labels"]
        assert labels[POD_NAME_LABEL] == "web-0" and labels[POD_INDEX_LABEL] == "0"


async def test_min_ready_seconds_holds_the_next_ordinal_on_the_injected_clock(
        api: InProcessAPI) -> None:
    clock = FakeClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    async with controller_env(api, "statefulset", clock=clock) as env:
        await env.admin.create(R.STATEFULSETS, sts(2, minReadySeconds=30), "default")
        await env.reconcile("statefulset", KEY)
        pod = await env.admin.get(R.PODS, "web-0", "default")
        pod["status"] = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": format_time(clock.now())}]}
        await env.admin.update_status(R.PODS, pod)
        again = await env.reconcile("statefulset", KEY)
        assert again == 30 and await _live(env) == ["web-0"]
        st = await _status(env)
        assert st["readyReplicas"] == 1 and st["availableReplicas"] == 0
        clock.advance(31)
        await env.reconcile("statefulset", KEY)
        assert await _live(env) == ["web-0", "web-1"]
        assert (await _status(env))["availableReplicas"] == 1
