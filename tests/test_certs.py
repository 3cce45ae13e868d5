"""certs/: the CA, the on-disk layout (idempotent, private), mutual TLS on loopback, the CLI."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import os
import socket
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from certs import (
    CertPaths,
    CertsError,
    admin_paths,
    apiserver_kubelet_client_paths,
    apiserver_store_client_paths,
    client_context,
    create_ca,
    days_left,
    describe,
    init_cluster_certs,
    issue,
    issue_user,
    load_ca,
    load_cert,
    peer_identity,
    raft_secret,
    server_context,
    store_client_paths,
    store_replica_paths,
    user_paths,
    verify_issued_by,
)
from certs.cli import check_certs, register
from certs.layout import issue_node, issue_node_serving, node_paths, node_serving_paths
from certs.pairs import ensure_private_dir

REPLICAS = ["s1", "s2", "s3"]
LEAVES = [
    *("store-s1", "store-s2", "store-s3", "store-client", "admin", "apiserver-store-client"),
    *("apiserver", "apiserver-kubelet-client", "controller-manager", "scheduler"),
    *("controller-manager-serving", "scheduler-serving"),
]
TIMEOUT = 10.0  # deadline for any single network step


def _snapshot(d: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``d``: content, mode and mtime (ns)."""
    out = {}
    for p in sorted(d.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(d))] = (p.read_bytes(), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    d = tmp_path / "cluster" / "certs"
    init_cluster_certs(d, replicas=REPLICAS, hosts=["10.0.0.7", "Node-1.example"])
    return d


@pytest.fixture
def other_cluster(tmp_path: Path) -> Path:
    d = tmp_path / "other" / "certs"
    init_cluster_certs(d, replicas=["s1"])
    return d


# --- creation and idempotency --------------------------------------------------------------------


def test_init_creates_every_file(tmp_path: Path) -> None:
    d = tmp_path / "certs"
    seen: list[str] = []
    report = init_cluster_certs(d, replicas=REPLICAS, progress=lambda r: seen.append(str(r)))
    expected = {"ca.crt", "ca.key", "raft-secret", "sa.key"}
    expected |= {f"{stem}.{ext}" for stem in LEAVES for ext in ("crt", "key")}
    assert {p.name for p in report.created} == expected
    assert report.kept == ()
    assert {p.name for p in d.iterdir()} == expected
    assert len(seen) == len(expected)
    assert all(s.startswith("created ") for s in seen)


def test_second_run_keeps_every_file_byte_identical(cluster: Path) -> None:
    before = _snapshot(cluster)
    report = init_cluster_certs(cluster, replicas=REPLICAS)
    assert report.created == ()
    assert {str(p.relative_to(cluster)) for p in report.kept} == set(before)
    assert all(f.note == "" for f in report.files)
    assert _snapshot(cluster) == before


def test_adding_a_replica_adds_only_its_pair(cluster: Path) -> None:
    before = _snapshot(cluster)
    report = init_cluster_certs(cluster, replicas=[*REPLICAS, "s4"])
    assert {p.name for p in report.created} == {"store-s4.crt", "store-s4.key"}
    after = _snapshot(cluster)
    assert {k: after[k] for k in before} == before
    verify_issued_by(load_cert(cluster / "store-s4.crt"), load_cert(cluster / "ca.crt"))


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077], ids=["umask000", "umask022", "umask077"])
def test_modes_do_not_depend_on_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        d = tmp_path / "certs"
        init_cluster_certs(d, replicas=REPLICAS)
        issue_user(d, "alice", ["dev"])
    finally:
        os.umask(old)
    for p in [d, d / "users"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o700, p
    for p in d.rglob("*"):
        if p.is_file():
            want = 0o644 if p.suffix == ".crt" else 0o600
            assert stat.S_IMODE(p.stat().st_mode) == want, p
    assert not list(d.rglob(".*.tmp"))


def test_a_directory_another_process_creates_meanwhile_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two hollow-node processes issue their nodes' certificates at once: one creates
    # certs/nodes between the other's existence check and its mkdir.
    d = tmp_path / "nodes"
    d.mkdir(mode=0o755)
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: False if self == d else real_exists(self))
    ensure_private_dir(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_loose_key_mode_is_tightened_not_rewritten(cluster: Path) -> None:
    key = cluster / "admin.key"
    content = key.read_bytes()
    key.chmod(0o644)
    report = init_cluster_certs(cluster, replicas=REPLICAS)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes() == content
    assert [f.note for f in report.files if f.path == key] == ["mode 0644 tightened to 0600"]


def test_raft_secret_is_32_random_bytes(cluster: Path, other_cluster: Path) -> None:
    secret = raft_secret(cluster)
    assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) == 32
    assert secret != raft_secret(other_cluster)


# --- what the certificates say -------------------------------------------------------------------

SERVING_SANS = {"localhost", "node-1.example", "127.0.0.1", "::1", "10.0.0.7"}


@pytest.mark.parametrize(
    ("stem", "cn", "orgs", "server", "sans"),
    [
        pytest.param("ca", "ketch-ca", (), False, set(), id="ca"),
        pytest.param(
            "store-s2", "ketch-store-s2", ("ketch:store-replicas",), True, SERVING_SANS, id="s2"
        ),
        pytest.param("store-client", "ketch-store-client", (), False, set(), id="store-client"),
        pytest.param("admin", "admin", ("system:masters",), False, set(), id="admin"),
        pytest.param("apiserver-store-client", "kube-apiserver", (), False, set(), id="apiserver"),
        pytest.param(
            "controller-manager", "system:kube-controller-manager", (), False, set(), id="kcm"
        ),
        pytest.param("scheduler", "system:kube-scheduler", (), False, set(), id="scheduler"),
        pytest.param("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                     ("system:masters",), False, set(), id="kubelet-client"),
    ],
)
def test_subject_sans_and_usage(
    cluster: Path, stem: str, cn: str, orgs: tuple[str, ...], server: bool, sans: set[str]
) -> None:
    info = describe(load_cert(cluster / f"{stem}.crt"))
    assert (info.common_name, info.organizations) == (cn, orgs)
    assert set(info.sans) == sans
    assert info.server == server
    assert info.is_ca == (stem == "ca")
    assert info.client == (stem != "ca")


def test_ca_profile(cluster: Path) -> None:
    ca = load_ca(cluster)
    bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    ku = ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert bc.critical
    assert bc.value.ca
    assert ku.key_cert_sign
    assert ku.crl_sign
    assert 3649 <= days_left(ca.cert) <= 3650
    assert 364 <= days_left(load_cert(cluster / "admin.crt")) <= 365


def test_leaf_has_key_identifiers(cluster: Path) -> None:
    ca = load_cert(cluster / "ca.crt")
    leaf = load_cert(cluster / "store-s1.crt")
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


# --- verification ---------------------------------------------------------------------------------


def test_every_certificate_verifies_against_the_ca(cluster: Path) -> None:
    ca = load_cert(cluster / "ca.crt")
    for crt in cluster.glob("*.crt"):
        verify_issued_by(load_cert(crt), ca)
    # An independent verifier (cryptography's RFC 5280 path builder) agrees for a serving cert.
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("localhost"))
    chain = verifier.verify(load_cert(cluster / "store-s1.crt"), [])
    assert chain[-1] == ca


def test_certificate_from_another_ca_is_rejected(cluster: Path, other_cluster: Path) -> None:
    with pytest.raises(CertsError, match="not issued by"):
        verify_issued_by(load_cert(other_cluster / "admin.crt"), load_cert(cluster / "ca.crt"))


def test_same_name_different_ca_is_rejected() -> None:
    # Same subject, so only the signature tells them apart.
    ca, impostor = create_ca(), create_ca()
    cert_pem, _ = issue(impostor, common_name="admin", client=True)
    with pytest.raises(CertsError, match="not issued by"):
        verify_issued_by(x509.load_pem_x509_certificate(cert_pem), ca.cert)


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        pytest.param(dt.timedelta(days=400), "expired", id="expired"),
        pytest.param(dt.timedelta(days=-1), "not valid before", id="not-yet-valid"),
    ],
)
def test_validity_window_is_checked(offset: dt.timedelta, message: str) -> None:
    ca = create_ca()
    cert_pem, _ = issue(ca, common_name="bob", client=True, days=365)
    cert = x509.load_pem_x509_certificate(cert_pem)
    at = dt.datetime.now(dt.UTC) + offset
    with pytest.raises(CertsError, match=message):
        verify_issued_by(cert, ca.cert, now=at)


def test_leaf_never_outlives_its_ca() -> None:
    ca = create_ca(days=10)
    cert = x509.load_pem_x509_certificate(issue(ca, common_name="x", client=True, days=365)[0])
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"common_name": "x"}, id="no-usage"),
        pytest.param({"common_name": "x", "server": True}, id="server-without-sans"),
        pytest.param({"common_name": "x", "client": True, "ip_addresses": ["1.2.3"]}, id="bad-ip"),
    ],
)
def test_issue_refuses_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"server=True|needs DNS names|does not appear"):
        issue(create_ca(), **kwargs)  # type: ignore[arg-type]


# --- init refuses to guess ------------------------------------------------------------------------


@pytest.mark.parametrize("remove", ["admin.key", "admin.crt"])
def test_half_a_pair_is_a_clear_error(cluster: Path, remove: str) -> None:
    (cluster / remove).unlink()
    before = _snapshot(cluster)
    with pytest.raises(CertsError) as e:
        init_cluster_certs(cluster, replicas=[*REPLICAS, "s4"])
    msg = str(e.value)
    assert f"{cluster / remove} does not" in msg
    assert "Restore" in msg
    assert "remove" in msg
    assert "ketch certs init" in msg
    assert _snapshot(cluster) == before  # nothing written, not even s4


def test_pair_from_another_ca_in_place_is_refused(cluster: Path, other_cluster: Path) -> None:
    for ext in ("crt", "key"):
        (cluster / f"store-client.{ext}").write_bytes((other_cluster / f"admin.{ext}").read_bytes())
    before = _snapshot(cluster)
    with pytest.raises(CertsError, match=r"store-client\.crt.*not issued by"):
        init_cluster_certs(cluster, replicas=REPLICAS)
    assert _snapshot(cluster) == before


def test_key_of_another_pair_is_refused(cluster: Path) -> None:
    (cluster / "admin.key").unlink()
    (cluster / "admin.key").write_bytes((cluster / "store-client.key").read_bytes())
    with pytest.raises(CertsError, match=r"admin\.key is not the key of .*admin\.crt"):
        init_cluster_certs(cluster, replicas=REPLICAS)


def test_wrong_identity_under_a_name_is_refused(cluster: Path) -> None:
    for ext in ("crt", "key"):
        (cluster / f"admin.{ext}").unlink()
        (cluster / f"admin.{ext}").write_bytes((cluster / f"store-client.{ext}").read_bytes())
    with pytest.raises(CertsError, match="CN is 'ketch-store-client', expected 'admin'"):
        init_cluster_certs(cluster, replicas=REPLICAS)


def test_new_host_not_in_existing_cert_is_refused(cluster: Path) -> None:
    with pytest.raises(CertsError, match=r"store-s1\.crt.*lacks SANs 10\.9\.9\.9"):
        init_cluster_certs(cluster, replicas=REPLICAS, hosts=["10.9.9.9"])


def test_expired_cert_is_refused_with_renewal_hint(cluster: Path) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with pytest.raises(CertsError, match=r"expired.*remove .*store-s1\.crt and .*store-s1\.key"):
        init_cluster_certs(cluster, replicas=REPLICAS, now=later)


def test_leaves_without_their_ca_are_refused(cluster: Path) -> None:
    (cluster / "ca.crt").unlink()
    (cluster / "ca.key").unlink()
    with pytest.raises(CertsError, match="CA that is gone"):
        init_cluster_certs(cluster, replicas=REPLICAS)
    assert not (cluster / "ca.crt").exists()


def test_bad_secret_is_refused(cluster: Path) -> None:
    secret = cluster / "raft-secret"
    secret.write_text("short\n")
    with pytest.raises(CertsError, match="raft-secret is not 32"):
        init_cluster_certs(cluster, replicas=REPLICAS)


@pytest.mark.parametrize(
    ("replicas", "message"),
    [
        pytest.param([], "at least one", id="none"),
        pytest.param(["s1", "s1"], "repeat", id="duplicate"),
        pytest.param(["client"], "clashes with store-client", id="clash"),
        pytest.param(["../x"], "not usable", id="path"),
    ],
)
def test_bad_replica_names(tmp_path: Path, replicas: list[str], message: str) -> None:
    with pytest.raises(CertsError, match=message):
        init_cluster_certs(tmp_path / "certs", replicas=replicas)
    assert not (tmp_path / "certs").exists()


def test_bad_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CertsError, match="neither an IP address nor a DNS name"):
        init_cluster_certs(tmp_path / "certs", replicas=["s1"], hosts=["not a host"])


# --- users ----------------------------------------------------------------------------------------


def test_issue_user_is_idempotent_and_never_changes_groups(cluster: Path) -> None:
    report = issue_user(cluster, "alice", ["dev", "ops"])
    paths = user_paths(cluster, "alice")
    assert set(report.created) == {paths.cert, paths.key}
    info = describe(load_cert(paths.cert))
    assert (info.common_name, info.organizations) == ("alice", ("dev", "ops"))
    assert (info.client, info.server, info.sans) == (True, False, ())
    before = _snapshot(cluster)
    assert issue_user(cluster, "alice", ["dev", "ops"]).created == ()
    assert _snapshot(cluster) == before
    with pytest.raises(CertsError, match=r"O is \['dev', 'ops'\], expected \['admins'\]"):
        issue_user(cluster, "alice", ["admins"])


def test_issue_user_needs_a_ca(tmp_path: Path) -> None:
    with pytest.raises(CertsError, match=r"no usable CA.*Run `ketch certs init --dir"):
        issue_user(tmp_path / "certs", "alice")
    with pytest.raises(CertsError, match="not usable"):
        issue_user(tmp_path / "certs", "a/b")


# --- nodes ----------------------------------------------------------------------------------------


def test_issue_node_serving_names_the_node_and_its_addresses(cluster: Path) -> None:
    report = issue_node_serving(cluster, "Node-1", ["10.0.0.9", "127.0.0.1", "node-1.lan"])
    paths = node_serving_paths(cluster, "Node-1")
    assert paths.cert == cluster / "nodes" / "serving" / "Node-1.crt"
    assert set(report.created) == {paths.cert, paths.key}
    info = describe(load_cert(paths.cert))
    assert (info.common_name, info.organizations) == ("system:node:Node-1", ("system:nodes",))
    assert (info.server, info.client) == (True, False)  # serving only: it is no client
    assert set(info.sans) == {"node-1", "node-1.lan", "10.0.0.9", "127.0.0.1"}  # no localhost
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
    verify_issued_by(load_cert(paths.cert), load_cert(cluster / "ca.crt"))


def test_issue_node_serving_is_idempotent_and_refuses_a_new_address(cluster: Path) -> None:
    issue_node_serving(cluster, "n1", ["10.0.0.9"])
    before = _snapshot(cluster)
    assert issue_node_serving(cluster, "n1", ["10.0.0.9"]).created == ()
    assert _snapshot(cluster) == before
    with pytest.raises(CertsError, match=r"lacks SANs 10\.0\.0\.10.*--address 10\.0\.0\.10"):
        issue_node_serving(cluster, "n1", ["10.0.0.10"])
    assert _snapshot(cluster) == before


def test_node_client_and_serving_pairs_do_not_collide(cluster: Path) -> None:
    """A node named ``serving`` and any node's serving pair live at different paths."""
    issue_node(cluster, "serving")
    issue_node_serving(cluster, "serving", ["10.0.0.1"])
    assert node_paths(cluster, "serving").cert != node_serving_paths(cluster, "serving").cert
    assert describe(load_cert(node_paths(cluster, "serving").cert)).client


def test_issue_node_serving_needs_a_ca_and_good_names(tmp_path: Path, cluster: Path) -> None:
    with pytest.raises(CertsError, match="no usable CA"):
        issue_node_serving(tmp_path / "certs", "n1", ["10.0.0.1"])
    with pytest.raises(CertsError, match="neither an IP address nor a DNS name"):
        issue_node_serving(cluster, "n1", ["not a host"])
    with pytest.raises(CertsError, match="not usable"):
        issue_node_serving(cluster, "a/b", [])


async def test_mtls_apiserver_to_node_agent(cluster: Path) -> None:
    """The apiserver's kubelet client reaches an agent served with the node's serving pair,
    at the node's address, and the agent sees kube-apiserver-kubelet-client."""
    issue_node_serving(cluster, "n1", ["127.0.0.1"])
    async with _echo_server(node_serving_paths(cluster, "n1"), "127.0.0.1") as srv:
        answer, server_id = await _exchange(
            srv.port, client_context(apiserver_kubelet_client_paths(cluster)))
        assert answer == b"echo:ping\n"
        assert server_id == ("system:node:n1", ("system:nodes",))
        assert srv.peers == [("kube-apiserver-kubelet-client", ("system:masters",))]
        with pytest.raises(ssl.SSLCertVerificationError):  # not a SAN of the agent's pair
            await _exchange(srv.port, client_context(apiserver_kubelet_client_paths(cluster)),
                            server_hostname="localhost")


# --- real mutual TLS on loopback ------------------------------------------------------------------


@dataclass
class EchoServer:
    port: int
    handshakes: int = 0  # connections whose TLS handshake the server completed
    peers: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _echo_server(paths: CertPaths, host: str) -> AsyncIterator[EchoServer]:
    """An mTLS echo server on ``host``, port 0; counts completed handshakes and records each
    authenticated peer's identity."""
    srv = EchoServer(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        srv.handshakes += 1
        try:
            srv.peers.append(peer_identity(writer.get_extra_info("ssl_object")))
            writer.write(b"echo:" + await reader.readline())
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 0, ssl=server_context(paths))
    srv.port = server.sockets[0].getsockname()[1]
    async with server:
        yield srv


@pytest.fixture
async def echo(cluster: Path) -> AsyncIterator[EchoServer]:
    async with _echo_server(store_replica_paths(cluster, "s1"), "127.0.0.1") as srv:
        yield srv


async def _exchange(
    port: int, ctx: ssl.SSLContext, host: str = "127.0.0.1", server_hostname: str | None = None
) -> tuple[bytes, tuple[str, tuple[str, ...]]]:
    """Connect, send a line, return (the answer, the server's identity)."""

    async def go() -> tuple[bytes, tuple[str, tuple[str, ...]]]:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ctx, server_hostname=server_hostname or host
        )
        try:
            server_id = peer_identity(writer.get_extra_info("ssl_object"))
            writer.write(b"ping\n")
            await writer.drain()
            return await reader.readline(), server_id
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    return await asyncio.wait_for(go(), TIMEOUT)


async def _assert_refused(port: int, ctx: ssl.SSLContext) -> None:
    """The server must end the connection before any application data comes back.

    With TLS 1.3 the client finishes its side of the handshake before the server has checked
    the client certificate, so the refusal shows up as an alert (SSLError), a reset or EOF on
    the first read rather than in open_connection."""
    try:
        answer, _ = await _exchange(port, ctx)
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        return
    assert answer == b"", f"server answered {answer!r} to a client it should have refused"


def _ctx_without_client_cert(ca: Path, tls_max: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=ca)
    ctx.maximum_version = tls_max
    return ctx


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_mtls_client_from_the_ca_exchanges_bytes(
    cluster: Path, echo: EchoServer, host: str
) -> None:
    answer, server_id = await _exchange(
        echo.port, client_context(admin_paths(cluster)), "127.0.0.1", server_hostname=host
    )
    assert answer == b"echo:ping\n"
    assert server_id == ("ketch-store-s1", ("ketch:store-replicas",))
    assert echo.peers == [("admin", ("system:masters",))]


async def test_mtls_every_client_identity_is_seen(cluster: Path, echo: EchoServer) -> None:
    for paths in (
        store_client_paths(cluster),
        apiserver_store_client_paths(cluster),
        store_replica_paths(cluster, "s2"),  # replicas forward to each other
    ):
        answer, _ = await _exchange(echo.port, client_context(paths))
        assert answer == b"echo:ping\n"
    assert [cn for cn, _ in echo.peers] == [
        "ketch-store-client",
        "kube-apiserver",
        "ketch-store-s2",
    ]


async def test_mtls_over_ipv6_loopback(cluster: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    async with _echo_server(store_replica_paths(cluster, "s1"), "::1") as srv:
        answer, _ = await _exchange(srv.port, client_context(admin_paths(cluster)), "::1")
    assert answer == b"echo:ping\n"


@pytest.mark.parametrize(
    "tls_max", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)
async def test_mtls_client_without_certificate_is_refused(
    cluster: Path, echo: EchoServer, tls_max: ssl.TLSVersion
) -> None:
    await _assert_refused(echo.port, _ctx_without_client_cert(cluster / "ca.crt", tls_max))
    assert (echo.handshakes, echo.peers) == (0, [])


async def test_mtls_client_cert_from_another_ca_is_refused(
    cluster: Path, other_cluster: Path, echo: EchoServer
) -> None:
    # Trusts the right CA (so the client side is happy) but presents a foreign certificate.
    foreign = admin_paths(other_cluster)
    paths = CertPaths(ca=cluster / "ca.crt", cert=foreign.cert, key=foreign.key)
    await _assert_refused(echo.port, client_context(paths))
    assert (echo.handshakes, echo.peers) == (0, [])


async def test_mtls_server_only_certificate_cannot_be_a_client(
    cluster: Path, tmp_path: Path, echo: EchoServer
) -> None:
    cert_pem, key_pem = issue(
        load_ca(cluster), common_name="web", dns_names=["localhost"], server=True
    )
    (tmp_path / "web.crt").write_bytes(cert_pem)
    (tmp_path / "web.key").write_bytes(key_pem)
    paths = CertPaths(ca=cluster / "ca.crt", cert=tmp_path / "web.crt", key=tmp_path / "web.key")
    await _assert_refused(echo.port, client_context(paths))
    assert (echo.handshakes, echo.peers) == (0, [])


async def test_client_refuses_a_server_from_another_ca(
    cluster: Path, other_cluster: Path, echo: EchoServer
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await _exchange(echo.port, client_context(admin_paths(other_cluster)))
    assert (echo.handshakes, echo.peers) == (0, [])


async def test_client_checks_the_host_name(cluster: Path, echo: EchoServer) -> None:
    ctx = client_context(admin_paths(cluster))
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        await _exchange(echo.port, ctx, server_hostname="elsewhere.example")


def test_contexts_fail_closed_on_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CertsError, match="does not exist; run `ketch certs init"):
        server_context(store_replica_paths(tmp_path, "s1"))
    with pytest.raises(CertsError, match="does not exist"):
        client_context(admin_paths(tmp_path))


def test_contexts_require_modern_tls(cluster: Path) -> None:
    srv = server_context(store_replica_paths(cluster, "s1"))
    cli = client_context(admin_paths(cluster))
    assert srv.verify_mode == ssl.CERT_REQUIRED
    assert cli.verify_mode == ssl.CERT_REQUIRED
    assert cli.check_hostname
    assert srv.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert cli.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert srv.get_ca_certs() == cli.get_ca_certs()
    assert len(srv.get_ca_certs()) == 1


@pytest.mark.parametrize(
    "peercert",
    [
        pytest.param({}, id="empty"),
        pytest.param(None, id="none"),
        pytest.param({"subject": ((("organizationName", "g"),),)}, id="no-cn"),
    ],
)
def test_peer_identity_fails_closed(peercert: dict[str, object] | None) -> None:
    with pytest.raises(CertsError):
        peer_identity(peercert)


def test_peer_identity_from_a_peercert_dict() -> None:
    subject = ((("organizationName", "a"),), (("organizationName", "b"),), (("commonName", "u"),))
    assert peer_identity({"subject": subject}) == ("u", ("a", "b"))


# --- the CLI --------------------------------------------------------------------------------------


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ketch")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_init_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "certs")
    assert _cli("certs", "init", "--dir", d, "--replicas", "a,b", "--host", "10.1.2.3") == 0
    first = capsys.readouterr().out.splitlines()
    assert len(first) == 27
    assert all(line.startswith("created  ") for line in first[:-1])
    assert any(line.endswith("store-b.key") for line in first)
    assert first[-1].startswith("26 created, 0 kept")
    assert _cli("certs", "init", "--dir", d, "--replicas", "a,b") == 0
    second = capsys.readouterr().out.splitlines()
    assert all(line.startswith("kept     ") for line in second[:-1])
    assert f"kept     {Path(d) / 'ca.key'}" in second
    assert second[-1].startswith("0 created, 26 kept")


def test_cli_check_ok(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("certs", "check", "--dir", str(cluster)) == 0
    out = capsys.readouterr().out
    assert "ok    store-s1.crt  CN=ketch-store-s1, O=ketch:store-replicas" in out
    assert "SANs: localhost, node-1.example, 127.0.0.1, ::1, 10.0.0.7" in out
    assert "days left" in out
    assert "all 14 files ok" in out


def test_cli_check_fails_on_expiring_foreign_or_loose(
    cluster: Path, other_cluster: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert_pem, key_pem = issue(load_ca(cluster), common_name="temp", client=True, days=10)
    (cluster / "users").mkdir()
    (cluster / "users" / "temp.crt").write_bytes(cert_pem)
    (cluster / "users" / "temp.key").write_bytes(key_pem)
    (cluster / "users" / "temp.key").chmod(0o600)
    for ext in ("crt", "key"):
        (cluster / f"foreign.{ext}").write_bytes((other_cluster / f"admin.{ext}").read_bytes())
    (cluster / "foreign.key").chmod(0o600)
    (cluster / "admin.key").chmod(0o640)
    assert _cli("certs", "check", "--dir", str(cluster)) == 1
    out = capsys.readouterr().out
    assert "expires in 9 days" in out
    assert "FAIL  foreign.crt" in out
    assert "not issued by" in out
    assert "admin.key has mode 0640" in out
    statuses = {s.path.name: s for s in check_certs(cluster)}
    assert not statuses["temp.crt"].ok
    assert not statuses["foreign.crt"].ok
    assert statuses["store-s1.crt"].ok
    assert statuses["raft-secret"].ok


def test_cli_check_without_a_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("certs", "check", "--dir", str(tmp_path)) == 1
    assert "run `ketch certs init --dir" in capsys.readouterr().err


def test_cli_errors_say_what_to_do(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cluster / "admin.key").unlink()
    assert _cli("certs", "init", "--dir", str(cluster)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert f"{cluster / 'admin.crt'} exists but {cluster / 'admin.key'} does not" in err
    assert "Restore admin.key from a backup, or remove" in err


def test_cli_user(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("certs", "user", "bob", "--group", "dev", "--dir", str(cluster)) == 0
    assert "issued a client certificate for bob" in capsys.readouterr().out
    info = describe(load_cert(cluster / "users" / "bob.crt"))
    assert (info.common_name, info.organizations) == ("bob", ("dev",))
    assert _cli("certs", "user", "bob", "--group", "dev", "--dir", str(cluster)) == 0
    assert "already had" in capsys.readouterr().out


def test_cli_node_issues_client_and_serving_pairs(
    cluster: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("certs", "node", "n7", "--address", "10.1.2.3", "--dir", str(cluster))
    assert _cli(*args) == 0
    out = capsys.readouterr().out
    assert "issued a client certificate for node n7" in out
    assert "issued a serving certificate for node n7's agent" in out
    assert "10.1.2.3" in describe(load_cert(node_serving_paths(cluster, "n7").cert)).ip_addresses
    assert _cli(*args) == 0
    assert "already had a serving certificate" in capsys.readouterr().out
    statuses = {s.path: s for s in check_certs(cluster)}
    assert statuses[node_serving_paths(cluster, "n7").cert].ok


def test_cli_certs_alone_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("certs") == 2
    assert "rotation:" in capsys.readouterr().err
