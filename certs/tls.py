"""TLS contexts for every ketch connection: mutual TLS against the cluster CA and nothing else.

Servers (store replicas now, the apiserver later) demand a client certificate signed by the
cluster CA; clients check the server's certificate and host name against the same CA and
present their own.  The cluster's ``ca.crt`` is the only trust root: the system's CA store is
never loaded, so a certificate from any public CA is as foreign as one from another cluster.
:func:`peer_identity` turns the verified peer certificate into (user, groups) for authentication.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from cryptography.x509.oid import NameOID

from .authority import CertsError
from .clientauth import verify_peer
from .pairs import CertPaths

__all__ = ["client_context", "peer_identity", "server_context"]


def _harden(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # No VERIFY_X509_STRICT (which Python 3.13 turns on by default): it refuses a certificate
    # without an Authority Key Identifier, which Kubernetes (Go) accepts.  Chain, validity and
    # key usage are checked either way.
    ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


def _load(ctx: ssl.SSLContext, paths: CertPaths) -> None:
    for p in (paths.ca, paths.cert, paths.key):
        if not p.exists():
            raise CertsError(
                f"{p} does not exist; run `ketch certs init --dir {paths.ca.parent}` "
                "(or point this component at the right certs directory)"
            )
    try:
        ctx.load_verify_locations(cafile=paths.ca)
        ctx.load_cert_chain(certfile=paths.cert, keyfile=paths.key)
    except ssl.SSLError as e:
        raise CertsError(
            f"cannot use {paths.cert} with {paths.key} and CA {paths.ca} ({e.reason or e}); "
            "`ketch certs check` says which file is wrong"
        ) from e


def server_context(paths: CertPaths) -> ssl.SSLContext:
    """A server-side context: present ``paths.cert``, require a client certificate from the CA.

    TLS 1.2 or newer; a client with no certificate, or one not signed by ``paths.ca`` (or
    without clientAuth usage), fails the handshake.  Raises CertsError if a file is missing or
    the certificate and key do not match.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load(ctx, paths)
    return ctx


def client_context(paths: CertPaths) -> ssl.SSLContext:
    """A client-side context: verify the server against the CA and its host name, present
    ``paths.cert``.

    Host name checking is on: connect to a name or address the server certificate lists as a
    SAN (``localhost``, ``127.0.0.1`` and ``::1`` always are).  TLS 1.2 or newer.  Raises
    CertsError if a file is missing or the certificate and key do not match.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load(ctx, paths)
    return ctx


def peer_identity(
    peer: ssl.SSLObject | ssl.SSLSocket | Mapping[str, Any] | None,
) -> tuple[str, tuple[str, ...]]:
    """Return ``(common_name, organizations)`` of the peer's verified certificate.

    ``peer`` is an SSL object or socket (aiohttp: ``transport.get_extra_info("ssl_object")``)
    or the dict its ``getpeercert()`` returns (``get_extra_info("peercert")``).  Kubernetes
    reads CN as the user name and the O values, in order, as the groups.  Fails closed: raises
    CertsError when there is no verified certificate (``getpeercert()`` is empty unless the
    chain was verified; on a context that verifies after the handshake,
    :func:`certs.clientauth.verify_peer` checks it here, and its error says what is wrong) or
    the subject does not have exactly one CN.
    """
    if isinstance(peer, ssl.SSLObject | ssl.SSLSocket):
        verified = verify_peer(peer)
        if verified is not None:
            name = verified.subject
            cns = [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if len(cns) != 1:
                raise CertsError(
                    f"the peer certificate has {len(cns)} common names; exactly 1 is needed")
            return cns[0], tuple(str(a.value) for a in
                                 name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    cert = peer.getpeercert() if isinstance(peer, ssl.SSLObject | ssl.SSLSocket) else peer
    if not cert:
        raise CertsError("the peer presented no verified client certificate")
    names: list[str] = []
    orgs: list[str] = []
    subject: Any = cert.get("subject", ())
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                orgs.append(value)
    if len(names) != 1:
        raise CertsError(f"the peer certificate has {len(names)} common names; exactly 1 is needed")
    return names[0], tuple(orgs)
