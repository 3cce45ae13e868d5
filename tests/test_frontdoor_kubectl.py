"""Integration: the front door's answers as the real kubectl 1.37 prints them against a real
``ketch up`` — impersonation allowed and refused, bad client certificates refused with
``Unauthorized`` (not a reset printed as ``EOF``), a certificate without an Authority Key
Identifier accepted, and an unserved kind's ``no matches for kind`` message."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs.layout import CertPaths, issue_user, user_paths
from ketch.cluster import Cluster
from tests.badcerts import bad_client
from tests.kube import Kubectl

pytestmark = pytest.mark.integration


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("frontdoor") / "cluster", port=0, nodes=0)
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


@pytest.fixture
def kubectl(ketch: Cluster) -> Kubectl:
    return Kubectl(ketch.kubeconfig)


def _kubectl_for(ketch: Cluster, name: str, paths: CertPaths) -> Kubectl:
    """kubectl with ``paths`` as its identity (written by hand: ``write_kubeconfig`` refuses a
    pair that cannot authenticate, which is the point here)."""
    kc = ketch.dir / f"{name}.kubeconfig"
    kc.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": ketch.url,
                                               "certificate-authority": str(paths.ca)}}],
        "users": [{"name": name, "user": {"client-certificate": str(paths.cert),
                                          "client-key": str(paths.key)}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": name}}]}))
    return Kubectl(kc)


def _user(ketch: Cluster, name: str, *groups: str) -> Kubectl:
    issue_user(ketch.store.certs_dir, name, groups)
    return _kubectl_for(ketch, name, user_paths(ketch.store.certs_dir, name))


def test_as_answers_for_the_impersonated_user(ketch: Cluster, kubectl: Kubectl) -> None:
    kubectl.run("create", "clusterrolebinding", "jane-views", "--clusterrole=view",
                "--user=jane")
    p = kubectl.run("auth", "can-i", "create", "deployments", "--as=jane", check=False)
    assert (p.returncode, p.stdout.strip()) == (1, "no")
    assert kubectl.run("auth", "can-i", "list", "pods", "--as=jane").stdout.strip() == "yes"
    who = kubectl.run("auth", "whoami", "--as=jane", "--as-group=dev").stdout
    assert "jane" in who and "dev" in who and "system:masters" not in who
    p = kubectl.run("create", "deployment", "x", "--image=nginx", "--as=jane", check=False)
    assert p.returncode != 0
    assert ('deployments.apps is forbidden: User "jane" cannot create resource "deployments" '
            'in API group "apps" in the namespace "default"') in p.stderr


def test_impersonating_without_the_verb_is_forbidden(ketch: Cluster) -> None:
    joe = _user(ketch, "joe", "dev")
    # (a command without discovery: kubectl reports a refused discovery request as "unknown",
    # as it does against kube-apiserver)
    p = joe.run("create", "configmap", "c", "--as=admin", "--as-group=system:masters",
                check=False)
    assert p.returncode != 0
    assert ('users "admin" is forbidden: User "joe" cannot impersonate resource "users" in '
            'API group "" at the cluster scope') in p.stderr
    log = (ketch.dir / "apiserver-1" / "apiserver.log").read_text()
    assert "joe[dev,system:authenticated] was refused impersonation" in log


@pytest.mark.parametrize("kind", ["foreign", "expired", "not-yet-valid"])
def test_a_bad_client_certificate_is_unauthorized_at_once(ketch: Cluster, tmp_path: Path,
                                                           kind: str) -> None:
    paths = bad_client(ketch.store.certs_dir, kind, tmp_path)
    k = _kubectl_for(ketch, f"bad-{kind}", paths)
    started = time.monotonic()
    p = k.run("get", "pods", check=False)
    assert p.returncode != 0
    # kubectl's wording for a 401 on discovery, as against kube-apiserver
    assert ("error: You must be logged in to the server (the server has asked for the client "
            "to provide credentials)") in p.stderr, p.stderr
    assert "EOF" not in p.stderr
    p = k.run("auth", "whoami", check=False)
    assert "error: You must be logged in to the server (Unauthorized)" in p.stderr, p.stderr
    assert time.monotonic() - started < 8  # no 10 s of retried handshakes
    log = (ketch.dir / "apiserver-1" / "apiserver.log").read_text()
    assert "unable to authenticate the request" in log and "x509: certificate" in log


def test_a_certificate_without_aki_is_accepted(ketch: Cluster, tmp_path: Path) -> None:
    paths = bad_client(ketch.store.certs_dir, "no-aki", tmp_path, user="plain")
    who = _kubectl_for(ketch, "no-aki", paths).run("auth", "whoami").stdout
    assert "plain" in who and "dev" in who


def test_an_unserved_kind_says_no_matches(kubectl: Kubectl, tmp_path: Path) -> None:
    f = tmp_path / "widget.yaml"
    f.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n")
    for verb in ("apply", "create"):
        p = kubectl.run(verb, "-f", str(f), check=False)
        assert p.returncode != 0
        assert 'no matches for kind "Widget" in version "example.com/v1"' in p.stderr, p.stderr
        assert "ensure CRDs are installed first" in p.stderr
        assert "error validating data" not in p.stderr
