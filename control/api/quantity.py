"""Resource quantities (``500m``, ``1Gi``, ``2e3``): exact parsing and Kubernetes' canonical text.

Strategies validate them, and admission compares and adds container requests, LimitRange bounds and quota usage with these.
Values are exact ``Fraction``s rounded up to a multiple of 1n, as apimachinery's ``Quantity``
does; the canonical form (``1000m`` → ``1``, ``1024Mi`` → ``1Gi``, ``1.5`` → ``1500m``) is the
one Kubernetes prints in error messages and writes into ``ResourceQuota.status.used``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "BINARY_SI",
    "DECIMAL_EXPONENT",
    "DECIMAL_SI",
    "Quantity",
    "QuantityError",
    "format_quantity",
    "parse_quantity",
    "quantity_or_none",
]

BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"
DECIMAL_EXPONENT = "DecimalExponent"

# The text of apimachinery's parse error, which clients show for a malformed quantity.
_SHAPE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

_NUMBER = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?(.*)", re.ASCII | re.DOTALL)
_EXPONENT = re.compile(r"[eE]([+-]?\d+)", re.ASCII)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = {power: suffix for suffix, power in _BINARY.items()}
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    """A string that is not a quantity; its text is the one kube-apiserver reports."""

    def __init__(self, text: str) -> None:
        super().__init__(f"quantities must match the regular expression '{_SHAPE}'")
        self.text = text


@dataclass(frozen=True, eq=False)
class Quantity:
    """An exact amount and the notation it is printed in (``format``: one of the three).

    Addition keeps the left operand's notation unless it is zero (then the right one's), as
    ``Quantity.Add`` does; comparison is by value only."""

    value: Fraction
    format: str = DECIMAL_SI

    @classmethod
    def parse(cls, text: str | float) -> Quantity:
        """Parse a quantity as it appears in JSON (a string, or a bare number)."""
        value, fmt = _parse(text)
        return cls(value, fmt)

    @classmethod
    def of(cls, n: int | Fraction) -> Quantity:
        return cls(Fraction(n), DECIMAL_SI)

    def __add__(self, other: Quantity) -> Quantity:
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value + other.value, fmt)

    def __sub__(self, other: Quantity) -> Quantity:
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value - other.value, fmt)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value

    def __gt__(self, other: Quantity) -> bool:
        return self.value > other.value

    def __ge__(self, other: Quantity) -> bool:
        return self.value >= other.value

    def __str__(self) -> str:
        return format_quantity(self.value, self.format)

    def milli(self) -> int:
        """``MilliValue()``: the value in thousandths, rounded up (away from zero)."""
        return _ceil_away(self.value * 1000)


def parse_quantity(text: str | float) -> Fraction:
    """The exact value of a quantity; raises :class:`QuantityError` for anything else.

    Accepts an optional sign, digits with an optional fraction (``1``, ``.5``, ``2.``), then
    one suffix: binary ``Ki``..``Ei``, decimal ``n u m k M G T P E`` or none, or an exponent
    ``e3``/``E-2``.  Non-zero values finer than 1n are rounded up to the next nano, so a tiny
    request never becomes zero."""
    return _parse(text)[0]


def quantity_or_none(value: object) -> Fraction | None:
    """The value of ``value`` if it is a quantity (a JSON string or number, not a boolean),
    else None: for validators that report the bad value themselves."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return _parse(value)[0]
    except QuantityError:
        return None


def _parse(text: str | float) -> tuple[Fraction, str]:
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise QuantityError(repr(text))
    raw = text if isinstance(text, str) else repr(text)
    match = _NUMBER.fullmatch(raw)
    if match is None or not raw:
        raise QuantityError(raw)
    sign, whole, frac, suffix = match.groups()
    frac = frac or ""
    if not whole and not frac:
        raise QuantityError(raw)
    number = Fraction(int(whole or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
    if suffix in _BINARY:
        value, fmt = number * 1024 ** _BINARY[suffix], BINARY_SI
    elif suffix in _DECIMAL:
        value, fmt = number * Fraction(10) ** _DECIMAL[suffix], DECIMAL_SI
    elif (exp := _EXPONENT.fullmatch(suffix)) is not None:
        value, fmt = number * Fraction(10) ** int(exp.group(1)), DECIMAL_EXPONENT
    else:
        raise QuantityError(raw)
    if fmt == BINARY_SI and 0 < value < 1:
        fmt = DECIMAL_SI
    value = _round_nano(value)
    return (-value if sign == "-" else value), fmt


def format_quantity(value: Fraction | int, fmt: str = DECIMAL_SI) -> str:
    """Canonical text: no fractional digits, the largest suffix that loses nothing.

    ``BinarySI`` values that are fractional or below 1024 in magnitude print as ``DecimalSI``
    (``1536`` stays ``1536``, ``1Gi``-multiples get ``Gi``); ``DecimalExponent`` prints
    ``e<3k>``; ``DecimalSI`` prints ``n``..``E``."""
    value = _round_nano(Fraction(value))
    sign, mag = ("-" if value < 0 else ""), abs(value)
    if fmt == BINARY_SI and mag >= 1024 and mag.denominator == 1:
        n, power = mag.numerator, 0
        while power < 6 and n % 1024 == 0:
            n, power = n // 1024, power + 1
        return f"{sign}{n}{_BINARY_SUFFIX.get(power, '')}"
    if mag == 0:
        return "0"
    exp = -9
    mantissa = mag * 10**9  # an integer: every value is a multiple of 1n
    while exp < 18 and mantissa % 1000 == 0:
        mantissa, exp = mantissa / 1000, exp + 3
    n = int(mantissa)
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{n}" + (f"e{exp}" if exp else "")
    return f"{sign}{n}{_DECIMAL_SUFFIX[exp]}"


def _round_nano(value: Fraction) -> Fraction:
    if (value / _NANO).denominator == 1:
        return value
    return _ceil_away(value * 10**9) * _NANO


def _ceil_away(x: Fraction) -> int:
    return math.ceil(x) if x >= 0 else -math.ceil(-x)
