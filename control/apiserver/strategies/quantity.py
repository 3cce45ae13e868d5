"""Resource quantities (``500m``, ``1Gi``, ``2``): checked and compared, never reformatted
(parsing is :mod:`control.api.quantity`'s).

A quantity is a JSON string or number in the ``resource.Quantity`` grammar: a decimal number
with an optional binary-SI (``Ki`` … ``Ei``), decimal-SI (``n`` … ``E``) or exponent suffix.
"""

from __future__ import annotations

from typing import Any

from control.api.errors import Cause
from control.api.quantity import quantity_or_none

from .causes import invalid, key

__all__ = ["FORMAT_MESSAGE", "is_quantity", "validate_quantities"]

FORMAT_MESSAGE = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


def is_quantity(value: Any) -> bool:
    return quantity_or_none(value) is not None


def validate_quantities(values: Any, field: str, *, nonnegative: bool = True) -> list[Cause]:
    """A ``ResourceList`` (``{"cpu": "500m"}``): each value a quantity, by default ≥ 0.
    Causes name the entry (``spec.hard[cpu]``)."""
    if values is None:
        return []
    if not isinstance(values, dict):
        return [invalid(field, values, "must be a map of resource names to quantities")]
    errs: list[Cause] = []
    for name, raw in values.items():
        q = quantity_or_none(raw)
        if q is None:
            errs.append(invalid(key(field, name), raw, FORMAT_MESSAGE))
        elif nonnegative and q < 0:
            errs.append(invalid(key(field, name), raw, "must be greater than or equal to 0"))
    return errs
