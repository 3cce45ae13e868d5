"""Resource quantities (``500m``, ``1Gi``, ``2``): checked and compared, never reformatted.

A quantity is a JSON string or number in the ``resource.Quantity`` grammar: a decimal number
with an optional binary-SI (``Ki`` … ``Ei``), decimal-SI (``n`` … ``E``) or exponent suffix.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from control.errors import Cause

from .causes import invalid, key

__all__ = ["FORMAT_MESSAGE", "is_quantity", "parse_quantity", "validate_quantities"]

FORMAT_MESSAGE = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
_RE = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]|)"
)
_BINARY = {f"{p}i": Decimal(1024) ** (n + 1) for n, p in enumerate("KMGTPE")}
_DECIMAL = {"": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}


def parse_quantity(value: Any) -> Decimal | None:
    """The value of a quantity, or None if ``value`` is not one (booleans are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _RE.fullmatch(value)
    if m is None:
        return None
    number, suffix = m.groups()
    try:
        base = Decimal(number)
    except InvalidOperation:
        return None
    if suffix[:1] in ("e", "E"):
        return base * Decimal(10) ** int(suffix[1:])
    return base * (_BINARY.get(suffix) or _DECIMAL[suffix])


def is_quantity(value: Any) -> bool:
    return parse_quantity(value) is not None


def validate_quantities(values: Any, field: str, *, nonnegative: bool = True) -> list[Cause]:
    """A ``ResourceList`` (``{"cpu": "500m"}``): each value a quantity, by default ≥ 0.
    Causes name the entry (``spec.hard[cpu]``)."""
    if values is None:
        return []
    if not isinstance(values, dict):
        return [invalid(field, values, "must be a map of resource names to quantities")]
    errs: list[Cause] = []
    for name, raw in values.items():
        q = parse_quantity(raw)
        if q is None:
            errs.append(invalid(key(field, name), raw, FORMAT_MESSAGE))
        elif nonnegative and q < 0:
            errs.append(invalid(key(field, name), raw, "must be greater than or equal to 0"))
    return errs
