"""Integration: the apiserver over real HTTPS (aiohttp, admin client certificate) against a
real ``ketch up`` cluster: bad input is refused with the right ``Status`` and changes nothing,
and the API semantics clients rely on (system metadata, status split, generation, pagination,
resourceVersion rules, selectors, finalizers, subresources, Table output, discovery, health).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from certs.layout import admin_paths
from ketch.cluster import Cluster
from tests.apiclient import APIClient, poll_async

pytestmark = pytest.mark.integration

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
SMP = "application/strategic-merge-patch+json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
MODIFIED = ("the object has been modified; please apply your changes to the latest version "
            "and try again")

BAD = "bad"  # the namespace bad input aims at
CM = f"/api/v1/namespaces/{BAD}/configmaps"
DEP = f"/apis/apps/v1/namespaces/{BAD}/deployments"
SEM = "sem"  # the namespace of the semantics tests
LABELS = "labels"  # a fixed set of labelled configmaps for the selector table
PAGES = "pages"
NAMESPACES = (BAD, SEM, LABELS, PAGES, "term")

LABELLED = {
    "web-prod": {"tier": "web", "env": "prod"},
    "web-dev": {"tier": "web", "env": "dev"},
    "db-prod": {"tier": "db", "env": "prod"},
    "cache": {"tier": "cache"},
    "bare": {},
}


def _quiet(_: str) -> None:
    pass


def deployment(name: str, replicas: Any = 1, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                     **spec}}


def pod(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _ld(number: int, data: bytes) -> bytes:
    assert len(data) < 128
    return bytes([(number << 3) | 2, len(data)]) + data


def envelope(api_version: str, kind: str, raw: bytes = b"") -> bytes:
    """A ``runtime.Unknown`` protobuf envelope (typeMeta, raw) after the ``k8s\\0`` magic."""
    return b"k8s\x00" + _ld(1, _ld(1, api_version.encode()) + _ld(2, kind.encode())) + \
        _ld(2, raw)


ROOT_CA = "kube-root-ca.crt"  # the controller-manager publishes it in every namespace


def names(body: dict[str, Any]) -> list[str]:
    return [o["metadata"]["name"] for o in body["items"] if o["metadata"]["name"] != ROOT_CA]


async def _setup(c: Cluster) -> None:
    """Namespaces and the objects the tests expect, then wait until housekeeping (default
    service accounts, emptying the terminating namespace) is done writing."""
    async with APIClient(c.url, admin_paths(c.store.certs_dir)) as a:
        for ns in NAMESPACES:
            st, body = await a.post("/api/v1/namespaces", {"metadata": {"name": ns}})
            assert st == 201, body
        assert (await a.post(CM, {"metadata": {"name": "cm"}, "data": {"a": "1"}})).status == 201
        assert (await a.post(DEP, deployment("web"))).status == 201
        for name, labels in LABELLED.items():
            st, _ = await a.post(f"/api/v1/namespaces/{LABELS}/configmaps",
                                 {"metadata": {"name": name, "labels": labels}})
            assert st == 201
        held = "/api/v1/namespaces/term/configmaps/held"
        st, _ = await a.post("/api/v1/namespaces/term/configmaps",
                             {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
        assert st == 201

        async def accounts() -> bool:
            for ns in (BAD, SEM):
                if (await a.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default")).status \
                        != 200:
                    return False
            return True

        await poll_async(accounts)
        st, body = await a.delete("/api/v1/namespaces/term")
        assert st == 200 and body["status"]["phase"] == "Terminating"

        async def emptied() -> bool:
            _, sas = await a.get("/api/v1/namespaces/term/serviceaccounts")
            _, cm = await a.get(held)
            return not sas["items"] and bool(cm["metadata"].get("deletionTimestamp"))

        await poll_async(emptied)


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # The apiserver's own semantics: no workload controllers rewriting the objects these tests
    # compare, no scheduler or nodes (namespaces, service accounts and the rest still run).
    c = Cluster(tmp_path_factory.mktemp("ketch-http") / "cluster", port=0, schedulers=0, nodes=0,
                controllers="*,-deployment,-replicaset")
    c.up(progress=_quiet)
    try:
        asyncio.run(_setup(c))
        yield c
    finally:
        c.down(progress=_quiet)


@pytest.fixture
async def admin(ketch: Cluster) -> AsyncIterator[APIClient]:
    async with APIClient(ketch.url, admin_paths(ketch.store.certs_dir)) as c:
        yield c


# --- bad input ------------------------------------------------------------------------------

# Everything a bad request could have touched: it must all be exactly as before.
_OBSERVED = ("/api/v1/namespaces", f"/api/v1/namespaces/{BAD}/configmaps",
             f"/api/v1/namespaces/{BAD}/pods", f"/api/v1/namespaces/{BAD}/secrets",
             f"/apis/apps/v1/namespaces/{BAD}/deployments", "/api/v1/namespaces/term/configmaps",
             "/api/v1/namespaces/nope/configmaps")


async def _snapshot(c: APIClient) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for path in _OBSERVED:
        st, body = await c.get(path)
        assert st == 200, body
        # "term" is Terminating: the namespace controller keeps its conditions current.
        out[path] = sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"])
                           for o in body["items"] if o["metadata"]["name"] != "term")
    return out


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    body: Any = None
    code: int = 400
    reason: str = "BadRequest"
    message: str = ""  # a part of the Status message
    content_type: str | None = JSON
    params: dict[str, str] = field(default_factory=dict)
    cause_field: str = ""  # a field one of details.causes must name
    details: dict[str, str] = field(default_factory=dict)  # a part of Status details


BIG = {"metadata": {"name": "big"}, "data": {"a": "x" * (3 * 1024 * 1024 + 16)}}
DUPLICATE = (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},'
             b'"data":{"a":"1","a":"2"}}')
STALE_WEB = {**deployment("web", 2), "metadata": {"name": "web", "resourceVersion": "1"}}
BAD_POLICY = ('DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
              '"Sideways": supported values: "Foreground", "Background", "Orphan", "nil"')
TERMINATING = ("unable to create new content in namespace term because it is being "
               "terminated")

BAD_INPUT = [
    # decoding
    pytest.param(Bad("POST", CM, b'{"metadata": {"name": "x"'), id="malformed-json"),
    pytest.param(Bad("POST", CM, b'{"metadata":{"name":"x"},"data":{"a":NaN}}'), id="json-nan"),
    pytest.param(Bad("POST", CM, b"[]", message="must be a JSON object"), id="body-not-object"),
    pytest.param(Bad("POST", CM, b"metadata: {name: [x\n", content_type=YAML,
                     message="error converting YAML to JSON"), id="malformed-yaml"),
    pytest.param(Bad("POST", CM, b"metadata: {name: x}\n---\nmetadata: {name: y}\n",
                     content_type=YAML), id="yaml-two-documents"),
    pytest.param(Bad("POST", CM, b"metadata: {name: x}\ndata: {a: !!binary aGk=}\n",
                     content_type=YAML), id="yaml-binary-value"),
    pytest.param(Bad("POST", CM, b"\x0a\x02v1\x12\x09ConfigMap", content_type=PROTOBUF),
                 id="protobuf-without-magic"),
    pytest.param(Bad("POST", CM, b"k8s\x00\xff\xff\xff\xff\xff", content_type=PROTOBUF),
                 id="protobuf-garbage-after-magic"),
    pytest.param(Bad("POST", CM, envelope("v1", "ConfigMap", b"\x0a\x05ab"),
                     content_type=PROTOBUF), id="protobuf-truncated-object"),
    pytest.param(Bad("POST", CM, envelope("v1", "Frobnicator"), content_type=PROTOBUF,
                     code=415, reason="UnsupportedMediaType", message="Frobnicator"),
                 id="protobuf-unsupported-kind"),
    pytest.param(Bad("POST", CM, b"name,value\nx,1\n", content_type="text/csv", code=415,
                     reason="UnsupportedMediaType", message="application/json"),
                 id="unsupported-content-type"),
    pytest.param(Bad("POST", CM, BIG, code=413, reason="RequestEntityTooLarge"),
                 id="body-over-3MiB"),
    # strict field validation
    pytest.param(Bad("POST", DEP, deployment("strict", foo=1), params={
        "fieldValidation": "Strict"}, message='strict decoding error: unknown field "spec.foo"'),
        id="strict-unknown-field"),
    pytest.param(Bad("POST", CM, DUPLICATE, params={"fieldValidation": "Strict"},
                     message='strict decoding error: duplicate field "a"'),
                 id="strict-duplicate-field"),
    pytest.param(Bad("POST", CM, {"metadata": {"name": "x"}}, params={
        "fieldValidation": "Loose"}, code=422, reason="Invalid", message=(
            'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: '
            '"Loose"'), cause_field="fieldValidation"), id="field-validation-unknown"),
    # wrong types: Go's decoder refuses them before validation (400, not 422)
    pytest.param(Bad("POST", DEP, deployment("typed", "three"), message=(
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32")),
        id="wrong-type-replicas"),
    pytest.param(Bad("POST", CM, {"metadata": {"name": "x"}, "data": "not-a-map"},
                     message="ConfigMap.data of type map[string]string"),
                 id="wrong-type-configmap-data"),
    pytest.param(Bad("POST", CM, {"metadata": {"name": "x"}, "data": {"a": 1}},
                     message="ConfigMap.data.a of type string"), id="wrong-type-data-value"),
    pytest.param(Bad("POST", CM, {"metadata": "x"}, message="metadata"),
                 id="wrong-type-metadata"),
    # validation
    pytest.param(Bad("POST", CM, {"metadata": {"name": "Bad_Name"}}, code=422, reason="Invalid",
                     message='ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: '
                     '"Bad_Name"', cause_field="metadata.name"), id="invalid-name"),
    pytest.param(Bad("POST", CM, {"metadata": {}}, code=422, reason="Invalid",
                     message="name or generateName is required", cause_field="metadata.name"),
                 id="missing-name"),
    pytest.param(Bad("POST", CM, {"metadata": {"name": "x", "labels": {"a": "not valid!"}}},
                     code=422, reason="Invalid", cause_field="metadata.labels"),
                 id="invalid-label-value"),
    pytest.param(Bad("POST", DEP, deployment("neg", -1), code=422, reason="Invalid",
                     cause_field="spec.replicas"), id="negative-replicas"),
    # patches
    pytest.param(Bad("PATCH", f"{CM}/cm", {"data": {"a": "2"}}, content_type=JSON, code=415,
                     reason="UnsupportedMediaType", message=MERGE_PATCH),
                 id="patch-unsupported-content-type"),
    pytest.param(Bad("PATCH", f"{CM}/cm", [{"op": "remove", "path": "/spec/nope"}],
                     content_type=JSON_PATCH, code=422, reason="Invalid"),
                 id="json-patch-does-not-apply"),
    pytest.param(Bad("PATCH", f"{CM}/cm", [{"op": "test", "path": "/data/a", "value": "9"}],
                     content_type=JSON_PATCH, code=422, reason="Invalid"),
                 id="json-patch-test-fails"),
    pytest.param(Bad("PATCH", f"{CM}/cm", {"op": "add", "path": "/data/b", "value": "1"},
                     content_type=JSON_PATCH), id="json-patch-not-a-list"),
    pytest.param(Bad("PATCH", f"{CM}/cm", [1, 2], content_type=MERGE_PATCH),
                 id="merge-patch-not-an-object"),
    pytest.param(Bad("PATCH", f"{CM}/cm", [1], content_type=SMP),
                 id="strategic-merge-patch-not-an-object"),
    pytest.param(Bad("PATCH", f"{CM}/cm", {"metadata": {"resourceVersion": "1"},
                                           "data": {"a": "2"}},
                     content_type=MERGE_PATCH, code=409, reason="Conflict",
                     message=f'Operation cannot be fulfilled on configmaps "cm": {MODIFIED}'),
                 id="patch-with-stale-resource-version"),
    # conflicts
    pytest.param(Bad("POST", CM, {"metadata": {"name": "cm"}}, code=409, reason="AlreadyExists",
                     message='configmaps "cm" already exists'), id="already-exists"),
    pytest.param(Bad("POST", DEP, deployment("web"), code=409, reason="AlreadyExists",
                     message='deployments.apps "web" already exists',
                     details={"name": "web", "group": "apps", "kind": "deployments"}),
                 id="already-exists-deployment"),
    pytest.param(Bad("PUT", f"{CM}/cm", {"metadata": {"name": "cm", "resourceVersion": "1"},
                                         "data": {"a": "changed"}}, code=409, reason="Conflict",
                     message=f'Operation cannot be fulfilled on configmaps "cm": {MODIFIED}'),
                 id="update-with-stale-resource-version"),
    pytest.param(Bad("PUT", f"{DEP}/web", STALE_WEB, code=409, reason="Conflict",
                     message=f'Operation cannot be fulfilled on deployments.apps "web": '
                     f"{MODIFIED}", details={"name": "web", "group": "apps", "kind": "deployments"}),
                 id="update-deployment-with-stale-resource-version"),
    pytest.param(Bad("DELETE", f"{CM}/cm", {"kind": "DeleteOptions", "apiVersion": "v1",
                                            "preconditions": {"uid": "wrong"}},
                     code=409, reason="Conflict",
                     message='Operation cannot be fulfilled on configmaps "cm": Precondition '
                     "failed: UID in precondition: wrong, UID in object meta: "),
                 id="delete-precondition-uid-mismatch"),
    pytest.param(Bad("DELETE", f"{CM}/cm", {"preconditions": {"resourceVersion": "1"}},
                     code=409, reason="Conflict", message="Precondition failed: "
                     "ResourceVersion in precondition: 1, ResourceVersion in object meta: "),
                 id="delete-precondition-resource-version-mismatch"),
    # addressing
    pytest.param(Bad("GET", f"/api/v1/namespaces/{BAD}/frobs", code=404, reason="NotFound",
                     message="the server could not find the requested resource"),
                 id="get-unknown-resource"),
    pytest.param(Bad("POST", "/apis/nope.example.com/v1/namespaces/bad/things", {}, code=404,
                     reason="NotFound"), id="create-in-unknown-group"),
    pytest.param(Bad("GET", f"{CM}/nope", code=404, reason="NotFound",
                     message='configmaps "nope" not found'), id="get-missing-object"),
    pytest.param(Bad("GET", f"{CM}/cm/frob", code=404, reason="NotFound"),
                 id="get-unknown-subresource"),
    pytest.param(Bad("POST", "/api/v1/namespaces/nope/configmaps", {"metadata": {"name": "x"}},
                     code=404, reason="NotFound", message='namespaces "nope" not found',
                     details={"name": "nope", "kind": "namespaces"}),
                 id="create-in-missing-namespace"),
    pytest.param(Bad("POST", "/api/v1/namespaces/term/configmaps", {"metadata": {"name": "x"}},
                     code=403, reason="Forbidden", message=TERMINATING),
                 id="create-in-terminating-namespace"),
    pytest.param(Bad("GET", f"/api/v1/namespaces/{BAD}/pods/x/binding", code=405,
                     reason="MethodNotAllowed"), id="get-of-create-only-subresource"),
    pytest.param(Bad("DELETE", "/apis/authentication.k8s.io/v1/selfsubjectreviews/x", code=405,
                     reason="MethodNotAllowed"), id="delete-of-a-review"),
    # body against URL
    pytest.param(Bad("POST", CM, {"apiVersion": "v1", "kind": "Secret",
                                  "metadata": {"name": "x"}},
                     message="the kind in the data (Secret) does not match the expected kind"),
                 id="kind-mismatch"),
    pytest.param(Bad("POST", CM, {"apiVersion": "apps/v1", "kind": "ConfigMap",
                                  "metadata": {"name": "x"}}, message="API version"),
                 id="api-version-mismatch"),
    pytest.param(Bad("POST", CM, {"metadata": {"name": "x", "namespace": "kube-system"}},
                     message="does not match the namespace"), id="namespace-mismatch"),
    pytest.param(Bad("PUT", f"{CM}/cm", {"metadata": {"name": "other"}},
                     message="does not match"), id="name-mismatch-on-update"),
    # query parameters
    pytest.param(Bad("GET", CM, params={"resourceVersion": "abc"},
                     message="resourceVersion"), id="list-resource-version-not-a-number"),
    pytest.param(Bad("GET", f"{CM}/cm", params={"resourceVersion": "abc"}),
                 id="get-resource-version-not-a-number"),
    pytest.param(Bad("GET", CM, params={"watch": "true", "resourceVersion": "abc"}),
                 id="watch-resource-version-not-a-number"),
    pytest.param(Bad("GET", CM, params={"limit": "x"}, message="limit"),
                 id="limit-not-a-number"),
    pytest.param(Bad("GET", CM, params={"watch": "1", "timeoutSeconds": "soon"},
                     message="timeoutSeconds"), id="timeout-not-a-number"),
    pytest.param(Bad("GET", CM, params={"continue": "not-a-token"}, message="continue"),
                 id="continue-token-garbage"),
    pytest.param(Bad("GET", CM, params={"labelSelector": "a in (b"},
                     message="unable to parse requirement"), id="bad-label-selector"),
    pytest.param(Bad("GET", CM, params={"labelSelector": "!!"}), id="bad-label-selector-bangs"),
    pytest.param(Bad("GET", CM, params={"fieldSelector": "spec.nodeName=x"},
                     message='"spec.nodeName" is not a known field selector'),
                 id="field-selector-unknown-for-kind"),
    pytest.param(Bad("GET", "/api/v1/pods", params={"fieldSelector": "spec.foo=x"},
                     message="spec.foo"), id="field-selector-unsupported-on-pods"),
    # ListOptions validation is 422 Invalid in kube-apiserver (NewInvalid on ListOptions)
    pytest.param(Bad("GET", CM, params={"resourceVersionMatch": "Exact"}, code=422,
                     reason="Invalid", message='ListOptions.meta.k8s.io "" is invalid: '
                     "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                     "resourceVersion is provided", cause_field="resourceVersionMatch"),
                 id="resource-version-match-without-resource-version"),
    pytest.param(Bad("GET", CM, params={"resourceVersionMatch": "Newest",
                                        "resourceVersion": "1"}, code=422, reason="Invalid",
                     message='Unsupported value: "Newest"'),
                 id="resource-version-match-unsupported"),
    pytest.param(Bad("GET", CM, params={"resourceVersionMatch": "Exact", "resourceVersion": "0"},
                     code=422, reason="Invalid"), id="resource-version-match-exact-zero"),
    pytest.param(Bad("GET", CM, params={"sendInitialEvents": "true"}, code=422,
                     reason="Invalid", message="sendInitialEvents is forbidden for list"),
                 id="send-initial-events-on-list"),
    # write options are validated like ListOptions: 422 Invalid on DeleteOptions & co.
    pytest.param(Bad("DELETE", f"{CM}/cm", params={"propagationPolicy": "Sideways"},
                     code=422, reason="Invalid", message=BAD_POLICY,
                     cause_field="propagationPolicy"), id="delete-bad-propagation-policy"),
    pytest.param(Bad("DELETE", f"{CM}/cm", {"propagationPolicy": "Sideways"}, code=422,
                     reason="Invalid", message=BAD_POLICY),
                 id="delete-bad-propagation-policy-in-body"),
    pytest.param(Bad("DELETE", CM, params={"propagationPolicy": "Sideways"}, code=422,
                     reason="Invalid", message=BAD_POLICY),
                 id="deletecollection-bad-propagation-policy"),
    pytest.param(Bad("DELETE", f"{CM}/cm", {"propagationPolicy": "Orphan",
                                            "orphanDependents": False}, code=422,
                     reason="Invalid", message="cannot be both set"),
                 id="delete-orphan-dependents-and-propagation-policy"),
    pytest.param(Bad("DELETE", f"{CM}/cm", params={"gracePeriodSeconds": "x"}),
                 id="delete-grace-period-not-a-number"),
    pytest.param(Bad("POST", CM, {"metadata": {"name": "x"}}, params={"dryRun": "Some"},
                     code=422, reason="Invalid", message='CreateOptions.meta.k8s.io "" is '
                     'invalid: dryRun: Unsupported value: []string{"Some"}: supported values: '
                     '"All"'), id="dry-run-unsupported-value"),
    pytest.param(Bad("DELETE", f"{CM}/cm", params={"dryRun": "Some"}, code=422,
                     reason="Invalid", message='DeleteOptions.meta.k8s.io "" is invalid: dryRun'),
                 id="delete-dry-run-unsupported-value"),
    pytest.param(Bad("PATCH", f"{CM}/cm", {"data": {"a": "2"}}, content_type=MERGE_PATCH,
                     params={"fieldManager": "m" * 129}, code=422, reason="Invalid",
                     message='PatchOptions.meta.k8s.io "" is invalid: fieldManager: Too long'),
                 id="field-manager-too-long"),
]


@pytest.mark.parametrize("case", BAD_INPUT)
async def test_bad_input_is_refused_with_a_status_and_changes_nothing(
    admin: APIClient, case: Bad,
) -> None:
    before = await _snapshot(admin)
    r = await admin.request(case.method, case.path, case.body, content_type=case.content_type,
                            params=case.params)
    status = r.body
    assert r.status == case.code, status
    assert r.headers["Content-Type"].startswith(JSON)
    assert isinstance(status, dict), status
    assert (status["kind"], status["apiVersion"], status["status"]) == ("Status", "v1",
                                                                         "Failure")
    assert (status["code"], status["reason"]) == (case.code, case.reason), status
    assert case.message in status["message"]
    if case.cause_field:
        assert case.cause_field in [c.get("field") for c in status["details"]["causes"]]
    assert case.details.items() <= status.get("details", {}).items()
    assert await _snapshot(admin) == before


async def test_unknown_fields_warn_by_default_and_under_warn(admin: APIClient) -> None:
    for name, params in (("warned", {"fieldValidation": "Warn"}), ("warned-default", {})):
        r = await admin.post(f"/api/v1/namespaces/{SEM}/configmaps",
                             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                              "bogus": 1}, params=params)
        assert r.status == 201, r.body
        assert "bogus" not in r.body
        # RFC 7234 warn-text is a quoted-string: client-go parses exactly this form
        assert r.headers.getall("Warning") == ['299 - "unknown field \\"bogus\\""']
    r = await admin.post(f"/api/v1/namespaces/{SEM}/configmaps",
                         {"metadata": {"name": "ignored"}, "bogus": 1},
                         params={"fieldValidation": "Ignore"})
    assert r.status == 201 and "Warning" not in r.headers and "bogus" not in r.body
    r = await admin.patch(f"/api/v1/namespaces/{SEM}/configmaps/warned",
                          {"bogus": 2, "data": {"k": "v"}})
    assert r.status == 200 and r.body["data"] == {"k": "v"} and "bogus" not in r.body
    assert r.headers.getall("Warning") == ['299 - "unknown field \\"bogus\\""']
    for name in ("warned", "warned-default", "ignored"):  # nothing unknown was stored
        st, got = await admin.get(f"/api/v1/namespaces/{SEM}/configmaps/{name}")
        assert st == 200 and "bogus" not in got


async def test_yaml_timestamps_stay_strings(admin: APIClient) -> None:
    body = b"metadata:\n  name: dated\n  labels: {day: 2024-01-02}\ndata:\n  when: 2024-01-02\n"
    st, obj = await admin.post(f"/api/v1/namespaces/{SEM}/configmaps", body, content_type=YAML)
    assert st == 201, obj
    assert obj["data"] == {"when": "2024-01-02"}
    assert obj["metadata"]["labels"] == {"day": "2024-01-02"}


# --- semantics ------------------------------------------------------------------------------

SCM = f"/api/v1/namespaces/{SEM}/configmaps"
SDEP = f"/apis/apps/v1/namespaces/{SEM}/deployments"
SPODS = f"/api/v1/namespaces/{SEM}/pods"
UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def test_generate_name_and_system_metadata_come_from_the_server(admin: APIClient) -> None:
    sent = {"metadata": {"generateName": "gen-", "uid": "client-uid", "resourceVersion": "7",
                         "creationTimestamp": "2000-01-01T00:00:00Z", "generation": 9,
                         "deletionTimestamp": "2000-01-01T00:00:00Z"}}
    made = []
    for _ in range(2):
        st, obj = await admin.post(SCM, sent)
        assert st == 201, obj
        made.append(obj)
    for obj in made:
        meta = obj["metadata"]
        assert re.fullmatch(r"gen-[a-z0-9]{5}", meta["name"]), meta["name"]
        assert UID.fullmatch(meta["uid"])
        assert meta["creationTimestamp"] != "2000-01-01T00:00:00Z"
        assert "deletionTimestamp" not in meta and meta["resourceVersion"] != "7"
        st, got = await admin.get(f"{SCM}/{meta['name']}")
        assert st == 200 and got["metadata"]["uid"] == meta["uid"]
    assert made[0]["metadata"]["name"] != made[1]["metadata"]["name"]
    assert made[0]["metadata"]["uid"] != made[1]["metadata"]["uid"]


async def test_update_keeps_uid_and_creation_timestamp(admin: APIClient) -> None:
    st, obj = await admin.post(SCM, {"metadata": {"name": "keep"}})
    assert st == 201
    sent = {"metadata": {"name": "keep", "creationTimestamp": "2000-01-01T00:00:00Z"},
            "data": {"a": "1"}}
    st, out = await admin.put(f"{SCM}/keep", sent)
    assert st == 200, out
    assert out["metadata"]["uid"] == obj["metadata"]["uid"]
    assert out["metadata"]["creationTimestamp"] == obj["metadata"]["creationTimestamp"]


async def test_update_with_another_uid_is_a_precondition_conflict(admin: APIClient) -> None:
    assert (await admin.post(SCM, {"metadata": {"name": "uidpre"}})).status == 201
    st, out = await admin.put(f"{SCM}/uidpre", {"metadata": {"name": "uidpre", "uid": "wrong"}})
    assert st == 409 and "Precondition failed: UID in precondition: wrong" in out["message"]


async def test_status_is_ignored_on_create_and_on_update_of_the_deployment(
    admin: APIClient,
) -> None:
    st, d = await admin.post(SDEP, {**deployment("stat"), "status": {"replicas": 7}})
    assert st == 201, d
    assert not (d.get("status") or {}).get("replicas")
    d["status"] = {"replicas": 9, "availableReplicas": 9}
    st, d = await admin.put(f"{SDEP}/stat", d)
    assert st == 200, d
    assert not (d.get("status") or {}).get("replicas")
    assert d["metadata"]["generation"] == 1
    st, got = await admin.get(f"{SDEP}/stat")
    assert not (got.get("status") or {}).get("replicas")


async def test_status_subresource_changes_only_status(admin: APIClient) -> None:
    st, d = await admin.post(SDEP, deployment("split", 1))
    assert st == 201
    d["spec"]["replicas"] = 4
    d["metadata"]["labels"] = {"changed": "yes"}
    d["status"] = {"replicas": 5, "observedGeneration": 1}
    st, out = await admin.put(f"{SDEP}/split/status", d)
    assert st == 200, out
    assert out["status"]["replicas"] == 5 and out["spec"]["replicas"] == 1
    assert out["metadata"]["labels"] == {"app": "split"}
    assert out["metadata"]["generation"] == 1
    st, out = await admin.patch(f"{SDEP}/split/status",
                                {"status": {"readyReplicas": 2}, "spec": {"replicas": 8}})
    assert st == 200, out
    assert out["status"]["readyReplicas"] == 2 and out["status"]["replicas"] == 5
    assert out["spec"]["replicas"] == 1
    st, got = await admin.get(f"{SDEP}/split")
    assert got["status"]["readyReplicas"] == 2 and got["spec"]["replicas"] == 1


async def test_generation_bumps_on_spec_changes_only(admin: APIClient) -> None:
    st, d = await admin.post(SDEP, deployment("gen", 1))
    assert st == 201 and d["metadata"]["generation"] == 1
    st, d = await admin.patch(f"{SDEP}/gen", {"metadata": {"labels": {"x": "y"}}})
    assert st == 200 and d["metadata"]["generation"] == 1
    st, d = await admin.patch(f"{SDEP}/gen/status", {"status": {"replicas": 1}})
    assert st == 200 and d["metadata"]["generation"] == 1
    st, d = await admin.patch(f"{SDEP}/gen", {"spec": {"replicas": 2}})
    assert st == 200 and d["metadata"]["generation"] == 2
    d["spec"]["paused"] = True
    st, d = await admin.put(f"{SDEP}/gen", d)
    assert st == 200 and d["metadata"]["generation"] == 3
    st, d = await admin.put(f"{SDEP}/gen", d)  # the same spec again
    assert st == 200 and d["metadata"]["generation"] == 3


async def test_pagination_returns_one_snapshot_across_pages(admin: APIClient) -> None:
    base = f"/api/v1/namespaces/{PAGES}/configmaps"
    created = {f"p{i}" for i in range(8)}
    for name in sorted(created):
        assert (await admin.post(base, {"metadata": {"name": name}})).status == 201
    seen: list[str] = []
    versions = set()
    token = ""
    pages = 0
    while True:
        params = {"limit": "3", **({"continue": token} if token else {})}
        st, body = await admin.get(base, params=params)
        assert st == 200, body
        pages += 1
        seen += names(body)
        versions.add(body["metadata"]["resourceVersion"])
        assert len(body["items"]) <= 3
        if pages == 1:  # the world moves on between pages; the pages do not
            assert (await admin.post(base, {"metadata": {"name": "p-late"}})).status == 201
            assert (await admin.delete(f"{base}/p7")).status == 200
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(created)
    assert len(versions) == 1
    st, now = await admin.get(base)
    assert set(names(now)) == created - {"p7"} | {"p-late"}
    assert int(now["metadata"]["resourceVersion"]) > int(versions.pop())


async def test_list_at_resource_versions(admin: APIClient) -> None:
    st, old = await admin.post(SCM, {"metadata": {"name": "versioned", "labels": {"v": "x"}},
                                     "data": {"v": "1"}})
    assert st == 201
    rv1 = old["metadata"]["resourceVersion"]
    st, new = await admin.put(f"{SCM}/versioned", {**old, "data": {"v": "2"}})
    assert st == 200

    async def listed(**params: str) -> dict[str, Any]:
        st, body = await admin.get(SCM, params={"labelSelector": "v=x", **params})
        assert st == 200, body
        return body

    exact = await listed(resourceVersion=rv1, resourceVersionMatch="Exact")
    assert exact["metadata"]["resourceVersion"] == rv1
    assert [o["data"] for o in exact["items"]] == [{"v": "1"}]
    later = await listed(resourceVersion=rv1, resourceVersionMatch="NotOlderThan")
    assert int(later["metadata"]["resourceVersion"]) >= int(new["metadata"]["resourceVersion"])
    assert [o["data"] for o in later["items"]] == [{"v": "2"}]
    anything = await listed(resourceVersion="0")
    assert [o["metadata"]["name"] for o in anything["items"]] == ["versioned"]
    consistent = await listed()
    assert [o["data"] for o in consistent["items"]] == [{"v": "2"}]
    st, got = await admin.get(f"{SCM}/versioned", params={"resourceVersion": rv1})
    assert st == 200 and got["data"] == {"v": "2"}  # get: not older than rv1


async def test_resource_version_from_the_future_times_out(admin: APIClient) -> None:
    st, body = await admin.get(SCM)
    future = str(int(body["metadata"]["resourceVersion"]) + 10_000)
    started = time.monotonic()
    answers = await asyncio.gather(*(admin.get(path, params={"resourceVersion": future})
                                     for path in (SCM, f"{SCM}/anything")))
    assert time.monotonic() - started > 1  # they waited for the revision first
    for st, status in answers:
        assert st == 504, status
        assert status["reason"] == "Timeout" and status["code"] == 504
        assert {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"} \
            in status["details"]["causes"]
        assert status["details"].get("retryAfterSeconds") == 1


async def test_field_selectors_on_pods_and_events(admin: APIClient) -> None:
    for name in ("fs-bound", "fs-free"):
        st, obj = await admin.post(SPODS, pod(name))
        assert st == 201, obj
    st, _ = await admin.post(f"{SPODS}/fs-bound/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "fs-bound"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}})
    assert st == 201
    st, out = await admin.patch(f"{SPODS}/fs-bound/status", {"status": {"phase": "Running"}})
    assert st == 200 and out["status"]["phase"] == "Running"
    for name, about in (("ev-bound", "fs-bound"), ("ev-free", "fs-free")):
        st, obj = await admin.post(f"/api/v1/namespaces/{SEM}/events", {
            "metadata": {"name": name}, "reason": "Tested", "message": "m", "type": "Normal",
            "involvedObject": {"kind": "Pod", "name": about, "namespace": SEM}})
        assert st == 201, obj

    async def selected(path: str, selector: str) -> set[str]:
        st, body = await admin.get(path, params={"fieldSelector": selector})
        assert st == 200, body
        # only the objects made here: controllers may write their own events about these pods
        return {n for n in names(body) if n in ("fs-bound", "fs-free", "ev-bound", "ev-free")}

    assert await selected(SPODS, "metadata.name=fs-bound") == {"fs-bound"}
    assert await selected(SPODS, "spec.nodeName=node-1") == {"fs-bound"}
    assert await selected("/api/v1/pods", "spec.nodeName=node-1") == {"fs-bound"}
    assert await selected(SPODS, "spec.nodeName=") == {"fs-free"}
    assert await selected(SPODS, "status.phase!=Running") == {"fs-free"}
    assert await selected(SPODS, "status.phase=Running,spec.nodeName=node-1") == {"fs-bound"}
    assert await selected(SPODS, "status.phase=Running,spec.nodeName!=node-1") == set()
    events = f"/api/v1/namespaces/{SEM}/events"
    assert await selected(events, "involvedObject.name=fs-bound") == {"ev-bound"}
    assert await selected(events, "involvedObject.kind=Pod") == {"ev-bound", "ev-free"}


def _matches(labels: dict[str, str], selector: str) -> bool:
    """A reference for the selector forms the table uses (no commas inside sets)."""
    for term in selector.split(","):
        if term.startswith("!"):
            ok = term[1:] not in labels
        elif "!=" in term:
            k, v = term.split("!=")
            ok = labels.get(k) != v
        elif " notin " in term:
            k, vs = term.split(" notin ")
            ok = labels.get(k) not in vs.strip("()").split("|")
        elif " in " in term:
            k, vs = term.split(" in ")
            ok = labels.get(k) in vs.strip("()").split("|")
        elif "==" in term or "=" in term:
            k, v = term.split("==") if "==" in term else term.split("=")
            ok = labels.get(k) == v
        else:
            ok = term in labels
        if not ok:
            return False
    return True


@pytest.mark.parametrize("selector", [
    "tier=web", "tier==web", "tier!=web", "tier", "!tier", "tier=web,env=prod",
    "env!=prod", "tier in (web|db)", "tier notin (web|db)", "tier in (web|db),env=prod",
    "env=staging",
])
async def test_label_selectors(admin: APIClient, selector: str) -> None:
    st, body = await admin.get(f"/api/v1/namespaces/{LABELS}/configmaps",
                               params={"labelSelector": selector.replace("|", ",")})
    assert st == 200, body
    expected = {n for n, labels in LABELLED.items() if _matches(labels, selector)}
    assert set(names(body)) == expected


async def test_deletecollection_with_a_label_selector(admin: APIClient) -> None:
    for i in range(6):
        st, _ = await admin.post(SCM, {"metadata": {"name": f"dc-{i}",
                                                    "labels": {"dc": "ab"[i % 2]}}})
        assert st == 201
    st, out = await admin.delete(SCM, params={"labelSelector": "dc=a"})
    assert st == 200, out
    assert out["kind"] == "ConfigMapList"
    assert sorted(names(out)) == ["dc-0", "dc-2", "dc-4"]
    st, left = await admin.get(SCM, params={"labelSelector": "dc"})
    assert sorted(names(left)) == ["dc-1", "dc-3", "dc-5"]


async def test_finalizers_hold_a_deleted_object_until_removed(admin: APIClient) -> None:
    st, _ = await admin.post(SCM, {"metadata": {"name": "fin",
                                                "finalizers": ["example.com/hold"]}})
    assert st == 201
    st, obj = await admin.delete(f"{SCM}/fin")
    assert st == 200 and obj["kind"] == "ConfigMap"  # still there: the object, not a Status
    assert obj["metadata"]["deletionTimestamp"]
    st, got = await admin.get(f"{SCM}/fin")
    assert st == 200 and got["metadata"]["deletionTimestamp"]
    assert got["metadata"]["finalizers"] == ["example.com/hold"]
    st, out = await admin.patch(f"{SCM}/fin", {"metadata": {"finalizers": None}})
    assert st == 200, out
    st, _ = await admin.get(f"{SCM}/fin")
    assert st == 404


async def test_pod_binding_assigns_a_node_once(admin: APIClient) -> None:
    assert (await admin.post(SPODS, pod("bind-me"))).status == 201

    def binding(node: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bind-me"},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}

    st, out = await admin.post(f"{SPODS}/bind-me/binding", binding("node-a"))
    assert st == 201 and out["kind"] == "Status" and out["status"] == "Success", out
    st, p = await admin.get(f"{SPODS}/bind-me")
    assert p["spec"]["nodeName"] == "node-a"
    assert {"type": "PodScheduled", "status": "True"}.items() <= next(
        c for c in p["status"]["conditions"] if c["type"] == "PodScheduled").items()
    st, out = await admin.post(f"{SPODS}/bind-me/binding", binding("node-b"))
    assert st == 409 and out["reason"] == "Conflict", out
    assert 'pod bind-me is already assigned to node "node-a"' in out["message"]
    st, p = await admin.get(f"{SPODS}/bind-me")
    assert p["spec"]["nodeName"] == "node-a"


async def test_scale_subresource(admin: APIClient) -> None:
    assert (await admin.post(SDEP, deployment("scaled", 1))).status == 201
    st, scale = await admin.get(f"{SDEP}/scaled/scale")
    assert st == 200, scale
    assert (scale["kind"], scale["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert scale["metadata"]["name"] == "scaled" and scale["spec"] == {"replicas": 1}
    assert scale["status"]["selector"] == "app=scaled"
    stale = json.loads(json.dumps(scale))
    scale["spec"]["replicas"] = 3
    st, out = await admin.put(f"{SDEP}/scaled/scale", scale)
    assert st == 200 and out["spec"]["replicas"] == 3, out
    st, got = await admin.get(f"{SDEP}/scaled")
    assert got["spec"]["replicas"] == 3 and got["metadata"]["generation"] == 2
    st, out = await admin.patch(f"{SDEP}/scaled/scale", {"spec": {"replicas": 5}})
    assert st == 200 and out["spec"]["replicas"] == 5
    stale["spec"]["replicas"] = 9  # a Scale read before the last two writes
    st, out = await admin.put(f"{SDEP}/scaled/scale", stale)
    assert st == 409 and out["reason"] == "Conflict", out
    assert out["message"] == f'Operation cannot be fulfilled on deployments.apps "scaled": {MODIFIED}'
    st, out = await admin.patch(f"{SDEP}/scaled/scale", {"spec": {"replicas": -1}})
    assert st == 422 and out["reason"] == "Invalid", out
    st, got = await admin.get(f"{SDEP}/scaled")
    assert got["spec"]["replicas"] == 5


async def test_delete_answers_a_status_for_configmaps_and_the_object_for_pods(
    admin: APIClient,
) -> None:
    st, cm = await admin.post(SCM, {"metadata": {"name": "gone"}})
    assert st == 201
    st, out = await admin.delete(f"{SCM}/gone")
    assert st == 200
    assert out["kind"] == "Status" and out["status"] == "Success"
    assert out["details"]["name"] == "gone" and out["details"]["kind"] == "configmaps"
    assert out["details"]["uid"] == cm["metadata"]["uid"]
    assert (await admin.post(SPODS, pod("gone-pod"))).status == 201
    st, out = await admin.delete(f"{SPODS}/gone-pod")
    assert st == 200 and out["kind"] == "Pod" and out["metadata"]["name"] == "gone-pod"
    assert (await admin.get(f"{SPODS}/gone-pod")).status == 404


async def test_dry_run_writes_nothing(admin: APIClient) -> None:
    st, out = await admin.post(SCM, {"metadata": {"name": "dry"}}, params={"dryRun": "All"})
    assert st == 201 and out["metadata"]["name"] == "dry"
    assert (await admin.get(f"{SCM}/dry")).status == 404
    assert (await admin.post(SCM, {"metadata": {"name": "wet"}, "data": {"a": "1"}})).status \
        == 201
    st, out = await admin.patch(f"{SCM}/wet", {"data": {"a": "2"}}, params={"dryRun": "All"})
    assert st == 200 and out["data"] == {"a": "2"}
    st, out = await admin.delete(f"{SCM}/wet", params={"dryRun": "All"})
    assert st == 200
    st, got = await admin.get(f"{SCM}/wet")
    assert st == 200 and got["data"] == {"a": "1"}


async def test_table_output(admin: APIClient) -> None:
    base = f"/api/v1/namespaces/{LABELS}/configmaps"
    for path, rows in ((base, len(LABELLED) + 1), (f"{base}/cache", 1)):  # + kube-root-ca.crt
        st, table = await admin.get(path, headers={"Accept": TABLE})
        assert st == 200, table
        assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
        assert table["columnDefinitions"][0]["name"] == "Name"
        assert all({"name", "type", "format", "description", "priority"} <= c.keys()
                   for c in table["columnDefinitions"])
        assert len(table["rows"]) == rows
        for row in table["rows"]:
            assert len(row["cells"]) == len(table["columnDefinitions"])
            obj = row["object"]
            assert (obj["kind"], obj["apiVersion"]) == ("PartialObjectMetadata",
                                                         "meta.k8s.io/v1")
            assert obj["metadata"]["name"] == row["cells"][0]
            assert obj["metadata"]["namespace"] == LABELS and obj["metadata"]["uid"]


async def test_aggregated_discovery_content_type(admin: APIClient) -> None:
    accept = f"{AGGREGATED},application/json"
    for path in ("/api", "/apis"):
        r = await admin.get(path, headers={"Accept": accept})
        assert r.status == 200
        assert r.headers["Content-Type"] == AGGREGATED
        assert r.body["kind"] == "APIGroupDiscoveryList"
        assert r.body["apiVersion"] == "apidiscovery.k8s.io/v2"
    groups = {g["metadata"].get("name", ""): g for g in r.body["items"]}
    apps = groups["apps"]["versions"][0]["resources"]
    assert "deployments" in {res["resource"] for res in apps}
    st, plain = await admin.get("/apis")
    assert st == 200 and plain["kind"] == "APIGroupList"


async def test_non_resource_endpoints(admin: APIClient) -> None:
    st, version = await admin.get("/version")
    assert st == 200 and version["major"] == "1" and version["gitVersion"].startswith("v1.")
    assert tuple(await admin.get("/version/")) == (200, version)
    for path in ("/healthz", "/livez", "/readyz", "/readyz/", "/healthz/ping"):
        st, text = await admin.get(path)
        assert (st, text) == (200, "ok"), path
    st, metrics = await admin.get("/metrics")
    assert st == 200 and "apiserver_request_total" in metrics
    assert re.search(r'apiserver_request_total\{code="201",resource="configmaps",'
                     r'verb="create"\} \d', metrics)
    st, _ = await admin.get("/openapi/v2")  # served (for kubectl's validator)
    assert st == 200
    st, root = await admin.get("/openapi/v3")
    assert st == 200 and "paths" in root


async def test_post_without_content_type_is_json(admin: APIClient) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "no-type"}, "data": {"k": "v"}})
    st, out = await admin.post(SCM, body, content_type=None)
    assert st == 201, out
    st, got = await admin.get(f"{SCM}/no-type")
    assert got["data"] == {"k": "v"}


async def test_reads_below_the_compacted_revision_are_expired(
    ketch: Cluster, admin: APIClient,
) -> None:
    """Exact lists and continue tokens read the store at their revision: once the store
    compacted past it, 410 Expired (the watch cache still serves NotOlderThan reads)."""
    base = f"/api/v1/namespaces/{PAGES}/configmaps"
    st, first = await admin.get(base, params={"limit": "2"})
    assert st == 200 and first["metadata"].get("continue")
    old = first["metadata"]["resourceVersion"]
    st, made = await admin.post(base, {"metadata": {"name": "after-compaction-point"}})
    assert st == 201
    async with ketch.store.client() as store:
        await store.compact(int(made["metadata"]["resourceVersion"]))
    st, status = await admin.get(base, params={"resourceVersion": old,
                                               "resourceVersionMatch": "Exact"})
    assert st == 410 and status["reason"] == "Expired", status
    assert status["message"] == "The resourceVersion for the provided list is too old."
    st, status = await admin.get(base, params={"limit": "2",
                                               "continue": first["metadata"]["continue"]})
    assert st == 410 and status["reason"] == "Expired", status
    assert status["message"].startswith("The provided continue parameter is too old")
    assert status["metadata"].get("continue")  # a token to go on inconsistently
    st, now = await admin.get(base, params={"resourceVersion": old})
    assert st == 200 and "after-compaction-point" in names(now)
