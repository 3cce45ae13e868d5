"""Component schemas for the OpenAPI documents, built from the message tables.

Every message becomes one schema named as Kubernetes names it; a message that describes a
top-level kind also gets ``apiVersion``/``kind`` properties and the
``x-kubernetes-group-version-kind`` list kubectl uses to find it. Fields map to JSON Schema the
way Kubernetes' OpenAPI v3 does: scalars by type, repeated fields as arrays, maps as
``additionalProperties``, messages as ``allOf: [{$ref}]`` so a description can sit beside the
reference. Catalog kinds with no table get a minimal schema that preserves unknown fields.

All schemas are built once (:func:`all_schemas`); a document takes the closure of the
references its paths make (:func:`schema_closure`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from control.api.catalog import RESOURCES
from control.api.kinds.fields import Field
from control.api.kinds.schema import SPECIAL_FORMS
from control.apiserver.openapi.descriptions import (
    API_VERSION,
    KIND,
    field_description,
    type_description,
)
from control.apiserver.openapi.naming import SCHEMA_PREFIX, api_package, ref, schema_name
from control.apiserver.openapi.patch_meta import patch_extensions
from control.apiserver.openapi.tables import flattened, kind_gvks, message_names, message_of_kind

__all__ = [
    "GVK",
    "OBJECT_META",
    "PATCH",
    "STATUS",
    "Schema",
    "all_schemas",
    "gvk",
    "iter_refs",
    "kind_schema_name",
    "list_schema_name",
    "minimal_kind_schema",
    "schema_closure",
]

Schema = dict[str, Any]

GVK = "x-kubernetes-group-version-kind"
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
OBJECT_META = schema_name("meta.v1.ObjectMeta")
LIST_META = schema_name("meta.v1.ListMeta")
STATUS = schema_name("meta.v1.Status")
PATCH = schema_name("meta.v1.Patch")

_INT32 = {"type": "integer", "format": "int32"}
_INT64 = {"type": "integer", "format": "int64"}
_SCALARS: dict[str, Schema] = {
    "string": {"type": "string"},
    "bytes": {"type": "string", "format": "byte"},
    "bool": {"type": "boolean"},
    **dict.fromkeys(("int32", "uint32", "sint32", "fixed32", "sfixed32"), _INT32),
    **dict.fromkeys(("int64", "uint64", "sint64", "fixed64", "sfixed64"), _INT64),
    "double": {"type": "number", "format": "double"},
    "float": {"type": "number", "format": "float"},
}

# The JSON shape of each special form that gets a named schema (string_list is inlined).
_SPECIAL_SHAPES: dict[str, Schema] = {
    "time": {"type": "string", "format": "date-time"},
    "micro_time": {"type": "string", "format": "date-time"},
    "int_or_string": {"format": "int-or-string", "x-kubernetes-int-or-string": True},
    "quantity": {"type": "string"},
    "raw_json": {"type": "object"},
}
_STRING_LIST: Schema = {"type": "array", "items": {"type": "string"}}


def gvk(group: str, version: str, kind: str) -> dict[str, str]:
    """A group-version-kind object as the Kubernetes extensions spell it."""
    return {"group": group, "kind": kind, "version": version}


def _described(schema: Schema, description: str | None) -> Schema:
    return {"description": description, **schema} if description else schema


def _type_ref(message: str) -> Schema:
    """The schema for a value of message type: a ``$ref``, or an inline special shape."""
    if SPECIAL_FORMS.get(message) == "string_list":
        return dict(_STRING_LIST)
    return ref(schema_name(message))


def _value_schema(type_name: str) -> Schema:
    return dict(_SCALARS[type_name]) if type_name in _SCALARS else _type_ref(type_name)


def _property(owner: str, field: Field) -> Schema:
    """The schema of one (non-inline) field of ``owner``."""
    if field.type == "map":
        assert isinstance(field.ref, tuple)
        schema: Schema = {"type": "object", "additionalProperties": _value_schema(field.ref[1])}
    else:
        item = _value_schema(field.ref if isinstance(field.ref, str) else field.type)
        if field.repeated:
            schema = {"type": "array", "items": item}
        elif "$ref" in item:
            schema = {"allOf": [item]}
        else:
            schema = item
    holds_object = field.type == "message" and not field.repeated
    schema = _described(schema, field_description(owner, field.name, holds_object=holds_object))
    schema.update(patch_extensions().get((owner, field.name), {}))
    return schema


def _type_meta() -> dict[str, Schema]:
    return {
        "apiVersion": {"description": API_VERSION, "type": "string"},
        "kind": {"description": KIND, "type": "string"},
    }


def _message_schema(message: str) -> Schema:
    properties: dict[str, Schema] = {}
    gvks = kind_gvks(message)
    if gvks:
        properties.update(_type_meta())
    for owner, field in flattened(message):
        properties[field.name] = _property(owner, field)
    schema = _described({"type": "object"}, type_description(message))
    schema["properties"] = dict(sorted(properties.items()))
    if gvks:
        schema[GVK] = [gvk(*triple) for triple in gvks]
    return schema


def minimal_kind_schema(group: str, version: str, kind: str) -> Schema:
    """For a catalog kind with no field table: typed metadata, everything else preserved."""
    loose = {"type": "object", PRESERVE_UNKNOWN: True}
    return {
        "description": type_description(f"{api_package(group, version)}.{kind}")
        or f"{kind} (ketch publishes no field schema for this kind yet).",
        "type": "object",
        "properties": {
            **_type_meta(),
            "metadata": _described(
                {"allOf": [ref(OBJECT_META)]}, type_description("meta.v1.ObjectMeta")
            ),
            "spec": _described(dict(loose), "The desired state of the object."),
            "status": _described(dict(loose), "The observed state of the object."),
        },
        PRESERVE_UNKNOWN: True,
        GVK: [gvk(group, version, kind)],
    }


def _list_schema(group: str, version: str, kind: str) -> Schema:
    return {
        "description": f"{kind}List is a list of {kind} objects.",
        "type": "object",
        "required": ["items"],
        "properties": {
            **_type_meta(),
            "items": {
                "description": f"The {kind} objects.",
                "type": "array",
                "items": ref(kind_schema_name(group, version, kind)),
            },
            "metadata": _described({"allOf": [ref(LIST_META)]}, "Standard list metadata."),
        },
        GVK: [gvk(group, version, kind + "List")],
    }


def kind_schema_name(group: str, version: str, kind: str) -> str:
    """The component schema name of a top-level kind (table-backed or minimal)."""
    api_version = f"{group}/{version}" if group else version
    message = message_of_kind(api_version, kind)
    return schema_name(message or f"{api_package(group, version)}.{kind}")


def list_schema_name(group: str, version: str, kind: str) -> str:
    return kind_schema_name(group, version, kind) + "List"


@functools.cache
def all_schemas() -> Mapping[str, Schema]:
    """Every component schema any document may use, by name. Built once; do not mutate."""
    schemas: dict[str, Schema] = {}
    for message in message_names():
        form = SPECIAL_FORMS.get(message)
        if form is None:
            schemas[schema_name(message)] = _message_schema(message)
        elif form in _SPECIAL_SHAPES:
            shape = dict(_SPECIAL_SHAPES[form])
            schemas[schema_name(message)] = _described(shape, type_description(message))
    for r in RESOURCES:
        api_version = r.api_version
        if message_of_kind(api_version, r.kind) is None:
            name = kind_schema_name(r.group, r.version, r.kind)
            schemas[name] = minimal_kind_schema(r.group, r.version, r.kind)
        if not r.virtual:
            schemas[list_schema_name(r.group, r.version, r.kind)] = _list_schema(
                r.group, r.version, r.kind
            )
    schemas[PATCH] = {
        "description": "Patch is provided to give a concrete name and type to the Kubernetes "
        "PATCH request body.",
        "type": "object",
    }
    return schemas


def iter_refs(node: object) -> Iterator[str]:
    """Every schema name that a ``$ref`` anywhere inside ``node`` points at."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.removeprefix(SCHEMA_PREFIX)
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_refs(value)


def schema_closure(roots: Iterable[str]) -> dict[str, Schema]:
    """The named schemas and everything they reference, transitively, sorted by name.

    Raises KeyError naming a reference that no schema answers (a bug in the tables).
    """
    known = all_schemas()
    found: dict[str, Schema] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found[name] = known[name]
        pending.extend(iter_refs(found[name]))
    return dict(sorted(found.items()))
