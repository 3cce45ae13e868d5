"""The CronJob controller: the schedule arithmetic as pure functions (time zones, DST,
descriptors, missed runs), then reconcile over a real apiserver in process on a FakeClock.

Controller tests pin time through ``status.lastScheduleTime`` (written as admin), which the
controller counts from instead of the creation time, so they do not depend on the real
clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from control.api.clock import FakeClock, format_time
from control.client import resources as R
from control.controllers.cronjob_schedule import (
    Missed,
    ScheduleError,
    job_name,
    most_recent,
    next_delay,
    parse,
    scheduled_annotation,
)
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
NS = "default"
UTC = dt.UTC
NY = "America/New_York"
T0 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def at(*args: int, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)  # type: ignore[misc]


def cron(schedule: str, *, tz: str | None = None, created: str = "2026-01-01T00:00:00Z",
         last: dt.datetime | None = None, deadline: int | None = None) -> Obj:
    spec: Obj = {"schedule": schedule}
    if tz:
        spec["timeZone"] = tz
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    status = {"lastScheduleTime": format_time(last)} if last else {}
    return {"metadata": {"name": "c", "creationTimestamp": created}, "spec": spec,
            "status": status}


def firings(schedule: str, start: dt.datetime, n: int = 3, tz: str | None = None) -> list[str]:
    sched = parse(cron(schedule, tz=tz), UTC)
    out: list[str] = []
    t: dt.datetime | None = start
    for _ in range(n):
        assert t is not None
        t = sched.next(t)
        if t is None:
            break
        out.append(t.isoformat())
    return out


# --- the schedule, pure ---------------------------------------------------------------------

@pytest.mark.parametrize(("schedule", "tz", "start", "want"), [
    pytest.param("*/15 * * * *", None, at(2026, 1, 1, 10, 7),
                 ["2026-01-01T10:15:00+00:00", "2026-01-01T10:30:00+00:00",
                  "2026-01-01T10:45:00+00:00"], id="step"),
    pytest.param("0 * * * *", None, at(2026, 1, 1, 10, 0),
                 ["2026-01-01T11:00:00+00:00", "2026-01-01T12:00:00+00:00",
                  "2026-01-01T13:00:00+00:00"], id="strictly-after-a-firing"),
    pytest.param("@hourly", None, at(2026, 1, 1, 10, 30),
                 ["2026-01-01T11:00:00+00:00", "2026-01-01T12:00:00+00:00",
                  "2026-01-01T13:00:00+00:00"], id="hourly"),
    pytest.param("@daily", None, at(2026, 1, 1, 10),
                 ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00",
                  "2026-01-04T00:00:00+00:00"], id="daily"),
    pytest.param("@weekly", None, at(2026, 1, 1),
                 ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00",
                  "2026-01-18T00:00:00+00:00"], id="weekly-sundays"),
    pytest.param("@monthly", None, at(2026, 1, 15),
                 ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00",
                  "2026-04-01T00:00:00+00:00"], id="monthly"),
    pytest.param("@yearly", None, at(2026, 1, 15),
                 ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00",
                  "2029-01-01T00:00:00+00:00"], id="yearly"),
    pytest.param("0 0 * * 1", None, at(2026, 1, 1),
                 ["2026-01-05T00:00:00+00:00", "2026-01-12T00:00:00+00:00",
                  "2026-01-19T00:00:00+00:00"], id="star-day-means-and"),
    pytest.param("0 0 */1 * 1", None, at(2026, 1, 1),
                 ["2026-01-05T00:00:00+00:00", "2026-01-12T00:00:00+00:00",
                  "2026-01-19T00:00:00+00:00"], id="star-step-1-is-still-a-star"),
    pytest.param("0 0 13 * 5", None, at(2026, 1, 1),
                 ["2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00",
                  "2026-01-13T00:00:00+00:00"], id="both-days-restricted-means-or"),
    pytest.param("0 9 * * mon-fri", NY, at(2026, 1, 2, 15),
                 ["2026-01-05T09:00:00-05:00", "2026-01-06T09:00:00-05:00",
                  "2026-01-07T09:00:00-05:00"], id="time-zone-field"),
    pytest.param("CRON_TZ=Asia/Tokyo 0 9 * * *", None, at(2026, 1, 1),
                 ["2026-01-02T09:00:00+09:00", "2026-01-03T09:00:00+09:00",
                  "2026-01-04T09:00:00+09:00"], id="cron-tz-prefix"),
    pytest.param("30 2 * * *", NY, at(2026, 3, 7, 12),
                 ["2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00",
                  "2026-03-11T02:30:00-04:00"], id="dst-spring-forward-skips-the-gap"),
    pytest.param("0 * * * *", NY, at(2026, 3, 8, 5, 30),
                 ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00",
                  "2026-03-08T04:00:00-04:00"], id="dst-spring-forward-hourly"),
    pytest.param("30 1 * * *", NY, at(2026, 10, 31, 12),
                 ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00",
                  "2026-11-02T01:30:00-05:00"], id="dst-fall-back-fires-twice"),
    pytest.param("@every 90m", None, at(2026, 1, 1, 0, 0, 30),
                 ["2026-01-01T01:30:30+00:00", "2026-01-01T03:00:30+00:00",
                  "2026-01-01T04:30:30+00:00"], id="every"),
    pytest.param("59 23 31 2 *", None, at(2026, 1, 1), [], id="never"),
])
def test_schedule_firings(schedule: str, tz: str | None, start: dt.datetime,
                          want: list[str]) -> None:
    assert firings(schedule, start, tz=tz) == want


def test_local_zone_is_used_without_a_time_zone() -> None:
    import zoneinfo
    sched = parse(cron("0 9 * * *"), zoneinfo.ZoneInfo("Europe/Paris"))
    assert sched.next(at(2026, 1, 1)) == at(2026, 1, 1, 8)


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "@fortnightly", "0 0 * * L"])
def test_unparseable_schedules(bad: str) -> None:
    with pytest.raises(ScheduleError):
        parse(cron(bad), UTC)


@pytest.mark.parametrize(("last", "now", "deadline", "want_time", "want_missed"), [
    pytest.param(T0, at(2026, 6, 1, 10, 3), None, None, Missed.NONE, id="not-yet"),
    pytest.param(T0, at(2026, 6, 1, 10, 6), None, at(2026, 6, 1, 10, 5), Missed.NONE,
                 id="one-due"),
    pytest.param(T0, at(2026, 6, 1, 10, 27), None, at(2026, 6, 1, 10, 25), Missed.FEW,
                 id="missed-some-latest-wins"),
    pytest.param(T0, at(2026, 6, 3, 10, 27), None, at(2026, 6, 3, 10, 25), Missed.MANY,
                 id="missed-many"),
    pytest.param(T0, at(2026, 6, 3, 10, 27), 180, at(2026, 6, 3, 10, 25), Missed.NONE,
                 id="deadline-bounds-the-lookback"),
    pytest.param(T0, at(2026, 6, 1, 10, 27), 60, None, Missed.NONE,
                 id="deadline-passed-nothing-due"),
])
def test_most_recent_due_time(last: dt.datetime, now: dt.datetime, deadline: int | None,
                              want_time: dt.datetime | None, want_missed: Missed) -> None:
    cj = cron("*/5 * * * *", last=last, deadline=deadline)
    _, got, missed, err = most_recent(cj, now, parse(cj, UTC), with_deadline=True)
    assert (got, missed, err) == (want_time, want_missed, "")


def test_a_schedule_that_never_fires_twice_is_an_error_and_the_next_delay() -> None:
    cj = cron("59 23 31 2 *", last=T0)
    _, got, _, err = most_recent(cj, at(2026, 6, 2), parse(cj, UTC), with_deadline=True)
    assert got is None and err == "time difference between two schedules is less than 1 second"
    ok = cron("*/5 * * * *", last=T0)
    assert next_delay(ok, at(2026, 6, 1, 10, 1), parse(ok, UTC)) == pytest.approx(240.1)


def test_job_names_and_the_scheduled_timestamp() -> None:
    t = at(2026, 6, 1, 10, 5)
    assert job_name("hello", t) == f"hello-{int(t.timestamp()) // 60}"
    assert scheduled_annotation(t, None) == "2026-06-01T10:05:00Z"
    assert scheduled_annotation(t, NY) == "2026-06-01T06:05:00-04:00"


# --- the controller --------------------------------------------------------------------------

def cronjob(name: str = "c", schedule: str = "*/5 * * * *", **spec: Any) -> Obj:
    template = {"metadata": {"labels": {"team": "a"}}, "spec": {"template": {"spec": {
        "restartPolicy": "OnFailure",
        "containers": [{"name": "c", "image": "busybox", "command": ["date"]}]}}}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, "jobTemplate": template, **spec}}


async def seed(env: Env, obj: Obj, last: dt.datetime = T0, **status: Any) -> Obj:
    made = await env.admin.create(R.CRONJOBS, obj, NS)
    made["status"] = {"lastScheduleTime": format_time(last), **status}
    written: Obj = await env.admin.update_status(R.CRONJOBS, made)
    return written


async def sync(env: Env, name: str = "c") -> float | None:
    return await env.reconcile("cronjob", f"{NS}/{name}")


async def jobs(env: Env) -> list[Obj]:
    items, _ = await env.admin.list_all(R.JOBS, NS)
    live = [j for j in items if not j["metadata"].get("deletionTimestamp")]
    return sorted(live, key=lambda j: j["metadata"]["name"])


async def cj_status(env: Env, name: str = "c") -> Obj:
    got: Obj = (await env.admin.get(R.CRONJOBS, name, NS)).get("status") or {}
    return got


async def events(env: Env) -> dict[str, str]:
    items, _ = await env.admin.list_all(R.EVENTS, NS)
    return {e["reason"]: e["message"] for e in items}


async def finish(env: Env, job: Obj, kind: str, when: dt.datetime) -> None:
    fresh = await env.admin.get(R.JOBS, job["metadata"]["name"], NS)
    stamp = format_time(when)
    fresh["status"] = {"startTime": stamp, "conditions": [
        {"type": kind, "status": "True", "lastTransitionTime": stamp}]}
    if kind == "Complete":
        fresh["status"].update(completionTime=stamp, succeeded=1)
    await env.admin.update_status(R.JOBS, fresh)


def clock_at(t: dt.datetime) -> FakeClock:
    return FakeClock(t)


async def test_starts_the_due_job(api: InProcessAPI) -> None:
    clock = clock_at(at(2026, 6, 1, 10, 5, 30))
    async with controller_env(api, "cronjob", clock=clock) as env:
        cj = await seed(env, cronjob())
        again = await sync(env)
        assert again == pytest.approx(270.1)
        [job] = await jobs(env)
        due = at(2026, 6, 1, 10, 5)
        assert job["metadata"]["name"] == job_name("c", due)
        assert job["metadata"]["labels"]["team"] == "a"
        assert job["metadata"]["annotations"][
            "batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2026-06-01T10:05:00Z"
        [ref] = job["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("CronJob",
                                                                cj["metadata"]["uid"], True)
        st = await cj_status(env)
        assert st["lastScheduleTime"] == "2026-06-01T10:05:00Z"
        [active] = st["active"]
        assert (active["kind"], active["name"], active["uid"]) == (
            "Job", job["metadata"]["name"], job["metadata"]["uid"])
        assert (await events(env))["SuccessfulCreate"] == f"Created job {job['metadata']['name']}"
        await sync(env)  # the same due time is never started twice
        assert len(await jobs(env)) == 1


async def test_missed_runs_start_only_the_latest(api: InProcessAPI) -> None:
    clock = clock_at(at(2026, 6, 1, 10, 27))
    async with controller_env(api, "cronjob", clock=clock) as env:
        await seed(env, cronjob())
        await sync(env)
        [job] = await jobs(env)
        assert job["metadata"]["name"] == job_name("c", at(2026, 6, 1, 10, 25))


async def test_too_many_missed_runs_warn_and_start_the_latest(api: InProcessAPI) -> None:
    clock = clock_at(at(2026, 6, 3, 10, 27))
    async with controller_env(api, "cronjob", clock=clock) as env:
        await seed(env, cronjob())
        await sync(env)
        [job] = await jobs(env)
        assert job["metadata"]["name"] == job_name("c", at(2026, 6, 3, 10, 25))
        assert "TooManyMissedTimes" in await events(env)


async def test_starting_deadline(api: InProcessAPI) -> None:
    clock = clock_at(at(2026, 6, 1, 10, 7))
    async with controller_env(api, "cronjob", clock=clock) as env:
        await seed(env, cronjob(startingDeadlineSeconds=60))
        again = await sync(env)
        assert await jobs(env) == []  # 10:05 is more than 60 s ago
        assert again == pytest.approx(180.1)
        clock.advance(180.5)
        await sync(env)
        [job] = await jobs(env)
        assert job["metadata"]["name"] == job_name("c", at(2026, 6, 1, 10, 10))


@pytest.mark.parametrize(("policy", "want_jobs", "want_event"), [
    pytest.param("Allow", 2, "SuccessfulCreate", id="allow"),
    pytest.param("Forbid", 1, "JobAlreadyActive", id="forbid"),
    pytest.param("Replace", 1, "SuccessfulDelete", id="replace"),
])
async def test_concurrency_policy(api: InProcessAPI, policy: str, want_jobs: int,
                                  want_event: str) -> None:
    clock = clock_at(at(2026, 6, 1, 10, 5, 30))
    async with controller_env(api, "cronjob", clock=clock) as env:
        await seed(env, cronjob(concurrencyPolicy=policy))
        await sync(env)
        [first] = await jobs(env)
        clock.advance(300)
        await sync(env)
        got = await jobs(env)
        assert len(got) == want_jobs
        assert want_event in await events(env)
        active = {r["name"] for r in (await cj_status(env)).get("active") or ()}
        names = {j["metadata"]["name"] for j in got}
        assert active == names
        second = job_name("c", at(2026, 6, 1, 10, 10))
        assert (second in names) == (policy != "Forbid")
        assert (first["metadata"]["name"] in names) == (policy != "Replace")


async def test_finished_jobs_leave_the_active_list_and_history_is_trimmed(
        api: InProcessAPI) -> None:
    clock = clock_at(at(2026, 6, 1, 10, 0, 30))
    async with controller_env(api, "cronjob", clock=clock) as env:
        await seed(env, cronjob(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1),
                   last=at(2026, 6, 1, 9, 55))
        outcomes = ["Complete", "Failed", "Complete", "Failed", "Complete"]
        for kind in outcomes:
            await sync(env)
            newest = (await jobs(env))[-1]
            await finish(env, newest, kind, clock.now() + dt.timedelta(seconds=10))
            clock.advance(300)
        await sync(env)  # 10:25: trims history, starts the next run
        await sync(env)
        left = await jobs(env)
        done = [j for j in left if (j.get("status") or {}).get("conditions")]
        kinds = sorted(j["status"]["conditions"][0]["type"] for j in done)
        assert kinds == ["Complete", "Failed"] and len(left) == 3
        st = await cj_status(env)
        [running] = [j for j in left if j not in done]
        assert [r["name"] for r in st["active"]] == [running["metadata"]["name"]]
        assert st["lastSuccessfulTime"] == format_time(at(2026, 6, 1, 10, 20, 40))
        got = await events(env)
        assert got["SawCompletedJob"].startswith("Saw completed job: c-")
        assert "SuccessfulDelete" in got


async def test_missing_active_job_is_dropped(api: InProcessAPI) -> None:
    clock = clock_at(at(2026, 6, 1, 10, 2))
    async with controller_env(api, "cronjob", clock=clock) as env:
        ghost = {"kind": "Job", "apiVersion": "batch/v1", "namespace": NS, "name": "c-1",
                 "uid": "00000000-0000-0000-0000-000000000001"}
        await seed(env, cronjob(), active=[ghost])
        await sync(env)
        assert not (await cj_status(env)).get("active")
        assert (await events(env))["MissingJob"] == "Active job went missing: c-1"


async def test_suspended_and_never_firing_schedules_start_nothing(api: InProcessAPI) -> None:
    clock = clock_at(at(2026, 6, 3))
    async with controller_env(api, "cronjob", clock=clock) as env:
        await seed(env, cronjob("s", suspend=True))
        assert await sync(env, "s") is None
        await seed(env, cronjob("feb31", "59 23 31 2 *"))
        assert await sync(env, "feb31") is None  # rests until the CronJob changes
        assert await jobs(env) == []
        assert (await events(env))["InvalidSchedule"] == (
            "invalid schedule: 59 23 31 2 * : time difference between two schedules is less "
            "than 1 second")


async def test_time_zone_names_the_annotation(api: InProcessAPI) -> None:
    clock = clock_at(at(2026, 6, 1, 13, 0, 30))
    async with controller_env(api, "cronjob", clock=clock) as env:
        await seed(env, cronjob(schedule="0 9 * * *", timeZone=NY),
                   last=at(2026, 5, 31, 13))
        await sync(env)
        [job] = await jobs(env)
        assert job["metadata"]["annotations"][
            "batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2026-06-01T09:00:00-04:00"
        assert job["metadata"]["name"] == job_name("c", at(2026, 6, 1, 13))


async def test_runs_on_schedule_with_workers(api: InProcessAPI) -> None:
    clock = clock_at(at(2026, 6, 1, 10, 5, 30))
    async with controller_env(api, "cronjob", clock=clock) as env:
        await seed(env, cronjob())
        async with env.running():
            await env.until(lambda: _count(env, 1))
            queue = env["cronjob"].queue
            # the reconcile has returned and asked to look again at 10:10
            await env.until(lambda: queue.delayed > 0 and queue.processing == 0
                            and not len(queue))
            clock.advance(300)
            got = await env.until(lambda: _count(env, 2))
        assert got[-1]["metadata"]["name"] == job_name("c", at(2026, 6, 1, 10, 10))


async def _count(env: Env, n: int) -> list[Obj] | None:
    got = await jobs(env)
    return got if len(got) == n else None
