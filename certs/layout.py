"""Which certificate files a cluster has, and the calls that make them exist.

A cluster's certs directory (e.g. ``<cluster>/certs``, mode 0700) holds::

    ca.crt, ca.key                         the cluster CA (CN ketch-ca)
    store-NAME.crt/.key                    each store replica: serving + client (replicas forward)
    store-client.crt/.key                  CN ketch-store-client: CLI, benchmarks
    admin.crt/.key                         CN admin, O system:masters
    apiserver-store-client.crt/.key        CN kube-apiserver: the apiserver's store connection
    apiserver.crt/.key                     CN kube-apiserver: the apiserver's serving certificate
    apiserver-kubelet-client.crt/.key      CN kube-apiserver-kubelet-client, O system:masters:
                                           the apiserver's client of the node agents
    controller-manager.crt/.key            CN system:kube-controller-manager
    scheduler.crt/.key                     CN system:kube-scheduler
    raft-secret                            Raft peer password (32 random bytes, urlsafe base64)
    sa.key                                 the service-account token signing key (EC P-256,
                                           ES256): the apiservers sign and verify bound tokens
    users/NAME.crt/.key                    from :func:`issue_user`
    nodes/NAME.crt/.key                    CN system:node:NAME, O system:nodes: :func:`issue_node`
    nodes/serving/NAME.crt/.key            node NAME's agent serving (streaming server), SANs its
                                           name and addresses: :func:`issue_node_serving`

Keys and the secret are 0600 from the moment they exist, certificates 0644 (the writing is
:mod:`certs.pairs`'s job).  Every entry point is idempotent: an existing file that is valid
is kept byte for byte; one that is not (half a pair, another CA's, expired, the wrong subject
or SANs) stops the run with a :class:`CertsError` naming the file and what to do, before
anything has been written.

Adding a cluster-wide component is one :class:`Identity` line in :data:`COMPONENTS`; a per-name
component (like a node) is a small factory like :func:`store_replica_identity`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .authority import CertsError, StrPath, load_key
from .pairs import (
    CertPaths,
    FileResult,
    Identity,
    Progress,
    Report,
    ca_paths,
    collector,
    ensure_pairs,
    identity_paths,
    tighten_private,
    write_new,
)

__all__ = [
    "APISERVER_DNS_NAMES",
    "APISERVER_SERVICE_IPS",
    "COMPONENTS",
    "KUBELET_CLIENT_CN",
    "LOOPBACK_SANS",
    "NODES_GROUP",
    "STORE_REPLICA_GROUP",
    "CertPaths",
    "FileResult",
    "Identity",
    "Progress",
    "Report",
    "admin_paths",
    "apiserver_kubelet_client_paths",
    "apiserver_paths",
    "apiserver_store_client_paths",
    "ca_paths",
    "component_serving_paths",
    "controller_manager_paths",
    "identity_paths",
    "init_cluster_certs",
    "issue_node",
    "issue_node_serving",
    "issue_user",
    "node_identity",
    "node_paths",
    "node_serving_identity",
    "node_serving_paths",
    "raft_secret",
    "raft_secret_path",
    "scheduler_paths",
    "service_account_key",
    "service_account_key_path",
    "store_client_paths",
    "store_replica_identity",
    "store_replica_paths",
    "user_identity",
    "user_paths",
]

LOOPBACK_SANS = ("localhost", "127.0.0.1", "::1")
STORE_REPLICA_GROUP = "ketch:store-replicas"
NODES_GROUP = "system:nodes"
# The one identity a node agent's streaming server accepts (kubeadm's name and group for it).
KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"
# The names in-cluster clients use for the apiserver (the `kubernetes` Service), as kubeadm puts
# them in its serving certificate next to the hosts it answers on.
APISERVER_DNS_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
# The `kubernetes` Service's ClusterIP (the first address of the service range, 127.16.0.0/12,
# as kubeadm puts 10.96.0.1 in its serving certificate): in-cluster clients connect to it.
APISERVER_SERVICE_IPS = ("127.16.0.1",)
_SECRET_FILE = "raft-secret"
_SA_KEY_FILE = "sa.key"
_SECRET_BYTES = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]{0,63}")
_DNS = re.compile(r"(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


# Cluster-wide identities that `init_cluster_certs` makes sure exist, one line each.
COMPONENTS: Mapping[str, Identity] = MappingProxyType(
    {
        i.stem: i
        for i in (
            Identity("store-client", "ketch-store-client"),
            Identity("admin", "admin", ("system:masters",)),
            Identity("apiserver-store-client", "kube-apiserver"),
            Identity(
                "apiserver",
                "kube-apiserver",
                server=True,
                client=False,
                dns_names=APISERVER_DNS_NAMES + APISERVER_SERVICE_IPS,
            ),
            Identity("apiserver-kubelet-client", KUBELET_CLIENT_CN, ("system:masters",)),
            Identity("controller-manager", "system:kube-controller-manager"),
            Identity("scheduler", "system:kube-scheduler"),
            # Serving pairs for the components' own /metrics and /healthz listeners (every
            # listener requires a client certificate from the cluster CA).
            Identity("controller-manager-serving", "kube-controller-manager", server=True,
                     client=False),
            Identity("scheduler-serving", "kube-scheduler", server=True, client=False),
        )
    }
)


def _valid_name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise CertsError(
            f"{what} name {name!r} is not usable: use 1-64 letters, digits and . _ @ + = -, "
            "starting with a letter or digit"
        )
    return name


def store_replica_identity(name: str) -> Identity:
    """Replica ``name``: serves clients and peers, and is a client of its peers (forwarding)."""
    stem = f"store-{_valid_name(name, 'store replica')}"
    if stem in COMPONENTS:
        raise CertsError(f"store replica name {name!r} clashes with {stem}.crt; pick another name")
    return Identity(stem, f"ketch-store-{name}", (STORE_REPLICA_GROUP,), server=True, client=True)


def store_replica_paths(directory: StrPath, name: str) -> CertPaths:
    return identity_paths(directory, store_replica_identity(name))


def store_client_paths(directory: StrPath) -> CertPaths:
    return identity_paths(directory, COMPONENTS["store-client"])


def admin_paths(directory: StrPath) -> CertPaths:
    return identity_paths(directory, COMPONENTS["admin"])


def apiserver_store_client_paths(directory: StrPath) -> CertPaths:
    return identity_paths(directory, COMPONENTS["apiserver-store-client"])


def apiserver_paths(directory: StrPath) -> CertPaths:
    """The apiserver's serving pair (SANs: loopback, the init hosts, the kubernetes names)."""
    return identity_paths(directory, COMPONENTS["apiserver"])


def apiserver_kubelet_client_paths(directory: StrPath) -> CertPaths:
    """The apiserver's client certificate for the node agents' streaming servers (exec,
    attach, port-forward, logs, stats): CN kube-apiserver-kubelet-client, O system:masters."""
    return identity_paths(directory, COMPONENTS["apiserver-kubelet-client"])


def controller_manager_paths(directory: StrPath) -> CertPaths:
    return identity_paths(directory, COMPONENTS["controller-manager"])


def scheduler_paths(directory: StrPath) -> CertPaths:
    return identity_paths(directory, COMPONENTS["scheduler"])


def component_serving_paths(directory: StrPath, component: str) -> CertPaths:
    """The serving pair of ``controller-manager`` or ``scheduler`` (their metrics listeners)."""
    return identity_paths(directory, COMPONENTS[f"{component}-serving"])


def node_identity(name: str) -> Identity:
    """Node ``name``'s agent as a client: CN=system:node:NAME, O=system:nodes (the Node
    authorizer's convention)."""
    return Identity(f"nodes/{_valid_name(name, 'node')}", f"system:node:{name}", (NODES_GROUP,))


def node_paths(directory: StrPath, name: str) -> CertPaths:
    return identity_paths(directory, node_identity(name))


def node_serving_identity(name: str) -> Identity:
    """Node ``name``'s agent as a server (its streaming server): CN=system:node:NAME,
    O=system:nodes, serverAuth only; SANs are the node's name (when it is a DNS name) plus the
    addresses :func:`issue_node_serving` is given."""
    _valid_name(name, "node")
    dns = (name.lower(),) if _DNS.fullmatch(name) and len(name) <= 253 else ()
    return Identity(f"nodes/serving/{name}", f"system:node:{name}", (NODES_GROUP,),
                    server=True, client=False, dns_names=dns)


def node_serving_paths(directory: StrPath, name: str) -> CertPaths:
    return identity_paths(directory, node_serving_identity(name))


def user_identity(name: str, groups: Iterable[str] = ()) -> Identity:
    """A person or tool: CN=name, O=groups, client usage only."""
    gs = tuple(groups)
    for g in gs:
        if not 1 <= len(g) <= 64:
            raise CertsError(f"group {g!r} must be 1-64 characters")
    return Identity(f"users/{_valid_name(name, 'user')}", name, gs)


def user_paths(directory: StrPath, name: str) -> CertPaths:
    return identity_paths(directory, user_identity(name))


def raft_secret_path(directory: StrPath) -> Path:
    return Path(directory) / _SECRET_FILE


def raft_secret(directory: StrPath) -> str:
    """The Raft peer password every replica of the cluster shares.  CertsError if absent/bad."""
    return _read_secret(raft_secret_path(directory))


def service_account_key_path(directory: StrPath) -> Path:
    return Path(directory) / _SA_KEY_FILE


def service_account_key(directory: StrPath) -> ec.EllipticCurvePrivateKey:
    """The key every apiserver signs and verifies service-account tokens with.  CertsError if
    absent (a directory made before tokens existed: run ``ketch certs init`` again) or bad."""
    path = service_account_key_path(directory)
    if not path.exists():
        raise CertsError(f"{path} does not exist; run `ketch certs init --dir {directory}` "
                         "to add the service-account signing key")
    return load_key(path)


# --- reading the secret and the hosts ----------------------------------------------------------


def _read_secret(path: Path) -> str:
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        raise CertsError(
            f"{path} does not exist; run `ketch certs init --dir {path.parent}`"
        ) from None
    except (UnicodeDecodeError, OSError) as e:
        raise CertsError(f"{path} is unreadable ({e})") from e
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) < _SECRET_BYTES:
        raise CertsError(
            f"{path} is not {_SECRET_BYTES}+ random bytes in urlsafe base64. All replicas must "
            "share one secret: copy it from another replica's certs directory, or remove it, run "
            "`ketch certs init` and give the new one to every replica"
        )
    return text


def _server_sans(hosts: Iterable[str]) -> tuple[str, ...]:
    """Loopback plus ``hosts``, IPs in canonical form, names lower-cased, no duplicates."""
    return _canonical_hosts((*LOOPBACK_SANS, *hosts))


def _canonical_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """``hosts``: IPs in canonical form, names lower-cased, no duplicates; CertsError for one
    that is neither."""
    out: list[str] = []
    for h in hosts:
        try:
            out.append(str(ipaddress.ip_address(h.strip("[]"))))
        except ValueError:
            if not _DNS.fullmatch(h) or len(h) > 253:
                raise CertsError(f"host {h!r} is neither an IP address nor a DNS name") from None
            out.append(h.lower())
    return tuple(dict.fromkeys(out))


# --- the two entry points -----------------------------------------------------------------------


def init_cluster_certs(
    directory: StrPath,
    *,
    replicas: Iterable[str],
    hosts: Iterable[str] = (),
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Make sure ``directory`` holds the CA, every component's pair and the Raft secret.

    Idempotent: run it again with the same (or fewer) replicas and hosts and every file is kept
    byte for byte.  New replicas, components or files are added next to the existing ones, from
    the existing CA.  Serving certificates get :data:`LOOPBACK_SANS` plus ``hosts`` (IP
    addresses or DNS names); the apiserver's also gets :data:`APISERVER_DNS_NAMES`.  A
    directory made before a component existed gets that component's pair on the next run, with
    the ``hosts`` of that run.  Any existing file that is not valid — half a pair, not from this
    CA, expired, wrong subject, usage or SANs, a bad secret — raises CertsError naming it and
    the fix, and nothing at all is written.  ``progress`` sees each file as it is created or
    kept; the returned Report lists them all.
    """
    d = Path(directory)
    names = list(replicas)
    if not names:
        raise CertsError("at least one store replica name is needed (e.g. --replicas s1,s2,s3)")
    if len(set(names)) != len(names):
        raise CertsError(f"store replica names repeat: {names}")
    identities = [store_replica_identity(n) for n in names] + list(COMPONENTS.values())
    secret = raft_secret_path(d)
    if secret.exists():
        _read_secret(secret)
    if service_account_key_path(d).exists():
        load_key(service_account_key_path(d))  # a bad key stops the run before any write
    sans = _server_sans(hosts)
    command = f"ketch certs init --dir {d} --replicas {','.join(names)}" + "".join(
        f" --host {h}" for h in sans[len(LOOPBACK_SANS) :]
    )
    results, emit = collector(progress)
    ensure_pairs(
        d,
        identities,
        hosts=sans,
        may_create_ca=True,
        command=command,
        emit=emit,
        now=now,
    )
    if secret.exists():
        emit(FileResult(secret, "kept", tighten_private(secret)))
    else:
        write_new(secret, (secrets.token_urlsafe(_SECRET_BYTES) + "\n").encode(), 0o600)
        emit(FileResult(secret, "created"))
    sa_key = service_account_key_path(d)
    if sa_key.exists():
        emit(FileResult(sa_key, "kept", tighten_private(sa_key)))
    else:
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        write_new(sa_key, pem, 0o600)
        emit(FileResult(sa_key, "created"))
    return Report(tuple(results))


def issue_user(
    directory: StrPath,
    name: str,
    groups: Iterable[str] = (),
    *,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Make sure ``users/NAME.crt/.key`` exist: a client certificate CN=name, O=groups.

    Needs the cluster's CA (CertsError saying to run init otherwise).  An existing pair for the
    same name and groups is kept; one with other groups raises CertsError (remove it to
    reissue), so a user's rights never change silently.
    """
    d = Path(directory)
    identity = user_identity(name, groups)
    command = f"ketch certs user {name} --dir {d}" + "".join(
        f" --group {g}" for g in identity.organizations
    )
    return _issue_client(d, identity, command, progress, now)


def issue_node(
    directory: StrPath,
    name: str,
    *,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Make sure ``nodes/NAME.crt/.key`` exist: node ``name``'s client certificate.

    The same guarantees as :func:`issue_user`: needs the CA, keeps a valid existing pair byte
    for byte, raises CertsError on an invalid one before writing anything.
    """
    identity = node_identity(name)
    d = Path(directory)
    return _issue_client(d, identity, f"ketch certs node {name} --dir {d}", progress, now)


def issue_node_serving(
    directory: StrPath,
    name: str,
    addresses: Iterable[str],
    *,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Make sure ``nodes/serving/NAME.crt/.key`` exist: the serving certificate of node
    ``name``'s streaming server, for the addresses the apiserver dials (the Node's
    ``status.addresses``: InternalIP, Hostname) and the node's name.

    The same guarantees as :func:`issue_node`; an existing pair that lacks one of
    ``addresses`` raises CertsError (remove it to reissue), so an agent never serves under a
    certificate the apiserver would refuse.
    """
    identity = node_serving_identity(name)
    d = Path(directory)
    hosts = _canonical_hosts(addresses)
    command = f"ketch certs node {name} --dir {d}" + "".join(f" --address {h}" for h in hosts)
    results, emit = collector(progress)
    ensure_pairs(d, [identity], hosts=hosts, may_create_ca=False, command=command, emit=emit,
                 now=now)
    return Report(tuple(results))


def _issue_client(
    d: Path,
    identity: Identity,
    command: str,
    progress: Progress | None,
    now: dt.datetime | None,
) -> Report:
    results, emit = collector(progress)
    ensure_pairs(
        d,
        [identity],
        hosts=(),
        may_create_ca=False,
        command=command,
        emit=emit,
        now=now,
    )
    return Report(tuple(results))
