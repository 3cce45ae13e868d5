"""OpenAPI v3 documents of the custom group versions, for ``kubectl apply`` (a PATCH operation
with ``fieldValidation`` per kind) and ``kubectl explain`` (the CRD's schema, named
``<reversed group>.<version>.<Kind>`` as kube-apiserver names it).

PATCH operations offer JSON patch, merge patch and apply only: custom resources take no
strategic merge patch, and kubectl then computes a merge patch for client-side apply.  Pure.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from control.apiserver.openapi import KUBERNETES_VERSION
from control.apiserver.openapi.naming import SCHEMA_PREFIX, ref
from control.apiserver.openapi.paths import gv_prefix, resource_paths
from control.apiserver.openapi.schemas import (
    GVK,
    OBJECT_META,
    gvk,
    iter_refs,
    kind_schema_name,
    list_schema_name,
    schema_closure,
)

from .resource import CustomResourceDef

__all__ = ["documents"]

_SMP = "application/strategic-merge-patch+json"
_DROPPED = ("x-kubernetes-validations",)


def schema_name(rd: CustomResourceDef) -> str:
    return ".".join(reversed(rd.group.split("."))) + f".{rd.version}.{rd.kind}"


def _cleaned(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _cleaned(v) for k, v in node.items() if k not in _DROPPED}
    if isinstance(node, list):
        return [_cleaned(v) for v in node]
    return node


def _kind_schema(rd: CustomResourceDef) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(_cleaned(dict(rd.schema.raw))) \
        if rd.schema is not None else {"type": "object",
                                       "x-kubernetes-preserve-unknown-fields": True}
    props = raw.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned "
                           "schema of this representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value representing "
                     "the REST resource this object represents."}
    props["metadata"] = {"allOf": [ref(OBJECT_META)], "description": "Standard object's "
                         "metadata."}
    raw[GVK] = [gvk(rd.group, rd.version, rd.kind)]
    return raw


def _list_schema(rd: CustomResourceDef) -> dict[str, Any]:
    return {"description": f"{rd.kind}List is a list of {rd.kind}", "type": "object",
            "required": ["items"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "items": {"type": "array", "items": ref(schema_name(rd))},
                           "metadata": {"allOf": [ref(
                               "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")]}},
            GVK: [gvk(rd.group, rd.version, rd.kind + "List")]}


def _renamed(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.removeprefix(SCHEMA_PREFIX) in names:
                out[k] = SCHEMA_PREFIX + names[v.removeprefix(SCHEMA_PREFIX)]
            elif k == "content" and isinstance(v, dict) and _SMP in v:
                out[k] = {t: _renamed(c, names) for t, c in v.items() if t != _SMP}
            else:
                out[k] = _renamed(v, names)
        return out
    if isinstance(node, list):
        return [_renamed(v, names) for v in node]
    return node


def _document(rds: list[CustomResourceDef]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rd in rds:
        names = {kind_schema_name(rd.group, rd.version, rd.kind): schema_name(rd),
                 list_schema_name(rd.group, rd.version, rd.kind): schema_name(rd) + "List"}
        paths.update(_renamed(resource_paths(rd), names))
        schemas[schema_name(rd)] = _kind_schema(rd)
        schemas[schema_name(rd) + "List"] = _list_schema(rd)
    builtin = [n for n in iter_refs([paths, schemas]) if n not in schemas]
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": dict(sorted(paths.items())),
            "components": {"schemas": dict(sorted({**schema_closure(builtin),
                                                   **schemas}.items()))}}


def documents(served: list[CustomResourceDef]) -> dict[str, tuple[bytes, str]]:
    """``apis/<group>/<version>`` -> (encoded document, hash), per custom group version."""
    by_gv: dict[tuple[str, str], list[CustomResourceDef]] = {}
    for rd in served:
        by_gv.setdefault((rd.group, rd.version), []).append(rd)
    out = {}
    for (group, version), rds in by_gv.items():
        doc = _document(rds)
        body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True, separators=(",", ":"))
                                .encode()).hexdigest().upper()
        out[gv_prefix(group, version).lstrip("/")] = (body, digest)
    return out
