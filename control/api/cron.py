"""Cron schedules as CronJobs write them: the five-field standard syntax and the ``@hourly``
family, parsed with the rules and error texts of github.com/robfig/cron/v3's
``ParseStandard`` (what kube-apiserver validates ``spec.schedule`` with and what the CronJob
controller schedules by), and the next time a schedule fires.

Pure: no clock, no I/O.  :func:`parse_schedule` raises :class:`CronError` whose text is
robfig's, so an Invalid cause reads as Kubernetes' does.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CronError", "Schedule", "go_duration", "load_location", "parse_schedule"]

_MAX_INT = 2**63 - 1


class CronError(ValueError):
    """A schedule robfig/cron refuses; ``str()`` is its error text."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: Mapping[str, int] | None = None


_MONTH_NAMES = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DOW_NAMES = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MINUTES, _HOURS = _Bounds(0, 59), _Bounds(0, 23)
_DOM, _MONTHS, _DOW = _Bounds(1, 31), _Bounds(1, 12, _MONTH_NAMES), _Bounds(0, 6, _DOW_NAMES)

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class Schedule:
    """When a parsed schedule fires.  A field's set holds the values it allows; ``dom_star``
    and ``dow_star`` record a ``*``/``?`` day field (robfig's star bit: when either day field
    is a star both must match, otherwise either may).  ``every`` is set for ``@every <d>``,
    ``location`` for a ``TZ=``/``CRON_TZ=`` prefix."""

    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    dom_star: bool = False
    dow_star: bool = False
    every: dt.timedelta | None = None
    location: str | None = None

    def _day_matches(self, t: dt.datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_after(self, t: dt.datetime) -> dt.datetime | None:
        """The first time strictly after ``t`` (to the minute, in ``t``'s own zone and wall
        clock) at which the schedule fires; None if it never does within five years (robfig
        gives up at the same horizon).  ``@every d`` fires at ``t + d`` (whole seconds)."""
        if self.every is not None:
            return t.replace(microsecond=0) + self.every
        t = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t.year + 5
        while t.year <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
            else:
                return t
        return None


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _atoi(expr: str) -> int:
    """Go's ``strconv.Atoi`` then robfig's ``mustParseInt``."""
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise CronError(f"failed to parse int from {expr}: strconv.Atoi: parsing "
                        f"{_go_quote(expr)}: invalid syntax")
    num = int(expr)
    if abs(num) > _MAX_INT:
        raise CronError(f"failed to parse int from {expr}: strconv.Atoi: parsing "
                        f"{_go_quote(expr)}: value out of range")
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _int_or_name(expr: str, b: _Bounds) -> int:
    if b.names is not None and expr.lower() in b.names:
        return b.names[expr.lower()]
    return _atoi(expr)


def _range(expr: str, b: _Bounds) -> tuple[set[int], bool]:
    """One comma-separated term: its values and whether it sets the star bit."""
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    star = False
    if low_high[0] in ("*", "?"):
        start, end, star = b.low, b.high, True
    else:
        start = _int_or_name(low_high[0], b)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], b)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if len(low_high) == 1:  # "N/step" means "N-max/step"
            end = b.high
        if step > 1:
            star = False
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < b.low:
        raise CronError(f"beginning of range ({start}) below minimum ({b.low}): {expr}")
    if end > b.high:
        raise CronError(f"end of range ({end}) above maximum ({b.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def _field(text: str, b: _Bounds) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for term in (t for t in text.split(",") if t):
        got, is_star = _range(term, b)
        values |= got
        star = star or is_star
    return frozenset(values), star


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}


def go_duration(text: str) -> dt.timedelta:
    """Go's ``time.ParseDuration`` (``1h30m``, ``90s``, ``1.5h``); CronError with Go's text."""
    orig, s = text, text
    negative = s[:1] == "-"
    s = s[1:] if s[:1] in "+-" else s
    if s == "0":
        return dt.timedelta(0)
    if not s:
        raise CronError(f"time: invalid duration {_go_quote(orig)}")
    total = 0.0
    while s:
        m = re.match(r"([0-9]*(?:\.[0-9]*)?)", s)
        number = m.group(1) if m else ""
        if number in ("", "."):
            raise CronError(f"time: invalid duration {_go_quote(orig)}")
        s = s[len(number):]
        unit = re.match(r"[^0-9.]*", s)
        name = unit.group(0) if unit else ""
        if not name:
            raise CronError(f"time: missing unit in duration {_go_quote(orig)}")
        if name not in _UNITS:
            raise CronError(f"time: unknown unit {_go_quote(name)} in duration "
                            f"{_go_quote(orig)}")
        total += float(number) * _UNITS[name]
        s = s[len(name):]
    return dt.timedelta(seconds=-total if negative else total)


def load_location(name: str) -> str:
    """Go's ``time.LoadLocation``: "" and "UTC" are UTC, "Local" is the local zone, anything
    else must be in the time zone database.  Returns ``name``; CronError on an unknown zone."""
    if name in ("", "UTC", "Local"):
        return name
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name}") from None
    return name


def _descriptor(spec: str, location: str | None) -> Schedule:
    if spec in _DESCRIPTORS:
        return _fields(_DESCRIPTORS[spec].split(), location)
    every = "@every "
    if spec.startswith(every):
        try:
            delay = go_duration(spec[len(every):])
        except CronError as e:
            raise CronError(f"failed to parse duration {spec}: {e}") from None
        seconds = max(int(delay.total_seconds()), 1)  # robfig: at least a second, whole
        return Schedule(every=dt.timedelta(seconds=seconds), location=location)
    raise CronError(f"unrecognized descriptor: {spec}")


def _fields(fields: list[str], location: str | None) -> Schedule:
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: "
                        f"[{' '.join(fields)}]")
    minutes, _ = _field(fields[0], _MINUTES)
    hours, _ = _field(fields[1], _HOURS)
    days, dom_star = _field(fields[2], _DOM)
    months, _ = _field(fields[3], _MONTHS)
    weekdays, dow_star = _field(fields[4], _DOW)
    return Schedule(minutes, hours, days, months, weekdays, dom_star, dow_star,
                    location=location)


def parse_schedule(spec: str) -> Schedule:
    """``spec`` as robfig/cron's ``ParseStandard`` reads it: an optional ``TZ=``/``CRON_TZ=``
    prefix, then a descriptor (``@daily``, ``@every 5m``) or minute, hour, day of month,
    month (1-12 or jan-dec) and day of week (0-6 or sun-sat), each ``*``, ``?``, a value, a
    range ``a-b``, with an optional ``/step``, comma-separated.  Raises CronError."""
    if not spec:
        raise CronError("empty spec string")
    location: str | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        eq = spec.index("=")
        space = spec.find(" ")
        name = spec[eq + 1:space] if space >= 0 else spec[eq + 1:]
        try:
            location = load_location(name)
        except CronError as e:
            raise CronError(f"provided bad location {name}: {e}") from None
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        return _descriptor(spec, location)
    return _fields(spec.split(), location)
