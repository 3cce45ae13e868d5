"""The ``ketch certs`` commands: init, check, user, node and kubeconfig, on :mod:`certs.layout`.

The top-level CLI calls :func:`register` with its subparsers; every command sets ``func`` (the
argparse namespace in, an exit code out), prints what it did, and turns a CertsError or an
OS error into one line on stderr saying what is wrong and what to do.  :func:`check_certs` is
also the library form of ``ketch certs check`` (for ``ketch status``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from .authority import (
    CertInfo,
    CertsError,
    StrPath,
    days_left,
    describe,
    key_matches,
    load_cert,
    load_key,
    verify_issued_by,
)
from .kubeconfig import default_server, write_kubeconfig
from .layout import (
    COMPONENTS,
    CertPaths,
    FileResult,
    admin_paths,
    identity_paths,
    init_cluster_certs,
    issue_node,
    issue_node_serving,
    issue_user,
    node_paths,
    node_serving_paths,
    raft_secret,
    raft_secret_path,
    user_paths,
)

__all__ = ["WARN_DAYS", "CertStatus", "check_certs", "register"]

WARN_DAYS = 30

Command: TypeAlias = Callable[[argparse.Namespace], int]

_ROTATION = """\
rotation:
  `ketch certs check --dir DIR` lists every certificate with its days left and fails when one
  expires within 30 days.  To renew a component or user certificate, remove its .crt and .key
  and run `ketch certs init` (or `ketch certs user`) again with the same arguments: only the
  missing pair is issued, from the same CA; then restart the component that uses it.  The CA
  lasts 10 years; replacing it means a new directory (`certs init --dir NEW`), moving every
  component to it and restarting them all.  Keep a backup of ca.key: without it no certificate
  can be added to the cluster.
"""


@dataclass(frozen=True)
class CertStatus:
    """One file as ``certs check`` sees it.  ``ok`` when ``problems`` is empty."""

    path: Path
    info: CertInfo | None
    days_left: int | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _key_problems(key_path: Path, crt: Path) -> list[str]:
    try:
        key = load_key(key_path)
    except CertsError as e:
        return [str(e)]
    out = [] if key_matches(load_cert(crt), key) else [f"{key_path.name} is not the key of it"]
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & 0o077:
        out.append(f"{key_path.name} has mode {mode:04o}; run `chmod 600 {key_path}`")
    return out


def _check_one(crt: Path, ca_crt: Path, warn_days: int, now: dt.datetime | None) -> CertStatus:
    try:
        cert, ca_cert = load_cert(crt), load_cert(ca_crt)
    except CertsError as e:
        return CertStatus(crt, None, None, (str(e),))
    left = days_left(cert, now=now)
    problems: list[str] = []
    try:
        verify_issued_by(cert, ca_cert, now=now)
    except CertsError as e:
        problems.append(str(e))
    else:
        if left < warn_days:
            problems.append(f"expires in {left} days (under {warn_days}): renew it, see --help")
    problems += _key_problems(crt.with_suffix(".key"), crt)
    return CertStatus(crt, describe(cert), left, tuple(problems))


def check_certs(
    directory: StrPath, *, warn_days: int = WARN_DAYS, now: dt.datetime | None = None
) -> list[CertStatus]:
    """Check every certificate in ``directory`` (and ``users/``, ``nodes/``, ``nodes/serving/``)
    and the Raft secret.

    A certificate has a problem when it is unreadable, not issued by ``ca.crt``, not valid now,
    expires within ``warn_days``, or its key is missing, mismatched or readable by others.
    Cluster-wide components that should exist and do not are reported too.  Raises CertsError
    only when there is no ``ca.crt`` at all.  Reads only; changes nothing.
    """
    d = Path(directory)
    ca_crt = d / "ca.crt"
    if not ca_crt.exists():
        raise CertsError(f"no CA in {d} ({ca_crt} is missing); run `ketch certs init --dir {d}`")
    crts = (*d.glob("*.crt"), *d.glob("users/*.crt"), *d.glob("nodes/*.crt"),
            *d.glob("nodes/serving/*.crt"))
    found = sorted(p for p in crts if p != ca_crt)
    out = [_check_one(crt, ca_crt, warn_days, now) for crt in (ca_crt, *found)]
    for identity in COMPONENTS.values():
        crt = identity_paths(d, identity).cert
        if crt not in found:
            out.append(CertStatus(crt, None, None, (f"missing; run `ketch certs init --dir {d}`",)))
    secret = raft_secret_path(d)
    try:
        raft_secret(d)
        problems: tuple[str, ...] = ()
        if stat.S_IMODE(secret.stat().st_mode) & 0o077:
            problems = (f"readable by others; run `chmod 600 {secret}`",)
    except CertsError as e:
        problems = (str(e),)
    out.append(CertStatus(secret, None, None, problems))
    return out


# --- the commands ---------------------------------------------------------------------------------


def _fail(e: Exception) -> int:
    print(f"error: {e}", file=sys.stderr)
    return 1


def _print_result(r: FileResult) -> None:
    print(r, flush=True)


def _cmd_init(args: argparse.Namespace) -> int:
    try:
        report = init_cluster_certs(
            args.dir, replicas=args.replicas, hosts=args.host, progress=_print_result
        )
    except (CertsError, OSError) as e:
        return _fail(e)
    print(f"{len(report.created)} created, {len(report.kept)} kept in {args.dir}")
    return 0


def _describe_status(s: CertStatus, root: Path) -> Iterable[str]:
    name = s.path.relative_to(root) if s.path.is_relative_to(root) else s.path
    head = f"{'ok' if s.ok else 'FAIL':<5} {name}"
    if s.info is not None:
        yield f"{head}  {s.info.subject}  ({s.days_left} days left)"
        if s.info.sans:
            yield f"        SANs: {', '.join(s.info.sans)}"
    else:
        yield head
    for p in s.problems:
        yield f"        - {p}"


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        statuses = check_certs(args.dir, warn_days=args.warn_days)
    except (CertsError, OSError) as e:
        return _fail(e)
    for s in statuses:
        for line in _describe_status(s, Path(args.dir)):
            print(line)
    bad = [s for s in statuses if not s.ok]
    if bad:
        print(f"{len(bad)} of {len(statuses)} files need attention", file=sys.stderr)
        return 1
    print(f"all {len(statuses)} files ok")
    return 0


def _write_kubeconfig(args: argparse.Namespace, paths: CertPaths, user: str, out: Path) -> None:
    """Write ``out`` for ``user`` and say so, with the kubectl line that uses it."""
    before = out.read_bytes() if out.is_file() else None
    server = args.server or default_server(args.dir)
    write_kubeconfig(out, server=server, ca=paths.ca, cert=paths.cert, key=paths.key, user=user)
    verb = "kept" if before == out.read_bytes() else "wrote"
    print(f"{verb} kubeconfig {out} (server {server})")
    print(f"  try: kubectl --kubeconfig {out} get pods")


def _cmd_user(args: argparse.Namespace) -> int:
    try:
        report = issue_user(args.dir, args.name, args.group, progress=_print_result)
        paths = user_paths(args.dir, args.name)
        verb = "issued" if report.created else "already had"
        print(f"{verb} a client certificate for {args.name}: {paths.cert} (key {paths.key})")
        out = args.kubeconfig or args.dir / f"{args.name}.kubeconfig"
        _write_kubeconfig(args, paths, args.name, out)
    except (CertsError, OSError) as e:
        return _fail(e)
    return 0


def _cmd_node(args: argparse.Namespace) -> int:
    try:
        report = issue_node(args.dir, args.name, progress=_print_result)
        serving = issue_node_serving(args.dir, args.name, args.address, progress=_print_result)
    except (CertsError, OSError) as e:
        return _fail(e)
    paths = node_paths(args.dir, args.name)
    verb = "issued" if report.created else "already had"
    print(f"{verb} a client certificate for node {args.name}: {paths.cert} (key {paths.key})")
    spaths = node_serving_paths(args.dir, args.name)
    verb = "issued" if serving.created else "already had"
    print(f"{verb} a serving certificate for node {args.name}'s agent: {spaths.cert} "
          f"(key {spaths.key})")
    return 0


def _cmd_kubeconfig(args: argparse.Namespace) -> int:
    """``--user admin`` is the cluster admin (admin.crt); any other name is users/NAME.crt."""
    admin = args.user == "admin"
    out = args.out or args.dir / f"{args.user}.kubeconfig"
    try:
        paths = admin_paths(args.dir) if admin else user_paths(args.dir, args.user)
        if not paths.cert.exists():
            fix = "init" if admin else f"user {args.user}"
            raise CertsError(
                f"{paths.cert} does not exist; run `ketch certs {fix} --dir {args.dir}`"
            )
        _write_kubeconfig(args, paths, args.user, out)
    except (CertsError, OSError) as e:
        return _fail(e)
    return 0


def _replica_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give replica names separated by commas, e.g. s1,s2,s3")
    return names


def _show_help(parser: argparse.ArgumentParser) -> Command:
    def run(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``certs init|check|user|node|kubeconfig`` to a CLI.

    Each subcommand sets ``func`` (the namespace in, an exit code out)."""
    certs = subparsers.add_parser(
        "certs",
        help="the cluster's certificates: CA, components, users",
        description="Create and check the cluster's CA and certificates (mutual TLS everywhere).",
        epilog=_ROTATION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    certs.set_defaults(func=_show_help(certs))
    sub = certs.add_subparsers(title="commands", metavar="COMMAND")

    def dir_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", required=True, type=Path, help="the certs directory")

    init = sub.add_parser(
        "init",
        help="create the CA and every component's certificate (idempotent)",
        description="Create what is missing in DIR; keep every valid file byte for byte.",
    )
    dir_arg(init)
    init.add_argument(
        "--replicas",
        type=_replica_list,
        default=["s1", "s2", "s3"],
        metavar="S1,S2,...",
        help="store replica names (default: s1,s2,s3)",
    )
    init.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="H",
        help="another address serving certificates answer on (IP or DNS name; repeatable); "
        "localhost, 127.0.0.1 and ::1 are always included",
    )
    init.set_defaults(func=_cmd_init)

    check = sub.add_parser(
        "check",
        help="list certificates with subject, SANs and days left; fail if any needs attention",
        epilog=_ROTATION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dir_arg(check)
    check.add_argument("--warn-days", type=int, default=WARN_DAYS, help=f"(default: {WARN_DAYS})")
    check.set_defaults(func=_cmd_check)

    def server_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--server",
            metavar="URL",
            help="the apiserver's URL (default: the first line of DIR/apiserver.url or "
            "DIR/../apiserver.url, else https://127.0.0.1:6443)",
        )

    user = sub.add_parser(
        "user",
        help="issue a client certificate for a user (CN=NAME, O=groups) and a kubeconfig",
        description="Issue users/NAME.crt/.key (kept if already there) and write a kubeconfig "
        "for them, DIR/NAME.kubeconfig unless --kubeconfig says otherwise.",
    )
    user.add_argument("name", metavar="NAME")
    user.add_argument(
        "--group", action="append", default=[], metavar="G", help="a group (repeatable)"
    )
    dir_arg(user)
    server_arg(user)
    user.add_argument(
        "--kubeconfig", type=Path, metavar="PATH", help="where (default: DIR/NAME.kubeconfig)"
    )
    user.set_defaults(func=_cmd_user)

    node = sub.add_parser(
        "node",
        help="issue node NAME's client certificate (CN=system:node:NAME, O=system:nodes) and "
        "its agent's serving certificate",
    )
    node.add_argument("name", metavar="NAME")
    node.add_argument(
        "--address", action="append", default=[], metavar="ADDR",
        help="an address the apiserver reaches the agent at (repeatable; a SAN of the "
        "serving certificate beside NAME)",
    )
    dir_arg(node)
    node.set_defaults(func=_cmd_node)

    kubeconfig = sub.add_parser(
        "kubeconfig",
        help="write a kubeconfig for admin or an existing user",
        description="Write a kubeconfig (PEMs embedded, mode 0600) for the admin certificate "
        "or users/USER.crt.  An existing kubeconfig is replaced only if ketch wrote it for the "
        "same user and certificate subject.",
    )
    dir_arg(kubeconfig)
    kubeconfig.add_argument(
        "--user", required=True, metavar="admin|NAME", help="admin, or a user from `certs user`"
    )
    server_arg(kubeconfig)
    kubeconfig.add_argument(
        "--out", type=Path, metavar="PATH", help="where (default: DIR/USER.kubeconfig)"
    )
    kubeconfig.set_defaults(func=_cmd_kubeconfig)
