"""The CustomResourceDefinition resource's strategy: defaults, the status it starts with, and
validation with apiextensions' rules and messages (``ValidateCustomResourceDefinition``):
names, group, scope, versions (exactly one storage version), structural schemas with their
defaults and CEL rules, subresources, printer columns, selectable fields and conversion.

Webhook conversion is refused with a clear message: this apiserver converts only by rewriting
``apiVersion`` (``strategy: None``).  Pure, like every strategy.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from control.api.errors import Cause
from control.apiserver.strategies.base import BaseStrategy, metadata_of
from control.apiserver.strategies.causes import (
    Raw,
    as_mapping,
    child,
    duplicate,
    forbidden,
    format_value,
    immutable,
    index,
    invalid,
    mappings,
    not_supported,
    one_of,
    required,
)
from control.apiserver.strategies.names import dns1035_label, dns1123_label, dns1123_subdomain

from .schema import compile_schema, structural_errors

__all__ = ["CLEANUP_FINALIZER", "CustomResourceDefinitionStrategy", "storage_version"]

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "name",
                   "password")
_KIND = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_APPROVED = "api-approved.kubernetes.io"


def storage_version(crd: Mapping[str, Any]) -> str:
    for v in mappings(as_mapping(crd.get("spec")).get("versions")):
        if v.get("storage"):
            return str(v.get("name") or "")
    return ""


class CustomResourceDefinitionStrategy(BaseStrategy):
    tracks_generation = True
    #: kube's CRD status strategy resets no metadata: the finalizer controller removes its
    #: finalizer through /status.
    status_keeps_meta = ("finalizers",)
    #: What DELETE adds (kube's CRD REST.Delete): the objects are cleaned up first.
    deletion_finalizer = CLEANUP_FINALIZER

    def mark_deleting(self, obj: dict[str, Any], now: str) -> None:
        """DELETE's mark on a CRD: the Terminating condition, before the cleanup starts."""
        status = obj.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or ()
                      if isinstance(c, dict) and c.get("type") != "Terminating"]
        conditions.append({"type": "Terminating", "status": "True",
                           "lastTransitionTime": now, "reason": "InstanceDeletionPending",
                           "message": "CustomResourceDefinition marked for deletion; "
                                      "CustomResource deletion will begin soon"})
        status["conditions"] = conditions

    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        names = spec.get("names")
        if isinstance(names, dict) and isinstance(names.get("kind"), str) and names["kind"]:
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        if not isinstance(spec.get("conversion"), dict):
            spec["conversion"] = {"strategy": "None"}

    def initial_status(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        stored = storage_version(obj)
        return {"acceptedNames": {"kind": "", "plural": ""}, "conditions": [],
                "storedVersions": [stored] if stored else []}

    def prepare_for_update(self, new: dict[str, Any], old: Mapping[str, Any]) -> None:
        super().prepare_for_update(new, old)
        status = new.get("status")
        stored = storage_version(new)
        if isinstance(status, dict) and stored:
            versions = list(status.get("storedVersions") or [])
            if stored not in versions:
                status["storedVersions"] = [*versions, stored]

    def validate_spec(self, obj: Mapping[str, Any]) -> list[Cause]:
        spec = as_mapping(obj.get("spec"))
        out = _validate_spec(spec, obj)
        name = str(metadata_of(dict(obj)).get("name") or "")
        plural = str(as_mapping(spec.get("names")).get("plural") or "")
        if name and plural and spec.get("group") and name != f"{plural}.{spec['group']}":
            out.insert(0, invalid("metadata.name", name,
                                  'must be spec.names.plural+"."+spec.group'))
        return out

    def validate_spec_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        out = []
        for name in ("scope", "group"):
            now, before = as_mapping(new.get("spec")).get(name), as_mapping(
                old.get("spec")).get(name)
            if now != before:
                out.append(immutable(child("spec", name), now))
        stored = as_mapping(new.get("status")).get("storedVersions") or []
        served = {str(v.get("name")) for v in mappings(as_mapping(new.get("spec")).get(
            "versions"))}
        for i, v in enumerate(stored):
            if v not in served:
                out.append(invalid(index("status.storedVersions", i), v, (
                    f"missing from spec.versions; {v} was previously a storage version, and "
                    f"must remain in spec.versions until a storage migration ensures no data "
                    f"remains persisted in {v} and removes {v} from status.storedVersions")))
        return out


def _validate_spec(spec: Mapping[str, Any], obj: Mapping[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    group = spec.get("group")
    if not group:
        out.append(required("spec.group"))
    elif not isinstance(group, str) or dns1123_subdomain(group):
        out.append(invalid("spec.group", group, ",".join(dns1123_subdomain(str(group)))))
    elif "." not in group:
        out.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    elif group.endswith((".k8s.io", ".kubernetes.io")) or group in ("k8s.io", "kubernetes.io"):
        annotations = as_mapping(as_mapping(obj.get("metadata")).get("annotations"))
        if _APPROVED not in annotations:
            out.append(required(f"metadata.annotations[{_APPROVED}]", (
                f"protected groups must have approval annotation \"{_APPROVED}\", see "
                "https://github.com/kubernetes/enhancements/pull/1111")))
    out += one_of(spec.get("scope"), "spec.scope", ("Cluster", "Namespaced"))
    out += _names(as_mapping(spec.get("names")))
    out += _versions(spec)
    out += _conversion(as_mapping(spec.get("conversion")))
    if spec.get("preserveUnknownFields"):
        out.append(invalid("spec.preserveUnknownFields", True, "cannot set to true, set "
                           "x-kubernetes-preserve-unknown-fields to true in "
                           "spec.versions[*].schema instead"))
    return out


def _names(names: Mapping[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    base = "spec.names"
    for name, check in (("plural", dns1035_label), ("singular", dns1035_label)):
        value = names.get(name)
        if not value:
            out.append(required(child(base, name)))
        elif check(str(value)):
            out.append(invalid(child(base, name), value, ",".join(check(str(value)))))
    for name in ("kind", "listKind"):
        value = names.get(name)
        if not value:
            out.append(required(child(base, name)))
        elif not _KIND.match(str(value)) or len(str(value)) > 63:
            out.append(invalid(child(base, name), value, "may have mixed case, but should "
                               "otherwise match: " + ",".join(dns1035_label(str(value).lower()))
                               or "a DNS-1035 label"))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        out.append(invalid(child(base, "listKind"), names["listKind"],
                           "kind and listKind may not be the same"))
    for field in ("shortNames", "categories"):
        for i, value in enumerate(names.get(field) or ()):
            problems = dns1035_label(str(value)) if field == "shortNames" else \
                dns1123_label(str(value))
            if problems:
                out.append(invalid(index(child(base, field), i), value, ",".join(problems)))
    return out


def _versions(spec: Mapping[str, Any]) -> list[Cause]:
    versions = mappings(spec.get("versions"))
    if not versions:
        return [required("spec.versions", "must have exactly one version marked as storage "
                                          "version")]
    out: list[Cause] = []
    names = [str(v.get("name") or "") for v in versions]
    if len(set(names)) != len(names):
        out.append(invalid("spec.versions", _versions_value(versions),
                           "must contain unique version names"))
    if sum(1 for v in versions if v.get("storage")) != 1:
        out.append(invalid("spec.versions", _versions_value(versions),
                           "must have exactly one version marked as storage version"))
    if not any(v.get("served") for v in versions):
        out.append(invalid("spec.versions", _versions_value(versions),
                           "must have at least one version served"))
    status_enabled = False
    for i, v in enumerate(versions):
        base = index("spec.versions", i)
        if not v.get("name"):
            out.append(required(child(base, "name")))
        elif dns1035_label(str(v["name"])):
            out.append(invalid(child(base, "name"), v["name"],
                               ",".join(dns1035_label(str(v["name"])))))
        subs = as_mapping(v.get("subresources"))
        status_enabled = "status" in subs
        out += _subresources(subs, child(base, "subresources"))
        out += _schema(as_mapping(v.get("schema")), child(base, "schema"), status_enabled)
        for j, col in enumerate(mappings(v.get("additionalPrinterColumns"))):
            out += _column(col, index(child(base, "additionalPrinterColumns"), j))
        out += _selectable(v, child(base, "selectableFields"))
    return out


def _versions_value(versions: list[Mapping[str, Any]]) -> Raw:
    return Raw("[" + ", ".join(f"{{Name:{v.get('name', '')}}}" for v in versions) + "]")


def _schema(schema: Mapping[str, Any], path: str, status_enabled: bool) -> list[Cause]:
    raw = schema.get("openAPIV3Schema")
    where = child(path, "openAPIV3Schema")
    if raw is None:
        return [required(where)]
    out = structural_errors(raw, where, status_subresource=status_enabled)
    if out:
        return out
    compiled = compile_schema(raw)
    out += _defaults(compiled, where)
    from .cel import compile_rules

    rule_errors, _ = compile_rules(compiled, where)
    return out + rule_errors


def _defaults(node: Any, path: str) -> list[Cause]:
    """Each default must validate against its own schema and hold nothing pruning drops."""
    from .values import prune, validate

    out: list[Cause] = []
    if node.has_default:
        value = copy.deepcopy(node.default)
        dropped = prune(value, node, path="", root=False)
        if dropped:
            out.append(invalid(child(path, "default"), _json_value(node.default),
                               f"must not have unknown fields, got {dropped[0]}"))
        for cause in validate(value, node, child(path, "default")):
            out.append(invalid(child(path, "default"), _json_value(node.default),
                               cause.message))
            break
    for name, prop in node.properties.items():
        out += _defaults(prop, f"{child(path, 'properties')}[{name}]")
    if node.items is not None:
        out += _defaults(node.items, child(path, "items"))
    return out


def _json_value(value: Any) -> Raw:
    return Raw(format_value(value))


def _subresources(subs: Mapping[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    scale = subs.get("scale")
    if scale is None:
        return out
    scale = as_mapping(scale)
    for name, prefixes, what in (("specReplicasPath", (".spec.",), "under .spec"),
                                 ("statusReplicasPath", (".status.",), "under .status"),
                                 ("labelSelectorPath", (".spec.", ".status."),
                                  "under either .spec or .status")):
        value = scale.get(name)
        where = child(path, f"scale.{name}")
        if not value:
            if name != "labelSelectorPath":
                out.append(required(where))
            continue
        if not isinstance(value, str) or not value.startswith(prefixes) or not re.fullmatch(
                r"(\.[A-Za-z0-9_-]+)+", value):
            out.append(invalid(where, value, f"should be a json path {what}"))
    return out


def _column(col: Mapping[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    if not col.get("name"):
        out.append(required(child(path, "name")))
    typ = col.get("type")
    if not typ:
        out.append(required(child(path, "type"), "must be one of " + ",".join(_COLUMN_TYPES)))
    elif typ not in _COLUMN_TYPES:
        out.append(invalid(child(path, "type"), typ, "must be one of " + ",".join(_COLUMN_TYPES)))
    fmt = col.get("format")
    if fmt and fmt not in _COLUMN_FORMATS:
        out.append(invalid(child(path, "format"), fmt,
                           "must be one of " + ",".join(_COLUMN_FORMATS)))
    json_path = col.get("jsonPath")
    if not json_path:
        out.append(required(child(path, "jsonPath")))
    else:
        from .printing import parse_json_path

        try:
            parse_json_path(str(json_path))
        except ValueError as e:
            out.append(invalid(child(path, "jsonPath"), json_path, f"is an invalid path: {e}"))
    return out


def _selectable(version: Mapping[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    fields = mappings(version.get("selectableFields"))
    if len(fields) > 8:
        out.append(forbidden(path, "must have at most 8 items"))
    seen: set[str] = set()
    schema = as_mapping(as_mapping(version.get("schema")).get("openAPIV3Schema"))
    for i, f in enumerate(fields):
        where = child(index(path, i), "jsonPath")
        json_path = str(f.get("jsonPath") or "")
        if not json_path:
            out.append(required(where))
            continue
        if json_path.startswith(".metadata"):
            out.append(invalid(where, json_path, "must not point to fields in metadata"))
            continue
        node: Any = schema
        for part in json_path.lstrip(".").split("."):
            node = as_mapping(as_mapping(node).get("properties")).get(part)
        if not isinstance(node, Mapping) or node.get("type") not in ("string", "boolean",
                                                                        "integer"):
            out.append(invalid(where, json_path, "must point to a field of type string, "
                               "boolean or integer. Enum string fields and strings with formats "
                               "are allowed."))
        if json_path in seen:
            out.append(duplicate(where, json_path))
        seen.add(json_path)
    return out


def _conversion(conversion: Mapping[str, Any]) -> list[Cause]:
    strategy = conversion.get("strategy", "None")
    if strategy == "Webhook":
        return [forbidden("spec.conversion.strategy", "Webhook conversion is not supported by "
                          "this apiserver (ketch converts between versions by rewriting "
                          "apiVersion only): use strategy None")]
    if strategy != "None":
        return [not_supported("spec.conversion.strategy", strategy, ("None", "Webhook"))]
    out = []
    for name in ("webhookClientConfig", "webhook", "conversionReviewVersions"):
        if conversion.get(name):
            out.append(forbidden(child("spec.conversion", name),
                                 "should not be set when strategy is not set to Webhook"))
    return out
