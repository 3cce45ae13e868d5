"""Kubeconfig files: how kubectl (and any client-go tool) finds the apiserver and its identity.

A kubeconfig written here names one cluster (the apiserver URL and the cluster CA), one user
(a client certificate and key from :mod:`certs.layout`) and one context joining them, and is
the current context.  By default the PEMs are embedded (``*-data``, base64), so the file works
when copied elsewhere; it then holds a private key and is 0600 like one.  YAML via PyYAML when
it is installed, else JSON, which is YAML too (kubectl reads either).
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from cryptography import x509

from .authority import (
    CertsError,
    StrPath,
    describe,
    key_matches,
    load_cert,
    load_key,
    verify_issued_by,
)
from .layout import admin_paths

__all__ = [
    "DEFAULT_CLUSTER",
    "DEFAULT_SERVER",
    "SERVER_URL_FILE",
    "Kubeconfig",
    "admin_kubeconfig",
    "default_server",
    "read_kubeconfig",
    "write_kubeconfig",
]

DEFAULT_CLUSTER = "ketch"
DEFAULT_SERVER = "https://127.0.0.1:6443"
SERVER_URL_FILE = "apiserver.url"


def _import_yaml() -> Any:
    try:
        return importlib.import_module("yaml")
    except ImportError:
        return None


# PyYAML is optional: None means JSON out and in (the tests try both).
_yaml: Any = _import_yaml()


class Kubeconfig(TypedDict):
    """What :func:`read_kubeconfig` found for the current context."""

    server: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    user: str


def _check_server(server: str) -> str:
    try:
        parts = urlsplit(server)
        _ = parts.port  # ValueError on a port that is not a number in range
        usable = parts.scheme == "https" and bool(parts.hostname) and parts.path in ("", "/")
        usable = usable and not (parts.query or parts.fragment or parts.username)
    except ValueError:
        usable = False
    if not usable:
        raise CertsError(
            f"apiserver URL {server!r} is not usable: give https://HOST:PORT "
            "(ketch serves only TLS), e.g. https://127.0.0.1:6443"
        )
    return server.rstrip("/")


def default_server(directory: StrPath) -> str:
    """The apiserver URL for kubeconfigs made from certs directory ``directory``.

    The first line of ``DIR/apiserver.url``, else of ``DIR/../apiserver.url`` (the cluster
    directory when DIR is ``<cluster>/certs``), else :data:`DEFAULT_SERVER`.  CertsError if the
    file found does not hold an https URL.
    """
    d = Path(directory)
    for f in (d / SERVER_URL_FILE, d.parent / SERVER_URL_FILE):
        try:
            text = f.read_text("utf-8").strip()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as e:
            raise CertsError(f"{f} is unreadable ({e}); fix it or pass --server") from e
        line = text.splitlines()[0].strip() if text else ""
        try:
            return _check_server(line)
        except CertsError as e:
            raise CertsError(f"{f}: {e}; fix the file or pass --server") from None
    return DEFAULT_SERVER


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_pair(ca: Path, cert: Path, key: Path) -> None:
    """CertsError unless ``cert`` is a current client certificate from ``ca`` and ``key`` its
    key: a kubeconfig that cannot authenticate is worse than none."""
    certificate = load_cert(cert)
    if not key_matches(certificate, load_key(key)):
        raise CertsError(f"{key} is not the key of {cert}")
    try:
        verify_issued_by(certificate, load_cert(ca))
    except CertsError as e:
        raise CertsError(f"{cert}: {e}") from e
    if not describe(certificate).client:
        raise CertsError(f"{cert} is not a client certificate (no clientAuth usage)")


def _render(
    *,
    server: str,
    ca: Path,
    cert: Path,
    key: Path,
    user: str,
    cluster: str,
    context: str,
    embed: bool,
) -> bytes:
    if embed:
        cluster_entry = {"server": server, "certificate-authority-data": _b64(ca.read_bytes())}
        user_entry = {
            "client-certificate-data": _b64(cert.read_bytes()),
            "client-key-data": _b64(key.read_bytes()),
        }
    else:
        # Absolute: kubectl reads a relative path against the kubeconfig's own directory.
        cluster_entry = {"server": server, "certificate-authority": os.path.abspath(ca)}
        user_entry = {
            "client-certificate": os.path.abspath(cert),
            "client-key": os.path.abspath(key),
        }
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [
            {"name": context, "context": {"cluster": cluster, "user": user, "namespace": "default"}}
        ],
        "current-context": context,
        "preferences": {},
    }
    if _yaml is not None:
        text: str = _yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1 << 16)
    else:
        text = json.dumps(doc, indent=2) + "\n"
    return text.encode("utf-8")


def _parse(data: bytes, path: Path) -> dict[str, Any]:
    errors = (ValueError,) if _yaml is None else (ValueError, _yaml.YAMLError)
    try:
        text = data.decode("utf-8")
        doc = _yaml.safe_load(text) if _yaml is not None else json.loads(text)
    except errors as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CertsError(f"{path} is not a kubeconfig ({e})") from e
    if not isinstance(doc, dict) or doc.get("kind", "Config") != "Config":
        raise CertsError(f"{path} is not a kubeconfig (no kind: Config document)")
    return doc


def _replaceable(
    path: Path, *, cluster: str, user: str, subject: tuple[str, tuple[str, ...]]
) -> bool:
    """May ``path`` be replaced?  Only when it is a kubeconfig this module would have written
    for the same cluster name, user name and certificate subject — never a kubeconfig with
    other clusters or users in it (say ``~/.kube/config``) or another identity's."""
    try:
        doc = _parse(path.read_bytes(), path)
        if [c.get("name") for c in doc.get("clusters") or []] != [cluster]:
            return False
        if [u.get("name") for u in doc.get("users") or []] != [user]:
            return False
        info = describe(x509.load_pem_x509_certificate(_read_doc(doc, path)["cert_pem"]))
    except (CertsError, AttributeError, TypeError, ValueError):
        return False
    return (info.common_name, info.organizations) == subject


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (replacing it) so readers see the old file or the new one,
    never part of one; the file is 0600 from the moment it exists, whatever the umask."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_kubeconfig(
    path: StrPath,
    *,
    server: str,
    ca: Path,
    cert: Path,
    key: Path,
    user: str,
    cluster: str = DEFAULT_CLUSTER,
    context: str | None = None,
    embed: bool = True,
) -> Path:
    """Write a kubeconfig for ``user`` (cert + key) on ``cluster`` (``server`` + ``ca``).

    The context is ``context`` (default ``USER@CLUSTER``), namespace ``default``, and is the
    current one.  ``embed`` puts the PEMs in the file, else their absolute paths.  The file is
    0600 and appears atomically.  Idempotent: an existing file with the same content is left
    untouched; one this function wrote for the same cluster, user and certificate subject is
    replaced (a new server URL, a renewed certificate); anything else — a kubeconfig holding
    other clusters or users, another identity's, not a kubeconfig — raises CertsError and is
    not touched.  CertsError too when ``server`` is not an https URL or ``cert`` is not a
    current client certificate from ``ca`` with ``key`` as its key.  Returns ``path``.
    """
    p = Path(path)
    ca, cert, key = Path(ca), Path(cert), Path(key)
    server = _check_server(server)
    _check_pair(ca, cert, key)
    data = _render(
        server=server,
        ca=ca,
        cert=cert,
        key=key,
        user=user,
        cluster=cluster,
        context=context or f"{user}@{cluster}",
        embed=embed,
    )
    if p.exists() or p.is_symlink():
        if p.is_file() and p.read_bytes() == data:
            if stat.S_IMODE(p.stat().st_mode) & 0o077:
                os.chmod(p, 0o600)
            return p
        info = describe(load_cert(cert))
        subject = (info.common_name, info.organizations)
        if not p.is_file() or not _replaceable(p, cluster=cluster, user=user, subject=subject):
            raise CertsError(
                f"{p} exists and is not a ketch kubeconfig for user {user!r} on cluster "
                f"{cluster!r}; ketch will not overwrite it. Move it away or write elsewhere "
                "(--kubeconfig PATH / --out PATH)"
            )
    _replace_atomically(p, data)
    return p


def admin_kubeconfig(directory: StrPath, path: StrPath, *, server: str) -> Path:
    """Write ``path``: a kubeconfig for the cluster admin (``admin.crt``, O=system:masters)
    from certs directory ``directory``, PEMs embedded.  As :func:`write_kubeconfig`."""
    p = admin_paths(directory)
    return write_kubeconfig(path, server=server, ca=p.ca, cert=p.cert, key=p.key, user="admin")


# --- reading ---------------------------------------------------------------------------------


def _named(doc: dict[str, Any], section: str, name: str, path: Path) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(section[:-1])
            if isinstance(body, dict):
                return body
    raise CertsError(f"{path}: no {section[:-1]} named {name!r}")


def _pem(entry: dict[str, Any], field: str, path: Path) -> bytes:
    """The PEM under ``FIELD-data`` (base64) or read from the file ``FIELD`` names (relative
    to the kubeconfig's directory, as kubectl does)."""
    data = entry.get(f"{field}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError) as e:
            raise CertsError(f"{path}: {field}-data is not base64 ({e})") from e
    file = entry.get(field)
    if file:
        target = path.parent / Path(str(file)).expanduser()
        try:
            return target.read_bytes()
        except OSError as e:
            raise CertsError(f"{path}: cannot read {field} {target} ({e})") from e
    raise CertsError(f"{path}: no {field} or {field}-data; ketch needs mutual TLS")


def _read_doc(doc: dict[str, Any], path: Path) -> Kubeconfig:
    contexts = [c for c in doc.get("contexts") or [] if isinstance(c, dict)]
    name = doc.get("current-context") or (contexts[0].get("name") if len(contexts) == 1 else None)
    if not name:
        raise CertsError(f"{path}: no current-context")
    ctx = _named(doc, "contexts", str(name), path)
    cluster = _named(doc, "clusters", str(ctx.get("cluster")), path)
    user = _named(doc, "users", str(ctx.get("user")), path)
    if not cluster.get("server"):
        raise CertsError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
    return Kubeconfig(
        server=str(cluster["server"]),
        ca_pem=_pem(cluster, "certificate-authority", path),
        cert_pem=_pem(user, "client-certificate", path),
        key_pem=_pem(user, "client-key", path),
        user=str(ctx.get("user")),
    )


def read_kubeconfig(path: StrPath) -> Kubeconfig:
    """The server, CA, client certificate and key, and user name of ``path``'s current context.

    Both forms are read: ``*-data`` (base64 PEM) and file paths (relative ones against the
    kubeconfig's directory).  CertsError, naming the file, when it is missing, not a kubeconfig,
    has no current context, or lacks the server, CA, certificate or key (ketch has no other
    authentication).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CertsError(f"cannot read kubeconfig {p} ({e})") from e
    return _read_doc(_parse(data, p), p)
