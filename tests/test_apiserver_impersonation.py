"""Impersonation (``Impersonate-*`` headers, ``kubectl --as``) through the in-process apiserver:
who may act as whom, what identity results, and what is refused (pure cases first, then HTTP)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from certs.layout import issue_user, user_paths
from control.api.errors import BadRequest
from control.apiserver.impersonation import ImpersonationForbidden, impersonate
from control.apiserver.rbac import Attributes, Decision, UserInfo

SSR = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


class _Allow:
    """Allows what ``allowed`` lists as (resource, name) and records every question."""

    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)
        self.asked: list[Attributes] = []

    def authorize(self, attrs: Attributes) -> Decision:
        self.asked.append(attrs)
        key = (attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else ""),
               attrs.name)
        return Decision(key in self.allowed or ("*", "*") in self.allowed)


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


BOB = UserInfo("bob", ("dev", "system:authenticated"))


@pytest.mark.parametrize(("headers", "want"), [
    pytest.param([("Impersonate-User", "jane")],
                 UserInfo("jane", ("system:authenticated",)), id="user-only"),
    pytest.param([("Impersonate-User", "jane"), ("Impersonate-Group", "a"),
                  ("Impersonate-Group", "b")],
                 UserInfo("jane", ("a", "b", "system:authenticated")), id="user-and-groups"),
    pytest.param([("Impersonate-User", "system:serviceaccount:ns1:robot")],
                 UserInfo("system:serviceaccount:ns1:robot",
                          ("system:serviceaccounts", "system:serviceaccounts:ns1",
                           "system:authenticated")), id="serviceaccount-groups"),
    pytest.param([("Impersonate-User", "system:anonymous")],
                 UserInfo("system:anonymous", ("system:unauthenticated",)), id="anonymous"),
    pytest.param([("Impersonate-User", "jane"), ("Impersonate-Group", "system:unauthenticated")],
                 UserInfo("jane", ("system:unauthenticated",)), id="explicit-unauthenticated"),
    pytest.param([("Impersonate-User", "jane"), ("Impersonate-Uid", "u-1")],
                 UserInfo("jane", ("system:authenticated",), uid="u-1"), id="uid"),
])
def test_the_identity_is_exactly_what_was_asked_for(headers: list[tuple[str, str]],
                                                      want: UserInfo) -> None:
    got = impersonate(BOB, _headers(*headers), _Allow(("*", "*")))
    assert got is not None
    assert (got.name, got.groups, got.uid) == (want.name, want.groups, want.uid)


def test_extras_are_authorized_one_value_at_a_time_with_decoded_keys() -> None:
    authz = _Allow(("users", "jane"), ("userextras/scopes.example.com/x", "a"),
                   ("userextras/scopes.example.com/x", "b"))
    got = impersonate(BOB, _headers(("Impersonate-User", "jane"),
                                    ("Impersonate-Extra-Scopes.example.com%2fx", "a"),
                                    ("Impersonate-Extra-Scopes.example.com%2fx", "b")), authz)
    assert got is not None and dict(got.extra) == {"scopes.example.com/x": ("a", "b")}
    assert [a.api_group for a in authz.asked] == ["", "authentication.k8s.io",
                                                  "authentication.k8s.io"]
    assert all(a.verb == "impersonate" and a.user == BOB for a in authz.asked)


def test_each_part_is_authorized_and_the_first_refusal_is_a_403_naming_it() -> None:
    with pytest.raises(ImpersonationForbidden) as e:
        impersonate(BOB, _headers(("Impersonate-User", "jane"),
                                  ("Impersonate-Group", "system:masters")),
                    _Allow(("users", "jane")))
    assert e.value.code == 403
    assert e.value.message == ('groups "system:masters" is forbidden: User "bob" cannot '
                               'impersonate resource "groups" in API group "" at the cluster '
                               "scope")
    with pytest.raises(ImpersonationForbidden) as e:
        impersonate(BOB, _headers(("Impersonate-User", "system:serviceaccount:ns1:robot")),
                    _Allow())
    assert e.value.message.endswith('cannot impersonate resource "serviceaccounts" in API '
                                    'group "" in the namespace "ns1"')


@pytest.mark.parametrize("headers", [
    pytest.param([("Impersonate-Group", "system:masters")], id="group"),
    pytest.param([("Impersonate-Uid", "1")], id="uid"),
    pytest.param([("Impersonate-Extra-x", "1")], id="extra"),
])
def test_anything_without_a_user_is_a_bad_request(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(BadRequest, match="without impersonating a user"):
        impersonate(BOB, _headers(*headers), _Allow(("*", "*")))


def test_no_headers_no_impersonation() -> None:
    assert impersonate(BOB, _headers(("Accept", "application/json")), _Allow()) is None


# --- over HTTPS ----------------------------------------------------------------------------

async def _as(client: Any, method: str, path: str, headers: dict[str, str],
              body: Any = None) -> Any:
    return await client.raw(method, path, body=body, headers=headers)


async def test_whoami_and_can_i_answer_for_the_impersonated_user(api: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="ketch.apiserver.audit")
    async with api.client() as admin:
        r = await _as(admin, "POST", SSR, {"Impersonate-User": "jane"},
                      {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        assert r.status == 201, r.body
        assert r.json()["status"]["userInfo"] == {"username": "jane",
                                                  "groups": ["system:authenticated"]}
        r = await _as(admin, "POST", SSAR, {"Impersonate-User": "jane"}, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "create",
                                            "group": "apps", "resource": "deployments"}}})
        assert r.json()["status"]["allowed"] is False
        r = await _as(admin, "GET", "/api/v1/namespaces/default/pods",
                      {"Impersonate-User": "jane"})
        assert r.status == 403
        assert 'User "jane" cannot list resource "pods"' in r.json()["message"]
    assert any("admin[system:masters,system:authenticated] is impersonating "
               "jane[system:authenticated]" in m for m in caplog.messages)


async def test_a_user_cannot_impersonate_without_the_verb(api: Any, certs_dir_session: Any,
                                                          caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="ketch.apiserver.audit")
    issue_user(certs_dir_session, "mallory", ["dev"])
    async with api.client(user_paths(certs_dir_session, "mallory")) as mallory:
        r = await _as(mallory, "GET", "/api/v1/namespaces/default/pods",
                      {"Impersonate-User": "admin", "Impersonate-Group": "system:masters"})
        assert r.status == 403
        assert r.json()["message"] == (
            'users "admin" is forbidden: User "mallory" cannot impersonate resource "users" '
            'in API group "" at the cluster scope')
        r = await _as(mallory, "GET", "/api/v1/namespaces/default/pods",
                      {"Impersonate-Group": "system:masters"})
        assert r.status == 400 and "without impersonating a user" in r.json()["message"]
    assert any("mallory[dev,system:authenticated] was refused impersonation" in m
               for m in caplog.messages)


async def test_a_granted_impersonator_acts_with_exactly_the_granted_identity(
        api: Any, certs_dir_session: Any) -> None:
    issue_user(certs_dir_session, "ops", ["ops"])
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "impersonate-viewer"},
            "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
                       "resourceNames": ["viewer"]}]}
    bind = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "ops-impersonates"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "impersonate-viewer"},
            "subjects": [{"kind": "User", "name": "ops"}]}
    async with api.client() as admin:
        for path, obj in ((f"{RBAC}/clusterroles", role),
                          (f"{RBAC}/clusterrolebindings", bind)):
            assert (await admin.raw("POST", path, body=obj)).status == 201
    async with api.client(user_paths(certs_dir_session, "ops")) as ops:

        async def whoami(headers: dict[str, str]) -> Any:
            r = await _as(ops, "POST", SSR, headers, {"apiVersion": "authentication.k8s.io/v1",
                                                      "kind": "SelfSubjectReview"})
            return r.status, r.json()["status"]["userInfo"] if r.status == 201 else None

        async def granted() -> bool:
            return (await whoami({"Impersonate-User": "viewer"}))[0] == 201

        from tests.conftest import eventually
        await eventually(granted, timeout=5)
        assert (await whoami({"Impersonate-User": "viewer"}))[1] == {
            "username": "viewer", "groups": ["system:authenticated"]}
        status, _ = await whoami({"Impersonate-User": "someone-else"})
        assert status == 403
        status, _ = await whoami({"Impersonate-User": "viewer",
                                  "Impersonate-Group": "system:masters"})
        assert status == 403
