"""Client certificates a hostile or careless client may present: from a foreign CA, expired,
not yet valid, and a good one from the cluster CA without an Authority Key Identifier.

Each is written as ``DIR/<kind>.crt`` and ``.key`` next to the cluster's ``ca.crt`` (so the
client still verifies the server) and returned as :class:`CertPaths`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.authority import create_ca, issue, load_ca
from certs.layout import CertPaths

__all__ = ["KINDS", "bad_client"]

KINDS = ("foreign", "expired", "not-yet-valid", "no-aki")


def _no_aki(certs_dir: Path, user: str) -> tuple[bytes, bytes]:
    ca = load_ca(certs_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dev")]))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem


def bad_client(certs_dir: Path, kind: str, out: Path, *, user: str = "intruder") -> CertPaths:
    """A client pair of ``kind`` (one of :data:`KINDS`) for ``user`` under ``out``."""
    now = dt.datetime.now(dt.UTC)
    if kind == "foreign":
        cert, key = issue(create_ca(common_name="other-ca"), common_name=user, client=True,
                          organizations=["system:masters"])
    elif kind == "expired":
        cert, key = issue(load_ca(certs_dir), common_name=user, client=True,
                          organizations=["system:masters"], days=1,
                          now=now - dt.timedelta(days=3))
    elif kind == "not-yet-valid":
        cert, key = issue(load_ca(certs_dir), common_name=user, client=True,
                          organizations=["system:masters"], now=now + dt.timedelta(days=2))
    elif kind == "no-aki":
        cert, key = _no_aki(certs_dir, user)
    else:
        raise ValueError(kind)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{kind}.crt").write_bytes(cert)
    (out / f"{kind}.key").write_bytes(key)
    (out / f"{kind}.key").chmod(0o600)
    return CertPaths(ca=Path(certs_dir) / "ca.crt", cert=out / f"{kind}.crt",
                     key=out / f"{kind}.key")
