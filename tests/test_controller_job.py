"""The Job controller over a real apiserver in process: pods made and counted through the
tracking finalizer, pod phases driven by writing pod status as admin (no node agents)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

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
