"""A component's own HTTPS listener: ``/metrics`` (Prometheus text), ``/healthz``, ``/readyz``
and ``/leader``, for the controller-manager, the scheduler and node agents.

Like every ketch listener it requires a client certificate from the cluster CA (a scraper uses
one; ``ketch status`` uses the admin's).  ``checks`` maps a readiness check's name to a
callable that returns None when healthy or a reason string.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

__all__ = ["health_app", "serve_health"]

Check = Callable[[], "str | None"]


def health_app(registry: CollectorRegistry, *, checks: Mapping[str, Check] | None = None,
               leader: Callable[[], str] | None = None) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": "text/plain; version=0.0.4"})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        failed = [(n, why) for n, fn in (checks or {}).items() if (why := fn()) is not None]
        if failed:
            body = "".join(f"[-]{n} failed: {why}\n" for n, why in failed)
            return web.Response(text=body + "readyz check failed", status=500)
        return web.Response(text="ok")

    async def wholeads(_: web.Request) -> web.Response:
        return web.json_response({"leader": leader() if leader else ""})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/leader", wholeads)
    return app


async def serve_health(app: web.Application, listen: str, tls: ssl.SSLContext) -> Any:
    """Serve ``app`` on ``HOST:PORT`` (port 0: any); returns the runner (``await
    runner.cleanup()`` to stop) with ``runner.addresses`` telling where it listens."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port), ssl_context=tls)
    await site.start()
    return runner
