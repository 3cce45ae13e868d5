"""Structural schemas as pure functions: validation messages, defaulting, pruning, structural
checks of CRD schemas, and CEL rules with their costs (table-driven)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from control.apiserver.crd import cel, values
from control.apiserver.crd.printing import find, parse_json_path
from control.apiserver.crd.schema import compile_schema, structural_errors

S = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "n": {"type": "integer", "minimum": 1, "maximum": 5},
    "f": {"type": "number", "multipleOf": 0.5},
    "s": {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-z]+$"},
    "e": {"type": "string", "enum": ["a", "b"]},
    "ip": {"type": "string", "format": "ipv4"},
    "b": {"type": "boolean"},
    "l": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
    "u": {"type": "array", "uniqueItems": True, "items": {"type": "integer"}},
    "m": {"type": "array", "x-kubernetes-list-type": "map",
          "x-kubernetes-list-map-keys": ["k"],
          "items": {"type": "object", "required": ["k"], "properties": {
              "k": {"type": "string"}, "v": {"type": "integer", "default": 7}}}},
    "ios": {"x-kubernetes-int-or-string": True},
    "nul": {"type": "string", "nullable": True},
    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "pod": {"type": "object", "x-kubernetes-embedded-resource": True,
            "x-kubernetes-preserve-unknown-fields": True},
}, "required": ["n"]}}}
SCHEMA = compile_schema(S)


def _obj(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "x.io/v1", "kind": "T", "metadata": {"name": "t"},
            "spec": {"n": 1, **spec}}


@pytest.mark.parametrize(("spec", "messages"), [
    pytest.param({}, [], id="valid"),
    pytest.param({"n": "x"}, [('spec.n: Invalid value: "string": spec.n in body must be of type '
                              'integer: "string"')], id="type"),
    pytest.param({"n": 9}, [("spec.n: Invalid value: 9: spec.n in body should be less than or "
                            "equal to 5")], id="maximum"),
    pytest.param({"n": 0}, [("spec.n: Invalid value: 0: spec.n in body should be greater than or "
                            "equal to 1")], id="minimum"),
    pytest.param({"f": 0.3}, [("spec.f: Invalid value: 0.3: spec.f in body should be a multiple "
                              "of 0.5")], id="multipleOf"),
    pytest.param({"f": 2}, [], id="integer-is-a-number"),
    pytest.param({"s": "a"}, [('spec.s: Invalid value: "a": spec.s in body should be at least 2 '
                              "chars long")], id="minLength"),
    pytest.param({"s": "abcde"}, ["spec.s: Too long: may not be more than 4 bytes"],
                 id="maxLength"),
    pytest.param({"s": "AB"}, [("spec.s: Invalid value: \"AB\": spec.s in body should match "
                               "'^[a-z]+$'")], id="pattern"),
    pytest.param({"e": "c"}, ['spec.e: Unsupported value: "c": supported values: "a", "b"'],
                 id="enum"),
    pytest.param({"ip": "1.2.3"}, [('spec.ip: Invalid value: "1.2.3": spec.ip in body must be of '
                                   'type ipv4: "1.2.3"')], id="format"),
    pytest.param({"b": "true"}, [('spec.b: Invalid value: "string": spec.b in body must be of '
                                 'type boolean: "string"')], id="boolean"),
    pytest.param({"l": []}, [("spec.l: Invalid value: 0: spec.l in body should have at least 1 "
                             "items")], id="minItems"),
    pytest.param({"l": ["a", "b", "c"]}, ["spec.l: Too many: 3: must have at most 2 items"],
                 id="maxItems"),
    pytest.param({"u": [1, 1]}, [('spec.u: Invalid value: "": spec.u in body shouldn\'t contain '
                                 "duplicates")], id="uniqueItems"),
    pytest.param({"m": [{"k": "a"}, {"k": "a"}]}, ['spec.m[1]: Duplicate value: {"k":"a"}'],
                 id="list-map-keys"),
    pytest.param({"m": [{"v": 1}]}, ["spec.m[0].k: Required value"], id="item-required"),
    pytest.param({"ios": "80%"}, [], id="int-or-string-string"),
    pytest.param({"ios": 8}, [], id="int-or-string-int"),
    pytest.param({"ios": True}, [('spec.ios: Invalid value: "boolean": spec.ios in body must be '
                                 'of type integer,string: "boolean"')], id="int-or-string-bad"),
    pytest.param({"nul": None}, [], id="nullable"),
    pytest.param({"s": None}, [('spec.s: Invalid value: "null": spec.s in body must be of type '
                               'string: "null"')], id="not-nullable"),
    pytest.param({"labels": {"a": 1}}, [('spec.labels.a: Invalid value: "integer": '
                                        'spec.labels.a in body must be of type string: '
                                        '"integer"')], id="additionalProperties"),
    pytest.param({"pod": {"kind": "Pod"}}, [("spec.pod.apiVersion: Required value: must not be "
                                            "empty")], id="embedded-resource"),
])
def test_validation_messages(spec: dict[str, Any], messages: list[str]) -> None:
    shown = [f"{c.field}: {c.message}" for c in values.validate(_obj(**spec), SCHEMA)]
    assert shown == messages


def test_required_at_the_root_of_spec() -> None:
    obj = _obj()
    del obj["spec"]["n"]
    assert [c.field for c in values.validate(obj, SCHEMA)] == ["spec.n"]


def test_defaulting_and_pruning() -> None:
    obj = _obj(m=[{"k": "a"}], junk=1, free={"any": {"thing": 1}},
               pod={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
                    "spec": {"x": 1}})
    obj["metadata"]["bogus"] = True
    obj["top"] = 1
    dropped = values.prune(copy.deepcopy(obj), SCHEMA, drop=False)
    assert sorted(dropped) == ["metadata.bogus", "spec.junk", "spec.pod.metadata.bogus", "top"]
    values.prune(obj, SCHEMA)
    values.default(obj, SCHEMA)
    assert obj["spec"]["m"] == [{"k": "a", "v": 7}]
    assert "junk" not in obj["spec"] and "top" not in obj and "bogus" not in obj["metadata"]
    assert obj["spec"]["free"] == {"any": {"thing": 1}} and obj["spec"]["pod"]["spec"] == {"x": 1}


@pytest.mark.parametrize(("schema", "message"), [
    pytest.param({"properties": {}}, "openAPIV3Schema.type: Required value: must not be empty "
                 "at the root", id="root-type"),
    pytest.param({"type": "string"}, 'openAPIV3Schema.type: Invalid value: "string": must be '
                 "object at the root", id="root-object"),
    pytest.param({"type": "object", "properties": {"a": {"type": "array"}}},
                 "openAPIV3Schema.properties[a].items: Required value: must be specified",
                 id="array-items"),
    pytest.param({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}},
                 "openAPIV3Schema.properties[a].$ref: Forbidden: $ref is not supported",
                 id="ref"),
    pytest.param({"type": "object", "properties": {"a": {"type": "object", "properties": {
        "b": {"type": "string"}}, "additionalProperties": {"type": "string"}}}},
        "openAPIV3Schema.properties[a].additionalProperties: Forbidden: additionalProperties "
        "and properties are mutual exclusive", id="additional-and-properties"),
    pytest.param({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "labels": {"type": "object"}}}}}, "openAPIV3Schema.properties[metadata]: Forbidden: must "
        "not specify anything other than name and generateName, but metadata is implicitly "
        "specified", id="metadata"),
    pytest.param({"type": "object", "properties": {"a": {"type": "string", "anyOf": [
        {"type": "string"}]}}}, "openAPIV3Schema.properties[a].anyOf[0].type: Forbidden: must "
        "be empty to be structural", id="value-validation"),
    pytest.param({"type": "object", "properties": {"a": {
        "type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}}},
        "openAPIV3Schema.properties[a].x-kubernetes-list-map-keys: Required value: must not be "
        "empty if x-kubernetes-list-type is map", id="map-keys"),
])
def test_structural_errors(schema: dict[str, Any], message: str) -> None:
    shown = [f"{c.field}: {c.message}" for c in structural_errors(schema, "openAPIV3Schema")]
    assert message in shown


RULES = {"type": "object", "properties": {"spec": {
    "type": "object",
    "x-kubernetes-validations": [
        {"rule": "self.min <= self.max", "message": "min must not exceed max"},
        {"rule": "self.name.startsWith('a')", "fieldPath": ".name",
         "reason": "FieldValueForbidden", "message": "must start with a"},
        {"rule": "self.max >= oldSelf.max", "message": "max may not shrink"},
        {"rule": "self.tags.all(t, t.size() < 4)", "messageExpression":
         "'tags too long: ' + string(size(self.tags))"}],
    "properties": {"min": {"type": "integer"}, "max": {"type": "integer"},
                   "name": {"type": "string", "maxLength": 10},
                   "tags": {"type": "array", "maxItems": 5,
                            "items": {"type": "string", "maxLength": 10}}}}}}


def _rules() -> Any:
    schema = compile_schema(RULES)
    errors, _ = cel.compile_rules(schema, "")
    assert errors == []
    return schema


@pytest.mark.parametrize(("spec", "old", "messages"), [
    pytest.param({"min": 1, "max": 2, "name": "ab", "tags": []}, None, [], id="valid"),
    pytest.param({"min": 3, "max": 2, "name": "ab", "tags": []}, None,
                 ["spec: Invalid value: min must not exceed max"], id="rule"),
    pytest.param({"min": 1, "max": 2, "name": "b", "tags": []}, None,
                 ["spec.name: Forbidden: must start with a"], id="reason-and-field-path"),
    pytest.param({"min": 1, "max": 2, "name": "ab", "tags": []},
                 {"min": 1, "max": 5, "name": "ab", "tags": []},
                 ["spec: Invalid value: max may not shrink"], id="transition-rule"),
    pytest.param({"min": 1, "max": 2, "name": "ab", "tags": ["abcdef"]}, None,
                 ["spec: Invalid value: tags too long: 1"], id="message-expression"),
])
def test_cel_rules(spec: dict[str, Any], old: dict[str, Any] | None,
                   messages: list[str]) -> None:
    schema = _rules()
    found = cel.evaluate(schema, {"spec": spec}, {"spec": old} if old else None)
    assert [f"{c.field}: {c.message}" for c in found] == messages


def test_cel_compile_errors_and_estimated_cost() -> None:
    bad = compile_schema({"type": "object", "x-kubernetes-validations": [
        {"rule": "self.x >"}, {"rule": "nosuch.x == 1"}]})
    errors, _ = cel.compile_rules(bad, "schema")
    assert [c.field for c in errors] == ["schema.x-kubernetes-validations[0].rule",
                                         "schema.x-kubernetes-validations[1].rule"]
    assert "undeclared reference to 'nosuch'" in errors[1].message
    unbounded = compile_schema({"type": "object", "properties": {"l": {
        "type": "array", "items": {"type": "string"},
        "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, x.matches(y)))"}]}}})
    errors, _ = cel.compile_rules(unbounded, "schema")
    assert errors and "estimated rule cost exceeds budget by factor of more than 100x" in \
        errors[0].message
    bounded = compile_schema({"type": "object", "properties": {"l": {
        "type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10},
        "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, x.matches(y)))"}]}}})
    assert cel.compile_rules(bounded, "schema")[0] == []


@pytest.mark.parametrize(("path", "found"), [
    pytest.param(".spec.replicas", [3], id="dots"),
    pytest.param(".status.conditions[?(@.type==\"Ready\")].status", ["True"], id="filter"),
    pytest.param(".spec.items[*].name", ["a", "b"], id="wildcard"),
    pytest.param(".spec.items[1].name", ["b"], id="index"),
    pytest.param(".metadata.labels['app.kubernetes.io/name']", ["web"], id="quoted-key"),
    pytest.param(".spec.missing", [], id="missing"),
])
def test_printer_column_paths(path: str, found: list[Any]) -> None:
    obj = {"metadata": {"labels": {"app.kubernetes.io/name": "web"}},
           "spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}]},
           "status": {"conditions": [{"type": "Progressing", "status": "False"},
                                     {"type": "Ready", "status": "True"}]}}
    assert find(obj, parse_json_path(path)) == found
