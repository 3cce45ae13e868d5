"""``python -m store --config FILE``: run one store replica in the foreground.

The process serves the HTTPS API on the member's client address and Raft on its Raft address,
and stops cleanly on SIGTERM/SIGINT (journal flushed, sockets closed).  Exit codes: 0 clean stop,
2 bad configuration (the message says what to fix).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from certs.clientauth import request_client_certificates
from certs.layout import CertPaths
from certs.tls import server_context

from .config import ReplicaConfig, load_config
from .node import StoreNode
from .server import build_app

log = logging.getLogger("store")


def _read_secret(cfg: ReplicaConfig) -> str:
    try:
        secret = cfg.raft_secret_file.read_text().strip()
    except OSError as e:
        raise ValueError(f"cannot read the Raft secret {cfg.raft_secret_file}: {e}") from e
    if len(secret) < 16:
        raise ValueError(f"the Raft secret in {cfg.raft_secret_file} is too short (< 16 chars)")
    return secret


async def serve(cfg: ReplicaConfig) -> None:
    """Run the replica until SIGTERM/SIGINT."""
    secret = _read_secret(cfg)
    # Two threads share the GIL: the event loop (HTTP) and the Raft tick thread.  With the
    # default 5 ms switch interval a busy loop makes a woken Raft thread wait up to 5 ms.
    sys.setswitchinterval(0.0005)
    # The state machine holds many long-lived small objects; frequent full collections
    # would walk all of them and show up as tail latency.  Collect young objects less often
    # and keep everything allocated at start-up out of the collector's way.
    gc.set_threshold(50_000, 50, 100)
    gc.freeze()
    ssl_ctx = server_context(CertPaths(ca=cfg.ca, cert=cfg.cert, key=cfg.key))
    # bad client certificates get a 401 ``unauthenticated`` answer, not a reset
    request_client_certificates(ssl_ctx, cfg.ca)
    loop = asyncio.get_running_loop()
    node = StoreNode(cfg, secret=secret, loop=loop)
    await node.start()
    runner = web.AppRunner(
        build_app(node), access_log=None, handler_cancellation=True, shutdown_timeout=2.0
    )
    await runner.setup()
    url = urlsplit(cfg.me.client)
    site = web.TCPSite(runner, url.hostname, url.port, ssl_context=ssl_ctx, backlog=1024)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        await node.stop()
        raise ValueError(f"cannot listen on {cfg.me.client}: {e.strerror} "
                         "(is another replica using that port?)") from e
    log.info("replica %s serving %s, raft %s (fsync %s)", cfg.name, cfg.me.client, cfg.me.raft,
             "on" if cfg.fsync else "OFF")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("replica %s stopping", cfg.name)
    node.hub.reset()  # end watch streams so their handlers return and clients resume elsewhere
    await runner.cleanup()
    await node.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m store", description="Run one ketch store replica.")
    p.add_argument("--config", type=Path, required=True, help="replica config file (JSON)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = load_config(args.config)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        import uvloop

        runner: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    except ImportError:  # uvloop is a dependency; fall back only where it cannot install
        runner = asyncio.run
    try:
        runner(serve(cfg))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
