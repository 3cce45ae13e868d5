"""A served version of a CRD: the :class:`CustomResourceDef` the whole pipeline uses in place of
a built-in catalog entry, and the strategy of its objects.

Built from the CRD object (:func:`custom_resources`, one entry per served version) by each
apiserver's catalog.  Objects are stored once, in the storage version (``apiVersion``
rewritten: ``conversion: None``), and :func:`present` shows a stored object in the version a
request addressed, defaults applied (defaulting on read).  The strategy defaults, prunes and
validates against the version's structural schema and CEL rules; ``metadata.generation`` moves
on any change outside metadata (and status, when the status subresource is on), as
apiextensions' ``customResourceStrategy`` does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from control.api.catalog import ResourceDef, Subresource
from control.api.errors import BadRequest, Cause
from control.apiserver.patching.schema import (
    OBJECT_META,
    PRIMITIVE_MERGE,
    FieldStrategy,
    PatchSchema,
    merge_by,
    merged,
    under,
)
from control.apiserver.strategies.base import BaseStrategy
from control.apiserver.strategies.causes import as_mapping, mappings

from . import cel, values
from .definition import CLEANUP_FINALIZER, storage_version
from .printing import PrinterColumn, find, parse_json_path
from .schema import Schema, compile_schema

__all__ = ["MAX_DEPTH", "CustomResourceDef", "CustomResourceStrategy", "ScalePaths",
           "custom_resources", "present", "to_storage"]

#: Deeper objects are refused before any walk (Python recursion, not Kubernetes', sets this).
MAX_DEPTH = 256
_GPU = ("get", "patch", "update")
_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ScalePaths:
    spec: str
    status: str
    selector: str = ""


@dataclass(frozen=True, eq=False)
class CustomResourceDef(ResourceDef):
    """A catalog entry for one served version of a CRD (compares by identity)."""

    crd_name: str = ""
    crd_uid: str = ""
    singular_name: str = ""
    storage_version: str = ""
    schema: Schema | None = field(default=None, repr=False)
    columns: tuple[PrinterColumn, ...] = ()
    scale: ScalePaths | None = None
    selectable: tuple[str, ...] = ()
    terminating: bool = False
    strategy: CustomResourceStrategy | None = field(default=None, repr=False)
    patch_schema: PatchSchema | None = field(default=None, repr=False)

    @property
    def singular(self) -> str:
        return self.singular_name or self.kind.lower()

    @property
    def storage_api_version(self) -> str:
        return f"{self.group}/{self.storage_version}"

    def unknown_fields(self, obj: Any) -> list[str]:
        """Paths of the fields pruning would drop from ``obj`` (strict field validation)."""
        if self.schema is None or not isinstance(obj, dict):
            return []
        return values.prune(obj, self.schema, drop=False)

    def fields_of(self, obj: Mapping[str, Any]) -> dict[str, str]:
        """The selectable fields of ``obj``: metadata.name, metadata.namespace and the
        version's selectableFields (by JSONPath, as strings)."""
        meta = obj.get("metadata") or {}
        out = {"metadata.name": str(meta.get("name", "")),
               "metadata.namespace": str(meta.get("namespace", ""))}
        for path in self.selectable:
            found = find(obj, parse_json_path(path))
            value = found[0] if found else None
            out[path.lstrip(".")] = ("true" if value else "false") if isinstance(value, bool) \
                else "" if value is None else str(value)
        return out


# --- the strategy ------------------------------------------------------------------------------

def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                return d
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


class CustomResourceStrategy(BaseStrategy):
    tracks_generation = True

    def __init__(self, *, namespaced: bool, status_subresource: bool,
                 schema: Schema | None) -> None:
        super().__init__(namespaced=namespaced, status_subresource=status_subresource)
        self.schema = schema

    def default(self, obj: dict[str, Any]) -> None:
        """Prune what the schema does not specify, then default (kube decodes, prunes and
        defaults in that order); refuses objects nested deeper than :data:`MAX_DEPTH`."""
        if _depth(obj) > MAX_DEPTH:
            raise BadRequest(f"the object is nested more than {MAX_DEPTH} levels deep")
        if self.schema is not None:
            values.prune(obj, self.schema)
            values.default(obj, self.schema)
            values.prune(obj, self.schema)

    def initial_status(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        return None  # a status subresource's status starts empty: only /status writes it

    def _generation_changed(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
        skip = {"metadata", "apiVersion", "kind"} | ({"status"} if self.status_subresource
                                                     else set())
        return ({k: v for k, v in new.items() if k not in skip}
                != {k: v for k, v in old.items() if k not in skip})

    def _schema_causes(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None
                       ) -> list[Cause]:
        if self.schema is None:
            return []
        causes = values.validate(obj, self.schema)
        if not causes and self.schema.compiled_rules is not None:
            causes = cel.evaluate(self.schema, obj, old)
        return causes

    def validate(self, obj: Mapping[str, Any]) -> list[Cause]:
        return super().validate(obj) + self._schema_causes(obj, None)

    def validate_update(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
        from control.apiserver.strategies.meta import validate_object_meta_update

        base = BaseStrategy.validate(self, new)
        return [*validate_object_meta_update(new, old), *base,
                *self._schema_causes(new, old)]


# --- building the catalog entries of a CRD -----------------------------------------------------

def _patch_schema(schema: Schema | None) -> PatchSchema:
    """Server-side apply's merge keys from ``x-kubernetes-list-type``/``-map-keys``."""
    table: dict[str, FieldStrategy] = {}

    def walk(node: Schema, path: str) -> None:
        if node.list_type == "map" and len(node.map_keys) == 1:
            table[path] = merge_by(node.map_keys[0])
        elif node.list_type == "set":
            table[path] = PRIMITIVE_MERGE
        for name, prop in node.properties.items():
            walk(prop, f"{path}.{name}" if path else name)
        if node.items is not None:
            walk(node.items, path)

    if schema is not None:
        walk(schema, "")
    table.pop("metadata", None)
    return merged(under("metadata", OBJECT_META), {k: v for k, v in table.items()
                                                   if not k.startswith("metadata.")})


def custom_resources(crd: Mapping[str, Any]) -> list[CustomResourceDef]:
    """One entry per served version of an established CRD (none for one that is not); the
    names are the accepted ones, as kube serves them."""
    spec, status = as_mapping(crd.get("spec")), as_mapping(crd.get("status"))
    names = as_mapping(status.get("acceptedNames")) or as_mapping(spec.get("names"))
    meta = as_mapping(crd.get("metadata"))
    group = str(spec.get("group") or "")
    stored = storage_version(crd)
    terminating = bool(meta.get("deletionTimestamp"))
    out = []
    for v in mappings(spec.get("versions")):
        if not v.get("served"):
            continue
        raw = as_mapping(as_mapping(v.get("schema")).get("openAPIV3Schema"))
        schema = compile_schema(raw) if raw else None
        if schema is not None:
            cel.compile_rules(schema, "")
        subs = as_mapping(v.get("subresources"))
        status_on = "status" in subs
        scale_raw = subs.get("scale")
        scale = None
        resources: list[Subresource] = []
        if isinstance(scale_raw, Mapping):
            scale = ScalePaths(str(scale_raw.get("specReplicasPath") or ".spec.replicas"),
                               str(scale_raw.get("statusReplicasPath") or ".status.replicas"),
                               str(scale_raw.get("labelSelectorPath") or ""))
            resources.append(Subresource("scale", "Scale", _GPU, group="autoscaling",
                                         version="v1"))
        kind = str(names.get("kind") or "")
        if status_on:
            resources.append(Subresource("status", kind, _GPU))
        columns = tuple(PrinterColumn.of(c) for c in mappings(v.get("additionalPrinterColumns")))
        strategy = CustomResourceStrategy(namespaced=spec.get("scope") == "Namespaced",
                                          status_subresource=status_on, schema=schema)
        out.append(CustomResourceDef(
            group, str(v.get("name") or ""), str(names.get("plural") or ""), kind,
            spec.get("scope") == "Namespaced", verbs=_ALL_VERBS,
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            subresources=tuple(resources), crd_name=str(meta.get("name") or ""),
            crd_uid=str(meta.get("uid") or ""), storage_version=stored,
            singular_name=str(names.get("singular") or ""), schema=schema,
            columns=columns, scale=scale, terminating=terminating,
            selectable=tuple(str(f.get("jsonPath") or "") for f in
                             mappings(v.get("selectableFields"))),
            strategy=strategy, patch_schema=_patch_schema(schema)))
    return out


# --- versions ----------------------------------------------------------------------------------

def present(rd: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` (stored, possibly shared) as the request's version shows it: ``apiVersion``
    rewritten and defaults applied, on a copy when anything changes; built-ins unchanged."""
    if not isinstance(rd, CustomResourceDef) or not isinstance(obj, dict):
        return obj
    needs_default = rd.schema is not None and rd.schema.any_default()
    if obj.get("apiVersion") == rd.api_version and not needs_default:
        return obj
    out = copy.deepcopy(obj) if needs_default else dict(obj)
    out["apiVersion"] = rd.api_version
    if needs_default and rd.schema is not None:
        values.default(out, rd.schema)
    return out


def to_storage(rd: ResourceDef, obj: dict[str, Any]) -> None:
    """Rewrite ``obj``'s apiVersion (in place) to the storage version of its CRD."""
    if isinstance(rd, CustomResourceDef) and rd.storage_version:
        obj["apiVersion"] = rd.storage_api_version


# --- scale -------------------------------------------------------------------------------------

def get_path(obj: Any, path: str) -> Any:
    found = find(obj, parse_json_path(path)) if path else []
    return found[0] if found else None


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.lstrip(".").split(".")
    node = obj
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value


__all__ += ["CLEANUP_FINALIZER", "get_path", "set_path"]
