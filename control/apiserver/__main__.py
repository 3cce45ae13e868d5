"""``python -m control.apiserver --certs DIR --store URL[,URL…] --listen HOST:PORT``.

One apiserver process: serves HTTPS (client certificates from the cluster CA; a request
without one gets a 401 Status) and talks to the store with the apiserver's store-client
certificate.  SIGTERM stops it cleanly (open watches end, the store client closes).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Sequence

from aiohttp import web

from certs.authority import CertsError
from certs.clientauth import request_client_certificates
from certs.layout import (
    apiserver_kubelet_client_paths,
    apiserver_paths,
    apiserver_store_client_paths,
    service_account_key,
)
from certs.tls import client_context, server_context
from control.api.gctune import tune_gc
from store.client import StoreClient

from .allocation import SERVICE_CIDR
from .app import ServerConfig, build_app
from .kubelet import KubeletClient
from .serviceaccounts.tokens import TokenIssuer
from .state import APIState

log = logging.getLogger("ketch.apiserver")


def serving_context(certs_dir: str) -> ssl.SSLContext:
    """The apiserver's TLS context, HTTP/1.1: the handshake completes with any client
    certificate or none, and authentication then refuses a missing, foreign, expired or
    not-yet-valid one with a 401 Status and a log line saying why (as kube-apiserver does;
    :mod:`certs.clientauth`)."""
    paths = apiserver_paths(certs_dir)
    ctx = server_context(paths)
    request_client_certificates(ctx, paths.ca)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m control.apiserver",
                                description="Run one ketch apiserver.")
    p.add_argument("--certs", required=True, help="the cluster's certs directory")
    p.add_argument("--store", required=True,
                   help="comma-separated client URLs of the store replicas")
    p.add_argument("--listen", default="127.0.0.1:6443", help="HOST:PORT to serve on")
    p.add_argument("--no-bootstrap", action="store_true",
                   help="do not create the system namespaces and RBAC policy")
    for which in ("not-ready", "unreachable"):
        p.add_argument(f"--default-{which}-toleration-seconds", type=int, default=300,
                       metavar="S", help=f"the tolerationSeconds DefaultTolerationSeconds "
                       f"gives pods for the {which} NoExecute taint (default 300)")
    p.add_argument("--service-cluster-ip-range", default=SERVICE_CIDR,
                   help="CIDR of Service ClusterIPs (local addresses: inside 127.0.0.0/8); "
                   "the kubernetes Service gets its first address")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    host, _, port = args.listen.rpartition(":")
    tls = serving_context(args.certs)
    tokens = TokenIssuer(service_account_key(args.certs))  # fail closed: no key, no start
    # the node agents accept only this identity (exec, attach, port-forward, logs, stats)
    kubelet = KubeletClient(client_context(apiserver_kubelet_client_paths(args.certs)))
    client = StoreClient([u for u in args.store.split(",") if u],
                         tls=apiserver_store_client_paths(args.certs), timeout=10.0,
                         watch_retry_deadline=3600.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with client:
        api = APIState.build(client, server_url=f"https://{args.listen}", kubelet=kubelet,
                             tokens=tokens, toleration_seconds=(
                                 args.default_not_ready_toleration_seconds,
                                 args.default_unreachable_toleration_seconds),
                             service_cidr=args.service_cluster_ip_range)
        app = build_app(api, ServerConfig(server_address=args.listen,
                                          bootstrap=not args.no_bootstrap))
        # handler_cancellation: a client that disconnects cancels its handler, which is how
        # an idle watch learns its client is gone.
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0,
                               access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, host or "127.0.0.1", int(port), ssl_context=tls,
                           backlog=1024, reuse_address=True)
        await site.start()
        log.info("apiserver serving on https://%s", args.listen)
        print(f"apiserver ready on https://{args.listen}", flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep running without it
        pass
    tune_gc()
    try:
        asyncio.run(serve(args))
    except CertsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
