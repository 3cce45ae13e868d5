"""CronJobs and ControllerRevisions: the cron schedule parser (robfig/cron's rules and error
texts), the CronJob strategy (defaults, validation causes as Kubernetes words them, generation,
status split), the ControllerRevision strategy and both kinds' Table rows."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from control.api.cron import CronError, go_duration, parse_schedule
from control.api.errors import Cause
from control.apiserver.strategies import strategy_for
from control.apiserver.tables import table_for

Obj = dict[str, Any]
UID = "0b7a5b3e-5f2c-4d6a-9d0e-1f2a3b4c5d6e"
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


# --- the schedule parser --------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    "*/1 * * * *", "0 0 * * *", "5,10-20/5 1-3 1,15 jan-mar,12 mon-fri", "? ? ? ? ?",
    "  0   12 * * SUN  ", "59 23 31 12 6", "@hourly", "@daily", "@midnight", "@weekly",
    "@monthly", "@yearly", "@annually", "@every 90m", "@every 1h30m", "@every 1.5h",
    "CRON_TZ=Europe/Berlin 0 9 * * *", "TZ=UTC @daily", "1/10 * * * *", "*-5 * * * *",
])
def test_schedules_robfig_accepts(spec: str) -> None:
    parse_schedule(spec)


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty spec string"),
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* 24 * * *", "end of range (24) above maximum (23): 24"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("* * * 13 *", "end of range (13) above maximum (12): 13"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("*/2/3 * * * *", "too many slashes: */2/3"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("* * * * funday", ('failed to parse int from funday: strconv.Atoi: parsing "funday": '
                        "invalid syntax")),
    ("-1 * * * *", 'failed to parse int from : strconv.Atoi: parsing "": invalid syntax'),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every x", 'failed to parse duration @every x: time: invalid duration "x"'),
    ("@every 10", 'failed to parse duration @every 10: time: missing unit in duration "10"'),
    ("@every 3d", ('failed to parse duration @every 3d: time: unknown unit "d" in duration '
                   '"3d"')),
    ("TZ=Mars/Olympus * * * * *", ("provided bad location Mars/Olympus: unknown time zone "
                                   "Mars/Olympus")),
])
def test_schedules_robfig_refuses(spec: str, message: str) -> None:
    with pytest.raises(CronError) as e:
        parse_schedule(spec)
    assert str(e.value) == message


def _t(text: str, tz: str = "UTC") -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("*/1 * * * *", "2026-03-01T10:00:30", "2026-03-01T10:01:00"),
    ("*/15 * * * *", "2026-03-01T10:14:59", "2026-03-01T10:15:00"),
    ("@hourly", "2026-03-01T10:00:00", "2026-03-01T11:00:00"),
    ("@daily", "2026-12-31T23:59:00", "2027-01-01T00:00:00"),
    ("0 9 * * mon", "2026-03-01T10:00:00", "2026-03-02T09:00:00"),  # 1 March 2026: a Sunday
    # day of month OR day of week when both are restricted (cron's rule)
    ("0 0 13 * fri", "2026-03-01T00:00:00", "2026-03-06T00:00:00"),
    ("0 0 1 * *", "2026-01-31T12:00:00", "2026-02-01T00:00:00"),
    ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("@every 90m", "2026-03-01T10:00:30.5", "2026-03-01T11:30:30"),
])
def test_next_after(spec: str, after: str, expected: str) -> None:
    assert parse_schedule(spec).next_after(_t(after)) == _t(expected)


def test_next_after_star_day_field_means_both_must_match() -> None:
    # "*" in day of month: only Fridays; "1-31" (no star bit): every day of month OR Friday
    assert parse_schedule("0 0 * * fri").next_after(_t("2026-03-01T00:00:00")) == \
        _t("2026-03-06T00:00:00")
    assert parse_schedule("0 0 1-31 * fri").next_after(_t("2026-03-01T00:00:00")) == \
        _t("2026-03-02T00:00:00")


def test_next_after_keeps_the_time_zone_wall_clock() -> None:
    berlin = _t("2026-03-28T10:00:00", "Europe/Berlin")  # DST starts on the 29th
    assert parse_schedule("0 9 * * *").next_after(berlin) == _t("2026-03-29T09:00:00",
                                                               "Europe/Berlin")


def test_never_firing_schedule_gives_up() -> None:
    assert parse_schedule("0 0 31 2 *").next_after(_t("2026-01-01T00:00:00")) is None


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("-2m", -120), ("500ms", 0.5)])
def test_go_duration(text: str, seconds: float) -> None:
    assert go_duration(text).total_seconds() == seconds


# --- CronJob strategy ----------------------------------------------------------------------

def cronjob(**spec: Any) -> Obj:
    base: Obj = {"schedule": "*/5 * * * *", "jobTemplate": {"metadata": {"name": "tick"},
                 "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [
                     {"name": "c", "image": "busybox"}]}}}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default"}, "spec": base}


def created(obj: Obj) -> Obj:
    s = strategy_for("batch", "cronjobs")
    s.prepare_for_create(obj)
    obj["metadata"].update(uid=UID, creationTimestamp="2026-01-01T00:00:00Z")
    return obj


def test_cronjob_defaults_and_status() -> None:
    obj = cronjob()
    obj["status"] = {"active": [{"name": "x"}]}
    obj = created(obj)
    spec = obj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["dnsPolicy"] == "ClusterFirst" and pod["terminationGracePeriodSeconds"] == 30
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    # SetDefaults_Job is not applied to a template: no backoffLimit, completions, selector
    assert set(spec["jobTemplate"]["spec"]) == {"template"}
    assert obj["status"] == {} and obj["metadata"]["generation"] == 1
    assert strategy_for("batch", "cronjobs").validate(obj) == []


def test_cronjob_explicit_values_are_kept() -> None:
    obj = created(cronjob(suspend=True, concurrencyPolicy="Forbid",
                          successfulJobsHistoryLimit=0, failedJobsHistoryLimit=0))
    spec = obj["spec"]
    assert (spec["suspend"], spec["concurrencyPolicy"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == (True, "Forbid", 0, 0)


def test_cronjob_generation_and_status_split() -> None:
    s = strategy_for("batch", "cronjobs")
    old = created(cronjob())
    old["status"] = {"lastScheduleTime": "2026-01-01T00:05:00Z"}
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"a": "b"}
    new["status"] = {}
    s.prepare_for_update(new, old)
    assert new["metadata"]["generation"] == 1 and new["status"] == old["status"]
    new["spec"]["suspend"] = True
    s.prepare_for_update(new, old)
    assert new["metadata"]["generation"] == 2
    status = copy.deepcopy(old)
    status["spec"]["suspend"] = True
    status["status"] = {"active": [{"kind": "Job", "name": "tick-1"}]}
    s.prepare_for_status_update(status, old)
    assert status["spec"] == old["spec"] and status["status"]["active"][0]["name"] == "tick-1"


SCHEDULE = "spec.schedule"
TEMPLATE = "spec.jobTemplate.spec"


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def edit(obj: Obj) -> None:
        *parents, last = path.split(".")
        node = obj
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return edit


def _drop(path: str) -> Callable[[Obj], None]:
    def edit(obj: Obj) -> None:
        *parents, last = path.split(".")
        node = obj
        for p in parents:
            node = node[p]
        del node[last]
    return edit


@pytest.mark.parametrize(("edit", "expected"), [
    pytest.param(_set(SCHEDULE, ""), Cause("FieldValueRequired", "Required value", SCHEDULE),
                 id="schedule-required"),
    pytest.param(_set(SCHEDULE, "*/5 * * *"), Cause(
        "FieldValueInvalid", 'Invalid value: "*/5 * * *": expected exactly 5 fields, found 4: '
        "[*/5 * * *]", SCHEDULE), id="schedule-fields"),
    pytest.param(_set(SCHEDULE, "0 25 * * *"), Cause(
        "FieldValueInvalid", 'Invalid value: "0 25 * * *": end of range (25) above maximum '
        "(23): 25", SCHEDULE), id="schedule-range"),
    pytest.param(_set(SCHEDULE, "TZ=UTC 0 0 * * *"), Cause(
        "FieldValueInvalid", 'Invalid value: "TZ=UTC 0 0 * * *": cannot use TZ or CRON_TZ in '
        "schedule, use timeZone field instead", SCHEDULE), id="schedule-tz"),
    pytest.param(_set("spec.timeZone", "Mars/Olympus_Mons"), Cause(
        "FieldValueInvalid", 'Invalid value: "Mars/Olympus_Mons": unknown time zone '
        "Mars/Olympus_Mons", "spec.timeZone"), id="tz-unknown"),
    pytest.param(_set("spec.timeZone", "Etc/GMT+5 "), Cause(
        "FieldValueInvalid", 'Invalid value: "Etc/GMT+5 ": unknown time zone Etc/GMT+5 ',
        "spec.timeZone"), id="tz-characters"),
    pytest.param(_set("spec.timeZone", ""), Cause(
        "FieldValueInvalid", 'Invalid value: "": timeZone must be nil or non-empty string',
        "spec.timeZone"), id="tz-empty"),
    pytest.param(_set("spec.timeZone", "Local"), Cause(
        "FieldValueInvalid", 'Invalid value: "Local": timeZone must be an explicit time zone '
        "as defined in https://www.iana.org/time-zones", "spec.timeZone"), id="tz-local"),
    pytest.param(_set("spec.concurrencyPolicy", "Sometimes"), Cause(
        "FieldValueNotSupported", 'Unsupported value: "Sometimes": supported values: '
        '"Allow", "Forbid", "Replace"', "spec.concurrencyPolicy"), id="concurrency"),
    pytest.param(_set("spec.startingDeadlineSeconds", -1), Cause(
        "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0",
        "spec.startingDeadlineSeconds"), id="deadline"),
    pytest.param(_set("spec.successfulJobsHistoryLimit", -3), Cause(
        "FieldValueInvalid", "Invalid value: -3: must be greater than or equal to 0",
        "spec.successfulJobsHistoryLimit"), id="history"),
    pytest.param(_set(f"{TEMPLATE}.template.spec.restartPolicy", "Always"), Cause(
        "FieldValueNotSupported", 'Unsupported value: "Always": supported values: '
        '"OnFailure", "Never"', f"{TEMPLATE}.template.spec.restartPolicy"), id="restart"),
    pytest.param(_set(f"{TEMPLATE}.selector", {"matchLabels": {"a": "b"}}), Cause(
        "FieldValueInvalid", 'Invalid value: {"matchLabels":{"a":"b"}}: `selector` will be '
        "auto-generated", f"{TEMPLATE}.selector"), id="selector"),
    pytest.param(_set(f"{TEMPLATE}.manualSelector", True), Cause(
        "FieldValueNotSupported", 'Unsupported value: true: supported values: "nil", '
        '"false"', f"{TEMPLATE}.manualSelector"), id="manual-selector"),
    pytest.param(_set(f"{TEMPLATE}.parallelism", -2), Cause(
        "FieldValueInvalid", "Invalid value: -2: must be greater than or equal to 0",
        f"{TEMPLATE}.parallelism"), id="parallelism"),
    pytest.param(_drop(f"{TEMPLATE}.template.spec.containers"), Cause(
        "FieldValueRequired", "Required value", f"{TEMPLATE}.template.spec.containers"),
        id="containers"),
    pytest.param(_set("metadata.name", "n" * 53), Cause(
        "FieldValueInvalid", f'Invalid value: "{"n" * 53}": must be no more than 52 '
        "characters", "metadata.name"), id="name-length"),
])
def test_cronjob_validation(edit: Callable[[Obj], None], expected: Cause) -> None:
    obj = created(cronjob())
    edit(obj)
    assert expected in strategy_for("batch", "cronjobs").validate(obj)


def test_cronjob_valid_variants() -> None:
    s = strategy_for("batch", "cronjobs")
    for spec in ({"schedule": "@weekly"}, {"timeZone": "Europe/Berlin"}, {"timeZone": "UTC"},
                 {"schedule": "0 12 * jan-jun mon,wed"}, {"startingDeadlineSeconds": 0}):
        assert s.validate(created(cronjob(**spec))) == [], spec


def test_cronjob_update_rules() -> None:
    s = strategy_for("batch", "cronjobs")
    old = created(cronjob())
    old["metadata"]["name"] = "n" * 60  # an older, longer name may still be updated
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    s.prepare_for_update(new, old)
    assert s.validate_update(new, old) == []
    # a TZ prefix already stored may stay; a new one may not
    old = created(cronjob(schedule="CRON_TZ=UTC 0 0 * * *"))
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    assert s.validate_update(new, old) == []
    new["spec"]["timeZone"] = "UTC"
    assert [c.message for c in s.validate_update(new, old)] == [
        ('Invalid value: "CRON_TZ=UTC 0 0 * * *": cannot use both timeZone field and TZ or '
         "CRON_TZ in schedule")]


def test_cronjob_table() -> None:
    obj = created(cronjob(timeZone="Etc/UTC"))
    obj["status"] = {"active": [{"name": "a"}, {"name": "b"}],
                     "lastScheduleTime": "2026-01-01T11:58:00Z"}
    table = table_for("CronJob", [obj], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age",
        "Containers", "Images", "Selector"]
    assert table["rows"][0]["cells"] == ["tick", "*/5 * * * *", "Etc/UTC", "False", 2, "2m",
                                         "12h", "c", "busybox", "<none>"]
    bare = {"metadata": {"name": "x"}, "spec": {"schedule": "@daily"}}
    assert table_for("CronJob", [bare], now=NOW)["rows"][0]["cells"][:7] == [
        "x", "@daily", "<none>", "<unset>", 0, "<none>", "<unknown>"]


# --- ControllerRevision --------------------------------------------------------------------

def revision(**more: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "web-7c9d", "namespace": "default", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "web", "uid": UID,
                 "controller": True}]},
            "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 2, **more}


def test_controller_revision_rules() -> None:
    s = strategy_for("apps", "controllerrevisions")
    obj = revision()
    s.prepare_for_create(obj)
    assert "generation" not in obj["metadata"] and "status" not in obj
    assert s.validate(obj) == []
    del obj["data"]
    assert s.validate(obj) == [Cause("FieldValueRequired", "Required value: data is mandatory",
                                     "data")]
    assert s.validate(revision(revision=-1)) == [Cause(
        "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0",
        "revision")]
    old, new = revision(), revision(revision=3)
    assert s.validate_update(new, old) == []  # controllers renumber revisions
    new["data"] = {"spec": {"x": 1}}
    assert s.validate_update(new, old) == [Cause(
        "FieldValueInvalid", 'Invalid value: {"spec":{"x":1}}: field is immutable', "data")]


def test_controller_revision_table() -> None:
    orphan = revision()
    del orphan["metadata"]["ownerReferences"]
    table = table_for("ControllerRevision", [revision(), orphan], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Controller", "Revision", "Age"]
    assert [r["cells"][:3] for r in table["rows"]] == [
        ["web-7c9d", "daemonset.apps/web", 2], ["web-7c9d", "<none>", 2]]
