"""The cluster CA: create it, issue leaf certificates from it, and check what it issued.

Everything else in certs/ (the on-disk layout, TLS contexts, the CLI) builds on these pure-ish
functions: they take and return objects and PEM bytes and never touch the file system, except
:func:`load_ca`, which reads a CA pair from a directory.  The clock is an input (``now``) so
tests can issue certificates that are about to expire or are not valid yet.

Conventions follow Kubernetes: a client certificate's subject CN is the user name and its O
attributes are the groups; a serving certificate names the addresses it answers on as SANs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA",
    "CA_COMMON_NAME",
    "CA_DAYS",
    "CLOCK_SKEW",
    "LEAF_DAYS",
    "CertInfo",
    "CertsError",
    "create_ca",
    "days_left",
    "describe",
    "issue",
    "key_matches",
    "load_ca",
    "load_cert",
    "load_key",
    "verify_issued_by",
]

CA_COMMON_NAME = "ketch-ca"
CA_DAYS = 3650
LEAF_DAYS = 365
# Certificates start this long before "now" so a machine whose clock is a little behind the
# issuer's still accepts them (kubeadm and cfssl backdate for the same reason).
CLOCK_SKEW = dt.timedelta(minutes=5)

StrPath: TypeAlias = "str | os.PathLike[str]"
IPAddress: TypeAlias = "ipaddress.IPv4Address | ipaddress.IPv6Address"


class CertsError(Exception):
    """Anything wrong with the cluster's certificates.  The message names the file and says
    what to do about it; the CLI prints it as is."""


@dataclass(frozen=True)
class CA:
    """A certificate authority: its certificate and private key.  Holds secrets; never log it."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)


@dataclass(frozen=True)
class CertInfo:
    """What a certificate says, in plain values (for matching and for display)."""

    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    server: bool
    client: bool
    is_ca: bool
    not_before: dt.datetime
    not_after: dt.datetime
    issuer: str

    @property
    def sans(self) -> tuple[str, ...]:
        return self.dns_names + self.ip_addresses

    @property
    def subject(self) -> str:
        return ", ".join([f"CN={self.common_name}", *(f"O={o}" for o in self.organizations)])


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """ECDSA keys sign; only the CA's also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=signs_certificates,
        crl_sign=signs_certificates, encipher_only=False, decipher_only=False,
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def create_ca(
    *, common_name: str = CA_COMMON_NAME, days: int = CA_DAYS, now: dt.datetime | None = None
) -> CA:
    """Create a new self-signed CA (ECDSA P-256, SHA-256).

    The certificate has basicConstraints CA:true (critical, path length 0: it signs leaves
    only), keyUsage keyCertSign+cRLSign (critical) and a SubjectKeyIdentifier, so OpenSSL's
    strict X.509 checks accept it.  Nothing is written anywhere; the caller stores the pair.
    """
    key = _new_key()
    start = _now(now)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return CA(cert=cert, key=key)


def issue(
    ca: CA,
    *,
    common_name: str,
    organizations: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str | IPAddress] = (),
    server: bool = False,
    client: bool = False,
    days: int = LEAF_DAYS,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """Issue a leaf certificate signed by ``ca``; return ``(cert_pem, key_pem)``.

    Subject: CN=``common_name`` and one O per organization, in order (Kubernetes reads CN as
    the user and O as the groups).  SANs: the DNS names and IP addresses given (a serving
    certificate needs at least one).  extendedKeyUsage: serverAuth and/or clientAuth as asked;
    at least one is required.  Valid from ``now`` minus :data:`CLOCK_SKEW` for ``days`` days, but
    never past the CA's own expiry.  The key is a fresh P-256 key in unencrypted PKCS#8 PEM: the
    caller owns it and must store it privately.  Raises ValueError on a request that makes no
    sense (no usage, a server certificate without SANs, a bad IP address).
    """
    if not (server or client):
        raise ValueError("a certificate needs server=True, client=True or both")
    dns = list(dict.fromkeys(dns_names))
    ips = list(dict.fromkeys(ipaddress.ip_address(a) for a in ip_addresses))
    if server and not (dns or ips):
        raise ValueError(f"serving certificate {common_name!r} needs DNS names or IP addresses")
    key = _new_key()
    start = _now(now)
    # A leaf never outlives its CA: past that point nothing could verify it anyway.
    end = min(start + dt.timedelta(days=days), ca.cert.not_valid_after_utc)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    )
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if dns or ips:
        general: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        general += [x509.IPAddress(ip) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def load_cert(path: StrPath) -> x509.Certificate:
    """Read one PEM certificate.  CertsError if it is missing or not a certificate."""
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except FileNotFoundError:
        raise CertsError(f"{path} does not exist") from None
    except ValueError as e:
        raise CertsError(f"{path} is not a PEM certificate ({e}); remove it to reissue") from e


def load_key(path: StrPath) -> ec.EllipticCurvePrivateKey:
    """Read one unencrypted PEM EC private key.  CertsError if missing, unreadable or not EC."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise CertsError(f"{path} does not exist") from None
    except (ValueError, TypeError) as e:
        raise CertsError(f"{path} is not an unencrypted PEM private key ({e})") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertsError(f"{path} is a {type(key).__name__}, ketch uses EC (P-256) keys")
    return key


def key_matches(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    """True when ``key`` is the private half of the certificate's public key."""
    return cert.public_key() == key.public_key()


def load_ca(directory: StrPath) -> CA:
    """Load ``ca.crt`` and ``ca.key`` from ``directory`` and check they belong together.

    Guarantees: the result's certificate is a CA (basicConstraints CA:true) and its key matches.
    Validity in time is not checked here (see :func:`verify_issued_by`).  Raises CertsError
    saying what is missing or wrong and what to do.
    """
    d = Path(directory)
    crt, key_path = d / "ca.crt", d / "ca.key"
    if not crt.exists() or not key_path.exists():
        missing = ", ".join(str(p) for p in (crt, key_path) if not p.exists())
        raise CertsError(
            f"no usable CA in {d}: missing {missing}. "
            f"Run `ketch certs init --dir {d}` to create the cluster's certificates, "
            "or restore the missing file from a backup"
        )
    cert, key = load_cert(crt), load_key(key_path)
    if not key_matches(cert, key):
        raise CertsError(
            f"{key_path} is not the key of {crt}; restore the matching pair from a backup"
        )
    if not _is_ca(cert):
        raise CertsError(f"{crt} is not a CA certificate (basicConstraints CA:false)")
    return CA(cert=cert, key=key)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_window(cert: x509.Certificate, what: str, now: dt.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise CertsError(f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z")
    if now > cert.not_valid_after_utc:
        raise CertsError(f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z")


def verify_issued_by(
    cert: x509.Certificate, ca_cert: x509.Certificate, *, now: dt.datetime | None = None
) -> None:
    """Check that ``cert`` was signed by ``ca_cert`` and both are valid at ``now``.

    Returns None on success; raises CertsError saying why otherwise (issuer name differs,
    signature does not verify, ``ca_cert`` is not a CA, expired, not yet valid).  A self-signed
    CA verifies against itself.  This is one link of the chain, the only one ketch has.
    """
    at = _now(now)
    if not _is_ca(ca_cert):
        raise CertsError(f"the issuer {ca_cert.subject.rfc4514_string()} is not a CA")
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as e:
        detail = str(e) or "signature does not verify"
        raise CertsError(
            f"{cert.subject.rfc4514_string()} was not issued by "
            f"{ca_cert.subject.rfc4514_string()} ({detail})"
        ) from e
    _check_window(ca_cert, "the CA certificate", at)
    _check_window(cert, f"the certificate for {cert.subject.rfc4514_string()}", at)


def days_left(cert: x509.Certificate, *, now: dt.datetime | None = None) -> int:
    """Whole days until ``cert`` expires (rounded down; negative once it has expired)."""
    return (cert.not_valid_after_utc - _now(now)).days


def describe(cert: x509.Certificate) -> CertInfo:
    """Extract the subject, SANs, usages and validity of ``cert`` as plain values."""
    cn = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    try:
        eku = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = set()
    return CertInfo(
        common_name=cn[0] if len(cn) == 1 else "",
        organizations=tuple(orgs),
        dns_names=dns,
        ip_addresses=ips,
        server=ExtendedKeyUsageOID.SERVER_AUTH in eku,
        client=ExtendedKeyUsageOID.CLIENT_AUTH in eku,
        is_ca=_is_ca(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        issuer=cert.issuer.rfc4514_string(),
    )
