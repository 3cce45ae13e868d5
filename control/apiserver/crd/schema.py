"""Structural schemas: a CRD version's ``openAPIV3Schema`` compiled into a tree of
:class:`Schema` nodes, and the checks that make a schema structural (apiextensions'
``schema/validation.go`` and the per-node checks of ``ValidateCustomResourceDefinition``).

A structural schema gives every specified field a type (unless it is
``x-kubernetes-int-or-string`` or ``x-kubernetes-preserve-unknown-fields``), is an object at
the root, specifies ``metadata`` only as ``name``/``generateName`` strings, and keeps
``allOf``/``anyOf``/``oneOf``/``not`` to pure value validations.  :func:`structural_errors`
returns Kubernetes' field errors for a schema that is not; :func:`compile_schema` builds the
tree the value algorithms (:mod:`.values`) walk.  Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from control.api.errors import Cause
from control.apiserver.strategies.causes import (
    child,
    forbidden,
    invalid,
    key,
    not_supported,
    required,
)

__all__ = ["Schema", "compile_schema", "structural_errors"]

_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_UNSUPPORTED = (("id", "id is not supported"),
                ("additionalItems", "additionalItems is not supported"),
                ("patternProperties", "patternProperties is not supported"),
                ("definitions", "definitions is not supported"),
                ("dependencies", "dependencies is not supported"), ("$ref", "$ref is not supported"))
#: What a value validation (allOf, anyOf, oneOf, not) may not specify to stay structural.
_GENERIC = (("type", "must be empty to be structural"),
            ("additionalProperties", "must be undefined to be structural"),
            ("default", "must be undefined to be structural"),
            ("title", "must be empty to be structural"),
            ("description", "must be empty to be structural"),
            ("nullable", "must be false to be structural"),
            ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
            ("x-kubernetes-embedded-resource", "must be false to be structural"),
            ("x-kubernetes-int-or-string", "must be false to be structural"),
            ("x-kubernetes-list-map-keys", "must be empty to be structural"),
            ("x-kubernetes-list-type", "must be undefined to be structural"),
            ("x-kubernetes-map-type", "must be undefined to be structural"),
            ("x-kubernetes-validations", "must be empty to be structural"))
_ROOT, _ITEM, _FIELD = "root", "item", "field"


@dataclass(eq=False)
class Schema:
    """One node of a compiled structural schema (the JSONSchemaProps it came from is ``raw``)."""

    raw: Mapping[str, Any]
    type: str = ""
    properties: dict[str, Schema] = field(default_factory=dict)
    #: ``additionalProperties``: a schema for every other key, True (anything), or None.
    additional: Schema | bool | None = None
    items: Schema | None = None
    nullable: bool = False
    int_or_string: bool = False
    preserve_unknown: bool = False
    embedded: bool = False
    list_type: str = ""
    map_keys: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    has_default: bool = False
    default: Any = None
    #: The x-kubernetes-validations rules (compiled lazily by :mod:`.cel`).
    rules: tuple[Mapping[str, Any], ...] = ()
    compiled_rules: Any = None

    def get(self, name: str, fallback: Any = None) -> Any:
        return self.raw.get(name, fallback)

    def child_of(self, name: str) -> Schema | None:
        """The schema of property ``name``, or of additionalProperties; None if neither."""
        found = self.properties.get(name)
        if found is not None:
            return found
        return self.additional if isinstance(self.additional, Schema) else None

    def any_default(self) -> bool:
        """Whether any node of this tree has a default (defaulting can be skipped if not)."""
        if self.has_default:
            return True
        kids = [*self.properties.values(), self.items,
                self.additional if isinstance(self.additional, Schema) else None]
        return any(k is not None and k.any_default() for k in kids)

    def any_rules(self) -> bool:
        if self.rules:
            return True
        kids = [*self.properties.values(), self.items,
                self.additional if isinstance(self.additional, Schema) else None]
        return any(k is not None and k.any_rules() for k in kids)


def compile_schema(raw: Mapping[str, Any]) -> Schema:
    """The tree of ``raw`` (already checked by :func:`structural_errors`)."""
    node = Schema(raw=raw, type=str(raw.get("type") or ""),
                  nullable=bool(raw.get("nullable")),
                  int_or_string=bool(raw.get("x-kubernetes-int-or-string")),
                  preserve_unknown=bool(raw.get("x-kubernetes-preserve-unknown-fields")),
                  embedded=bool(raw.get("x-kubernetes-embedded-resource")),
                  list_type=str(raw.get("x-kubernetes-list-type") or ""),
                  map_keys=tuple(raw.get("x-kubernetes-list-map-keys") or ()),
                  rules=tuple(r for r in raw.get("x-kubernetes-validations") or ()
                              if isinstance(r, Mapping)))
    if "default" in raw:
        node.has_default, node.default = True, raw["default"]
    if isinstance(raw.get("pattern"), str):
        try:
            node.pattern = re.compile(raw["pattern"])
        except re.error:
            node.pattern = None
    for name, prop in (raw.get("properties") or {}).items():
        if isinstance(prop, Mapping):
            node.properties[name] = compile_schema(prop)
    additional = raw.get("additionalProperties")
    if isinstance(additional, Mapping):
        node.additional = compile_schema(additional)
    elif additional is True:
        node.additional = True
    items = raw.get("items")
    if isinstance(items, Mapping):
        node.items = compile_schema(items)
    return node


# --- structural checks -----------------------------------------------------------------------

def structural_errors(raw: Any, path: str, *, status_subresource: bool = False) -> list[Cause]:
    """Why ``raw`` (a version's ``openAPIV3Schema`` at ``path``) is not an acceptable
    structural schema; empty when it is."""
    if not isinstance(raw, Mapping):
        return [invalid(path, "", "must be an object")]
    out: list[Cause] = []
    _node(raw, _ROOT, path, out, embedded_context=True)
    if raw.get("nullable"):
        out.append(forbidden(child(path, "nullable"), "nullable cannot be true at the root"))
    if status_subresource:
        allowed = {"description", "type", "x-kubernetes-validations", "properties", "required",
                   "x-kubernetes-preserve-unknown-fields"}
        extra = sorted(k for k in raw if k not in allowed and k != "$schema")
        if extra:
            out.append(invalid(path, "", "only [description type x-kubernetes-validations "
                                         "properties required x-kubernetes-preserve-unknown-"
                                         "fields] fields are allowed at the root of the schema "
                                         "if the status subresource is enabled"))
    return sorted(out, key=lambda c: (c.field, c.message))


def _node(raw: Mapping[str, Any], level: str, path: str, out: list[Cause], *,
          embedded_context: bool = False) -> None:
    typ = raw.get("type")
    if typ is None or typ == "":
        typ = ""
    if typ == "null":
        out.append(forbidden(child(path, "type"),
                             "type cannot be set to null, use nullable as an alternative"))
    elif typ and typ not in _TYPES:
        out.append(not_supported(child(path, "type"), typ, _TYPES))
    for name, why in _UNSUPPORTED:
        if name in raw:
            out.append(forbidden(child(path, name), why))
    int_or_string = bool(raw.get("x-kubernetes-int-or-string"))
    preserve = raw.get("x-kubernetes-preserve-unknown-fields")
    embedded = bool(raw.get("x-kubernetes-embedded-resource"))
    if preserve is False:
        out.append(invalid(child(path, "x-kubernetes-preserve-unknown-fields"), False,
                           "must be true or undefined"))
    if int_or_string and preserve:
        out.append(invalid(child(path, "x-kubernetes-preserve-unknown-fields"), True,
                           "must be false if x-kubernetes-int-or-string is true"))
    if embedded and typ != "object":
        out.append(required(child(path, "type"), "must be object if "
                            "x-kubernetes-embedded-resource is true") if not typ else
                   invalid(child(path, "type"), typ, "must be object if "
                           "x-kubernetes-embedded-resource is true"))
    elif not typ and not int_or_string and not preserve:
        what = {_ROOT: "must not be empty at the root", _ITEM: "must not be empty for "
                "specified array items", _FIELD: "must not be empty for specified object "
                "fields"}[level]
        out.append(required(child(path, "type"), what))
    if level == _ROOT and typ and typ != "object":
        out.append(invalid(child(path, "type"), typ, "must be object at the root"))
    if typ == "array" and not isinstance(raw.get("items"), Mapping):
        if isinstance(raw.get("items"), list):
            out.append(forbidden(child(path, "items"),
                                 "items must be a schema object and not an array"))
        else:
            out.append(required(child(path, "items"), "must be specified"))
    props = raw.get("properties")
    additional = raw.get("additionalProperties")
    if additional is not None:
        if level == _ROOT:
            out.append(forbidden(child(path, "additionalProperties"), "must not be used at the "
                                                                      "root"))
        if isinstance(props, Mapping) and props:
            out.append(forbidden(child(path, "additionalProperties"),
                                 "additionalProperties and properties are mutual exclusive"))
        if embedded:
            out.append(forbidden(child(path, "additionalProperties"),
                                 "must not be used if x-kubernetes-embedded-resource is set"))
        if isinstance(additional, Mapping):
            _node(additional, _FIELD, child(path, "additionalProperties"), out)
    if isinstance(raw.get("pattern"), str):
        try:
            re.compile(raw["pattern"])
        except re.error as e:
            out.append(invalid(child(path, "pattern"), raw["pattern"],
                               f"must be a valid regular expression, but isn't: {e}"))
    _lists(raw, typ, path, out)
    check_meta = level == _ROOT or embedded
    if isinstance(props, Mapping):
        for name, prop in props.items():
            where = key(child(path, "properties"), name)
            if not isinstance(prop, Mapping):
                out.append(invalid(where, "", "must be a schema object"))
                continue
            if name in ("kind", "apiVersion") and check_meta and prop.get("type") != "string":
                out.append(invalid(child(where, "type"), prop.get("type", ""), "must be string"))
            if name == "metadata":
                _metadata(prop, level, check_meta, where, out)
                continue
            _node(prop, _FIELD, where, out)
    if embedded and not preserve and not props:
        out.append(required(child(path, "properties"), "must not be empty if "
                            "x-kubernetes-embedded-resource is true without "
                            "x-kubernetes-preserve-unknown-fields"))
    if isinstance(raw.get("items"), Mapping):
        _node(raw["items"], _ITEM, child(path, "items"), out)
    for combinator in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(raw.get(combinator) or ()):
            if isinstance(sub, Mapping) and not _int_or_string_pattern(raw, combinator):
                _value_validation(sub, f"{child(path, combinator)}[{i}]", out)
    if isinstance(raw.get("not"), Mapping):
        _value_validation(raw["not"], child(path, "not"), out)
    _rules(raw, path, out)


def _int_or_string_pattern(raw: Mapping[str, Any], combinator: str) -> bool:
    if not raw.get("x-kubernetes-int-or-string") or combinator != "anyOf":
        return False
    types = [s.get("type") for s in raw.get("anyOf") or () if isinstance(s, Mapping)]
    return sorted(t for t in types if t) == ["integer", "string"]


def _value_validation(sub: Mapping[str, Any], path: str, out: list[Cause]) -> None:
    for name, why in _GENERIC:
        if sub.get(name) not in (None, "", False, [], {}):
            out.append(forbidden(child(path, name), why))
    for name, prop in (sub.get("properties") or {}).items():
        if isinstance(prop, Mapping):
            if name == "metadata":
                out.append(forbidden(key(child(path, "properties"), name),
                                     "must not be specified in a nested context"))
            _value_validation(prop, key(child(path, "properties"), name), out)
    if isinstance(sub.get("items"), Mapping):
        _value_validation(sub["items"], child(path, "items"), out)


def _metadata(prop: Mapping[str, Any], level: str, check_meta: bool, path: str,
              out: list[Cause]) -> None:
    if check_meta and prop.get("type") != "object":
        out.append(invalid(child(path, "type"), prop.get("type", ""), "must be object"))
    if level != _ROOT:
        _node(prop, _FIELD, path, out)
        return
    rest = {k: v for k, v in prop.items() if k not in ("type", "default", "description")}
    props = rest.pop("properties", None) or {}
    names_only = set(props) <= {"name", "generateName"} and all(
        isinstance(v, Mapping) and v.get("type") == "string"
        and set(v) <= {"type", "maxLength", "pattern", "description"} for v in props.values())
    if rest or not names_only:
        out.append(forbidden(path, "must not specify anything other than name and "
                                   "generateName, but metadata is implicitly specified"))


def _lists(raw: Mapping[str, Any], typ: str, path: str, out: list[Cause]) -> None:
    list_type = raw.get("x-kubernetes-list-type")
    map_keys = raw.get("x-kubernetes-list-map-keys")
    map_type = raw.get("x-kubernetes-map-type")
    if map_type is not None:
        if typ != "object":
            out.append(required(child(path, "type"), "must be object if x-kubernetes-map-type "
                                                     "is specified") if not typ else
                       invalid(child(path, "type"), typ, "must be object if "
                               "x-kubernetes-map-type is specified"))
        if map_type not in ("atomic", "granular"):
            out.append(not_supported(child(path, "x-kubernetes-map-type"), map_type,
                                     ("atomic", "granular")))
    if list_type is not None:
        if typ != "array":
            out.append(required(child(path, "type"), "must be array if "
                                "x-kubernetes-list-type is specified") if not typ else
                       invalid(child(path, "type"), typ, "must be array if "
                               "x-kubernetes-list-type is specified"))
        if list_type not in ("atomic", "set", "map"):
            out.append(not_supported(child(path, "x-kubernetes-list-type"), list_type,
                                     ("atomic", "set", "map")))
    if map_keys and list_type != "map":
        out.append(required(child(path, "x-kubernetes-list-type"), "must be map if "
                            "x-kubernetes-list-map-keys is non-empty") if list_type is None else
                   invalid(child(path, "x-kubernetes-list-type"), list_type, "must be map if "
                           "x-kubernetes-list-map-keys is non-empty"))
    if list_type == "map":
        items = raw.get("items")
        if not map_keys:
            out.append(required(child(path, "x-kubernetes-list-map-keys"),
                                "must not be empty if x-kubernetes-list-type is map"))
        if not isinstance(items, Mapping):
            out.append(required(child(path, "items"), "must have a schema if "
                                                      "x-kubernetes-list-type is map"))
        elif items.get("type") != "object":
            out.append(invalid(child(path, "items", "type"), items.get("type", ""),
                               "must be object if parent array's x-kubernetes-list-type is map"))
        elif map_keys:
            props = items.get("properties") or {}
            if any(k not in props for k in map_keys):
                out.append(invalid(child(path, "x-kubernetes-list-map-keys"), list(map_keys),
                                   "entries must all be names of item properties"))
            if len(set(map_keys)) != len(map_keys):
                out.append(invalid(child(path, "x-kubernetes-list-map-keys"), list(map_keys),
                                   "must not contain duplicate entries"))


def _rules(raw: Mapping[str, Any], path: str, out: list[Cause]) -> None:
    from .cel import RULE_REASONS  # the rule checks live with the CEL engine

    rules = raw.get("x-kubernetes-validations")
    if rules is None:
        return
    base = child(path, "x-kubernetes-validations")
    for i, rule in enumerate(rules if isinstance(rules, list) else ()):
        where = f"{base}[{i}]"
        if not isinstance(rule, Mapping) or not str(rule.get("rule") or "").strip():
            out.append(required(child(where, "rule"), "rule is not specified"))
            continue
        message = rule.get("message")
        if message is not None:
            if not str(message).strip():
                out.append(invalid(child(where, "message"), message, "must be non-empty if "
                                                                       "specified"))
            elif "\n" in str(message):
                out.append(invalid(child(where, "message"), message,
                                   "must not contain line breaks"))
        elif "\n" in str(rule["rule"]):
            out.append(required(child(where, "message"), "message must be specified if rule "
                                                           "contains line breaks"))
        reason = rule.get("reason")
        if reason is not None and reason not in RULE_REASONS:
            out.append(not_supported(child(where, "reason"), reason, sorted(RULE_REASONS)))
