"""Field descriptors for the protobuf schema tables (the vocabulary the ``schema_*`` modules use).

The tables describe k8s.io/api and k8s.io/apimachinery ``generated.proto`` messages as plain
data: message name -> {field number: Field}. Message names are ``<group>.<version>.<Kind>``
(``core.v1.PodSpec``, ``meta.v1.ObjectMeta``) or ``<package>.<Type>`` for apimachinery helpers
(``intstr.IntOrString``, ``resource.Quantity``, ``runtime.RawExtension``).

The JSON names come from the Go ``json`` struct tags (not the proto field names, which differ
in a few places, e.g. ``BoundObjectReference.uID`` is JSON ``uid``). An empty JSON name marks
a Go embedded struct (``json:",inline"``) whose fields are merged into the parent object.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["FIXED32_TYPES", "FIXED64_TYPES", "SCALAR_TYPES", "VARINT_TYPES", "F", "Field"]

VARINT_TYPES: frozenset[str] = frozenset(
    {"bool", "int32", "int64", "uint32", "uint64", "sint32", "sint64"}
)
FIXED64_TYPES: frozenset[str] = frozenset({"fixed64", "sfixed64", "double"})
FIXED32_TYPES: frozenset[str] = frozenset({"fixed32", "sfixed32", "float"})
SCALAR_TYPES: frozenset[str] = (
    VARINT_TYPES | FIXED64_TYPES | FIXED32_TYPES | frozenset({"string", "bytes"})
)


class Field(NamedTuple):
    """One field of a message.

    ``type`` is a scalar type name, ``"message"`` or ``"map"``. ``ref`` is the message name for
    ``"message"``, and ``(key type, value type)`` for ``"map"`` (the value type may be a
    message name). ``pointer`` is true when the Go field is a pointer (``*int32``, ``*PodSpec``)
    and ``omitempty`` mirrors the Go JSON tag; together they decide whether a zero scalar that
    gogo-protobuf wrote on the wire belongs in the JSON (see :attr:`keep_zero`).
    """

    name: str
    type: str
    repeated: bool = False
    ref: str | tuple[str, str] | None = None
    pointer: bool = False
    omitempty: bool = True

    @property
    def inline(self) -> bool:
        """True for a Go embedded struct whose JSON fields live in the parent object."""
        return self.name == ""

    @property
    def keep_zero(self) -> bool:
        """True when a zero scalar read from the wire must stay in the JSON.

        gogo-protobuf writes every non-pointer scalar, zero or not; Go's JSON encoder then
        drops the zero ones tagged ``omitempty``. A pointer field holding zero (``replicas: 0``)
        or a field without ``omitempty`` (``containerPort``) keeps its zero value.
        """
        return self.pointer or not self.omitempty


def F(name: str, type_: str = "string", flags: str = "") -> Field:
    """Build a Field from the compact table notation.

    ``type_`` is a scalar type, a message name (anything with a dot) or ``map<K,V>``.
    ``flags``: ``r`` repeated, ``p`` Go pointer, ``k`` JSON tag without ``omitempty``.
    Raises ValueError on a malformed spec, so a bad table fails at import time.
    """
    unknown = set(flags) - set("rpk")
    if unknown:
        raise ValueError(f"field {name!r}: unknown flags {sorted(unknown)}")
    repeated, pointer, omitempty = "r" in flags, "p" in flags, "k" not in flags
    kind: str
    ref: str | tuple[str, str] | None
    if type_.startswith("map<") and type_.endswith(">"):
        key, sep, value = type_[4:-1].partition(",")
        if not sep or key not in SCALAR_TYPES or repeated:
            raise ValueError(f"field {name!r}: bad map type {type_!r}")
        kind, ref = "map", (key, value)
    elif type_ in SCALAR_TYPES:
        kind, ref = type_, None
    elif "." in type_:
        kind, ref = "message", type_
    else:
        raise ValueError(f"field {name!r}: unknown type {type_!r}")
    return Field(name, kind, repeated, ref, pointer, omitempty)
