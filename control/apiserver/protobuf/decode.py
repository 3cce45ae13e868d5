"""Decode a kubectl protobuf request body into the JSON object it stands for.

Data flow: the apiserver's decode stage sees ``Content-Type: application/vnd.kubernetes.protobuf``
and calls `decode_request(body)`; the result enters the same path as a JSON body (defaulting,
strict field validation, admission). The envelope is ``k8s\\0`` + runtime.Unknown
``{typeMeta{apiVersion=1, kind=2}=1, raw=2, contentEncoding=3, contentType=4}``; ``raw`` is
the object in k8s.io/api ``generated.proto`` encoding, walked with the tables in
`control.api.kinds.schema`. Only bytes and our own tables drive decoding (no pickle, eval or
dynamic imports), and every failure is a ProtobufError.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from control.api.kinds.fields import Field
from control.api.kinds.schema import MESSAGES, SPECIAL_FORMS, message_for, supported_kinds
from control.apiserver.protobuf.forms import ABSENT, to_json_form
from control.apiserver.protobuf.wire import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    ProtobufError,
    Scalar,
    WireValue,
    iter_fields,
    read_packed,
    scalar_value,
)

__all__ = [
    "MAGIC",
    "PROTOBUF_CONTENT_TYPE",
    "DecodedRequest",
    "Envelope",
    "decode_message",
    "decode_request",
    "decode_request_full",
    "read_envelope",
]

MAGIC = b"k8s\x00"
PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_INLINE = "\x00inline:"  # placeholder key prefix; never a JSON name (those are identifiers)


@dataclass(frozen=True)
class Envelope:
    """The runtime.Unknown wrapper around a protobuf object."""

    api_version: str
    kind: str
    raw: bytes
    content_encoding: str
    content_type: str


@dataclass(frozen=True)
class DecodedRequest:
    """A decoded body: the JSON object (with apiVersion and kind) and the fields we skipped.

    ``unknown_fields`` lists paths such as ``spec.template.#42`` (``#`` + field number) of
    fields the schema does not know, so the apiserver can refuse them under
    ``fieldValidation=Strict`` or warn under ``Warn``.
    """

    api_version: str
    kind: str
    obj: dict[str, Any]
    unknown_fields: tuple[str, ...]


def read_envelope(body: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> Envelope:
    """Check the magic and size, and parse the runtime.Unknown envelope.

    Raises ProtobufError for a body over ``max_bytes``, a missing ``k8s\\0`` prefix, malformed
    wire data, or a compressed / non-protobuf inner content type.
    """
    if len(body) > max_bytes:
        raise ProtobufError(f"protobuf body of {len(body)} bytes exceeds {max_bytes}")
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf body does not start with the Kubernetes magic 'k8s\\x00'")
    data = memoryview(body)[len(MAGIC) :]
    strings = {1: "", 3: "", 4: ""}
    type_meta = {1: "", 2: ""}
    raw = b""
    for number, wire_type, value in iter_fields(data):
        if number not in (1, 2, 3, 4):
            continue  # runtime.Unknown has no other fields; Go skips unknown ones too
        if not isinstance(value, memoryview):
            raise ProtobufError(f"envelope field {number} has wrong wire type {wire_type}")
        if number == 1:
            for sub, sub_wire, sub_value in iter_fields(value):
                if sub in type_meta:
                    type_meta[sub] = str(scalar_value("string", sub_wire, sub_value))
        elif number == 2:
            raw = bytes(value)
        else:
            strings[number] = str(scalar_value("string", wire_type, value))
    if strings[3]:
        raise ProtobufError(f"unsupported protobuf contentEncoding {strings[3]!r}")
    if strings[4] and strings[4] != PROTOBUF_CONTENT_TYPE:
        raise ProtobufError(f"unsupported inner contentType {strings[4]!r}")
    return Envelope(type_meta[1], type_meta[2], raw, strings[3], strings[4])


def decode_request_full(body: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> DecodedRequest:
    """Decode a whole request body; see `DecodedRequest`.

    Raises ProtobufError with ``unsupported_kind=True`` (answer 415) when the envelope names a
    kind without a table, listing the supported ones; plain ProtobufError (answer 400) for any
    other problem.
    """
    envelope = read_envelope(body, max_bytes=max_bytes)
    if not envelope.api_version or not envelope.kind:
        raise ProtobufError("protobuf envelope lacks apiVersion or kind")
    message = message_for(envelope.api_version, envelope.kind)
    if message is None:
        raise ProtobufError(
            f"protobuf bodies of kind {envelope.kind!r} in {envelope.api_version!r} are not "
            f"supported; send JSON instead. Supported: {', '.join(supported_kinds())}",
            unsupported_kind=True,
        )
    obj, unknown = decode_message(envelope.raw, message)
    full = {"kind": envelope.kind, "apiVersion": envelope.api_version, **obj}
    return DecodedRequest(envelope.api_version, envelope.kind, full, tuple(unknown))


def decode_request(
    body: bytes, *, max_bytes: int = MAX_BODY_BYTES
) -> tuple[str, str, dict[str, Any]]:
    """``(apiVersion, kind, object)`` for a protobuf body; see `decode_request_full`."""
    decoded = decode_request_full(body, max_bytes=max_bytes)
    return decoded.api_version, decoded.kind, decoded.obj


def decode_message(data: bytes | memoryview, message: str) -> tuple[dict[str, Any], list[str]]:
    """Decode one message of type ``message`` into its JSON object and unknown-field paths.

    The object uses JSON names, drops zero scalars Go would omit (see Field.keep_zero), keeps
    present sub-objects even when empty (``emptyDir: {}``), renders bytes as base64 and special
    messages in their JSON form. Raises ProtobufError for malformed input or nesting deeper than
    MAX_DEPTH; KeyError only if ``message`` is not in the schema (a programming error).
    """
    walker = _Walker()
    table = MESSAGES[message]
    obj = walker.message(memoryview(data), message, table, depth=1, path="")
    return obj, walker.unknown


def _join(path: str, name: str) -> str:
    """``path.name``; an inline (nameless) field shares its parent's path."""
    if not name:
        return path
    return f"{path}.{name}" if path else name


def _json_scalar(value: Scalar) -> Any:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value


class _Walker:
    """One decoding pass; collects unknown-field paths in ``unknown``."""

    def __init__(self) -> None:
        self.unknown: list[str] = []

    def message(
        self, data: memoryview, name: str, table: dict[int, Field], *, depth: int, path: str
    ) -> dict[str, Any]:
        if depth > MAX_DEPTH:
            raise ProtobufError(f"objects nested deeper than {MAX_DEPTH} levels at {path!r}")
        out: dict[str, Any] = {}
        singular: dict[int, list[memoryview]] = {}
        for number, wire_type, raw in iter_fields(data):
            field = table.get(number)
            if field is None:
                self.unknown.append(_join(path, f"#{number}"))
                continue
            key = field.name or f"{_INLINE}{number}"
            where = _join(path, field.name)
            if field.type in ("message", "map") and not isinstance(raw, memoryview):
                raise ProtobufError(f"{where}: wrong wire type {wire_type} for a {field.type}")
            if field.type == "map":
                assert isinstance(raw, memoryview) and isinstance(field.ref, tuple)
                entry_key, entry_value = self.map_entry(raw, field.ref, depth=depth + 1, path=where)
                out.setdefault(key, {})[entry_key] = entry_value
            elif field.type == "message" and field.repeated:
                assert isinstance(raw, memoryview) and isinstance(field.ref, str)
                items = out.setdefault(key, [])
                value = self.value(raw, field.ref, depth=depth + 1, path=f"{where}[{len(items)}]")
                items.append(None if value is ABSENT else value)
            elif field.type == "message":
                assert isinstance(raw, memoryview)
                singular.setdefault(number, []).append(raw)
                out.setdefault(key, None)  # fixes the key's position; filled in below
            elif field.repeated:
                out.setdefault(key, []).extend(self.repeated_scalars(field, wire_type, raw, where))
            else:
                value = scalar_value(field.type, wire_type, raw)
                if value or field.keep_zero:
                    out[key] = _json_scalar(value)
                else:
                    out.pop(key, None)  # a later zero overrides an earlier value, as in Go
        for number, chunks in singular.items():
            # Repeated occurrences of a singular message merge (protobuf semantics).
            field = table[number]
            key = field.name or f"{_INLINE}{number}"
            chunk = chunks[0] if len(chunks) == 1 else memoryview(b"".join(chunks))
            assert isinstance(field.ref, str)
            value = self.value(chunk, field.ref, depth=depth + 1, path=_join(path, field.name))
            if value is ABSENT:
                del out[key]
            else:
                out[key] = value
        return _expand_inline(out)

    def value(self, data: memoryview, name: str, *, depth: int, path: str) -> Any:
        """A message's JSON value: an object, or its special form (possibly ABSENT)."""
        form = SPECIAL_FORMS.get(name)
        if form is None:
            return self.message(data, name, MESSAGES[name], depth=depth, path=path)
        return to_json_form(form, self.special_fields(data, name, path), empty=len(data) == 0)

    def special_fields(self, data: memoryview, name: str, path: str) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for number, wire_type, raw in iter_fields(data):
            field = MESSAGES[name].get(number)
            if field is None or field.type not in _RAW_SCALARS:
                self.unknown.append(_join(path, f"#{number}"))
            elif field.repeated:
                fields.setdefault(field.name, []).extend(
                    self.repeated_scalars(field, wire_type, raw, path, as_json=False)
                )
            else:
                fields[field.name] = scalar_value(field.type, wire_type, raw)
        return fields

    def map_entry(
        self, data: memoryview, types: tuple[str, str], *, depth: int, path: str
    ) -> tuple[str, Any]:
        if depth > MAX_DEPTH:
            raise ProtobufError(f"objects nested deeper than {MAX_DEPTH} levels at {path!r}")
        key_type, value_type = types
        key: Any = "" if key_type == "string" else 0
        value_raw: memoryview | None = None
        value: Any = None
        for number, wire_type, raw in iter_fields(data):
            if number == 1:
                key = scalar_value(key_type, wire_type, raw)
            elif number == 2 and value_type in MESSAGES:
                if not isinstance(raw, memoryview):
                    raise ProtobufError(f"{path}: wrong wire type {wire_type} for a map value")
                value_raw = raw
            elif number == 2:
                value = _json_scalar(scalar_value(value_type, wire_type, raw))
            else:
                self.unknown.append(_join(path, f"#{number}"))
        json_key = key if isinstance(key, str) else str(key)
        if value_type in MESSAGES:
            decoded = self.value(
                value_raw if value_raw is not None else memoryview(b""),
                value_type,
                depth=depth + 1,
                path=_join(path, json_key),
            )
            return json_key, None if decoded is ABSENT else decoded
        if value is None:
            value = _json_scalar(_ZERO[value_type])
        return json_key, value

    def repeated_scalars(
        self, field: Field, wire_type: int, raw: WireValue, where: str, *, as_json: bool = True
    ) -> list[Any]:
        if isinstance(raw, memoryview) and field.type not in ("string", "bytes"):
            wire = _PACKED_WIRE.get(field.type)
            if wire is None:
                raise ProtobufError(f"{where}: cannot unpack a {field.type} field")
            values = [scalar_value(field.type, wire, item) for item in read_packed(raw, wire)]
        else:
            values = [scalar_value(field.type, wire_type, raw)]
        return [_json_scalar(v) for v in values] if as_json else values


def _expand_inline(out: dict[str, Any]) -> dict[str, Any]:
    if not any(key.startswith(_INLINE) for key in out):
        return out
    expanded: dict[str, Any] = {}
    for key, value in out.items():
        if key.startswith(_INLINE):
            expanded.update(value)
        else:
            expanded[key] = value
    return expanded


_RAW_SCALARS = frozenset({"string", "bytes", "bool", "int32", "int64", "uint32", "uint64"})
_PACKED_WIRE: dict[str, int] = {
    **dict.fromkeys(("bool", "int32", "int64", "uint32", "uint64", "sint32", "sint64"), 0),
    **dict.fromkeys(("fixed64", "sfixed64", "double"), 1),
    **dict.fromkeys(("fixed32", "sfixed32", "float"), 5),
}
_ZERO: dict[str, Scalar] = {
    "string": "",
    "bytes": b"",
    "bool": False,
    **dict.fromkeys(("int32", "int64", "uint32", "uint64", "sint32", "sint64"), 0),
    **dict.fromkeys(("fixed32", "fixed64", "sfixed32", "sfixed64"), 0),
    "double": 0.0,
    "float": 0.0,
}
