"""Keeping or creating certificate pairs on disk: validate what exists, then only add files.

:mod:`certs.layout` says which pairs a cluster has; this module makes them exist.  The
guarantees: a file written here never replaces an existing one, is never seen half-written, and
has exactly its mode whatever the umask (keys 0600 from the moment they exist, certificates
0644, directories 0700).  An existing pair is kept byte for byte if it is valid; if anything at
all is invalid the run raises :class:`CertsError` naming the file and the fix, before it has
written anything.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from .authority import (
    CA,
    CertsError,
    StrPath,
    create_ca,
    describe,
    issue,
    key_matches,
    load_ca,
    load_cert,
    load_key,
    verify_issued_by,
)

__all__ = [
    "CertPaths",
    "FileResult",
    "Identity",
    "Progress",
    "Report",
    "ca_paths",
    "collector",
    "ensure_pairs",
    "ensure_private_dir",
    "identity_paths",
    "tighten_private",
    "write_new",
]


@dataclass(frozen=True)
class CertPaths:
    """Where one identity's files are: the CA certificate to trust, its certificate, its key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Identity:
    """One certificate a cluster needs.

    ``stem`` is the file name without ``.crt``/``.key``, relative to the certs directory.  The
    subject is CN=``common_name``, O=``organizations`` (user and groups, as Kubernetes reads
    them).  A ``server`` identity also serves TLS: its SANs are the hosts the caller gives plus
    ``dns_names``.
    """

    stem: str
    common_name: str
    organizations: tuple[str, ...] = ()
    server: bool = False
    client: bool = True
    dns_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileResult:
    """What init did with one file.  ``note`` tells of anything else done to a kept file."""

    path: Path
    action: Literal["created", "kept"]
    note: str = ""

    def __str__(self) -> str:
        return f"{self.action:<8} {self.path}" + (f"  ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Report:
    """Every file a run looked after, in a stable order."""

    files: tuple[FileResult, ...]

    @property
    def created(self) -> tuple[Path, ...]:
        return tuple(f.path for f in self.files if f.action == "created")

    @property
    def kept(self) -> tuple[Path, ...]:
        return tuple(f.path for f in self.files if f.action == "kept")


Progress: TypeAlias = Callable[[FileResult], None]


def ca_paths(directory: StrPath) -> CertPaths:
    d = Path(directory)
    return CertPaths(ca=d / "ca.crt", cert=d / "ca.crt", key=d / "ca.key")


def identity_paths(directory: StrPath, identity: Identity) -> CertPaths:
    d = Path(directory)
    return CertPaths(
        ca=d / "ca.crt", cert=d / f"{identity.stem}.crt", key=d / f"{identity.stem}.key"
    )


# --- safe writes ---------------------------------------------------------------------------------


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) with mode 0700, or tighten an existing one to 0700.

    It holds private keys: group and others get nothing.  CertsError if it is not a directory.
    """
    if not directory.exists():
        # exist_ok: another process (a second hollow-node process issuing its nodes'
        # certificates) may create it between the check and the mkdir.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not directory.is_dir():
        raise CertsError(f"{directory} is not a directory; pass another --dir")
    elif stat.S_IMODE(directory.stat().st_mode) & 0o077:
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path``, which must not exist yet, atomically, with exactly ``mode``.

    The content goes to a temporary file beside ``path`` created 0600 by os.open (so a key is
    never readable by others, not even for a moment), is fsynced, then hard-linked to ``path``:
    a reader sees all of it or no file, and an existing ``path`` is never replaced (link fails
    where rename would overwrite).  CertsError if ``path`` exists.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # exact mode, whatever the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        raise CertsError(
            f"{path} already exists (another `ketch certs` running at the same time?); "
            "run the command again"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def tighten_private(path: Path) -> str:
    """Make an existing private file 0600 if group or others had any access to it.

    The content is not touched.  Returns a note saying what changed, or "" if nothing did.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        return f"mode {mode:04o} tightened to 0600"
    return ""


# --- checking what exists ----------------------------------------------------------------------


def _sans_for(identity: Identity, hosts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*hosts, *identity.dns_names))) if identity.server else ()


def _half_pair(paths: CertPaths, fix: str) -> None:
    has_cert, has_key = paths.cert.exists(), paths.key.exists()
    if has_cert != has_key:
        have, lack = (paths.cert, paths.key) if has_cert else (paths.key, paths.cert)
        raise CertsError(
            f"{have} exists but {lack} does not; a certificate is useless without its key and "
            f"ketch will not guess. Restore {lack.name} from a backup, or {fix}"
        )


def _reissue_hint(paths: CertPaths, command: str) -> str:
    return f"remove {paths.cert} and {paths.key}, then run `{command}` to issue a new pair"


def _mismatches(paths: CertPaths, identity: Identity, sans: tuple[str, ...]) -> list[str]:
    info = describe(load_cert(paths.cert))
    out = []
    if info.common_name != identity.common_name:
        out.append(f"CN is {info.common_name!r}, expected {identity.common_name!r}")
    if sorted(info.organizations) != sorted(identity.organizations):
        out.append(f"O is {list(info.organizations)}, expected {list(identity.organizations)}")
    for usage, wanted, has in (
        ("serverAuth", identity.server, info.server),
        ("clientAuth", identity.client, info.client),
    ):
        if wanted and not has:
            out.append(f"it lacks extendedKeyUsage {usage}")
    missing = [s for s in sans if s not in info.sans]
    if missing:
        out.append(f"it lacks SANs {', '.join(missing)}")
    return out


def _validate_pair(
    paths: CertPaths,
    identity: Identity,
    ca: CA,
    sans: tuple[str, ...],
    command: str,
    now: dt.datetime | None,
) -> None:
    """Raise CertsError unless the existing pair is the CA's, current, matching and complete."""
    cert, key = load_cert(paths.cert), load_key(paths.key)
    hint = _reissue_hint(paths, command)
    if not key_matches(cert, key):
        raise CertsError(f"{paths.key} is not the key of {paths.cert}; {hint}")
    try:
        verify_issued_by(cert, ca.cert, now=now)
    except CertsError as e:
        raise CertsError(f"{paths.cert}: {e}; {hint}") from e
    problems = _mismatches(paths, identity, sans)
    if problems:
        raise CertsError(
            f"{paths.cert} is not what this cluster needs: {'; '.join(problems)}; {hint}"
        )


def _load_current_ca(directory: Path, now: dt.datetime | None) -> CA:
    ca = load_ca(directory)
    try:
        verify_issued_by(ca.cert, ca.cert, now=now)
    except CertsError as e:
        raise CertsError(
            f"{directory / 'ca.crt'}: {e}. Every certificate of the cluster must be reissued "
            f"from a new CA: move {directory} away and run `ketch certs init` again"
        ) from e
    return ca


# --- adding what is missing ---------------------------------------------------------------------


def _check_existing(
    directory: Path,
    pairs: list[tuple[Identity, CertPaths]],
    *,
    hosts: tuple[str, ...],
    may_create_ca: bool,
    command: str,
    now: dt.datetime | None,
) -> CA | None:
    """Phase one, read-only: raise CertsError on the first invalid file; else return the CA
    (None when there is none yet and ``may_create_ca``)."""
    ca_p = ca_paths(directory)
    _half_pair(ca_p, f"move {directory} away and run `ketch certs init` to start a new cluster")
    for _, p in pairs:
        _half_pair(p, _reissue_hint(p, command))
    existing = [(i, p) for i, p in pairs if p.cert.exists()]
    if not ca_p.cert.exists() and may_create_ca:
        if existing:
            raise CertsError(
                f"{existing[0][1].cert} exists but {ca_p.cert} does not: it was issued by a CA "
                f"that is gone. Restore ca.crt and ca.key from a backup, or move {directory} "
                "away to start afresh"
            )
        return None
    ca = _load_current_ca(directory, now)
    for i, p in existing:
        _validate_pair(p, i, ca, _sans_for(i, hosts), command, now)
    return ca


def _create_pair(
    ca: CA, identity: Identity, paths: CertPaths, sans: tuple[str, ...], now: dt.datetime | None
) -> None:
    ips = [s for s in sans if _is_ip(s)]
    cert_pem, key_pem = issue(
        ca,
        common_name=identity.common_name,
        organizations=identity.organizations,
        dns_names=[s for s in sans if s not in ips],
        ip_addresses=ips,
        server=identity.server,
        client=identity.client,
        now=now,
    )
    ensure_private_dir(paths.cert.parent)
    # Key first: a crash in between leaves a key without a cert, which the next run reports.
    write_new(paths.key, key_pem, 0o600)
    write_new(paths.cert, cert_pem, 0o644)


def ensure_pairs(
    directory: Path,
    identities: list[Identity],
    *,
    hosts: tuple[str, ...],
    may_create_ca: bool,
    command: str,
    emit: Progress,
    now: dt.datetime | None,
) -> None:
    """Make every identity's pair exist: check all that exist first, then add the rest."""
    pairs = [(i, identity_paths(directory, i)) for i in identities]
    ca = _check_existing(
        directory, pairs, hosts=hosts, may_create_ca=may_create_ca, command=command, now=now
    )
    # Everything that exists is valid: from here on files are only added, never changed.
    ensure_private_dir(directory)
    ca_p = ca_paths(directory)
    if ca is None:
        ca = create_ca(now=now)
        write_new(ca_p.key, ca.key_pem, 0o600)
        write_new(ca_p.cert, ca.cert_pem, 0o644)
        emit(FileResult(ca_p.cert, "created"))
        emit(FileResult(ca_p.key, "created"))
    elif may_create_ca:
        emit(FileResult(ca_p.cert, "kept"))
        emit(FileResult(ca_p.key, "kept", tighten_private(ca_p.key)))
    for i, p in pairs:
        if p.cert.exists():
            emit(FileResult(p.cert, "kept"))
            emit(FileResult(p.key, "kept", tighten_private(p.key)))
        else:
            _create_pair(ca, i, p, _sans_for(i, hosts), now)
            emit(FileResult(p.cert, "created"))
            emit(FileResult(p.key, "created"))


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def collector(progress: Progress | None) -> tuple[list[FileResult], Progress]:
    results: list[FileResult] = []

    def emit(r: FileResult) -> None:
        results.append(r)
        if progress is not None:
            progress(r)

    return results, emit
