"""When a CronJob's Jobs are due (kubernetes ``pkg/controller/cronjob/utils.go``:
``mostRecentScheduleTime``, ``nextScheduleTime``, ``nextScheduleTimeDuration``,
``getJobName``; ``formatSchedule`` of ``cronjob_controllerv2.go``).

The schedule's grammar is robfig/cron's standard syntax as the apiserver validates it
(:func:`control.api.cron.parse_schedule`: five fields, ``@daily``-style descriptors,
``@every <duration>``, a ``TZ=``/``CRON_TZ=`` prefix); firing times come from the croniter
library, evaluated on the wall clock of the schedule's zone — ``spec.timeZone``, a ``TZ=``
prefix, or else the controller-manager's local zone, as kube-controller-manager does.
Daylight-saving transitions behave as robfig's ``SpecSchedule.Next``: a wall time skipped
by a spring-forward transition does not fire that day, one repeated by a fall-back
transition fires twice.

Pure apart from reading the process's local zone once (:func:`local_zone`).
"""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from dataclasses import dataclass
from enum import Enum
from typing import Any

from croniter import CroniterBadDateError, croniter

from control.api.clock import parse_time
from control.api.cron import CronError, Schedule, parse_schedule

__all__ = ["CronSchedule", "Missed", "ScheduleError", "job_name", "local_zone",
           "most_recent", "next_delay", "next_schedule_time", "parse", "scheduled_annotation"]

Obj = dict[str, Any]
#: Requeue this long after the next schedule time, for clock skew (``nextScheduleDelta``).
NEXT_SCHEDULE_DELTA = 0.1
_MAX_MISSED = 100
_DELTA_ERROR = "time difference between two schedules is less than 1 second"


class ScheduleError(ValueError):
    """A schedule that cannot be parsed, or whose text is robfig's error."""


class Missed(Enum):
    NONE = "none"
    FEW = "few"
    MANY = "many"


def local_zone() -> dt.tzinfo:
    """The process's local zone as Go's ``time.Local`` finds it: ``$TZ`` ("" is UTC), else
    /etc/localtime, else UTC."""
    if "TZ" in os.environ:
        name = os.environ["TZ"].lstrip(":")
        try:
            return zoneinfo.ZoneInfo(name) if name else dt.UTC
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return dt.UTC
    try:
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return dt.UTC


def _zone(name: str | None, local: dt.tzinfo) -> dt.tzinfo:
    if name is None or name == "Local":
        return local
    if name in ("", "UTC"):
        return dt.UTC
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule in its zone; :meth:`next` is robfig's ``Schedule.Next``."""

    spec: Schedule
    zone: dt.tzinfo

    def _expr(self) -> str:
        fields = (self.spec.minutes, self.spec.hours, self.spec.days, self.spec.months,
                  self.spec.weekdays)
        return " ".join(",".join(str(v) for v in sorted(f)) for f in fields)

    def _fires_at(self, t: dt.datetime) -> bool:
        s = self.spec
        if t.minute not in s.minutes or t.hour not in s.hours or t.month not in s.months:
            return False
        dom, dow = t.day in s.days, (t.isoweekday() % 7) in s.weekdays
        return dom and dow if s.dom_star or s.dow_star else dom or dow

    def next(self, t: dt.datetime) -> dt.datetime | None:
        """The first firing strictly after ``t`` (whole seconds); None if it never fires."""
        if self.spec.every is not None:
            return t.replace(microsecond=0) + self.spec.every
        # robfig's star bit: a ``*`` day field makes both day fields have to match
        day_or = not (self.spec.dom_star or self.spec.dow_star)
        try:
            it = croniter(self._expr(), t.astimezone(self.zone), day_or=day_or)
            for _ in range(64):
                got: dt.datetime = it.get_next(dt.datetime)
                if self._fires_at(got):
                    return got
                # croniter moved a time skipped by a spring-forward jump to after the jump;
                # robfig does not fire it at all
        except CroniterBadDateError:
            return None
        return None


def parse(cronjob: Obj, local: dt.tzinfo) -> CronSchedule:
    """``cron.ParseStandard(formatSchedule(cj))``: the schedule with ``spec.timeZone`` as a
    ``TZ=`` prefix unless the schedule has its own.  ScheduleError on bad input."""
    spec = cronjob.get("spec") or {}
    text = str(spec.get("schedule") or "")
    tz = spec.get("timeZone")
    if "TZ" not in text and tz is not None:
        try:
            zoneinfo.ZoneInfo(tz)
            text = f"TZ={tz} {text}"
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            pass
    try:
        parsed = parse_schedule(text)
        return CronSchedule(parsed, _zone(parsed.location, local))
    except (CronError, zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleError(str(e)) from None


def _earliest(cronjob: Obj) -> dt.datetime:
    meta, status = cronjob.get("metadata") or {}, cronjob.get("status") or {}
    last = parse_time(status.get("lastScheduleTime"))
    created = parse_time(meta.get("creationTimestamp"))
    return last or created or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def most_recent(cronjob: Obj, now: dt.datetime, sched: CronSchedule, *,
                with_deadline: bool) -> tuple[dt.datetime, dt.datetime | None, Missed, str]:
    """(earliest time considered, the most recent due time not after ``now`` or None, how
    many were missed, an error text for a schedule that never fires twice).  The earliest
    time is lastScheduleTime or the creation; with ``with_deadline`` no earlier than
    ``now - startingDeadlineSeconds``.  Missed runs are counted by the interval between two
    firings, as Kubernetes estimates them."""
    earliest = _earliest(cronjob)
    deadline = (cronjob.get("spec") or {}).get("startingDeadlineSeconds")
    if with_deadline and deadline is not None:
        earliest = max(earliest, now - dt.timedelta(seconds=int(deadline)))
    t1 = sched.next(earliest)
    t2 = sched.next(t1) if t1 is not None else None
    if t1 is not None and now < t1:
        return earliest, None, Missed.NONE, ""
    if t1 is not None and t2 is not None and now < t2:
        return earliest, t1, Missed.NONE, ""
    if t1 is None or t2 is None or round((t2 - t1).total_seconds()) < 1:
        return earliest, None, Missed.NONE, _DELTA_ERROR
    between = round((t2 - t1).total_seconds())
    missed = int((now - t1).total_seconds()) // between + 1
    t: dt.datetime | None = sched.next(t1 + dt.timedelta(seconds=(missed - 2) * between))
    latest: dt.datetime | None = None
    while t is not None and t <= now:
        latest = t
        t = sched.next(t)
    return earliest, latest, Missed.MANY if missed > _MAX_MISSED else Missed.FEW, ""


def next_schedule_time(cronjob: Obj, now: dt.datetime, sched: CronSchedule
                       ) -> tuple[dt.datetime | None, Missed, str]:
    """The due time to start a Job for now (honouring startingDeadlineSeconds), how many
    were missed and the schedule's error, if any."""
    _, latest, missed, err = most_recent(cronjob, now, sched, with_deadline=True)
    if latest is None or latest > now:
        return None, missed, err
    return latest, missed, err


def next_delay(cronjob: Obj, now: dt.datetime, sched: CronSchedule) -> float | None:
    """Seconds until the next firing after the last one handled, plus a small margin; None
    when the schedule never fires again."""
    earliest, latest, missed, err = most_recent(cronjob, now, sched, with_deadline=False)
    if err:
        base = now
    elif latest is None:
        base = earliest if missed is Missed.NONE else now
    else:
        base = latest
    nxt = sched.next(base)
    if nxt is None:
        return None
    return max(0.0, (nxt - now).total_seconds()) + NEXT_SCHEDULE_DELTA


def job_name(cronjob_name: str, scheduled: dt.datetime) -> str:
    """``<cronjob>-<scheduled time in minutes since the epoch>``: one name per due time, so a
    retried creation can never start the same run twice."""
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def scheduled_annotation(scheduled: dt.datetime, time_zone: str | None) -> str:
    """RFC 3339 in ``spec.timeZone`` (UTC without one), as Go formats it."""
    zone = zoneinfo.ZoneInfo(time_zone) if time_zone else dt.UTC
    local = scheduled.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    offset = local.utcoffset() or dt.timedelta(0)
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
