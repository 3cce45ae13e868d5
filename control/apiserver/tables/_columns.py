"""Column definitions and the printer type shared by the per-group printer modules.

A :class:`Printer` pairs a kind's column definitions with a pure function from one object to
its row cells; the cells are in column order, one per column, priority-1 columns included
(the server always sends the wide set, kubectl hides priority 1 unless ``-o wide``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from control.apiserver.tables._fields import created_at, text

CellsFn = Callable[[Mapping[str, Any], datetime.datetime], list[Any]]


@dataclass(frozen=True)
class Column:
    """One metav1.TableColumnDefinition. ``type`` is an OpenAPI type ("string", "integer",
    "date"); ``format`` "name" marks the column holding the object's name."""

    name: str
    description: str
    type: str = "string"
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        """The JSON form of this column definition (a fresh dict each call)."""
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class Printer:
    """A kind's table layout: ``cells(obj, now)`` returns one value per column, in order."""

    columns: tuple[Column, ...]
    cells: CellsFn


NAME = Column(
    "Name",
    "Name must be unique within a namespace; the object's metadata.name.",
    format="name",
)
AGE = Column("Age", "Time since the object's metadata.creationTimestamp.")
CREATED_AT = Column("Created At", "The object's metadata.creationTimestamp.", type="date")
CONTAINERS = Column("Containers", "Names of each container in the template.", priority=1)
IMAGES = Column("Images", "Images referenced by each container in the template.", priority=1)
SELECTOR = Column("Selector", "Label query over the pods this object manages.", priority=1)


def _created_cells(obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    return [text(obj, "metadata", "name"), created_at(obj)]


# Name and creation time: kube's layout for kinds without a printer of their own.
CREATED = Printer((NAME, CREATED_AT), _created_cells)
