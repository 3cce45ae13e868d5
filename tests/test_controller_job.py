"""The Job controller over a real apiserver in process: pods made and counted through the
tracking finalizer, pod phases driven by writing pod status as admin (no node agents)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from control.api.clock import FakeClock
from control.client import resources as R
from control.controllers.jobindexes import (
    duplicated_index_pods,
    first_pending,
    format_intervals,
    parse_intervals,
    with_indexes,
)
from control.controllers.jobutil import TRACKING_FINALIZER, Backoff
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
NS = "default"


def job(name: str = "pi", **spec: Any) -> Obj:
    template = {"spec": {"restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "busybox",
                                         "command": ["true"]}]}}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": template, **spec}}


async def job_pods(env: Env, name: str = "pi", *, live: bool = True) -> list[Obj]:
    items, _ = await env.admin.list_all(R.PODS, NS,
                                        label_selector=f"batch.kubernetes.io/job-name={name}")
    if live:
        items = [p for p in items if not p["metadata"].get("deletionTimestamp")
                 and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
    return sorted(items, key=lambda p: p["metadata"]["name"])


async def finish(env: Env, pod: Obj, phase: str = "Succeeded",
                 at: dt.datetime | None = None) -> None:
    """Write a terminal phase as a node agent would (containers terminated at ``at``)."""
    fresh = await env.admin.get(R.PODS, pod["metadata"]["name"], NS)
    when = (at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code = 0 if phase == "Succeeded" else 1
    fresh["status"] = {"phase": phase, "containerStatuses": [{
        "name": "c", "ready": False, "restartCount": 0, "image": "busybox", "imageID": "",
        "state": {"terminated": {"exitCode": code, "finishedAt": when, "startedAt": when}}}]}
    await env.admin.update_status(R.PODS, fresh)


async def status(env: Env, name: str = "pi") -> Obj:
    got: Obj = (await env.admin.get(R.JOBS, name, NS)).get("status") or {}
    return got


async def sync(env: Env, name: str = "pi") -> float | None:
    return await env.reconcile("job", f"{NS}/{name}")


def conditions(st: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in st.get("conditions") or ()}


async def reasons(env: Env) -> list[str]:
    events, _ = await env.admin.list_all(R.EVENTS, NS)
    return [e["reason"] for e in events]


# --- pure helpers -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "completions", "want"), [
    pytest.param("", 5, [], id="empty"),
    pytest.param("1,3-5", 10, [(1, 1), (3, 5)], id="runs"),
    pytest.param("0,1,2", 10, [(0, 2)], id="adjacent-merged"),
    pytest.param("2-9", 5, [(2, 4)], id="clipped-to-completions"),
    pytest.param("x,3", 5, [(3, 3)], id="corrupt-term-skipped"),
])
def test_parse_intervals(text: str, completions: int, want: list[tuple[int, int]]) -> None:
    assert parse_intervals(text, completions) == want


@pytest.mark.parametrize(("indexes", "want"), [
    pytest.param([1, 3, 4, 5], "1,3-5", id="run"),
    pytest.param([0, 1], "0,1", id="pair-written-as-two"),
    pytest.param([0, 1, 2, 7], "0-2,7", id="mixed"),
])
def test_format_intervals(indexes: list[int], want: str) -> None:
    assert format_intervals(with_indexes([], indexes)) == want


def test_first_pending_skips_taken_indexes() -> None:
    assert first_pending(3, 6, [(0, 1), (3, 3)]) == [2, 4, 5]
    assert first_pending(2, 3, [(0, 2)]) == []


def test_duplicated_indexes_keep_one_pod_each() -> None:
    def pod(name: str, ix: str | None, phase: str = "Pending") -> Obj:
        ann = {"batch.kubernetes.io/job-completion-index": ix} if ix is not None else {}
        return {"metadata": {"name": name, "annotations": ann,
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {}, "status": {"phase": phase}}
    pods = [pod("a", "0"), pod("b", "0", "Running"), pod("c", None), pod("d", "7"),
            pod("e", "1")]
    remove, keep = duplicated_index_pods(pods, 5)
    assert {p["metadata"]["name"] for p in remove} == {"a", "c", "d"}
    assert {p["metadata"]["name"] for p in keep} == {"b", "e"}


def test_backoff_doubles_from_ten_seconds_and_is_capped() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert Backoff().remaining(t0) == 0
    assert Backoff(1, t0).remaining(t0) == 10
    assert Backoff(3, t0).remaining(t0 + dt.timedelta(seconds=15)) == 25
    assert Backoff(20, t0).remaining(t0) == 600


# --- the controller -----------------------------------------------------------------------

async def test_completions_and_parallelism(api: InProcessAPI) -> None:
    async with controller_env(api, "job") as env:
        made = await env.admin.create(R.JOBS, job(completions=3, parallelism=2), NS)
        await sync(env)
        pods = await job_pods(env)
        assert len(pods) == 2
        meta = pods[0]["metadata"]
        assert TRACKING_FINALIZER in meta["finalizers"]
        uid = made["metadata"]["uid"]
        assert meta["labels"]["batch.kubernetes.io/controller-uid"] == uid
        assert meta["labels"]["controller-uid"] == uid
        assert meta["labels"]["job-name"] == "pi"
        assert meta["ownerReferences"][0]["kind"] == "Job"
        st = await status(env)
        assert st["active"] == 2 and st["ready"] == 0 and st.get("startTime")

        await finish(env, pods[0])
        await sync(env)
        st = await status(env)
        assert st["succeeded"] == 1 and st["active"] == 2  # one replacement for 2 left
        counted = await env.admin.get(R.PODS, pods[0]["metadata"]["name"], NS)
        assert TRACKING_FINALIZER not in (counted["metadata"].get("finalizers") or [])
        assert st["uncountedTerminatedPods"] == {}

        for p in await job_pods(env):
            await finish(env, p)
        await sync(env)
        st = await status(env)
        assert st["succeeded"] == 3 and st["active"] == 0
        cond = conditions(st)
        assert cond["Complete"]["status"] == "True"
        assert cond["SuccessCriteriaMet"]["reason"] == "CompletionsReached"
        assert st["completionTime"]
        assert await job_pods(env) == []
        assert "Completed" in await reasons(env)


async def test_indexed_completion(api: InProcessAPI) -> None:
    async with controller_env(api, "job") as env:
        await env.admin.create(R.JOBS, job(completions=3, parallelism=2,
                                           completionMode="Indexed"), NS)
        await sync(env)
        pods = await job_pods(env)
        by_ix = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
                 for p in pods}
        assert sorted(by_ix) == ["0", "1"]
        one = by_ix["1"]
        assert one["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1"
        assert one["spec"]["hostname"] == "pi-1"
        assert one["metadata"]["name"].startswith("pi-1-")
        [env_var] = one["spec"]["containers"][0]["env"]
        assert env_var["name"] == "JOB_COMPLETION_INDEX"
        assert env_var["valueFrom"]["fieldRef"]["fieldPath"] == \
            "metadata.labels['batch.kubernetes.io/job-completion-index']"

        await finish(env, one)
        await sync(env)
        st = await status(env)
        assert st["completedIndexes"] == "1" and st["succeeded"] == 1
        idx = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                     for p in await job_pods(env))
        assert idx == ["0", "2"]

        for p in await job_pods(env):
            await finish(env, p)
        await sync(env)
        st = await status(env)
        assert st["completedIndexes"] == "0-2" and st["succeeded"] == 3
        assert conditions(st)["Complete"]["status"] == "True"


async def test_backoff_limit_with_pod_recreation_backoff(api: InProcessAPI) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    async with controller_env(api, "job", clock=clock) as env:
        await env.admin.create(R.JOBS, job(backoffLimit=2), NS)
        await sync(env)
        for failures, delay in ((1, 10), (2, 20)):
            [pod] = await job_pods(env)
            await finish(env, pod, "Failed", at=clock.now())
            again = await sync(env)
            assert (await status(env))["failed"] == failures
            assert await job_pods(env) == []  # held back
            assert again == pytest.approx(delay, abs=1)
            clock.advance(delay - 1)
            await sync(env)
            assert await job_pods(env) == []
            clock.advance(1)
            await sync(env)
        [pod] = await job_pods(env)
        await finish(env, pod, "Failed", at=clock.now())
        await sync(env)
        st = await status(env)
        assert st["failed"] == 3 and st["active"] == 0
        cond = conditions(st)
        assert cond["FailureTarget"]["reason"] == "BackoffLimitExceeded"
        assert cond["Failed"]["reason"] == "BackoffLimitExceeded"
        assert cond["Failed"]["message"] == "Job has reached the specified backoff limit"
        assert "completionTime" not in st
        assert "BackoffLimitExceeded" in await reasons(env)


async def test_active_deadline_fails_the_job_and_deletes_its_pods(api: InProcessAPI) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    async with controller_env(api, "job", clock=clock) as env:
        await env.admin.create(R.JOBS, job(activeDeadlineSeconds=30, parallelism=2,
                                           completions=4), NS)
        again = await sync(env)
        assert again == pytest.approx(30, abs=1)
        assert len(await job_pods(env)) == 2
        clock.advance(31)
        await sync(env)
        st = await status(env)
        assert conditions(st)["FailureTarget"]["reason"] == "DeadlineExceeded"
        assert "Failed" not in conditions(st)  # pods were still terminating
        await sync(env)
        st = await status(env)
        assert conditions(st)["Failed"]["reason"] == "DeadlineExceeded"
        assert st["failed"] == 2 and st["active"] == 0 and st["terminating"] == 0
        assert await job_pods(env, live=False) == []
        assert "DeadlineExceeded" in await reasons(env)


async def test_suspend_and_resume(api: InProcessAPI) -> None:
    async with controller_env(api, "job") as env:
        await env.admin.create(R.JOBS, job(suspend=True, parallelism=2, completions=2), NS)
        await sync(env)
        st = await status(env)
        assert await job_pods(env) == [] and "startTime" not in st
        assert conditions(st)["Suspended"]["status"] == "True"
        assert conditions(st)["Suspended"]["reason"] == "JobSuspended"

        await env.admin.patch(R.JOBS, "pi", {"spec": {"suspend": False}}, NS)
        await sync(env)
        st = await status(env)
        assert len(await job_pods(env)) == 2 and st["startTime"]
        assert conditions(st)["Suspended"]["status"] == "False"
        assert conditions(st)["Suspended"]["reason"] == "JobResumed"

        await env.admin.patch(R.JOBS, "pi", {"spec": {"suspend": True}}, NS)
        await sync(env)
        st = await status(env)
        assert await job_pods(env, live=False) == []  # finalizer removed, then deleted
        assert st["active"] == 0 and st.get("failed", 0) == 0
        assert conditions(st)["Suspended"]["status"] == "True"
        assert {"Suspended", "Resumed", "SuccessfulDelete"} <= set(await reasons(env))


async def test_a_pod_deleted_before_it_was_counted_is_counted(api: InProcessAPI) -> None:
    async with controller_env(api, "job") as env:
        await env.admin.create(R.JOBS, job(parallelism=2, completions=2), NS)
        await sync(env)
        victim, _ = await job_pods(env)
        # a user, the garbage collector or podgc deletes it: the finalizer holds it
        await env.admin.delete(R.PODS, victim["metadata"]["name"], NS)
        held = await env.admin.get(R.PODS, victim["metadata"]["name"], NS)
        assert held["metadata"]["deletionTimestamp"]
        await sync(env)
        st = await status(env)
        assert st["failed"] == 1 and st["uncountedTerminatedPods"] == {}
        names = {p["metadata"]["name"] for p in await job_pods(env, live=False)}
        assert victim["metadata"]["name"] not in names  # counted, then let go


async def test_orphaned_tracking_finalizer_is_removed(api: InProcessAPI) -> None:
    async with controller_env(api, "job") as env:
        stray = {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "stray", "finalizers": [TRACKING_FINALIZER]},
                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        await env.admin.create(R.PODS, stray, NS)
        await env.reconcile("job", f"pod:{NS}/stray")
        got = await env.admin.get(R.PODS, "stray", NS)
        assert not got["metadata"].get("finalizers")


async def test_runs_to_completion_with_workers(api: InProcessAPI) -> None:
    async with controller_env(api, "job") as env, env.running():
        await env.admin.create(R.JOBS, job(completions=2, parallelism=2), NS)
        pods = await env.until(lambda: _n_pods(env, 2))
        for p in pods:
            await finish(env, p)
        done = await env.until(lambda: _complete(env))
        assert done["succeeded"] == 2


async def _n_pods(env: Env, n: int) -> list[Obj] | None:
    got = await job_pods(env)
    return got if len(got) == n else None


async def _complete(env: Env) -> Obj | None:
    st = await status(env)
    return st if conditions(st).get("Complete", {}).get("status") == "True" else None


# --- ttl-after-finished ---------------------------------------------------------------------

async def test_ttl_after_finished_deletes_the_job_in_the_foreground(api: InProcessAPI) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    async with controller_env(api, "ttl-after-finished", clock=clock) as env:
        made = await env.admin.create(R.JOBS, job(ttlSecondsAfterFinished=100), NS)
        kept = await env.admin.create(R.JOBS, job("kept"), NS)
        stamp = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        for obj in (made, kept):
            obj["status"] = {"startTime": stamp, "completionTime": stamp, "succeeded": 1,
                             "conditions": [{"type": "Complete", "status": "True",
                                             "lastTransitionTime": stamp}]}
            await env.admin.update_status(R.JOBS, obj)
        assert await env.reconcile("ttl-after-finished", f"{NS}/kept") is None
        clock.advance(40)
        assert await env.reconcile("ttl-after-finished", f"{NS}/pi") == pytest.approx(60)
        assert not (await env.admin.get(R.JOBS, "pi", NS))["metadata"].get(
            "deletionTimestamp")
        clock.advance(60)
        assert await env.reconcile("ttl-after-finished", f"{NS}/pi") is None
        gone = await env.admin.get(R.JOBS, "pi", NS)  # held for the garbage collector
        assert gone["metadata"]["deletionTimestamp"]
        assert "foregroundDeletion" in gone["metadata"]["finalizers"]
        assert not (await env.admin.get(R.JOBS, "kept", NS))["metadata"].get(
            "deletionTimestamp")


async def test_ttl_uses_the_live_ttl_not_a_stale_cache(api: InProcessAPI) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    async with controller_env(api, "ttl-after-finished", clock=clock) as env:
        made = await env.admin.create(R.JOBS, job(ttlSecondsAfterFinished=0), NS)
        stamp = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        made["status"] = {"startTime": stamp, "conditions": [
            {"type": "Failed", "status": "True", "lastTransitionTime": stamp,
             "reason": "BackoffLimitExceeded"}]}
        await env.admin.update_status(R.JOBS, made)
        await env.settle()
        ctl = env["ttl-after-finished"]
        live = await env.admin.get(R.JOBS, "pi", NS)
        live["spec"]["ttlSecondsAfterFinished"] = 3600
        await env.admin.update(R.JOBS, live)
        # reconcile against the stale cache: the live read wins
        assert await ctl.reconcile(f"{NS}/pi") == pytest.approx(3600)
        assert not (await env.admin.get(R.JOBS, "pi", NS))["metadata"].get(
            "deletionTimestamp")


async def test_backoff_limit_per_index(api: InProcessAPI) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    count = "batch.kubernetes.io/job-index-failure-count"
    ix_key = "batch.kubernetes.io/job-completion-index"
    async with controller_env(api, "job", clock=clock) as env:
        made = await env.admin.create(R.JOBS, job(completions=2, parallelism=2,
                                                  completionMode="Indexed",
                                                  backoffLimitPerIndex=1), NS)
        assert made["spec"]["backoffLimit"] == 2**31 - 1  # only the per-index limit counts
        await sync(env)
        by_ix = {p["metadata"]["annotations"][ix_key]: p for p in await job_pods(env)}
        assert by_ix["0"]["metadata"]["annotations"][count] == "0"
        first = by_ix["0"]
        await finish(env, first, "Failed", at=clock.now())
        assert await sync(env) == pytest.approx(10, abs=1)  # index 0 backs off on its own
        held = await env.admin.get(R.PODS, first["metadata"]["name"], NS)
        assert TRACKING_FINALIZER in held["metadata"]["finalizers"]  # awaits its successor
        clock.advance(10)
        await sync(env)
        retry = [p for p in await job_pods(env)
                 if p["metadata"]["annotations"][ix_key] == "0"]
        assert [p["metadata"]["annotations"][count] for p in retry] == ["1"]
        await sync(env)
        assert (await status(env))["failed"] == 1
        await finish(env, retry[0], "Failed", at=clock.now())  # index 0 is out of retries
        await sync(env)
        st = await status(env)
        assert st["failedIndexes"] == "0" and st["active"] == 1
        await finish(env, by_ix["1"])
        await sync(env)
        await sync(env)
        st = await status(env)
        assert st["completedIndexes"] == "1" and st["failedIndexes"] == "0"
        assert conditions(st)["Failed"]["reason"] == "FailedIndexes"
