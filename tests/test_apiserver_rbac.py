"""Integration: RBAC over real HTTPS with user client certificates against a real ``ketch up``
cluster.  A matrix of verbs × resources × subresources × namespaces is checked against a small
reference evaluator of the very rules the test binds: denied requests get 403 with Kubernetes'
exact Forbidden message, allowed ones anything but 403; SelfSubjectAccessReview agrees; a user
without bindings keeps discovery, health and the self reviews (bootstrap roles).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from certs.layout import admin_paths, issue_user, user_paths
from ketch.cluster import Cluster
from tests.apiclient import APIClient, poll_async

pytestmark = pytest.mark.integration

RBAC = "/apis/rbac.authorization.k8s.io/v1"
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
USER, GROUP = "carol", "team"
NS_A, NS_B = "ns-a", "ns-b"
NAMES = ("special", "plain")

# The Role bound (to Group "team") in ns-a, and the ClusterRole bound (to User "carol")
# cluster-wide.  The reference evaluator below reads exactly these.
ROLE_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update"]},
    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["special"],
     "verbs": ["get", "list", "patch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "update"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
]
CLUSTER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Req:
    """One resource request: ``ns`` "" is cluster scope; ``name`` on list/watch is a
    ``fieldSelector=metadata.name=<name>`` (which RBAC's resourceNames see)."""

    verb: str
    group: str
    resource: str
    sub: str
    ns: str
    name: str

    @property
    def id(self) -> str:
        res = f"{self.resource}/{self.sub}" if self.sub else self.resource
        return f"{self.verb}-{res}-{self.ns or 'cluster'}" + (f"-{self.name}" if self.name
                                                               else "")

    def path(self) -> str:
        p = "/api/v1" if not self.group else f"/apis/{self.group}/v1"
        if self.ns:
            p += f"/namespaces/{self.ns}"
        p += f"/{self.resource}"
        if self.name and self.verb not in ("list", "watch"):
            p += f"/{self.name}"
        return p + (f"/{self.sub}" if self.sub else "")


def allowed(r: Req) -> bool:
    """The reference: RBAC's rule matching for the rules above (no wildcards in them)."""
    rules = CLUSTER_RULES + (ROLE_RULES if r.ns == NS_A else [])
    full = f"{r.resource}/{r.sub}" if r.sub else r.resource
    return any(r.verb in rule["verbs"] and r.group in rule["apiGroups"]
               and full in rule["resources"]
               and (not rule.get("resourceNames") or r.name in rule["resourceNames"])
               for rule in rules)


def forbidden_message(r: Req, user: str = USER) -> str:
    full = f"{r.resource}/{r.sub}" if r.sub else r.resource
    qualified = f"{r.resource}.{r.group}" if r.group else r.resource
    head = f'{qualified} "{r.name}" is forbidden' if r.name else f"{qualified} is forbidden"
    where = f'in the namespace "{r.ns}"' if r.ns else "at the cluster scope"
    return (f'{head}: User "{user}" cannot {r.verb} resource "{full}" in API group '
            f'"{r.group}" {where}')


GUP = ("get", "update", "patch")
ALL = ("get", "update", "patch", "delete", "list", "watch", "create", "deletecollection")
SHAPES: dict[str, tuple[str, bool, dict[str, tuple[str, ...]]]] = {
    "pods": ("", True, {"": ALL, "status": GUP, "log": ("get",)}),
    "configmaps": ("", True, {"": ALL}),
    "secrets": ("", True, {"": ALL}),
    "deployments": ("apps", True, {"": ALL, "status": GUP, "scale": GUP}),
    "nodes": ("", False, {"": ALL, "status": GUP}),
}


def _matrix() -> list[Req]:
    out = []
    for resource, (group, namespaced, subs) in SHAPES.items():
        scopes = (NS_A, NS_B) if namespaced else ("",)
        for sub, verbs in subs.items():
            for verb in verbs:
                for ns in scopes:
                    if verb in ("get", "update", "patch", "delete"):
                        out += [Req(verb, group, resource, sub, ns, n) for n in NAMES]
                        continue
                    out.append(Req(verb, group, resource, sub, ns, ""))
                    if verb == "list":
                        out.append(Req(verb, group, resource, sub, ns, "special"))
                if namespaced and verb in ("list", "watch"):  # across all namespaces
                    out.append(Req(verb, group, resource, sub, "", ""))
    return out


MATRIX = _matrix()


def _object(r: Req) -> dict[str, Any]:
    """A plausible body: whether it is valid does not matter to authorization."""
    name = r.name or "made-by-carol"
    if r.sub == "scale":
        return {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name},
                "spec": {"replicas": 1}}
    obj: dict[str, Any] = {"metadata": {"name": name}}
    if r.resource == "pods":
        obj["spec"] = {"containers": [{"name": "c", "image": "busybox"}]}
    return obj


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"metadata": {"name": name}, "spec": {
        "replicas": 1, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def _setup(c: Cluster) -> None:
    async with APIClient(c.url, admin_paths(c.store.certs_dir)) as a:
        for ns in (NS_A, NS_B):
            assert (await a.post("/api/v1/namespaces", {"metadata": {"name": ns}})).status \
                == 201
        for ns in (NS_A, NS_B):
            async def account(ns: str = ns) -> bool:  # pods need the default ServiceAccount
                sa = f"/api/v1/namespaces/{ns}/serviceaccounts/default"
                return (await a.get(sa)).status == 200

            await poll_async(account)
            for name in NAMES:
                for path, body in (
                    (f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": name}, "spec": {
                        "containers": [{"name": "c", "image": "busybox"}]}}),
                    (f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": name}}),
                    (f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": name}}),
                    (f"/apis/apps/v1/namespaces/{ns}/deployments", _deployment(name)),
                ):
                    st, out = await a.post(path, body)
                    assert st == 201, out
        for name in NAMES:
            assert (await a.post("/api/v1/nodes", {"metadata": {"name": name}})).status == 201
        for path, body in (
            (f"{RBAC}/namespaces/{NS_A}/roles", {"metadata": {"name": "carol"},
                                                 "rules": ROLE_RULES}),
            (f"{RBAC}/namespaces/{NS_A}/rolebindings", {
                "metadata": {"name": "team"},
                "subjects": [{"kind": "Group", "name": GROUP,
                              "apiGroup": "rbac.authorization.k8s.io"}],
                "roleRef": {"kind": "Role", "name": "carol",
                            "apiGroup": "rbac.authorization.k8s.io"}}),
            (f"{RBAC}/clusterroles", {"metadata": {"name": "carol-nodes"},
                                      "rules": CLUSTER_RULES}),
            (f"{RBAC}/clusterrolebindings", {
                "metadata": {"name": "carol-nodes"},
                "subjects": [{"kind": "User", "name": USER,
                              "apiGroup": "rbac.authorization.k8s.io"}],
                "roleRef": {"kind": "ClusterRole", "name": "carol-nodes",
                            "apiGroup": "rbac.authorization.k8s.io"}}),
        ):
            st, out = await a.post(path, body)
            assert st == 201, out
    for user, groups in ((USER, (GROUP,)), ("dave", ()), ("erin", (GROUP,))):
        issue_user(c.store.certs_dir, user, groups)
    async with APIClient(c.url, user_paths(c.store.certs_dir, USER)) as carol:
        async def bound() -> bool:  # the authorizer reads RBAC from the watch cache
            pods = (await carol.get(f"/api/v1/namespaces/{NS_A}/pods")).status == 200
            return pods and (await carol.get("/api/v1/nodes/plain")).status == 200

        await poll_async(bound)


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ketch-rbac") / "cluster", port=0, schedulers=0,
                nodes=0)
    c.up(progress=_quiet)
    try:
        asyncio.run(_setup(c))
        yield c
    finally:
        c.down(progress=_quiet)


async def _client(ketch: Cluster, user: str) -> APIClient:
    return APIClient(ketch.url, user_paths(ketch.store.certs_dir, user))


@pytest.fixture
async def carol(ketch: Cluster) -> AsyncIterator[APIClient]:
    async with await _client(ketch, USER) as c:
        yield c


async def _send(c: APIClient, r: Req) -> tuple[int, Any]:
    params = {"fieldSelector": f"metadata.name={r.name}"} if r.name and r.verb in (
        "list", "watch") else {}
    if r.verb == "watch":
        async with c.watch(r.path(), {**params, "timeoutSeconds": "1"}) as w:
            if w.status == 200:
                return 200, None  # the stream opened: allowed; close it at once
            return w.status, await w.resp.json()
    method = {"get": "GET", "list": "GET", "create": "POST", "update": "PUT", "patch": "PATCH",
              "delete": "DELETE", "deletecollection": "DELETE"}[r.verb]
    body = _object(r) if r.verb in ("create", "update") else None
    if r.verb == "patch":
        return tuple(await c.patch(r.path(), {"metadata": {"labels": {"touched": "yes"}}}))  # type: ignore[return-value]
    return tuple(await c.request(method, r.path(), body, params=params))  # type: ignore[return-value]


def test_the_matrix_covers_both_answers() -> None:
    answers = [allowed(r) for r in MATRIX]
    assert sum(answers) >= 15 and len(answers) - sum(answers) >= 100


@pytest.mark.parametrize("req", [pytest.param(r, id=r.id) for r in MATRIX])
async def test_rbac_matrix(carol: APIClient, req: Req) -> None:
    status, body = await _send(carol, req)
    if allowed(req):
        assert status not in (401, 403, 500), body
    else:
        assert status == 403, body
        assert body["kind"] == "Status" and body["reason"] == "Forbidden"
        assert body["code"] == 403
        assert body["message"] == forbidden_message(req)
        assert body["details"].get("kind") == req.resource
        assert body["details"].get("group", "") == req.group
    # SelfSubjectAccessReview answers the same question the same way
    attrs = {"verb": req.verb, "group": req.group, "resource": req.resource,
             "subresource": req.sub, "namespace": req.ns, "name": req.name}
    st, review = await carol.post(SSAR, {"apiVersion": "authorization.k8s.io/v1",
                                         "kind": "SelfSubjectAccessReview",
                                         "spec": {"resourceAttributes": attrs}})
    assert st == 201, review
    assert review["status"]["allowed"] is allowed(req)


async def test_group_membership_alone_grants_the_role(ketch: Cluster) -> None:
    async with await _client(ketch, "erin") as erin:  # in "team", not bound to nodes
        assert (await erin.get(f"/api/v1/namespaces/{NS_A}/pods")).status == 200
        st, body = await erin.get("/api/v1/nodes/plain")
        assert st == 403
        assert body["message"] == ('nodes "plain" is forbidden: User "erin" cannot get '
                                   'resource "nodes" in API group "" at the cluster scope')


async def test_a_user_without_bindings_keeps_discovery_health_and_self_reviews(
    ketch: Cluster,
) -> None:
    async with await _client(ketch, "dave") as dave:
        for path in ("/version", "/version/", "/api", "/api/v1", "/apis", "/apis/apps/v1",
                     "/healthz", "/livez", "/readyz", "/openapi/v3"):
            st, body = await dave.get(path)
            assert st == 200, (path, body)
        st, review = await dave.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                     {"apiVersion": "authentication.k8s.io/v1",
                                      "kind": "SelfSubjectReview"})
        assert st == 201, review
        assert review["status"]["userInfo"] == {"username": "dave",
                                                "groups": ["system:authenticated"]}
        st, review = await dave.post(SSAR, {"spec": {"resourceAttributes": {
            "verb": "list", "resource": "pods", "namespace": NS_A}}})
        assert st == 201 and review["status"]["allowed"] is False
        st, rules = await dave.post(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            {"spec": {"namespace": NS_A}})
        assert st == 201, rules
        assert rules["status"]["nonResourceRules"]
        st, body = await dave.get("/metrics")
        assert st == 403
        assert body["message"] == 'forbidden: User "dave" cannot get path "/metrics"'
        st, body = await dave.get(f"/api/v1/namespaces/{NS_A}/pods")
        assert st == 403
        assert body["message"] == ('pods is forbidden: User "dave" cannot list resource "pods" '
                                   f'in API group "" in the namespace "{NS_A}"')
        st, body = await dave.post(f"/api/v1/namespaces/{NS_A}/configmaps",
                                   {"metadata": {"name": "x"}})
        assert st == 403 and 'cannot create resource "configmaps"' in body["message"]


async def test_removing_the_binding_revokes_access(ketch: Cluster) -> None:
    async with APIClient(ketch.url, admin_paths(ketch.store.certs_dir)) as admin, \
            await _client(ketch, "erin") as erin:
        binding = {"metadata": {"name": "erin-b"},
                   "subjects": [{"kind": "User", "name": "erin",
                                 "apiGroup": "rbac.authorization.k8s.io"}],
                   "roleRef": {"kind": "ClusterRole", "name": "view",
                               "apiGroup": "rbac.authorization.k8s.io"}}
        path = f"{RBAC}/namespaces/{NS_B}/rolebindings"
        assert (await admin.post(path, binding)).status == 201
        secrets = f"/api/v1/namespaces/{NS_B}/configmaps"

        async def status_is(code: int) -> bool:
            return (await erin.get(secrets)).status == code

        await poll_async(lambda: status_is(200))
        assert (await admin.delete(f"{path}/erin-b")).status == 200
        await poll_async(lambda: status_is(403))
