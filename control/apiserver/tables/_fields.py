"""Defensive readers for JSON objects and the shared cell formats of the Table printers.

Objects reach the printers straight from users and the store, so any field may be missing or
of the wrong shape. Every reader here returns a neutral value (``""``, ``0``, ``{}``, ``[]``,
``None``) instead of raising, so a printer never fails with KeyError or TypeError.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from control.api.selectors import SelectorError, from_label_selector

NONE = "<none>"
UNKNOWN = "<unknown>"


def field(obj: Any, *path: str) -> Any:
    """The value at ``path`` in nested mappings, or None when any step is missing or not a
    mapping."""
    cur = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def text(obj: Any, *path: str, default: str = "") -> str:
    """A string field; ``default`` when missing or empty. Numbers are rendered, other shapes
    count as missing."""
    value = field(obj, *path)
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) and value else default


def number(obj: Any, *path: str) -> int:
    """An integer field; 0 when missing or not a number (booleans are not numbers)."""
    value = field(obj, *path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def optional_number(obj: Any, *path: str) -> int | None:
    """An integer field, or None when missing or not a number (for Go's ``*int32``)."""
    value = field(obj, *path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def mapping(obj: Any, *path: str) -> Mapping[str, Any]:
    """A mapping field; empty when missing or of another type."""
    value = field(obj, *path)
    return value if isinstance(value, Mapping) else {}


def items(obj: Any, *path: str) -> list[Mapping[str, Any]]:
    """The mapping elements of a list field; non-mapping elements are skipped."""
    value = field(obj, *path)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def strings(obj: Any, *path: str) -> list[str]:
    """The string elements of a list field; other elements are skipped."""
    value = field(obj, *path)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def condition_status(conditions: list[Mapping[str, Any]], kind: str) -> str | None:
    """The status ("True", "False", "Unknown") of the first condition of type ``kind``."""
    for cond in conditions:
        if cond.get("type") == kind:
            return text(cond, "status")
    return None


# --- time ---------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 timestamp (metav1.Time or MicroTime) as an aware datetime, or None when it is
    missing or unparsable. A timestamp without an offset is taken as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def human_duration(seconds: float) -> str:
    """A duration as kubectl prints ages: at most two units and ~2 significant figures.

    "45s", "3m2s", "10m", "2h5m", "12h", "3d4h", "30d", "2y", "3y10d"; up to two minutes is in
    seconds. A duration below -1s is "<invalid>" and a smaller negative one "0s", to tolerate
    clock skew between the writer of a timestamp and the reader.
    """
    if not math.isfinite(seconds) or int(seconds) < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    total = int(seconds)
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        return _two_units(minutes, "m", total % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return _two_units(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return _two_units(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _two_units(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _two_units(major: int, major_unit: str, minor: int, minor_unit: str) -> str:
    suffix = f"{minor}{minor_unit}" if minor else ""
    return f"{major}{major_unit}{suffix}"


def since(value: Any, now: datetime.datetime) -> str:
    """The human age of timestamp ``value`` at ``now``; "<unknown>" when it is missing."""
    then = parse_time(value)
    if then is None:
        return UNKNOWN
    return human_duration((aware(now) - then).total_seconds())


def aware(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` with a time zone; a naive datetime is taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def age(obj: Any, now: datetime.datetime) -> str:
    """The Age cell: time since ``metadata.creationTimestamp``."""
    return since(field(obj, "metadata", "creationTimestamp"), now)


def created_at(obj: Any) -> str:
    """The "Created At" (type date) cell: the creation time in RFC 3339 UTC, "<unknown>" when
    missing; an unparsable value is passed through as written."""
    raw = field(obj, "metadata", "creationTimestamp")
    then = parse_time(raw)
    if then is None:
        return raw if isinstance(raw, str) and raw else UNKNOWN
    return then.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- labels, selectors, pod templates -----------------------------------------------------


def format_labels(labels: Mapping[str, Any]) -> str:
    """``k1=v1,k2=v2`` sorted by key (a Service selector, a node selector); "<none>" if
    empty."""
    if not labels:
        return NONE
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def format_label_selector(spec: Any) -> str:
    """A metav1.LabelSelector (matchLabels/matchExpressions) in selector syntax; "<none>" when
    missing or selecting everything, "<error>" when it is not a valid selector."""
    if spec is None:
        return NONE
    if not isinstance(spec, Mapping):
        return "<error>"
    try:
        rendered = str(from_label_selector(spec))
    except (SelectorError, AttributeError, TypeError):
        # A selector written by a user may be malformed in shape as well as in content.
        return "<error>"
    return rendered or NONE


def template_containers(obj: Any) -> tuple[str, str]:
    """The Containers and Images cells of a workload: names and images of
    ``spec.template.spec.containers``, each joined with ","."""
    containers = items(obj, "spec", "template", "spec", "containers")
    names = ",".join(text(c, "name") for c in containers)
    images = ",".join(text(c, "image") for c in containers)
    return names, images
