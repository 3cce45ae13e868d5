"""Tables for policy/v1 PodDisruptionBudget and scheduling.k8s.io/v1 PriorityClass."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from control.apiserver.tables._columns import AGE, NAME, Column, Printer
from control.apiserver.tables._fields import age, field, number, text

__all__ = ["PRINTERS"]


def _int_or_string(obj: Mapping[str, Any], *path: str) -> str:
    """An IntOrString as ``IntOrString.String()`` prints it; "N/A" when unset."""
    value = field(obj, *path)
    if isinstance(value, bool) or value is None:
        return "N/A"
    return str(value)


def _pdb_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [
        text(obj, "metadata", "name"),
        _int_or_string(obj, "spec", "minAvailable"),
        _int_or_string(obj, "spec", "maxUnavailable"),
        number(obj, "status", "disruptionsAllowed"),
        age(obj, now),
    ]


def _priority_class_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [
        text(obj, "metadata", "name"),
        number(obj, "value"),
        field(obj, "globalDefault") is True,
        age(obj, now),
        text(obj, "preemptionPolicy", default="<unset>"),
    ]


PRINTERS: dict[str, Printer] = {
    "PodDisruptionBudget": Printer(
        (
            NAME,
            Column("Min Available", "The minimum number of pods that must be available."),
            Column("Max Unavailable", "The maximum number of pods that may be unavailable."),
            Column("Allowed Disruptions",
                   "Calculated number of pods that may be disrupted at this time.",
                   type="integer"),
            AGE,
        ),
        _pdb_cells,
    ),
    "PriorityClass": Printer(
        (
            NAME,
            Column("Value", "The integer priority pods of this class receive.", type="integer"),
            Column("Global-Default", "Whether pods naming no class get this one.",
                   type="boolean"),
            AGE,
            Column("PreemptionPolicy", "Whether pods of this class may preempt lower-priority "
                   "pods."),
        ),
        _priority_class_cells,
    ),
}
