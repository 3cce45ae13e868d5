"""Service-account tokens over HTTP against the in-process apiserver: TokenRequest, bearer
authentication as the account (RBAC applies), the issuer's discovery documents, and tokens
that must be refused (forged, expired, foreign audience, deleted account or pod)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certs.layout import ca_paths, service_account_key
from control.api.errors import Invalid, NotFound
from control.apiserver.serviceaccounts import jwt
from control.apiserver.serviceaccounts.tokens import ISSUER, TokenIssuer
from control.client import ApiClient, Resource
from control.client import resources as R
from tests.conftest import eventually
from tests.inprocess import InProcessAPI

RBAC = "rbac.authorization.k8s.io"
ROLES = Resource(RBAC, "v1", "roles", "Role", True)
BINDINGS = Resource(RBAC, "v1", "rolebindings", "RoleBinding", True)


def _tls(certs: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_paths(certs).cert))
    return ctx  # no client certificate: the token is the only credential


async def _get(api: InProcessAPI, path: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(
            api.url + path, ssl=_tls(api.certs), headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def _setup(admin: ApiClient) -> tuple[dict[str, Any], dict[str, Any]]:
    sa = await admin.create(R.SERVICEACCOUNTS, {"metadata": {"name": "op"}}, "default")
    pod = await admin.create(R.PODS, {"metadata": {"name": "op-pod"}, "spec": {
        "serviceAccountName": "op", "containers": [{"name": "c", "image": "busybox"}]}},
        "default")
    await admin.create(ROLES, {"metadata": {"name": "pods", "namespace": "default"},
                               "rules": [{"apiGroups": [""], "resources": ["pods"],
                                          "verbs": ["get", "list"]}]})
    await admin.create(BINDINGS, {"metadata": {"name": "op", "namespace": "default"},
                                  "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "pods"},
                                  "subjects": [{"kind": "ServiceAccount", "name": "op",
                                                "namespace": "default"}]})
    return sa, pod


async def _token(admin: ApiClient, pod: dict[str, Any] | None = None, **spec: Any) -> str:
    body: dict[str, Any] = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "spec": dict(spec)}
    if pod is not None:
        body["spec"]["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod",
                                          "name": pod["metadata"]["name"],
                                          "uid": pod["metadata"]["uid"]}
    out = await admin.create(R.SERVICEACCOUNTS, body, "default", subresource="token", name="op")
    assert out["kind"] == "TokenRequest" and out["status"]["expirationTimestamp"]
    return str(out["status"]["token"])


async def test_token_request_and_bearer_authentication(api: InProcessAPI) -> None:
    async with api.client() as admin:
        sa, pod = await _setup(admin)
        token = await _token(admin, pod, expirationSeconds=3607)
        claims = jwt.verify(token, service_account_key(api.certs).public_key())
        assert claims["sub"] == "system:serviceaccount:default:op"
        assert claims["aud"] == [ISSUER]
        assert claims["kubernetes.io"]["pod"] == {"name": "op-pod",
                                                  "uid": pod["metadata"]["uid"]}
        assert claims["kubernetes.io"]["serviceaccount"]["uid"] == sa["metadata"]["uid"]
        status, body = await _get(api, "/api/v1/namespaces/default/pods", token)
        assert status == 200 and [p["metadata"]["name"] for p in body["items"]] == ["op-pod"]
        status, body = await _get(api, "/api/v1/namespaces/default/secrets", token)
        assert status == 403
        assert body["message"] == ('secrets is forbidden: User "system:serviceaccount:default:op" '
                                   'cannot list resource "secrets" in API group "" in the '
                                   'namespace "default"')
        async with aiohttp.ClientSession() as s, s.post(
                api.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                ssl=_tls(api.certs), headers={"Authorization": f"Bearer {token}"},
                json={"apiVersion": "authentication.k8s.io/v1",
                      "kind": "SelfSubjectReview"}) as r:
            who = (await r.json())["status"]["userInfo"]
        assert who["username"] == "system:serviceaccount:default:op"
        assert who["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default",
                                 "system:authenticated"]
        assert who["extra"]["authentication.kubernetes.io/pod-name"] == ["op-pod"]
        status, doc = await _get(api, "/.well-known/openid-configuration", token)
        assert status == 200 and doc["issuer"] == ISSUER
        status, keys = await _get(api, "/openid/v1/jwks", token)
        assert status == 200 and keys["keys"][0]["alg"] == "ES256"
        assert keys["keys"][0]["kid"] == jwt.key_id(service_account_key(api.certs).public_key())


async def test_refused_tokens_are_401(api: InProcessAPI) -> None:
    async with api.client() as admin:
        sa, pod = await _setup(admin)
        good = await _token(admin, pod)
        issuer = TokenIssuer(service_account_key(api.certs))
        now = dt.datetime.now(dt.UTC)
        uid = sa["metadata"]["uid"]
        expired, _ = issuer.issue(namespace="default", account="op", account_uid=uid,
                                  audiences=[ISSUER], expiration_seconds=600,
                                  now=now - dt.timedelta(hours=1))
        foreign_aud, _ = issuer.issue(namespace="default", account="op", account_uid=uid,
                                      audiences=["https://elsewhere"], expiration_seconds=600,
                                      now=now)
        other_key = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
        forged, _ = other_key.issue(namespace="default", account="op", account_uid=uid,
                                    audiences=[ISSUER], expiration_seconds=600, now=now)
        tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
        for bad in (expired, foreign_aud, forged, tampered, "not-a-jwt"):
            status, body = await _get(api, "/api/v1/namespaces/default/pods", bad)
            assert status == 401 and body["reason"] == "Unauthorized"
        status, _ = await _get(api, "/api/v1/namespaces/default/pods", None)
        assert status == 401
        await admin.delete(R.PODS, "op-pod", "default", grace_period_seconds=0)

        async def refused() -> bool:
            return (await _get(api, "/api/v1/namespaces/default/pods", good))[0] == 401
        await eventually(refused, timeout=10)
        unbound = await _token(admin)
        assert (await _get(api, "/api/v1/namespaces/default/pods", unbound))[0] == 200
        await admin.delete(R.SERVICEACCOUNTS, "op", "default")
        await eventually(lambda: _unauthorized(api, unbound), timeout=10)


async def _unauthorized(api: InProcessAPI, token: str) -> bool:
    return (await _get(api, "/api/v1/namespaces/default/pods", token))[0] == 401


async def test_token_request_validation(api: InProcessAPI) -> None:
    async with api.client() as admin:
        await _setup(admin)
        with pytest.raises(Invalid) as e:
            await _token(admin, expirationSeconds=10)
        assert "spec.expirationSeconds: Invalid value: 10: may not specify a duration less " \
               "than 10 minutes" in e.value.message
        with pytest.raises(NotFound):
            await admin.create(R.SERVICEACCOUNTS, {"spec": {}}, "default",
                               subresource="token", name="nobody")
        ghost = {"metadata": {"name": "op-pod", "uid": "not-its-uid"}}
        with pytest.raises(Exception) as conflict:
            await _token(admin, ghost)
        assert "does not match the UID in record" in str(conflict.value)


async def test_official_client_in_cluster_config(api: InProcessAPI, tmp_path: Path) -> None:
    """The official Python client's ``load_incluster_config`` reading the files a pod gets
    (token, ca.crt) and the service environment, then listing pods as the account."""
    from kubernetes import client as k8s
    from kubernetes.config.incluster_config import InClusterConfigLoader

    async with api.client() as admin:
        _, pod = await _setup(admin)
        token = await _token(admin, pod)
    (tmp_path / "token").write_text(token)
    (tmp_path / "ca.crt").write_bytes(ca_paths(api.certs).cert.read_bytes())
    host, port = api.url.removeprefix("https://").rsplit(":", 1)

    def in_cluster() -> list[str]:
        cfg = k8s.Configuration()
        InClusterConfigLoader(token_filename=str(tmp_path / "token"),
                              cert_filename=str(tmp_path / "ca.crt"),
                              environ={"KUBERNETES_SERVICE_HOST": host,
                                       "KUBERNETES_SERVICE_PORT": port}).load_and_set(cfg)
        with k8s.ApiClient(cfg) as c:
            pods = k8s.CoreV1Api(c).list_namespaced_pod("default")
            return [p.metadata.name for p in pods.items]

    assert await asyncio.to_thread(in_cluster) == ["op-pod"]
