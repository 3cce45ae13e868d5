"""The ``ketch store`` commands: run a local store cluster and talk to it from a shell.

``up``/``status``/``down`` drive :class:`store.launch.LocalCluster` in ``--dir``; the data
commands (``put``, ``get``, ``del``, ``watch``, ``lease``, ``compact``, ``member list``) read the
cluster's endpoints from DIR/cluster.json and its store-client certificate from DIR/certs, and
use :class:`store.client.StoreClient`.  Keys and values are UTF-8 text on the command line.
Every command sets ``func`` (namespace in, exit code out) and turns an error into one line on
stderr that says what to do, with exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import shutil
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeAlias

from certs.authority import CertsError
from store.client import StoreClient, prefix_end
from store.errors import Compacted, StoreError, Unavailable
from store.launch import ClusterError, LocalCluster

__all__ = ["register"]

Command: TypeAlias = Callable[[argparse.Namespace], int]


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _cluster(args: argparse.Namespace) -> LocalCluster:
    c = LocalCluster(args.dir)
    if not c.exists:
        raise ClusterError(f"no cluster in {args.dir}: run `ketch store up --dir {args.dir}`")
    return c


def _command(fn: Command) -> Command:
    """Errors become one line on stderr and exit code 1; Ctrl-C ends quietly."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except KeyboardInterrupt:
            return 130
        except Unavailable as e:
            hint = ""
            c = LocalCluster(args.dir)
            if c.exists and not any(c.pid(n) for n in c.names):
                hint = f"; no replica runs from {args.dir}: run `ketch store up --dir {args.dir}`"
            print(f"error: the store cannot be reached: {e}{hint}", file=sys.stderr)
        except Compacted as e:
            oldest = e.details.get("compact_revision")
            where = f"revision {oldest} or later" if oldest else "a later revision"
            print(f"error: {e.message}; ask for {where} (`ketch store status --dir {args.dir} "
                  "--json` shows compact_revision)", file=sys.stderr)
        except StoreError as e:
            print(f"error: {type(e).__name__}: {e.message}", file=sys.stderr)
        except (ClusterError, CertsError, OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
        return 1

    return run


DataCommand: TypeAlias = Callable[[StoreClient, argparse.Namespace], Coroutine[Any, Any, int]]


def _with_client(fn: DataCommand) -> Command:
    """A data command: open a client on the cluster in --dir, run ``fn``, close."""

    @_command
    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        cluster = _cluster(args)

        async def go() -> int:
            async with cluster.client() as client:
                return await fn(client, args)

        return _run(go())

    return run


# --- cluster lifecycle -------------------------------------------------------------------------


@_command
def _up(args: argparse.Namespace) -> int:
    c = LocalCluster(args.dir, replicas=args.replicas, fsync=args.fsync)
    c.up(progress=lambda line: print(line, flush=True))
    tls = c.client_tls
    k = _ketch_command()
    print(f"""
the store runs in {c.dir}
  endpoints:  {",".join(c.client_urls)}
  client TLS: --cacert {tls.ca} --cert {tls.cert} --key {tls.key}
try:
  {k} store put --dir {args.dir} foo bar
  {k} store get --dir {args.dir} foo
  {k} store watch --dir {args.dir} foo --rev 1
  {k} store status --dir {args.dir}
  {k} store down --dir {args.dir}""")
    return 0


def _ketch_command() -> str:
    """How the user can run ``ketch`` from here: its name if it is on PATH, else its path
    (e.g. .venv/bin/ketch after scripts/up)."""
    here = Path(sys.argv[0])
    if here.name == "ketch" and shutil.which("ketch") != str(here.resolve()):
        try:
            return str(here.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(here.resolve())
    return "ketch"


@_command
def _down(args: argparse.Namespace) -> int:
    _cluster(args).down(progress=lambda line: print(line, flush=True))
    return 0


_COLUMNS = ("NAME", "CLIENT", "RAFT", "LEADER", "TERM", "RAFT INDEX", "REVISION", "HEALTHY")


def _row(
    name: str, client: str, raft: str, st: dict[str, Any] | None, pid: int | None
) -> list[str]:
    if st is None:
        state = "down" if pid is None else f"not answering (pid {pid})"
        return [name, client, raft, "", "", "", "", state]
    return [name, client, raft, "*" if st.get("is_leader") else "", str(st.get("term", "")),
            str(st.get("raft_index", "")), str(st.get("revision", "")),
            "yes" if st.get("healthy") else "no"]


@_command
def _status(args: argparse.Namespace) -> int:
    c = _cluster(args)
    statuses = c.status()
    if args.json:
        print(json.dumps(statuses, indent=2, default=str))
    else:
        rows = [list(_COLUMNS)] + [_row(m.name, m.client, m.raft, statuses[m.name], c.pid(m.name))
                                   for m in c.members]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
        for r in rows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if not any(s and s.get("is_leader") for s in statuses.values()):
        print(f"no leader: the cluster cannot serve; see {c.dir}/<name>/replica.log, or run "
              f"`ketch store up --dir {args.dir}`", file=sys.stderr)
        return 1
    return 0


# --- data --------------------------------------------------------------------------------------


def _range(args: argparse.Namespace) -> tuple[bytes, bytes | None]:
    key = args.key.encode()
    return key, (prefix_end(key) if args.prefix else None)


async def _put(client: StoreClient, args: argparse.Namespace) -> int:
    ans = await client.put(args.key.encode(), args.value.encode(), lease=args.lease)
    print(f"OK (revision {ans['header']['revision']})")
    return 0


def _kv_json(kv: dict[str, Any]) -> dict[str, Any]:
    return {**kv, "key": _text(kv["key"]), "value": _text(kv["value"])}


async def _get(client: StoreClient, args: argparse.Namespace) -> int:
    key, end = _range(args)
    ans = await client.get(key, range_end=end, revision=args.rev, limit=args.limit,
                           serializable=args.serializable, keys_only=args.keys_only)
    if args.json:
        out = {**ans, "kvs": [_kv_json(kv) for kv in ans["kvs"]]}
        print(json.dumps(out, indent=2))
        return 0
    for kv in ans["kvs"]:
        print(_text(kv["key"]))
        if not args.keys_only:
            print(_text(kv["value"]))
    if not ans["kvs"]:
        print(f"(no {'keys with prefix' if args.prefix else 'key'} {args.key!r} at revision "
              f"{ans['header']['revision']})", file=sys.stderr)
    return 0


async def _delete(client: StoreClient, args: argparse.Namespace) -> int:
    key, end = _range(args)
    ans = await client.delete(key, range_end=end)
    print(f"deleted {ans['deleted']} (revision {ans['header']['revision']})")
    return 0


async def _watch(client: StoreClient, args: argparse.Namespace) -> int:
    key, end = _range(args)
    print(f"watching {'prefix ' if args.prefix else ''}{args.key!r}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    async for frame in client.watch(key, range_end=end, start_revision=args.rev,
                                    prev_kv=args.prev_kv):
        for ev in frame.get("events", ()):
            kv, rev = ev["kv"], ev["kv"]["mod_revision"]
            if ev["type"] == "put":
                print(f"PUT {_text(kv['key'])} {_text(kv['value'])}  (revision {rev})", flush=True)
            else:
                print(f"DELETE {_text(kv['key'])}  (revision {rev})", flush=True)
    return 0


async def _lease_grant(client: StoreClient, args: argparse.Namespace) -> int:
    ans = await client.lease_grant(args.ttl, args.id)
    print(f"lease {ans['id']} granted with TTL {ans['ttl']} s")
    return 0


async def _lease_revoke(client: StoreClient, args: argparse.Namespace) -> int:
    await client.lease_revoke(args.id)
    print(f"lease {args.id} revoked")
    return 0


async def _lease_keepalive(client: StoreClient, args: argparse.Namespace) -> int:
    while True:
        ans = await client.lease_keepalive(args.id)
        print(f"lease {ans['id']} kept alive, TTL {ans['ttl']} s", flush=True)
        if args.once:
            return 0
        await asyncio.sleep(max(0.5, ans["ttl"] / 3))


async def _lease_timetolive(client: StoreClient, args: argparse.Namespace) -> int:
    ans = await client.lease_timetolive(args.id, keys=args.keys)
    if ans["ttl"] < 0:
        print(f"lease {args.id} does not exist (expired or revoked)")
        return 1
    print(f"lease {ans['id']}: {ans['ttl']} s left of {ans['granted_ttl']} s")
    for k in ans.get("keys", ()):
        print(f"  {_text(k)}")
    return 0


async def _lease_list(client: StoreClient, args: argparse.Namespace) -> int:
    for lease in (await client.leases())["leases"]:
        print(lease["id"])
    return 0


async def _compact(client: StoreClient, args: argparse.Namespace) -> int:
    ans = await client.compact(args.rev)
    print(f"compacted: revisions below {args.rev} are gone (revision {ans['header']['revision']})")
    return 0


async def _member_list(client: StoreClient, args: argparse.Namespace) -> int:
    members = (await client.members())["members"]
    st = await client.status()
    for m in members:
        lead = "  (leader)" if m["name"] == st.get("leader") else ""
        print(f"{m['name']}  raft {m['raft']}  client {m['client']}{lead}")
    return 0


@_command
def _member_add(args: argparse.Namespace) -> int:
    name = _cluster(args).add_member(progress=lambda line: print(line, flush=True))
    print(f"{name} joined; `ketch store status --dir {args.dir}` shows it catching up")
    return 0


@_command
def _member_remove(args: argparse.Namespace) -> int:
    _cluster(args).remove_member(args.name, progress=lambda line: print(line, flush=True))
    return 0


# --- argparse ------------------------------------------------------------------------------


def _show_help(parser: argparse.ArgumentParser) -> Command:
    def run(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return run


def _int(text: str) -> int:
    """Decimal or 0x-hex (lease ids)."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _group(sub: Any, name: str, help_: str) -> Any:
    p = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(func=_show_help(p))
    return p.add_subparsers(title="commands", metavar="COMMAND")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``store up|status|down|put|get|del|watch|lease|compact|member`` to a CLI."""
    store = subparsers.add_parser(
        "store", help="a 3-replica Raft key-value store: run it, read and write it",
        description="Run a local store cluster in DIR and talk to it (mutual TLS, CBOR).",
    )
    store.set_defaults(func=_show_help(store))
    sub = store.add_subparsers(title="commands", metavar="COMMAND")

    def cmd(parent: Any, name: str, func: Command, help_: str, *, key: bool = False) -> Any:
        p = parent.add_parser(name, help=help_, description=help_)
        p.add_argument("--dir", required=True, type=Path, help="the cluster directory")
        if key:
            p.add_argument("key", metavar="KEY")
        p.set_defaults(func=func)
        return p

    p = cmd(sub, "up", _up, "create (if needed) and start the cluster in DIR; wait for a leader")
    p.add_argument("--replicas", type=int, default=None, help="replicas of a new cluster (3)")
    sync = p.add_mutually_exclusive_group()
    sync.add_argument("--no-fsync", dest="fsync", action="store_false", default=None,
                      help="acknowledge writes before they reach the disk (fast, not power-safe);"
                      " remembered in DIR/cluster.json")
    sync.add_argument("--fsync", dest="fsync", action="store_true",
                      help="acknowledge writes once on disk on a majority (the default)")
    p = cmd(sub, "status", _status, "every replica: leader, term, raft index, revision, health")
    p.add_argument("--json", action="store_true", help="print the raw status maps as JSON")
    cmd(sub, "down", _down, "stop every replica of DIR (SIGTERM, then SIGKILL after 10 s)")

    p = cmd(sub, "put", _with_client(_put), "set KEY to VALUE", key=True)
    p.add_argument("value", metavar="VALUE")
    p.add_argument("--lease", type=_int, default=0, metavar="ID", help="attach to a lease")
    p = cmd(sub, "get", _with_client(_get), "read KEY (or every key with the prefix)", key=True)
    p.add_argument("--prefix", action="store_true", help="KEY is a prefix")
    p.add_argument("--rev", type=int, default=0, metavar="N", help="read at revision N")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="at most N keys")
    p.add_argument("--serializable", action="store_true",
                   help="answer from any replica without confirming leadership (may be stale)")
    p.add_argument("--keys-only", action="store_true", help="print keys, not values")
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p = cmd(sub, "del", _with_client(_delete), "delete KEY (or every key with the prefix)",
            key=True)
    p.add_argument("--prefix", action="store_true", help="KEY is a prefix")
    p = cmd(sub, "watch", _with_client(_watch), "print changes to KEY as they happen (Ctrl-C "
            "stops)", key=True)
    p.add_argument("--prefix", action="store_true", help="KEY is a prefix")
    p.add_argument("--rev", type=int, default=0, metavar="N", help="start at revision N")
    p.add_argument("--prev-kv", action="store_true", help="ask for the previous values too")

    lease = _group(sub, "lease", "leases: keys that vanish when their lease expires")
    p = cmd(lease, "grant", _with_client(_lease_grant), "grant a lease of TTL seconds")
    p.add_argument("ttl", type=int, metavar="TTL")
    p.add_argument("--id", type=_int, default=0, help="the lease id to use (default: any)")
    p = cmd(lease, "revoke", _with_client(_lease_revoke), "revoke a lease and delete its keys")
    p.add_argument("id", type=_int, metavar="ID")
    p = cmd(lease, "keepalive", _with_client(_lease_keepalive),
            "keep a lease alive until Ctrl-C")
    p.add_argument("id", type=_int, metavar="ID")
    p.add_argument("--once", action="store_true", help="renew once and exit")
    p = cmd(lease, "timetolive", _with_client(_lease_timetolive), "a lease's remaining TTL")
    p.add_argument("id", type=_int, metavar="ID")
    p.add_argument("--keys", action="store_true", help="list the lease's keys")
    cmd(lease, "list", _with_client(_lease_list), "every lease id")

    p = cmd(sub, "compact", _with_client(_compact), "forget the history below revision REV")
    p.add_argument("rev", type=int, metavar="REV")
    member = _group(sub, "member", "the cluster's members")
    cmd(member, "list", _with_client(_member_list), "name, raft address, client URL of each")
    cmd(member, "add", _member_add, "start one more replica and add it to the cluster")
    p = cmd(member, "remove", _member_remove, "remove a replica (not the leader) and stop it")
    p.add_argument("name", metavar="NAME")
