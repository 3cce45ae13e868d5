"""JSON forms of the apimachinery messages that are not JSON objects (Time, IntOrString, …).

`to_json_form` turns the raw scalar fields of one such message into the value Go's JSON
encoder would write for the Go type behind it. It is pure and fails only with ProtobufError.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from control.apiserver.protobuf.wire import ProtobufError

__all__ = ["ABSENT", "to_json_form"]

ABSENT: Any = object()
"""Returned for a value whose JSON is null (zero Time, empty raw JSON): leave the key out."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GO_ZERO_TIME_SECONDS = -62135596800  # time.Time{}.Unix(): 0001-01-01T00:00:00Z
_NANOS = 1_000_000_000


def _timestamp(seconds: int, nanos: int) -> datetime:
    try:
        return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except (OverflowError, ValueError) as exc:
        raise ProtobufError(f"timestamp {seconds}s is out of range") from exc


def _rfc3339(moment: datetime, *, micro: bool) -> str:
    base = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    return f"{base}.{moment.microsecond:06d}Z" if micro else f"{base}Z"


def _time(fields: dict[str, Any], empty: bool, *, micro: bool) -> Any:
    # Go: empty bytes -> zero time (JSON null); Time drops nanos, MicroTime truncates to µs.
    if empty:
        return ABSENT
    seconds = int(fields.get("seconds", 0))
    nanos = int(fields.get("nanos", 0)) if micro else 0
    nanos = int(nanos / 1000) * 1000  # Duration.Truncate(µs) rounds toward zero
    seconds, nanos = seconds + nanos // _NANOS, nanos % _NANOS
    if seconds == _GO_ZERO_TIME_SECONDS and nanos == 0:
        return ABSENT
    return _rfc3339(_timestamp(seconds, nanos), micro=micro)


def _int_or_string(fields: dict[str, Any]) -> int | str:
    kind = fields.get("type", 0)
    if kind == 0:
        return int(fields.get("intVal", 0))
    if kind == 1:
        return str(fields.get("strVal", ""))
    raise ProtobufError(f"IntOrString has invalid type {kind}")


def _raw_json(fields: dict[str, Any]) -> Any:
    raw = fields.get("raw", fields.get("Raw", b""))
    if not raw:
        return ABSENT
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtobufError("embedded raw object is not valid JSON") from exc


def to_json_form(form: str, fields: dict[str, Any], *, empty: bool) -> Any:
    """The JSON value for a special message, or ABSENT when Go would write null.

    ``fields`` maps the message's proto field names to raw scalars (bytes stay bytes, repeated
    fields are lists, zero values are kept); ``empty`` is true when the message had no bytes.
    Forms: ``time``, ``micro_time``, ``int_or_string``, ``quantity``, ``raw_json``,
    ``string_list``. Raises ProtobufError for an unknown form or a value Go would reject.
    """
    if form == "time":
        return _time(fields, empty, micro=False)
    if form == "micro_time":
        return _time(fields, empty, micro=True)
    if form == "int_or_string":
        return _int_or_string(fields)
    if form == "quantity":
        # A zero Quantity marshals as "0"; otherwise the client's string is kept verbatim.
        return str(fields.get("string", "")) or "0"
    if form == "raw_json":
        return _raw_json(fields)
    if form == "string_list":
        return [str(item) for item in fields.get("items", [])]
    raise ProtobufError(f"unknown special form {form!r}")
