"""certs/: the apiserver, controller-manager, scheduler and node identities, and kubeconfigs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest
from cryptography import x509

from certs import CertsError, describe, init_cluster_certs, layout, load_cert
from certs import kubeconfig as kc
from certs.authority import key_matches, load_key
from certs.cli import check_certs, register
from certs.kubeconfig import (
    DEFAULT_SERVER,
    admin_kubeconfig,
    default_server,
    read_kubeconfig,
    write_kubeconfig,
)
from certs.layout import (
    APISERVER_DNS_NAMES,
    APISERVER_SERVICE_IPS,
    admin_paths,
    apiserver_paths,
    controller_manager_paths,
    issue_node,
    issue_user,
    node_identity,
    node_paths,
    scheduler_paths,
    user_paths,
)
from certs.pairs import CertPaths
from certs.tls import peer_identity, server_context

REPLICAS = ["s1", "s2", "s3"]
SERVER = "https://127.0.0.1:6443"
TIMEOUT = 10.0  # deadline for any single network step


def _snapshot(d: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``d``: content, mode and mtime (ns)."""
    out = {}
    for p in sorted(d.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(d))] = (p.read_bytes(), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ketch")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    d = tmp_path / "cluster" / "certs"
    init_cluster_certs(d, replicas=REPLICAS, hosts=["10.0.0.7", "Node-1.example"])
    return d


@pytest.fixture(params=["yaml", "json"])
def encoding(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with PyYAML (if installed) and without it (JSON, which is YAML too)."""
    if request.param == "yaml":
        if kc._yaml is None:
            pytest.skip("PyYAML is not installed")
    else:
        monkeypatch.setattr(kc, "_yaml", None)
    return str(request.param)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def _user_kubeconfig(cluster: Path, out: Path, *, embed: bool = True, name: str = "jane") -> Path:
    issue_user(cluster, name, ["dev"])
    p = user_paths(cluster, name)
    return write_kubeconfig(
        out, server=SERVER, ca=p.ca, cert=p.cert, key=p.key, user=name, embed=embed
    )


# --- the new identities ----------------------------------------------------------------------


def test_apiserver_serving_certificate(cluster: Path) -> None:
    info = describe(load_cert(apiserver_paths(cluster).cert))
    assert (info.common_name, info.organizations) == ("kube-apiserver", ())
    assert set(info.dns_names) == {"localhost", "node-1.example", *APISERVER_DNS_NAMES}
    assert set(info.ip_addresses) == {"127.0.0.1", "::1", "10.0.0.7", *APISERVER_SERVICE_IPS}
    assert (info.server, info.client, info.is_ca) == (True, False, False)


@pytest.mark.parametrize(
    ("paths", "cn"),
    [
        pytest.param(controller_manager_paths, "system:kube-controller-manager", id="kcm"),
        pytest.param(scheduler_paths, "system:kube-scheduler", id="scheduler"),
    ],
)
def test_control_plane_client_certificates(cluster: Path, paths: object, cn: str) -> None:
    assert callable(paths)
    p: CertPaths = paths(cluster)
    info = describe(load_cert(p.cert))
    assert (info.common_name, info.organizations, info.sans) == (cn, (), ())
    assert (info.server, info.client) == (False, True)
    assert stat.S_IMODE(p.key.stat().st_mode) == 0o600


def test_node_identity_and_pair(cluster: Path) -> None:
    identity = node_identity("worker-1")
    assert (identity.common_name, identity.organizations) == (
        "system:node:worker-1",
        ("system:nodes",),
    )
    assert (identity.server, identity.client) == (False, True)
    report = issue_node(cluster, "worker-1")
    p = node_paths(cluster, "worker-1")
    assert set(report.created) == {p.cert, p.key}
    assert p.cert == cluster / "nodes" / "worker-1.crt"
    info = describe(load_cert(p.cert))
    assert (info.common_name, info.organizations) == ("system:node:worker-1", ("system:nodes",))
    assert (info.server, info.client) == (False, True)
    before = _snapshot(cluster)
    assert issue_node(cluster, "worker-1").created == ()
    assert _snapshot(cluster) == before
    assert {s.path: s.ok for s in check_certs(cluster)}[p.cert]
    with pytest.raises(CertsError, match="not usable"):
        node_identity("../etc")


def test_check_lists_the_new_components_and_misses_them(cluster: Path) -> None:
    for p in (apiserver_paths(cluster), scheduler_paths(cluster)):
        p.cert.unlink()
        p.key.unlink()
    statuses = {s.path.name: s for s in check_certs(cluster)}
    assert statuses["controller-manager.crt"].ok
    for name in ("apiserver.crt", "scheduler.crt"):
        assert not statuses[name].ok
        assert "missing; run `ketch certs init" in statuses[name].problems[0]


def test_existing_cluster_gets_the_new_pairs_and_keeps_every_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "certs"
    hosts = ["10.0.0.7"]
    old_components = {
        k: v
        for k, v in layout.COMPONENTS.items()
        if k in ("store-client", "admin", "apiserver-store-client")
    }
    with monkeypatch.context() as m:  # a directory made before this change
        m.setattr(layout, "COMPONENTS", MappingProxyType(old_components))
        init_cluster_certs(d, replicas=REPLICAS, hosts=hosts)
    before = _snapshot(d)
    assert "apiserver.crt" not in before
    report = init_cluster_certs(d, replicas=REPLICAS, hosts=hosts)
    new = {f"{stem}.{ext}" for stem in ("apiserver", "apiserver-kubelet-client",
                                        "controller-manager", "scheduler",
                                        "controller-manager-serving", "scheduler-serving")
           for ext in ("crt", "key")}  # fmt: skip
    assert {p.name for p in report.created} == new
    after = _snapshot(d)
    assert {k: v for k, v in after.items() if k not in new} == before
    assert "10.0.0.7" in describe(load_cert(apiserver_paths(d).cert)).ip_addresses
    again = init_cluster_certs(d, replicas=REPLICAS, hosts=hosts)
    assert again.created == ()
    assert _snapshot(d) == after


# --- kubeconfig files ------------------------------------------------------------------------


@pytest.mark.parametrize("embed", [pytest.param(True, id="data"), pytest.param(False, id="files")])
def test_kubeconfig_round_trips(cluster: Path, tmp_path: Path, encoding: str, embed: bool) -> None:
    out = _user_kubeconfig(cluster, tmp_path / "jane.kubeconfig", embed=embed)
    p = user_paths(cluster, "jane")
    got = read_kubeconfig(out)
    assert got == {
        "server": SERVER,
        "ca_pem": p.ca.read_bytes(),
        "cert_pem": p.cert.read_bytes(),
        "key_pem": p.key.read_bytes(),
        "user": "jane",
    }
    text = out.read_text()
    assert ("-data:" in text or '-data":' in text) == embed
    assert (str(p.key) in text) == (not embed)
    if encoding == "json":
        json.loads(text)


def test_kubeconfig_document_shape(cluster: Path, tmp_path: Path, encoding: str) -> None:
    out = _user_kubeconfig(cluster, tmp_path / "jane.kubeconfig")
    doc = kc._parse(out.read_bytes(), out)
    assert (doc["apiVersion"], doc["kind"], doc["current-context"]) == (
        "v1",
        "Config",
        "jane@ketch",
    )
    assert doc["clusters"][0]["name"] == "ketch"
    assert doc["clusters"][0]["cluster"]["server"] == SERVER
    assert doc["users"][0]["name"] == "jane"
    assert doc["contexts"] == [
        {
            "name": "jane@ketch",
            "context": {"cluster": "ketch", "user": "jane", "namespace": "default"},
        }
    ]


@pytest.mark.usefixtures("umask")
def test_kubeconfig_is_private_whatever_the_umask(cluster: Path, tmp_path: Path) -> None:
    out = _user_kubeconfig(cluster, tmp_path / "new" / "dir" / "jane.kubeconfig")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    assert [p.name for p in out.parent.iterdir()] == ["jane.kubeconfig"]  # no temp file left


def test_kubeconfig_rewrite_is_idempotent_and_updates_its_own_file(
    cluster: Path, tmp_path: Path
) -> None:
    out = _user_kubeconfig(cluster, tmp_path / "jane.kubeconfig")
    out.chmod(0o644)
    before = out.read_bytes()
    mtime = out.stat().st_mtime_ns
    _user_kubeconfig(cluster, out)
    assert (out.read_bytes(), out.stat().st_mtime_ns) == (before, mtime)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    p = user_paths(cluster, "jane")
    write_kubeconfig(
        out, server="https://10.0.0.7:6443/", ca=p.ca, cert=p.cert, key=p.key, user="jane"
    )
    assert read_kubeconfig(out)["server"] == "https://10.0.0.7:6443"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not: [a kubeconfig", id="garbage"),
        pytest.param(
            json.dumps(
                {
                    "kind": "Config",
                    "clusters": [{"name": "ketch"}, {"name": "prod"}],
                    "users": [{"name": "jane"}, {"name": "ops"}],
                }
            ).encode(),
            id="other-clusters",
        ),
    ],
)
def test_kubeconfig_never_overwrites_a_foreign_file(
    cluster: Path, tmp_path: Path, content: bytes
) -> None:
    out = tmp_path / "config"
    out.write_bytes(content)
    with pytest.raises(CertsError, match="will not overwrite it"):
        _user_kubeconfig(cluster, out)
    assert out.read_bytes() == content


def test_kubeconfig_never_swaps_the_identity_in_place(cluster: Path) -> None:
    out = admin_kubeconfig(cluster, cluster / "admin.kubeconfig", server=SERVER)
    admin_cert = x509.load_pem_x509_certificate(read_kubeconfig(out)["cert_pem"])
    assert describe(admin_cert).organizations == ("system:masters",)
    before = out.read_bytes()
    with pytest.raises(CertsError, match="will not overwrite it"):
        _user_kubeconfig(cluster, out, name="admin")  # users/admin: same CN, no masters group
    assert out.read_bytes() == before


def test_kubeconfig_refuses_what_cannot_authenticate(cluster: Path, tmp_path: Path) -> None:
    ca = cluster / "ca.crt"
    jane, admin, api = user_paths(cluster, "jane"), admin_paths(cluster), apiserver_paths(cluster)
    issue_user(cluster, "jane")
    out = tmp_path / "k"
    cases = [
        (jane.cert, admin.key, SERVER, "is not the key of"),
        (api.cert, api.key, SERVER, "not a client certificate"),
        (jane.cert, jane.key, "http://127.0.0.1:6443", "https://"),
        (jane.cert, jane.key, "127.0.0.1:6443", "https://"),
        (jane.cert, jane.key, "https://h:99999", "https://"),
        (jane.cert, jane.key, "https://user@h:6443", "https://"),
    ]
    for cert, key, server, message in cases:
        with pytest.raises(CertsError, match=message):
            write_kubeconfig(out, server=server, ca=ca, cert=cert, key=key, user="jane")
    other = tmp_path / "other"
    init_cluster_certs(other, replicas=["s1"])
    with pytest.raises(CertsError, match="not issued by"):
        write_kubeconfig(
            out, server=SERVER, ca=ca, cert=admin_paths(other).cert,
            key=admin_paths(other).key, user="admin",
        )  # fmt: skip
    assert not out.exists()


def test_read_kubeconfig_relative_paths_and_errors(cluster: Path, tmp_path: Path) -> None:
    issue_user(cluster, "jane")
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": SERVER, "certificate-authority": "ca.crt"}}
        ],
        "users": [
            {
                "name": "u",
                "user": {"client-certificate": "users/jane.crt", "client-key": "users/jane.key"},
            }
        ],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    }
    out = cluster / "rel.kubeconfig"
    out.write_text(json.dumps(doc))
    got = read_kubeconfig(out)  # no current-context, one context: that one
    assert (got["user"], got["cert_pem"]) == ("u", user_paths(cluster, "jane").cert.read_bytes())
    del doc["users"][0]["user"]["client-key"]  # type: ignore[index]
    out.write_text(json.dumps(doc))
    with pytest.raises(CertsError, match="no client-key or client-key-data"):
        read_kubeconfig(out)
    with pytest.raises(CertsError, match="cannot read kubeconfig"):
        read_kubeconfig(tmp_path / "absent")


def test_admin_kubeconfig(cluster: Path, tmp_path: Path) -> None:
    out = admin_kubeconfig(cluster, tmp_path / "admin.kubeconfig", server=SERVER)
    got = read_kubeconfig(out)
    assert got["user"] == "admin"
    assert got["cert_pem"] == admin_paths(cluster).cert.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_default_server(tmp_path: Path) -> None:
    certs = tmp_path / "cluster" / "certs"
    certs.mkdir(parents=True)
    assert default_server(certs) == DEFAULT_SERVER
    (tmp_path / "cluster" / "apiserver.url").write_text("https://[::1]:7443/\n")
    assert default_server(certs) == "https://[::1]:7443"
    (certs / "apiserver.url").write_text("https://10.0.0.7:6443\n")
    assert default_server(certs) == "https://10.0.0.7:6443"
    (certs / "apiserver.url").write_text("http://10.0.0.7:6443\n")
    with pytest.raises(CertsError, match="apiserver.url.*pass --server"):
        default_server(certs)


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_user_writes_a_kubeconfig(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cluster.parent / "apiserver.url").write_text("https://127.0.0.1:16443\n")
    assert _cli("certs", "user", "jane", "--group", "dev", "--dir", str(cluster)) == 0
    out = capsys.readouterr().out
    path = cluster / "jane.kubeconfig"
    assert f"wrote kubeconfig {path} (server https://127.0.0.1:16443)" in out
    assert f"kubectl --kubeconfig {path} get pods" in out
    got = read_kubeconfig(path)
    cert = x509.load_pem_x509_certificate(got["cert_pem"])
    assert (describe(cert).common_name, describe(cert).organizations) == ("jane", ("dev",))
    assert key_matches(cert, load_key(user_paths(cluster, "jane").key))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert check_certs(cluster) and all(s.ok for s in check_certs(cluster))

    before = _snapshot(cluster)
    assert _cli("certs", "user", "jane", "--group", "dev", "--dir", str(cluster)) == 0
    out = capsys.readouterr().out
    assert "already had" in out and f"kept kubeconfig {path}" in out
    assert _snapshot(cluster) == before


def test_cli_user_kubeconfig_and_server_options(
    cluster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "kube" / "config"
    argv = ["certs", "user", "bob", "--dir", str(cluster), "--kubeconfig", str(elsewhere)]
    assert _cli(*argv, "--server", "https://10.0.0.7:6443") == 0
    assert read_kubeconfig(elsewhere)["server"] == "https://10.0.0.7:6443"
    assert not (cluster / "bob.kubeconfig").exists()
    assert _cli(*argv, "--server", "http://10.0.0.7:6443") == 1
    assert capsys.readouterr().err.startswith("error: apiserver URL")


def test_cli_kubeconfig_command(
    cluster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "admin.conf"
    assert (
        _cli("certs", "kubeconfig", "--dir", str(cluster), "--user", "admin", "--out", str(out))
        == 0
    )
    assert read_kubeconfig(out)["cert_pem"] == admin_paths(cluster).cert.read_bytes()
    assert _cli("certs", "kubeconfig", "--dir", str(cluster), "--user", "nobody") == 1
    assert "run `ketch certs user nobody --dir" in capsys.readouterr().err
    issue_user(cluster, "carol")
    assert _cli("certs", "kubeconfig", "--dir", str(cluster), "--user", "carol") == 0
    assert read_kubeconfig(cluster / "carol.kubeconfig")["user"] == "carol"


def test_cli_node(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("certs", "node", "n1", "--dir", str(cluster)) == 0
    assert "issued a client certificate for node n1" in capsys.readouterr().out
    assert _cli("certs", "node", "n1", "--dir", str(cluster)) == 0
    assert "already had" in capsys.readouterr().out


# --- the kubeconfig works against the apiserver's certificate --------------------------------


async def test_kubeconfig_client_authenticates_to_the_apiserver_certificate(
    cluster: Path, tmp_path: Path
) -> None:
    """What a client does with a kubeconfig: trust its CA, present its pair, check the name."""
    got = read_kubeconfig(_user_kubeconfig(cluster, tmp_path / "jane.kubeconfig"))
    (tmp_path / "c.crt").write_bytes(got["cert_pem"])
    (tmp_path / "c.key").write_bytes(got["key_pem"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=got["ca_pem"].decode())
    ctx.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    seen: list[tuple[str, tuple[str, ...]]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(peer_identity(writer.get_extra_info("ssl_object")))
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, ssl=server_context(apiserver_paths(cluster))
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        for name in ("127.0.0.1", "kubernetes.default.svc"):
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name), TIMEOUT
            )
            identity = peer_identity(writer.get_extra_info("ssl_object"))
            assert identity == ("kube-apiserver", ())
            writer.write(b"hi\n")
            assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"hi\n"
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    assert seen == [("jane", ("dev",))] * 2


# --- kubectl, when it is there ---------------------------------------------------------------

_KUBECTL = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(_KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_reads_it(cluster: Path, tmp_path: Path, encoding: str) -> None:
    out = _user_kubeconfig(cluster, tmp_path / "jane.kubeconfig")
    assert _KUBECTL is not None
    done = subprocess.run(
        [_KUBECTL, "--kubeconfig", str(out), "config", "view", "--raw", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
        env={**os.environ, "KUBECONFIG": ""},
    )
    view = json.loads(done.stdout)
    assert view["current-context"] == "jane@ketch"
    assert view["clusters"][0]["cluster"]["server"] == SERVER
    got = read_kubeconfig(out)
    user = view["users"][0]["user"]
    assert user["client-key-data"] == kc._b64(got["key_pem"])
