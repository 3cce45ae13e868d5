"""The core/v1 Event table: when, what and about which object, as ``kubectl get events``.

Unlike every other kind, Event's first columns are Last Seen/Type/Reason/Object/Message; its
Name is a priority-1 column at the end.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from control.apiserver.tables._columns import Column, Printer
from control.apiserver.tables._fields import field, mapping, number, parse_time, since, text

__all__ = ["PRINTERS"]


def _seen(event: Mapping[str, Any], now: datetime.datetime) -> tuple[str, str, int]:
    """(Last Seen, First Seen, Count). Events of the events.k8s.io shape carry eventTime and a
    series instead of first/last timestamps and count; a singleton event counts once."""
    if parse_time(field(event, "firstTimestamp")) is not None:
        first = since(field(event, "firstTimestamp"), now)
    else:
        first = since(field(event, "eventTime"), now)
    if parse_time(field(event, "lastTimestamp")) is not None:
        last = since(field(event, "lastTimestamp"), now)
    else:
        last = first
    count = number(event, "count")
    series = field(event, "series")
    if isinstance(series, Mapping):
        last = since(field(series, "lastObservedTime"), now)
        count = number(series, "count")
    elif count == 0:
        count = 1
    return last, first, count


def _target(event: Mapping[str, Any]) -> str:
    """The involved object as "kind/name", the kind lower-cased as kubectl types it."""
    involved = mapping(event, "involvedObject")
    kind, name = text(involved, "kind").lower(), text(involved, "name")
    return f"{kind}/{name}" if name else kind


def _source(event: Mapping[str, Any]) -> str:
    component = text(event, "source", "component") or text(event, "reportingController")
    instance = text(event, "source", "host") or text(event, "reportingInstance")
    return f"{component}, {instance}" if instance else component


def _event_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    last, first, count = _seen(obj, now)
    return [
        last,
        text(obj, "type"),
        text(obj, "reason"),
        _target(obj),
        text(obj, "involvedObject", "fieldPath"),
        _source(obj),
        text(obj, "message").strip(),
        first,
        count,
        text(obj, "metadata", "name"),
    ]


_EVENT_COLUMNS = (
    Column("Last Seen", "Time since the event was last observed."),
    Column("Type", "Type of the event (Normal, Warning)."),
    Column("Reason", "Short, machine understandable reason for the event."),
    Column("Object", "The object this event is about."),
    Column("Subobject", "The part of the object the event is about.", priority=1),
    Column("Source", "The component reporting the event.", priority=1),
    Column("Message", "A human-readable description of the event."),
    Column("First Seen", "Time since the event was first observed.", priority=1),
    Column("Count", "The number of times the event has occurred.", type="integer", priority=1),
    Column("Name", "The event's metadata.name.", priority=1, format="name"),
)

PRINTERS: dict[str, Printer] = {"Event": Printer(_EVENT_COLUMNS, _event_cells)}
