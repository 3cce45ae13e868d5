"""CustomResourceDefinitions served by the in-process apiserver: establishment, discovery,
OpenAPI, every verb on custom objects, schemas (defaults, pruning, validation, CEL), status
and scale subresources, printer columns, selectors, versions, RBAC, quota and cleanup."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from control.api.errors import Forbidden, Invalid, NotFound
from control.client import ApiClient, Resource
from control.client.discovery import all_resources
from tests.conftest import eventually
from tests.inprocess import InProcessAPI

CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                "CustomResourceDefinition", False)
BACKUPS = Resource("example.com", "v1", "backups", "Backup", True)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["source"],
            "x-kubernetes-validations": [
                {"rule": "self.replicas <= self.maxReplicas",
                 "message": "replicas must not exceed maxReplicas"}],
            "properties": {
                "source": {"type": "string", "minLength": 1, "pattern": "^[a-z/]+$"},
                "schedule": {"type": "string", "default": "@daily"},
                "replicas": {"type": "integer", "minimum": 0, "default": 1},
                "maxReplicas": {"type": "integer", "default": 10},
                "mode": {"type": "string", "enum": ["full", "incremental"]},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 3, "items": {"type": "string"},
                         "x-kubernetes-list-type": "set"},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "color": {"type": "string"},
            },
        },
        "status": {
            "type": "object",
            "properties": {"phase": {"type": "string"}, "replicas": {"type": "integer"},
                           "selector": {"type": "string"}},
        },
    },
}


def backup_crd(**overrides: Any) -> dict[str, Any]:
    crd: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "backups.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "backups", "singular": "backup", "kind": "Backup",
                      "shortNames": ["bk"], "categories": ["all"]},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": copy.deepcopy(SCHEMA)},
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.replicas", "statusReplicasPath":
                    ".status.replicas", "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Source", "type": "string", "jsonPath": ".spec.source"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                "selectableFields": [{"jsonPath": ".spec.color"}],
            }],
        },
    }
    crd["spec"].update(overrides)
    return crd


def backup(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"source": "/data", **spec}}


async def established(admin: ApiClient, name: str = "backups.example.com") -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        crd = await admin.get(CRDS, name)
        conds = {c["type"]: c["status"] for c in crd["status"].get("conditions") or ()}
        return crd if conds.get("Established") == "True" else None
    return await eventually(probe, timeout=10)


async def install(admin: ApiClient, crd: dict[str, Any] | None = None) -> dict[str, Any]:
    crd = crd or backup_crd()
    await admin.create(CRDS, crd)
    out = await established(admin, crd["metadata"]["name"])

    async def served() -> bool:
        r = await admin.raw("GET", f"/apis/{crd['spec']['group']}/"
                                   f"{crd['spec']['versions'][0]['name']}")
        return r.status == 200
    await eventually(served, timeout=10)
    return out


async def test_crd_is_established_and_discovered(api: InProcessAPI) -> None:
    async with api.client() as admin:
        crd = await install(admin)
        conds = {c["type"]: c for c in crd["status"]["conditions"]}
        assert conds["NamesAccepted"]["reason"] == "NoConflicts"
        assert conds["Established"]["reason"] == "InitialNamesAccepted"
        assert crd["status"]["acceptedNames"]["plural"] == "backups"
        assert crd["status"]["storedVersions"] == ["v1"]
        groups = await admin.request("GET", "/apis")
        entry = next(g for g in groups["groups"] if g["name"] == "example.com")
        assert entry["preferredVersion"]["groupVersion"] == "example.com/v1"
        listed = await admin.request("GET", "/apis/example.com/v1")
        names = {r["name"]: r for r in listed["resources"]}
        assert names["backups"]["shortNames"] == ["bk"]
        assert names["backups"]["categories"] == ["all"]
        assert names["backups"]["singularName"] == "backup"
        assert set(names) == {"backups", "backups/status", "backups/scale"}
        agg = await admin.raw("GET", "/apis", headers={"Accept": "application/json;g="
                              "apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
        items = {i["metadata"]["name"]: i for i in agg.json()["items"]}
        assert items["example.com"]["versions"][0]["resources"][0]["resource"] == "backups"
        root = await admin.request("GET", "/openapi/v3")
        url = root["paths"]["apis/example.com/v1"]["serverRelativeURL"]
        doc = await admin.request("GET", url.split("?")[0])
        patch = doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/backups/{name}"]["patch"]
        assert any(p["name"] == "fieldValidation" for p in patch["parameters"])
        assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
        assert doc["components"]["schemas"]["com.example.v1.Backup"][
            "x-kubernetes-group-version-kind"] == [
            {"group": "example.com", "kind": "Backup", "version": "v1"}]
        found = (await all_resources(admin)).by_kind()
        assert found[("example.com/v1", "Backup")] == BACKUPS


async def test_objects_defaulted_pruned_validated(api: InProcessAPI) -> None:
    async with api.client() as admin:
        await install(admin)
        made = await admin.create(BACKUPS, {**backup("b1", unknown=1), "status": {"phase": "x"}})
        assert made["spec"]["schedule"] == "@daily" and made["spec"]["replicas"] == 1
        assert "unknown" not in made["spec"] and "status" not in made
        assert made["metadata"]["generation"] == 1
        strict = await admin.raw("POST", BACKUPS.path("default"),
                                 body=backup("b2", unknown=1),
                                 params={"fieldValidation": "Strict"})
        assert strict.status == 400
        assert 'unknown field "spec.unknown"' in strict.json()["message"]
        with pytest.raises(Invalid) as bad:
            await admin.create(BACKUPS, backup("b3", replicas="three", mode="partial",
                                               tags=["a", "a"]))
        msg = bad.value.message
        assert 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type ' \
               'integer: "string"' in msg
        assert 'spec.mode: Unsupported value: "partial": supported values: "full", ' \
               '"incremental"' in msg
        assert 'spec.tags[1]: Duplicate value: "a"' in msg
        with pytest.raises(NotFound):
            await admin.get(BACKUPS, "b3", "default")
        with pytest.raises(Invalid) as rule:
            await admin.create(BACKUPS, backup("b4", replicas=5, maxReplicas=2))
        assert "spec: Invalid value: replicas must not exceed maxReplicas" in rule.value.message
        with pytest.raises(Invalid) as missing:
            await admin.create(BACKUPS, {**backup("b5"), "spec": {}})
        assert "spec.source: Required value" in missing.value.message
        port = await admin.create(BACKUPS, backup("b6", port="http", extra={"any": {"x": 1}}))
        assert port["spec"]["port"] == "http" and port["spec"]["extra"] == {"any": {"x": 1}}


async def test_status_scale_patch_and_generation(api: InProcessAPI) -> None:
    async with api.client() as admin:
        await install(admin)
        await admin.create(BACKUPS, backup("s1"))
        cur = await admin.get(BACKUPS, "s1", "default")
        cur["status"] = {"phase": "Done", "replicas": 1, "selector": "app=s1"}
        out = await admin.update(BACKUPS, cur, subresource="status")
        assert out["status"]["phase"] == "Done" and out["metadata"]["generation"] == 1
        out = await admin.patch(BACKUPS, "s1", {"spec": {"color": "red"}}, "default")
        assert out["metadata"]["generation"] == 2 and out["status"]["phase"] == "Done"
        out = await admin.patch(BACKUPS, "s1", {"metadata": {"labels": {"a": "b"}}}, "default")
        assert out["metadata"]["generation"] == 2
        scale = await admin.get(BACKUPS, "s1", "default", subresource="scale")
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
        assert scale["status"] == {"replicas": 1, "selector": "app=s1"}
        await admin.patch(BACKUPS, "s1", {"spec": {"replicas": 4}}, "default",
                          subresource="scale")
        assert (await admin.get(BACKUPS, "s1", "default"))["spec"]["replicas"] == 4
        smp = await admin.raw("PATCH", BACKUPS.path("default", "s1"), body={"spec": {}},
                              content_type="application/strategic-merge-patch+json")
        assert smp.status == 415
        out = await admin.patch(BACKUPS, "s1", [{"op": "replace", "path": "/spec/source",
                                                 "value": "/other"}], "default",
                                patch_type="json")
        assert out["spec"]["source"] == "/other"
        applied = await admin.patch(BACKUPS, "s2", {**backup("s2"), "spec": {
            "source": "/x", "tags": ["a"]}}, "default", patch_type="apply",
            field_manager="op")
        assert applied["spec"]["tags"] == ["a"] and applied["spec"]["replicas"] == 1


async def test_table_selectors_watch_and_deletecollection(api: InProcessAPI) -> None:
    async with api.client() as admin:
        await install(admin)
        for name, color in (("t1", "red"), ("t2", "blue")):
            await admin.create(BACKUPS, {**backup(name, color=color),
                                         "metadata": {"name": name, "namespace": "default",
                                                      "labels": {"c": color}}})
        table = await admin.raw("GET", BACKUPS.path("default"), headers={
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
        body = table.json()
        assert [c["name"] for c in body["columnDefinitions"]] == [
            "Name", "Source", "Replicas", "Phase", "Age"]
        assert body["rows"][0]["cells"][:4] == ["t1", "/data", 1, None]
        red = await admin.list(BACKUPS, "default", field_selector="spec.color=red")
        assert [o["metadata"]["name"] for o in red["items"]] == ["t1"]
        named = await admin.list(BACKUPS, "default", field_selector="metadata.name=t2")
        assert [o["metadata"]["name"] for o in named["items"]] == ["t2"]
        bad = await admin.raw("GET", BACKUPS.path("default"),
                              params={"fieldSelector": "spec.source=x"})
        assert bad.status == 400
        labelled = await admin.list(BACKUPS, "default", label_selector="c=blue")
        assert [o["metadata"]["name"] for o in labelled["items"]] == ["t2"]
        seen: list[tuple[str, str]] = []

        async def watch() -> None:
            async for ev in admin.watch(BACKUPS, "default",
                                        resource_version=red["metadata"]["resourceVersion"]):
                if ev.type != "BOOKMARK":
                    seen.append((ev.type, ev.object["metadata"]["name"]))
                if len(seen) == 2:
                    return
        task = asyncio.create_task(watch())
        await admin.create(BACKUPS, backup("t3"))
        await admin.raw("DELETE", BACKUPS.path("default"), params={"labelSelector": "c=red"})
        await asyncio.wait_for(task, 10)
        assert seen == [("ADDED", "t3"), ("DELETED", "t1")]


async def test_versions_conflicts_and_bad_crds(api: InProcessAPI) -> None:
    async with api.client() as admin:
        two = backup_crd()
        v1 = two["spec"]["versions"][0]
        v2 = {**copy.deepcopy(v1), "name": "v2", "storage": False}
        two["spec"]["versions"] = [v1, v2]
        await install(admin, two)
        made = await admin.create(Resource("example.com", "v2", "backups", "Backup", True),
                                  {**backup("m1"), "apiVersion": "example.com/v2"})
        assert made["apiVersion"] == "example.com/v2"
        old = await admin.get(BACKUPS, "m1", "default")
        assert old["apiVersion"] == "example.com/v1"
        clash = backup_crd()
        clash["metadata"]["name"] = "archives.example.com"
        clash["spec"]["names"] = {"plural": "archives", "kind": "Archive",
                                  "shortNames": ["bk"]}
        await admin.create(CRDS, clash)

        async def refused() -> bool:
            crd = await admin.get(CRDS, "archives.example.com")
            conds = {c["type"]: c for c in crd["status"].get("conditions") or ()}
            return conds.get("NamesAccepted", {}).get("reason") == "ShortNamesConflict"
        await eventually(refused, timeout=10)
        cases = [
            ({"group": "example"},
             'spec.group: Invalid value: "example": should be a domain with at least one dot'),
            ({"scope": "Everywhere"}, 'spec.scope: Unsupported value: "Everywhere"'),
            ({"conversion": {"strategy": "Webhook"}}, "Webhook conversion is not supported"),
        ]
        for override, message in cases:
            crd = backup_crd(**override)
            with pytest.raises(Invalid) as e:
                await admin.create(CRDS, crd)
            assert message in e.value.message
        nonstructural = backup_crd()
        nonstructural["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
            "spec"]["properties"]["loose"] = {"description": "no type"}
        with pytest.raises(Invalid) as e:
            await admin.create(CRDS, nonstructural)
        assert ("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[loose]."
                "type: Required value: must not be empty for specified object fields"
                in e.value.message)
        badname = backup_crd()
        badname["metadata"]["name"] = "wrong.example.com"
        with pytest.raises(Invalid) as e:
            await admin.create(CRDS, badname)
        assert 'metadata.name: Invalid value: "wrong.example.com": must be ' \
               'spec.names.plural+"."+spec.group' in e.value.message


async def test_crd_deletion_removes_objects_and_stops_serving(api: InProcessAPI) -> None:
    async with api.client() as admin:
        await install(admin)
        await admin.create(BACKUPS, backup("d1"))
        held = backup("d2")
        held["metadata"]["finalizers"] = ["example.com/hold"]
        await admin.create(BACKUPS, held)
        await admin.delete(CRDS, "backups.example.com")

        async def terminating() -> bool:
            crd = await admin.get(CRDS, "backups.example.com")
            return crd["metadata"].get("deletionTimestamp") is not None
        await eventually(terminating, timeout=10)
        with pytest.raises(Forbidden):
            await admin.create(BACKUPS, backup("d3"))

        async def only_held() -> bool:
            items = (await admin.list(BACKUPS, "default"))["items"]
            return [o["metadata"]["name"] for o in items] == ["d2"]
        await eventually(only_held, timeout=10)
        await admin.patch(BACKUPS, "d2", {"metadata": {"finalizers": None}}, "default")

        async def gone() -> bool:
            try:
                await admin.get(CRDS, "backups.example.com")
            except NotFound:
                return (await admin.raw("GET", "/apis/example.com/v1")).status == 404
            return False
        await eventually(gone, timeout=10)


async def test_rbac_and_quota_on_custom_resources(api: InProcessAPI) -> None:
    from certs.layout import issue_user, user_paths

    RBAC = "rbac.authorization.k8s.io"
    roles = Resource(RBAC, "v1", "roles", "Role", True)
    bindings = Resource(RBAC, "v1", "rolebindings", "RoleBinding", True)
    quotas = Resource("", "v1", "resourcequotas", "ResourceQuota", True)
    async with api.client() as admin:
        await install(admin)
        await admin.create(roles, {"metadata": {"name": "bk", "namespace": "default"},
                                   "rules": [{"apiGroups": ["example.com"],
                                              "resources": ["backups"],
                                              "verbs": ["get", "list", "create"]}]})
        await admin.create(bindings, {"metadata": {"name": "bk", "namespace": "default"},
                                      "roleRef": {"apiGroup": RBAC, "kind": "Role",
                                                  "name": "bk"},
                                      "subjects": [{"kind": "User", "name": "backup-operator"}]})
        await admin.create(quotas, {"metadata": {"name": "q", "namespace": "default"},
                                    "spec": {"hard": {"count/backups.example.com": "1"}}})
        issue_user(api.certs, "backup-operator")
        async with api.client(user_paths(api.certs, "backup-operator")) as ops:
            async def allowed() -> bool:
                await ops.list(BACKUPS, "default")
                return True
            await eventually(allowed, timeout=10)
            await ops.create(BACKUPS, backup("r1"))
            with pytest.raises(Forbidden) as quota:
                await ops.create(BACKUPS, backup("r2"))
            assert "exceeded quota: q" in quota.value.message
            with pytest.raises(Forbidden) as denied:
                await ops.delete(BACKUPS, "r1", "default")
            assert 'cannot delete resource "backups" in API group "example.com"' in \
                denied.value.message


async def test_deeply_nested_object_is_refused(api: InProcessAPI) -> None:
    async with api.client() as admin:
        await install(admin)
        deep: Any = {"leaf": 1}
        for _ in range(300):
            deep = {"x": deep}
        reply = await admin.raw("POST", BACKUPS.path("default"),
                                body=json.dumps(backup("deep", extra=deep)))
        assert reply.status == 400
        with pytest.raises(NotFound):
            await admin.get(BACKUPS, "deep", "default")



async def test_every_apiserver_serves_a_crd_created_through_another(api: InProcessAPI) -> None:
    """A second apiserver over the same store learns the CRD through its own watch cache."""
    from aiohttp import web

    from control.apiserver.__main__ import serving_context
    from control.apiserver.app import ServerConfig, build_app
    from control.apiserver.state import APIState

    state = APIState.build(api.store)  # type: ignore[arg-type]
    app = build_app(state, ServerConfig(server_address="127.0.0.1:0", bootstrap=False))
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=serving_context(str(api.certs)))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    other = InProcessAPI(f"https://127.0.0.1:{port}", api.certs, api.store, state, app)
    try:
        async with api.client() as admin, other.client() as second:
            await install(admin)

            async def served() -> bool:
                await second.create(BACKUPS, backup("via-second"))
                return True
            await eventually(served, timeout=1.0)
            assert (await admin.get(BACKUPS, "via-second", "default"))["spec"]["replicas"] == 1
    finally:
        await runner.cleanup()
