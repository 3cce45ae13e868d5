"""Client certificates verified after the TLS handshake, as Go servers (and so
kube-apiserver) do: the handshake completes whatever certificate the client sent, and the
server then refuses a bad one with an answer that says why (HTTP 401 and a log line) instead
of a TCP reset the client can only report as ``EOF``.

:func:`request_client_certificates` turns a server context into one that asks for a client
certificate but lets OpenSSL's verdict not end the handshake (an OpenSSL verify callback that
always continues, installed through ctypes since the ``ssl`` module has no such hook).  Such a
context is *registered*: :func:`certs.tls.peer_identity` then never trusts the handshake and
verifies the peer's certificate itself with :func:`verify_client_certificate` — chain to the
cluster CA, validity period, key usage and extended key usage — so nothing that reads an
identity can forget the check (fail closed).  If the callback cannot be installed the context
keeps OpenSSL's strict verification: bad certificates are still refused, by a reset.

The check is Go's ``x509.Verify`` with ``ExtKeyUsageClientAuth`` for a leaf issued directly by
the CA (ketch issues no intermediates).  An Authority Key Identifier is not required: a
certificate from the cluster CA without one is accepted, as Kubernetes accepts it.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import ssl
import weakref
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from .authority import CertsError

__all__ = ["is_deferred", "request_client_certificates", "verify_client_certificate",
           "verify_peer"]

log = logging.getLogger("ketch.certs")

_SSL_VERIFY_PEER = 1
# The callback OpenSSL calls for each certificate of the chain: "continue" whatever it found.
_VERIFY_CB_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_CONTINUE = _VERIFY_CB_TYPE(lambda _ok, _store: 1)
# Registered contexts and the CA their clients must chain to.
_DEFERRED: weakref.WeakKeyDictionary[ssl.SSLContext, x509.Certificate] = \
    weakref.WeakKeyDictionary()


def _libssl() -> ctypes.CDLL:
    import _ssl  # the extension links the OpenSSL whose SSL_CTX we adjust

    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB_TYPE]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_get_verify_callback.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_callback.restype = ctypes.c_void_p
    return lib


def _ssl_ctx_pointer(ctx: ssl.SSLContext, lib: ctypes.CDLL) -> int | None:
    """The ``SSL_CTX *`` inside ``ctx`` (CPython's PySSLContext keeps it right after the
    object header), or None unless OpenSSL confirms it: same options, same verify mode."""
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        return None
    if lib.SSL_CTX_get_options(ptr) != int(ctx.options):
        return None
    if lib.SSL_CTX_get_verify_mode(ptr) != _SSL_VERIFY_PEER:  # CERT_OPTIONAL, set just before
        return None
    return int(ptr)


def request_client_certificates(ctx: ssl.SSLContext, ca_file: Path) -> bool:
    """Make server context ``ctx`` ask for a client certificate and complete the handshake
    whatever is sent; register it so every identity read from its connections is verified
    against ``ca_file`` by :func:`verify_peer`.  Returns False (and leaves OpenSSL's strict
    verification on, with ``CERT_OPTIONAL``) when the hook cannot be installed here."""
    ca = x509.load_pem_x509_certificate(Path(ca_file).read_bytes())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    try:
        lib = _libssl()
        ptr = _ssl_ctx_pointer(ctx, lib)
        if ptr is None:
            raise OSError("the SSL_CTX of this Python's ssl module could not be located")
        lib.SSL_CTX_set_verify(ptr, _SSL_VERIFY_PEER, _CONTINUE)
        installed = lib.SSL_CTX_get_verify_callback(ptr)
        if installed != ctypes.cast(_CONTINUE, ctypes.c_void_p).value:
            raise OSError("OpenSSL did not keep the verify callback")
    except (OSError, AttributeError) as e:
        log.warning("client certificates stay verified during the handshake (bad ones get a "
                    "TLS alert, not a 401): %s", e)
        return False
    _DEFERRED[ctx] = ca
    return True


def is_deferred(ctx: ssl.SSLContext) -> bool:
    return ctx in _DEFERRED


def _utc(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(cert: x509.Certificate) -> str:
    return (f"subject {cert.subject.rfc4514_string()!r}, issuer "
            f"{cert.issuer.rfc4514_string()!r}, serial {cert.serial_number:x}")


def verify_client_certificate(der: bytes, ca: x509.Certificate,
                              now: dt.datetime | None = None) -> x509.Certificate:
    """The client certificate ``der`` once it is verified for client authentication under
    ``ca``; CertsError with Go's wording (``x509: certificate signed by unknown authority``,
    ``x509: certificate has expired or is not yet valid: …``, ``x509: certificate specifies an
    incompatible key usage``) and the certificate's subject, issuer and serial otherwise."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise CertsError(f"x509: malformed certificate: {e}") from None
    now = now or dt.datetime.now(dt.UTC)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertsError("x509: certificate signed by unknown authority "
                         f"({_describe(cert)})") from None
    for c in (cert, ca):
        if now < c.not_valid_before_utc:
            raise CertsError(f"x509: certificate has expired or is not yet valid: current time "
                             f"{_utc(now)} is before {_utc(c.not_valid_before_utc)} "
                             f"({_describe(c)})")
        if now > c.not_valid_after_utc:
            raise CertsError(f"x509: certificate has expired or is not yet valid: current time "
                             f"{_utc(now)} is after {_utc(c.not_valid_after_utc)} "
                             f"({_describe(c)})")
    for ext in cert.extensions:
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
            raise CertsError(f"x509: unhandled critical extension {ext.oid.dotted_string} "
                             f"({_describe(cert)})")
        if isinstance(ext.value, x509.ExtendedKeyUsage) and not (
                {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
                & set(ext.value)):
            raise CertsError(f"x509: certificate specifies an incompatible key usage "
                             f"({_describe(cert)})")
        if isinstance(ext.value, x509.KeyUsage) and not (
                ext.value.digital_signature or ext.value.key_agreement):
            raise CertsError(f"x509: certificate key usage allows no TLS client signature "
                             f"({_describe(cert)})")
    return cert


def verify_peer(peer: ssl.SSLObject | ssl.SSLSocket) -> x509.Certificate | None:
    """The peer's certificate verified here when its connection's context is registered
    (:func:`request_client_certificates`); None when OpenSSL verified it during the handshake.
    Raises CertsError for a missing or bad certificate on a registered context."""
    ca = _DEFERRED.get(peer.context)
    if ca is None:
        return None
    der = peer.getpeercert(binary_form=True)
    if not der:
        raise CertsError("the peer presented no client certificate")
    return verify_client_certificate(der, ca)
