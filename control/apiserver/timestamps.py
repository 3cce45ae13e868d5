"""Timestamps in request bodies normalised as Go's decoder leaves them: every
``metav1.Time`` becomes RFC 3339 in UTC to the second (``2026-01-01T00:00:00Z``), every
``metav1.MicroTime`` the same with six fraction digits (``…:00.123456Z``), whatever offset or
precision the client sent; a string that is no RFC 3339 time is a 400, as
``time.Parse`` refuses it.  Only kinds with a field table are walked, and only along the
fields that can lead to a timestamp (the paths are computed once per message).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from control.api.errors import BadRequest
from control.api.kinds.schema import MESSAGES, SPECIAL_FORMS, message_for

__all__ = ["format_timestamp", "normalize_times"]

_TIME_FORMS = {"time", "micro_time"}
# RFC 3339 as Go's time.Parse(time.RFC3339, …) reads it: an offset or Z is required
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def format_timestamp(text: str, micro: bool, where: str) -> str:
    """``text`` (RFC 3339, any offset and precision) as Go writes a ``metav1.Time`` (UTC,
    seconds, the fraction truncated) or, with ``micro``, a ``metav1.MicroTime``; BadRequest
    naming ``where`` if it is no RFC 3339 time."""
    if not _RFC3339.fullmatch(text):
        raise BadRequest(f'{where}: parsing time "{text}" as "2006-01-02T15:04:05Z07:00": '
                         "cannot parse it as an RFC 3339 time")
    head, frac, zone = text[:19], "", text[19:]
    if zone.startswith("."):
        digits = re.match(r"\.(\d+)", zone)
        assert digits is not None
        frac, zone = digits.group(1), zone[digits.end():]
    try:
        t = dt.datetime.fromisoformat(head + (zone.upper() if zone != "z" else "Z"))
    except ValueError as e:
        raise BadRequest(f'{where}: parsing time "{text}": {e}') from None
    t = t.astimezone(dt.UTC)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + (frac + "000000")[:6] + "Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def _plan(message: str) -> tuple[tuple[str, str, bool, bool], ...]:
    """``(json name, what, repeated, is_map)`` for each field of ``message`` that is a time
    (``what`` = "time"/"micro_time") or may contain one (``what`` = the message name)."""
    out = []
    for f in MESSAGES.get(message, {}).values():
        ref = f.ref[1] if f.type == "map" and isinstance(f.ref, tuple) else f.ref
        if not isinstance(ref, str):
            continue
        form = SPECIAL_FORMS.get(ref)
        if form in _TIME_FORMS:
            out.append((f.name, form, f.repeated, f.type == "map"))
        elif ref in MESSAGES and form is None and _reaches_time(ref):
            out.append((f.name, ref, f.repeated, f.type == "map"))
    return tuple(out)


@functools.cache
def _reaches_time(message: str, _seen: frozenset[str] = frozenset()) -> bool:
    for f in MESSAGES.get(message, {}).values():
        ref = f.ref[1] if f.type == "map" and isinstance(f.ref, tuple) else f.ref
        if not isinstance(ref, str):
            continue
        if SPECIAL_FORMS.get(ref) in _TIME_FORMS:
            return True
        if ref in MESSAGES and ref not in SPECIAL_FORMS and ref not in _seen and \
                _reaches_time(ref, _seen | {message}):
            return True
    return False


def _walk(value: dict[str, Any], message: str, path: str) -> None:
    for name, what, repeated, is_map in _plan(message):
        inline = name == ""
        if inline:
            _walk(value, what, path)
            continue
        v = value.get(name)
        if v is None:
            continue
        where = f"{path}.{name}" if path else name
        if is_map and isinstance(v, dict):
            items: list[tuple[Any, Any]] = list(v.items())
            holder: Any = v
        elif repeated and isinstance(v, list):
            items, holder = list(enumerate(v)), v
        else:
            items, holder = [(name, v)], value
        for key, item in items:
            if what in _TIME_FORMS:
                if isinstance(item, str) and item:
                    holder[key] = format_timestamp(item, what == "micro_time", where)
            elif isinstance(item, dict):
                _walk(item, what, where)


def normalize_times(api_version: str, kind: str, obj: dict[str, Any]) -> None:
    """Rewrite (in place) every timestamp field of ``obj`` as Go would serialise it; 400 for
    one that is not an RFC 3339 time.  Kinds without a field table are left as they are."""
    message = message_for(api_version, kind)
    if message is not None:
        _walk(obj, message, "")
