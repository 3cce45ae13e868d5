"""The /openapi/v3 documents against what kubectl reads from them: the root's hashed URLs, a
PATCH operation per kind with a single-object GVK and `fieldValidation` (apply), schemas carrying
the GVK list with resolvable `$ref`s (explain), and strategic-merge metadata (client-side apply).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from control.api.catalog import RESOURCES, ResourceDef, group_versions
from control.apiserver.openapi import document_hash, openapi_document, openapi_root
from control.apiserver.openapi.patch_meta import build_patch_extensions
from control.apiserver.openapi.paths import PATCH_CONTENT_TYPES, gv_prefix
from control.apiserver.openapi.schemas import all_schemas, minimal_kind_schema

J = dict[str, Any]
REF_PREFIX = "#/components/schemas/"
GV_PATHS = [gv_prefix(g, v).lstrip("/") for g, v in group_versions()]
METHODS = ("get", "put", "post", "patch", "delete")


def _doc(path: str) -> J:
    doc = openapi_document(path)
    assert doc is not None, path
    return doc


def _doc_of(r: ResourceDef) -> J:
    return _doc(gv_prefix(r.group, r.version).lstrip("/"))


def _gvk(r: ResourceDef) -> J:
    return {"group": r.group, "kind": r.kind, "version": r.version}


def _operations(doc: J) -> Iterator[tuple[str, str, J]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _kind_schemas(doc: J, gvk: J) -> list[J]:
    schemas = doc["components"]["schemas"].values()
    return [s for s in schemas if gvk in s.get("x-kubernetes-group-version-kind", [])]


def _deref(doc: J, schema: J) -> J:
    """Follow `$ref` and a single-element `allOf`, as kubectl's lookups do."""
    while True:
        if "$ref" in schema:
            schema = doc["components"]["schemas"][schema["$ref"].removeprefix(REF_PREFIX)]
        elif "allOf" in schema and "properties" not in schema:
            schema = schema["allOf"][0]
        else:
            return schema


def _field(doc: J, root: J, dotted: str) -> J:
    """The property schema at `dotted` below `root` (arrays are entered through `items`)."""
    schema, prop = root, root
    for name in dotted.split("."):
        schema = _deref(doc, schema)
        if "items" in schema:
            schema = _deref(doc, schema["items"])
        prop = schema["properties"][name]
        schema = prop
    return prop


# --- root and documents ------------------------------------------------------------------


def test_root_lists_every_group_version_with_its_hash() -> None:
    root = openapi_root()
    assert set(root["paths"]) == set(GV_PATHS)
    for path in GV_PATHS:
        url = root["paths"][path]["serverRelativeURL"]
        assert url == f"/openapi/v3/{path}?hash={document_hash(path)}"


@pytest.mark.parametrize("path", GV_PATHS)
def test_document_header_and_json(path: str) -> None:
    doc = _doc(path)
    assert doc["openapi"] == "3.0.0"
    assert doc["info"] == {"title": "Kubernetes", "version": "v1.37.0"}
    assert doc["paths"] and doc["components"]["schemas"]
    assert json.loads(json.dumps(doc)) == doc


@pytest.mark.parametrize("path", ["", "api", "apis/apps", "apis/apps/v2", "apis/autoscaling/v1"])
def test_unknown_documents(path: str) -> None:
    assert openapi_document(path) is None
    with pytest.raises(KeyError):
        document_hash(path)


def test_surrounding_slashes_are_ignored() -> None:
    assert openapi_document("/apis/apps/v1/") is openapi_document("apis/apps/v1")


def test_hashes_are_stable_content_hashes_and_distinct() -> None:
    hashes = {path: document_hash(path) for path in GV_PATHS}
    assert hashes == {path: document_hash(path) for path in GV_PATHS}
    assert len(set(hashes.values())) == len(hashes)
    for path, digest in hashes.items():
        assert re.fullmatch(r"[0-9A-F]+", digest)
        canonical = json.dumps(_doc(path), sort_keys=True, separators=(",", ":"))
        assert digest == hashlib.sha512(canonical.encode()).hexdigest().upper()


def test_documents_are_built_once() -> None:
    assert openapi_document("api/v1") is openapi_document("api/v1")


# --- paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [r for r in RESOURCES if not r.virtual], ids=lambda r: r.kind)
def test_kind_has_patch_operation_kubectl_apply_accepts(r: ResourceDef) -> None:
    doc = _doc_of(r)
    ns = "/namespaces/{namespace}" if r.namespaced else ""
    item = f"{gv_prefix(r.group, r.version)}{ns}/{r.resource}/{{name}}"
    patch = doc["paths"][item]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == _gvk(r)
    assert patch["x-kubernetes-action"] == "patch"
    queries = {p["name"] for p in patch["parameters"] if p["in"] == "query"}
    assert {"dryRun", "fieldManager", "fieldValidation", "force"} <= queries
    content = patch["requestBody"]["content"]
    assert set(content) == set(PATCH_CONTENT_TYPES)
    assert "application/strategic-merge-patch+json" in content
    for body in content.values():
        assert body["schema"] == {"$ref": REF_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}
    collection = doc["paths"][item.removesuffix("/{name}")]
    assert {"get", "post"} <= set(collection)
    assert collection["get"]["x-kubernetes-action"] == "list"
    assert {"get", "put", "patch", "delete"} == set(doc["paths"][item])


@pytest.mark.parametrize("path", GV_PATHS)
def test_every_patch_operation_offers_field_validation(path: str) -> None:
    # kubectl's query-parameter check stops at the first PATCH whose GVK matches, whichever
    # path (main resource or a subresource) that happens to be.
    for _, method, op in _operations(_doc(path)):
        if method == "patch":
            names = [p["name"] for p in op["parameters"] if p["in"] == "query"]
            assert "fieldValidation" in names


@pytest.mark.parametrize("path", GV_PATHS)
def test_operations_are_well_formed(path: str) -> None:
    doc = _doc(path)
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    for url, method, op in _operations(doc):
        gvk = op["x-kubernetes-group-version-kind"]
        assert isinstance(gvk, dict) and set(gvk) == {"group", "kind", "version"}
        assert op["responses"]["200"]["description"] == "OK"
        declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", url)), (url, method)
        if op["x-kubernetes-action"] == "connect":  # exec, attach, ...: a stream, no body
            assert "requestBody" not in op
            assert "text/plain" in op["responses"]["200"]["content"]
            continue
        if method in ("post", "put"):
            queries = {p["name"] for p in op["parameters"] if p["in"] == "query"}
            assert {"dryRun", "fieldManager", "fieldValidation"} <= queries
            assert "application/json" in op["requestBody"]["content"]
        if method == "post":
            assert {"200", "201"} <= set(op["responses"])


def test_virtual_reviews_only_accept_post_on_the_collection() -> None:
    for r in RESOURCES:
        if not r.virtual:
            continue
        paths = _doc_of(r)["paths"]
        mine = {p: ops for p, ops in paths.items() if f"/{r.resource}" in p}
        collection = f"{gv_prefix(r.group, r.version)}/{r.resource}"
        assert list(mine) == [collection]
        assert list(mine[collection]) == ["post"]
        assert mine[collection]["post"]["x-kubernetes-group-version-kind"] == _gvk(r)


def test_subresources() -> None:
    apps = _doc("apis/apps/v1")["paths"]
    scale = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert set(scale) == {"get", "put", "patch"}
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }
    ok = scale["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": REF_PREFIX + "io.k8s.api.autoscaling.v1.Scale"}
    status = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    core = _doc("api/v1")["paths"]
    log = core["/api/v1/namespaces/{namespace}/pods/{name}/log"]
    assert set(log) == {"get"}
    assert "text/plain" in log["get"]["responses"]["200"]["content"]
    assert set(core["/api/v1/namespaces/{namespace}/pods/{name}/binding"]) == {"post"}
    exec_ = core["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert set(exec_) == {"get", "post"}
    assert exec_["get"]["operationId"] == "connectCoreV1GetNamespacedPodExec"
    assert exec_["post"]["x-kubernetes-group-version-kind"]["kind"] == "PodExecOptions"
    assert set(core["/api/v1/nodes/{name}/proxy"]) == {"get"}
    assert set(core["/api/v1/namespaces/{name}/finalize"]) == {"put"}
    assert core["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"


# --- schemas ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", GV_PATHS)
def test_every_ref_resolves_within_its_document(path: str) -> None:
    doc = _doc(path)
    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith(REF_PREFIX), ref
        assert ref.removeprefix(REF_PREFIX) in schemas, ref


@pytest.mark.parametrize("path", GV_PATHS)
def test_documents_carry_only_referenced_schemas(path: str) -> None:
    doc = _doc(path)
    used = {ref.removeprefix(REF_PREFIX) for ref in _refs(doc)}
    assert set(doc["components"]["schemas"]) == used


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.kind)
def test_kind_schema_carries_gvk_list(r: ResourceDef) -> None:
    doc = _doc_of(r)
    found = _kind_schemas(doc, _gvk(r))
    assert len(found) == 1  # kubectl takes the first match: it must be the only one
    schema = found[0]
    assert schema["type"] == "object"
    assert schema["description"]
    assert {"apiVersion", "kind", "metadata"} <= set(schema["properties"])
    meta = _deref(doc, schema["properties"]["metadata"])
    assert "labels" in meta["properties"]
    if not r.virtual:
        list_gvk = {**_gvk(r), "kind": r.kind + "List"}
        (listed,) = _kind_schemas(doc, list_gvk)
        assert _deref(doc, listed["properties"]["items"]["items"]) is schema


@pytest.mark.parametrize(
    ("path", "kind", "field", "type_"),
    [
        pytest.param("apis/apps/v1", "Deployment", "spec.replicas", "integer", id="replicas"),
        pytest.param("api/v1", "Pod", "spec.containers.image", "string", id="image"),
        pytest.param("api/v1", "Pod", "spec.containers", "array", id="containers"),
        pytest.param("apis/apps/v1", "Deployment", "metadata", None, id="metadata"),
        pytest.param("apis/apps/v1", "Deployment", "spec", None, id="spec"),
        pytest.param("apis/apps/v1", "Deployment", "apiVersion", "string", id="apiVersion"),
    ],
)
def test_explain_finds_described_fields(path: str, kind: str, field: str, type_: str) -> None:
    doc = _doc(path)
    group = path.split("/")[1] if path.startswith("apis/") else ""
    (root,) = _kind_schemas(doc, {"group": group, "kind": kind, "version": "v1"})
    prop = _field(doc, root, field)
    assert prop["description"]
    if type_:
        assert prop["type"] == type_


def test_special_forms() -> None:
    doc = _doc("apis/apps/v1")
    (deploy,) = _kind_schemas(doc, {"group": "apps", "kind": "Deployment", "version": "v1"})
    created = _deref(doc, _field(doc, deploy, "metadata.creationTimestamp"))
    assert created["type"] == "string" and created["format"] == "date-time"
    surge = _deref(doc, _field(doc, deploy, "spec.strategy.rollingUpdate.maxSurge"))
    assert surge["x-kubernetes-int-or-string"] is True
    limits = _field(doc, deploy, "spec.template.spec.containers.resources.limits")
    assert limits["type"] == "object"
    assert _deref(doc, limits["additionalProperties"])["type"] == "string"
    assert _field(doc, deploy, "metadata.labels")["additionalProperties"] == {"type": "string"}
    assert _field(doc, deploy, "metadata.generation")["format"] == "int64"


def test_inline_fields_are_flattened() -> None:
    schemas = all_schemas()
    volume = schemas["io.k8s.api.core.v1.Volume"]["properties"]
    assert {"name", "configMap", "emptyDir", "secret"} <= set(volume)
    assert "" not in volume
    probe = schemas["io.k8s.api.core.v1.Probe"]["properties"]
    assert {"httpGet", "exec", "initialDelaySeconds"} <= set(probe)


def test_patch_status_and_delete_options_schemas() -> None:
    schemas = _doc("apis/apps/v1")["components"]["schemas"]
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] == {
        "description": "Patch is provided to give a concrete name and type to the Kubernetes "
        "PATCH request body.",
        "type": "object",
    }
    status = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Status"]
    assert {"code", "reason", "details", "message"} <= set(status["properties"])
    delete = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"]
    assert "propagationPolicy" in delete["properties"]


def test_minimal_schema_preserves_unknown_fields() -> None:
    schema = minimal_kind_schema("example.k8s.io", "v1", "Widget")
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "example.k8s.io", "kind": "Widget", "version": "v1"}
    ]
    assert schema["x-kubernetes-preserve-unknown-fields"] is True
    props = schema["properties"]
    assert props["metadata"]["allOf"] == [
        {"$ref": REF_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    for part in ("spec", "status"):
        assert props[part]["type"] == "object"
        assert props[part]["x-kubernetes-preserve-unknown-fields"] is True


# --- strategic-merge metadata -----------------------------------------------------------


def test_patch_tables_resolve_onto_message_fields() -> None:
    _, unresolved = build_patch_extensions()
    assert unresolved == []


@pytest.mark.parametrize(
    ("path", "kind", "field", "strategy", "key"),
    [
        ("apis/apps/v1", "Deployment", "spec.template.spec.containers", "merge", "name"),
        ("apis/apps/v1", "Deployment", "spec.template.spec.containers.env", "merge", "name"),
        ("apis/apps/v1", "Deployment", "spec.template.spec.containers.ports", "merge",
         "containerPort"),
        ("apis/apps/v1", "Deployment", "spec.template.spec.volumes", "merge,retainKeys", "name"),
        ("apis/apps/v1", "Deployment", "spec.strategy", "retainKeys", None),
        ("apis/apps/v1", "Deployment", "metadata.finalizers", "merge", None),
        ("apis/apps/v1", "Deployment", "metadata.ownerReferences", "merge", "uid"),
        ("api/v1", "Pod", "status.conditions", "merge", "type"),
        ("api/v1", "Service", "spec.ports", "merge", "port"),
        ("api/v1", "Node", "status.addresses", "merge", "type"),
    ],
)  # fmt: skip
def test_strategic_merge_extensions(
    path: str, kind: str, field: str, strategy: str, key: str | None
) -> None:
    doc = _doc(path)
    group = path.split("/")[1] if path.startswith("apis/") else ""
    (root,) = _kind_schemas(doc, {"group": group, "kind": kind, "version": "v1"})
    prop = _field(doc, root, field)
    assert prop["x-kubernetes-patch-strategy"] == strategy
    assert prop.get("x-kubernetes-patch-merge-key") == key


def test_atomic_lists_carry_no_patch_strategy() -> None:
    doc = _doc("api/v1")
    (pod,) = _kind_schemas(doc, {"group": "", "kind": "Pod", "version": "v1"})
    for field in ("spec.tolerations", "spec.containers.args", "spec.containers.command"):
        assert "x-kubernetes-patch-strategy" not in _field(doc, pod, field)
