"""Where a component's apiserver is and who it is: URLs, the cluster CA and a client
certificate, from a kubeconfig file (what every ketch component is started with) or from a
certificate directory.

Several apiserver URLs may be given (``server`` plus ``extra_servers``, or a comma-separated
``server`` in the kubeconfig): the client fails over between them when one dies.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from certs.kubeconfig import read_kubeconfig
from certs.layout import CertPaths
from certs.tls import client_context

__all__ = ["ClientConfig"]


@dataclass(frozen=True)
class ClientConfig:
    """``servers``: apiserver base URLs (``https://host:port``), tried in order; ``ssl``: a
    client TLS context verifying the servers against the cluster CA and presenting the
    component's certificate; ``user``: the identity's name (for logs and lease holders)."""

    servers: tuple[str, ...]
    ssl: ssl.SSLContext = field(repr=False)
    user: str = ""

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], *,
                        extra_servers: tuple[str, ...] = ()) -> ClientConfig:
        """The current context of the kubeconfig at ``path`` (CertsError if it is not one
        ketch can use: ketch authenticates only by client certificate)."""
        kc = read_kubeconfig(path)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=kc["ca_pem"].decode())
        _load_chain(ctx, kc["cert_pem"], kc["key_pem"])
        ctx.set_alpn_protocols(["http/1.1"])
        servers = tuple(s.strip().rstrip("/") for s in kc["server"].split(",") if s.strip())
        return cls(servers + tuple(extra_servers), ctx, kc["user"])

    @classmethod
    def from_cert_paths(cls, servers: str | tuple[str, ...] | list[str], paths: CertPaths, *,
                        user: str = "") -> ClientConfig:
        """A client of ``servers`` presenting the pair in ``paths``."""
        urls = (servers,) if isinstance(servers, str) else tuple(servers)
        ctx = client_context(paths)
        ctx.set_alpn_protocols(["http/1.1"])
        return cls(tuple(u.rstrip("/") for u in urls), ctx, user)


def _load_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``load_cert_chain`` reads only files: hand it a private temporary directory that is
    removed at once (the key never stays on disk beyond this call)."""
    with tempfile.TemporaryDirectory(prefix="ketch-kc-") as d:
        cert, key = Path(d) / "tls.crt", Path(d) / "tls.key"
        cert.write_bytes(cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(str(cert), str(key))
