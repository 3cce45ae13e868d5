"""Protobuf wire format, read safely: the bottom layer of the apiserver's protobuf body decoder.

Reads the four wire types Kubernetes uses (varint, 64-bit, length-delimited, 32-bit) from an
untrusted byte string. Every read is bounds-checked against the enclosing message, so malformed
input raises `ProtobufError` and nothing else: never IndexError, never a loop that does not
consume input. Groups (wire types 3 and 4, unused by Kubernetes) are rejected. Nothing here
interprets field meanings; that is `control.apiserver.protobuf.decode`'s job.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "WIRE_FIXED32",
    "WIRE_FIXED64",
    "WIRE_LEN",
    "WIRE_VARINT",
    "ProtobufError",
    "Scalar",
    "WireValue",
    "iter_fields",
    "read_packed",
    "read_varint",
    "scalar_value",
]

WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LEN = 2
WIRE_FIXED32 = 5
_WIRE_GROUP = (3, 4)

MAX_DEPTH = 64  # message nesting limit (kube objects nest < 20 deep)
MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's default request body limit for objects
_MAX_FIELD_NUMBER = (1 << 29) - 1
_U64 = 1 << 64

Scalar = bool | int | float | str | bytes
"""A decoded scalar field value (before bytes are rendered as base64 for JSON)."""

WireValue = int | memoryview
"""A field's raw value: an int for varint/fixed wire types, a memoryview for length-delimited."""


class ProtobufError(ValueError):
    """The body is not acceptable protobuf: malformed, too large, too deep, or unsupported.

    ``unsupported_kind`` is set when the envelope is well formed but names a kind this server
    cannot decode (HTTP 415 rather than 400).
    """

    def __init__(self, message: str, *, unsupported_kind: bool = False) -> None:
        super().__init__(message)
        self.unsupported_kind = unsupported_kind


def read_varint(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    """Read one base-128 varint at ``pos``; return ``(value, next position)``.

    ``value`` is the unsigned 64-bit number. Fails if the varint runs past ``end``, is longer
    than 10 bytes, or does not fit in 64 bits.
    """
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        if shift == 63 and byte > 1:
            raise ProtobufError("varint overflows 64 bits")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint longer than 10 bytes")


def iter_fields(data: memoryview) -> Iterator[tuple[int, int, WireValue]]:
    """Yield ``(field number, wire type, value)`` for each field of one message, in wire order.

    A length-delimited value is a zero-copy slice of ``data``. Each step consumes at least one
    byte, so iteration ends after at most ``len(data)`` fields. Raises ProtobufError on a bad
    tag, an unknown or group wire type, or a value running past the end of ``data``.
    """
    end = len(data)
    pos = 0
    while pos < end:
        tag, pos = read_varint(data, pos, end)
        if tag > 0xFFFFFFFF:
            raise ProtobufError("field tag too large")
        number, wire_type = tag >> 3, tag & 7
        if number == 0 or number > _MAX_FIELD_NUMBER:
            raise ProtobufError(f"invalid field number {number}")
        value: WireValue
        if wire_type == WIRE_VARINT:
            value, pos = read_varint(data, pos, end)
        elif wire_type == WIRE_FIXED64:
            if end - pos < 8:
                raise ProtobufError(f"truncated 64-bit value in field {number}")
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wire_type == WIRE_FIXED32:
            if end - pos < 4:
                raise ProtobufError(f"truncated 32-bit value in field {number}")
            value = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        elif wire_type == WIRE_LEN:
            length, pos = read_varint(data, pos, end)
            if length > end - pos:
                raise ProtobufError(f"length of field {number} runs past the end of its message")
            value = data[pos : pos + length]
            pos += length
        elif wire_type in _WIRE_GROUP:
            raise ProtobufError(f"field {number}: groups are not supported")
        else:
            raise ProtobufError(f"field {number}: invalid wire type {wire_type}")
        yield number, wire_type, value


def read_packed(data: memoryview, wire_type: int) -> list[int]:
    """Unpack a packed repeated field holding values of ``wire_type`` (varint/fixed32/fixed64).

    Raises ProtobufError when the payload is not a whole number of values.
    """
    end = len(data)
    values: list[int] = []
    if wire_type == WIRE_VARINT:
        pos = 0
        while pos < end:
            value, pos = read_varint(data, pos, end)
            values.append(value)
        return values
    width = 8 if wire_type == WIRE_FIXED64 else 4
    if end % width:
        raise ProtobufError("packed fixed-width field has a partial value")
    for pos in range(0, end, width):
        values.append(int.from_bytes(data[pos : pos + width], "little"))
    return values


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


_EXPECTED_WIRE: dict[str, int] = {
    "bool": WIRE_VARINT,
    "int32": WIRE_VARINT,
    "int64": WIRE_VARINT,
    "uint32": WIRE_VARINT,
    "uint64": WIRE_VARINT,
    "sint32": WIRE_VARINT,
    "sint64": WIRE_VARINT,
    "fixed64": WIRE_FIXED64,
    "sfixed64": WIRE_FIXED64,
    "double": WIRE_FIXED64,
    "fixed32": WIRE_FIXED32,
    "sfixed32": WIRE_FIXED32,
    "float": WIRE_FIXED32,
    "string": WIRE_LEN,
    "bytes": WIRE_LEN,
}


def scalar_value(type_name: str, wire_type: int, raw: WireValue) -> Scalar:
    """Interpret one wire value as the scalar protobuf type ``type_name``.

    Integers follow Go's conversions (an ``int32`` is the low 32 bits, sign-extended); strings
    are UTF-8 with invalid bytes replaced, as Go's JSON encoder does. Raises ProtobufError when
    the wire type does not match the declared type, or for NaN/infinity (JSON cannot hold them).
    """
    expected = _EXPECTED_WIRE.get(type_name)
    if expected is None:
        raise ProtobufError(f"unsupported scalar type {type_name}")
    if wire_type != expected:
        raise ProtobufError(f"wrong wire type {wire_type} for a {type_name} field")
    if isinstance(raw, memoryview):
        return raw.tobytes() if type_name == "bytes" else str(raw, "utf-8", "replace")
    if type_name == "bool":
        return raw != 0
    if type_name in ("int32", "sfixed32"):
        return _signed(raw, 32)
    if type_name in ("int64", "sfixed64"):
        return _signed(raw, 64)
    if type_name == "uint32":
        return raw & 0xFFFFFFFF
    if type_name == "sint32":
        return _unzigzag(raw & 0xFFFFFFFF)
    if type_name == "sint64":
        return _unzigzag(raw)
    if type_name in ("double", "float"):
        width, code = (8, "<d") if type_name == "double" else (4, "<f")
        number = float(struct.unpack(code, raw.to_bytes(width, "little"))[0])
        if not math.isfinite(number):
            raise ProtobufError(f"non-finite {type_name} has no JSON form")
        return number
    return raw % _U64  # uint64, fixed64, fixed32
