"""Client certificates verified after the handshake (certs/clientauth.py): a bad certificate
completes TLS and gets a 401 with the reason logged — from the apiserver as a ``Status``, from
the store as its typed ``unauthenticated`` error — and a good one without an Authority Key
Identifier is accepted."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
import pytest
from aiohttp import web

from certs.authority import CertsError, create_ca, issue, load_ca
from certs.clientauth import request_client_certificates, verify_client_certificate
from certs.layout import CertPaths, admin_paths, store_replica_paths
from certs.tls import server_context
from store.server import build_app
from tests.badcerts import bad_client

_WHY = {
    "foreign": "x509: certificate signed by unknown authority",
    "expired": "x509: certificate has expired or is not yet valid: current time",
    "not-yet-valid": "x509: certificate has expired or is not yet valid: current time",
}


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def test_verification_table(certs_dir_session: Path) -> None:
    ca = load_ca(certs_dir_session)
    now = dt.datetime.now(dt.UTC)
    good, _ = issue(ca, common_name="u", client=True)
    assert verify_client_certificate(_der(good), ca.cert).subject
    cases = {
        "foreign": issue(create_ca(), common_name="u", client=True)[0],
        "expired": issue(ca, common_name="u", client=True, days=1,
                         now=now - dt.timedelta(days=3))[0],
        "future": issue(ca, common_name="u", client=True, now=now + dt.timedelta(days=2))[0],
        "server-only": issue(ca, common_name="u", server=True, dns_names=["x"])[0],
    }
    why = {"foreign": "signed by unknown authority", "expired": "is after",
           "future": "is before", "server-only": "incompatible key usage"}
    for name, pem in cases.items():
        with pytest.raises(CertsError, match=why[name]):
            verify_client_certificate(_der(pem), ca.cert)
    with pytest.raises(CertsError, match="malformed"):
        verify_client_certificate(b"\x30\x03junk", ca.cert)


def _client_ctx(paths: CertPaths) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(paths.ca))
    ctx.load_cert_chain(str(paths.cert), str(paths.key))
    return ctx


async def _get(url: str, ctx: ssl.SSLContext) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url, ssl=ctx) as r:
        return r.status, await r.read()


@pytest.mark.parametrize("kind", ["foreign", "expired", "not-yet-valid"])
async def test_the_apiserver_answers_a_bad_certificate_401_and_logs_why(
        api: Any, certs_dir_session: Path, tmp_path: Path, kind: str, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="ketch.apiserver")
    paths = bad_client(certs_dir_session, kind, tmp_path)
    status, body = await _get(api.url + "/api/v1/namespaces", _client_ctx(paths))
    assert status == 401
    assert b'"reason":"Unauthorized"' in body
    assert any("unable to authenticate the request" in m and _WHY[kind] in m
               for m in caplog.messages), caplog.messages


async def test_a_certificate_without_aki_from_the_cluster_ca_is_accepted(
        api: Any, certs_dir_session: Path, tmp_path: Path) -> None:
    paths = bad_client(certs_dir_session, "no-aki", tmp_path, user="aki-less")
    status, body = await _get(api.url + "/apis/authentication.k8s.io/v1", _client_ctx(paths))
    assert status == 200, body
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    async with aiohttp.ClientSession() as s, s.post(
            api.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews", json=review,
            ssl=_client_ctx(paths)) as r:
        assert r.status == 201
        assert (await r.json())["status"]["userInfo"]["username"] == "aki-less"


async def test_no_certificate_is_401_too(api: Any, certs_dir_session: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(certs_dir_session / "ca.crt"))
    status, _ = await _get(api.url + "/api", ctx)
    assert status == 401


class _Node:
    def status(self) -> dict[str, Any]:
        return {"revision": 1}


class _Metrics:
    def observe(self, *_: Any) -> None:
        pass


@pytest.mark.parametrize("kind", ["foreign", "expired", "no-aki", "admin"])
async def test_the_store_answers_a_bad_certificate_with_its_typed_error(
        certs_dir_session: Path, tmp_path: Path, kind: str, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="store")
    replica = store_replica_paths(certs_dir_session, "s1")
    tls = server_context(replica)
    assert request_client_certificates(tls, replica.ca)
    runner = web.AppRunner(build_app(_Node(), metrics_=_Metrics()))  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        paths = admin_paths(certs_dir_session) if kind == "admin" else bad_client(
            certs_dir_session, kind, tmp_path)
        status, body = await _get(f"https://127.0.0.1:{port}/v1/status", _client_ctx(paths))
    finally:
        await runner.cleanup()
    if kind in ("admin", "no-aki"):
        assert status == 200 and cbor2.loads(body) == {"revision": 1}
        return
    assert status == 401
    err = cbor2.loads(body)["error"]
    assert err["code"] == "unauthenticated" and _WHY[kind] in err["message"]
    assert any(_WHY[kind] in m for m in caplog.messages)
