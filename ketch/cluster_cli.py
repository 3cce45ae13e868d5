"""``ketch up|down|status --dir DIR``: the whole local cluster (see :mod:`ketch.cluster`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from certs.authority import CertsError
from ketch.cluster import Cluster, ClusterError

__all__ = ["DEFAULT_DIR", "register"]

#: Where ``scripts/up`` puts its cluster, and so where up/down/status look without --dir.
DEFAULT_DIR = Path(__file__).resolve().parent.parent / ".ketch"


def _up(args: argparse.Namespace) -> int:
    cluster = Cluster(args.dir, apiservers=args.apiservers, port=args.port,
                      controller_managers=args.controller_managers,
                      schedulers=args.schedulers, nodes=args.nodes)
    try:
        cluster.up()
    except (ClusterError, CertsError) as e:
        print(f"error: {e}")
        return 1
    kc = cluster.kubeconfig
    kubectl, ketch = _binary("kubectl"), _binary("ketch")
    port = cluster.url.rsplit(":", 1)[-1]
    if args.port is None and port != "6443":
        print(f"\nport 6443 was busy, so the apiserver listens on {port}; the kubeconfig "
              "below points there")
    where = "" if Path(args.dir).resolve() == DEFAULT_DIR else f" --dir {args.dir}"
    print(f"\nketch is up: apiserver {cluster.url}\n"
          f"  export KUBECONFIG={kc}\n"
          f"  {kubectl} get namespaces\n"
          f"  {kubectl} create deployment web --image=nginx --replicas=2\n"
          f"status: {ketch} status{where}    stop it: {ketch} down{where}")
    return 0


def _binary(name: str) -> str:
    """How to run ``name``: the one installed beside this Python (``.venv/bin/kubectl``,
    relative to the working directory when it is below it), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if not beside.exists():
        return name
    try:
        return str(beside.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


def _down(args: argparse.Namespace) -> int:
    try:
        Cluster(args.dir).down()
    except ClusterError as e:
        print(f"error: {e}")
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = Cluster(args.dir)
    if not (Path(args.dir) / "control.json").exists():
        print(f"error: no cluster in {args.dir}; start one with `ketch up --dir {args.dir}`")
        return 1
    st: dict[str, Any] = cluster.status()
    if args.json:
        print(json.dumps(st, indent=2, default=str))
    ok = True
    for key in ("apiservers", "controller_managers", "schedulers", "nodes"):
        for name, c in st.get(key, {}).items():
            ok = ok and bool(c["ready"])
            if args.json:
                continue
            state = "ready" if c["ready"] else ("running, not ready" if c["pid"] else "stopped")
            role = " leader" if c.get("leader") else (" standby" if "leader" in c and
                                                      c["ready"] else "")
            node = (f" Node {'Ready' if c['node_ready'] == 'True' else 'NotReady'}, "
                    f"{c['pods']} pods running") if "node_ready" in c else ""
            print(f"{name:<22} https://{c['listen']:<22} {state}{role}"
                  + (f" (pid {c['pid']})" if c["pid"] else "") + node)
    for name, s in st["store"].items():
        ok = ok and s is not None
        if args.json:
            continue
        if s is None:
            print(f"store {name:<16} not answering")
        else:
            role = "leader" if s.get("is_leader") else "follower"
            print(f"store {name:<16} {role:<8} term {s.get('term')} revision "
                  f"{s.get('revision')}")
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("up", help="start a local cluster (certs, store, apiserver)",
                              description="Create (if needed) and start the cluster in DIR.")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                   help=f"the cluster directory (default {DEFAULT_DIR}, as scripts/up)")
    p.add_argument("--apiservers", type=int, default=None, help="apiservers of a new cluster (1)")
    p.add_argument("--controller-managers", type=int, default=None,
                   help="controller-managers of a new cluster (1; more stand by)")
    p.add_argument("--schedulers", type=int, default=None,
                   help="schedulers of a new cluster (1; more stand by)")
    p.add_argument("--nodes", type=int, default=None,
                   help="node agents of a new cluster (2), at 127.10.K.1, 127.10.K.2, …")
    p.add_argument("--port", type=int, default=None,
                   help="first apiserver port of a new cluster (default 6443 if free)")
    p.set_defaults(func=_up)
    p = subparsers.add_parser("down", help="stop the cluster in DIR")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                   help=f"the cluster directory (default {DEFAULT_DIR}, as scripts/up)")
    p.set_defaults(func=_down)
    p = subparsers.add_parser("status", help="apiservers and store replicas of DIR")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                   help=f"the cluster directory (default {DEFAULT_DIR}, as scripts/up)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)
