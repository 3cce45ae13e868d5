"""The node agent's streaming server: HTTPS with client certificates required, and only the
apiserver's kubelet client (``kube-apiserver-kubelet-client``) let through; everyone else,
even with a certificate from the cluster CA, gets a 403 Status.

Routes (paths in :mod:`control.api.streamproto.options`): exec, attach and port-forward
(WebSocket upgrades), container logs, ``/stats/summary`` and ``/healthz``.  The work is the
:class:`~node.streaming.handler.StreamHandler`'s; this module only routes and authorizes.

Start it with :class:`StreamingServer` (``async with``), which also owns the stats sampling
loop; :func:`build_app` is the bare application for callers that run their own site.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from aiohttp import web

from certs.authority import CertsError
from certs.layout import KUBELET_CLIENT_CN, CertPaths
from certs.tls import peer_identity, server_context
from control.api.clock import Clock, RealClock
from control.api.streamproto.options import HEALTHZ_PATH, SUMMARY_PATH

from .handler import PodRef, StreamHandler
from .logs import serve_logs
from .portforward import serve_port_forward
from .remotecommand import serve_remote_command
from .replies import status_response
from .stats import StatsCollector

__all__ = ["StreamingConfig", "StreamingServer", "build_app", "serving_context"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The kubelet authorizer's subresource names, for the Forbidden message.
_SUBRESOURCES = {"stats": "stats", "containerLogs": "log", "healthz": "healthz"}


@dataclass(frozen=True)
class StreamingConfig:
    """``node_name`` names the node in the stats; ``allowed_users`` are the client certificate
    CNs let through (only the apiserver's kubelet client by default); ``stats_interval`` is
    the sampling period of the CPU rates."""

    node_name: str
    allowed_users: frozenset[str] = field(default_factory=lambda: frozenset({KUBELET_CLIENT_CN}))
    stats_interval: float = 10.0


def serving_context(paths: CertPaths) -> ssl.SSLContext:
    """The agent's TLS context from its serving pair (``certs.layout.node_serving_paths``):
    a client certificate from the cluster CA is required at the handshake; HTTP/1.1."""
    ctx = server_context(paths)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _authorize(allowed: frozenset[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        try:
            user, _ = peer_identity(ssl_obj)
        except CertsError:
            return status_response(401, "Unauthorized", "Unauthorized")
        if user not in allowed:
            top = request.path.strip("/").split("/", 1)[0]
            sub = _SUBRESOURCES.get(top, "proxy")
            return status_response(403, "Forbidden", f"Forbidden (user={user}, verb="
                                   f"{request.method.lower()}, resource=nodes, subresource={sub})")
        return await handler(request)

    return middleware


def _pod(request: web.Request) -> PodRef:
    m = request.match_info
    return PodRef(m["namespace"], m["pod"], m.get("uid", "") or request.query.get("podUID", ""))


def build_app(handler: StreamHandler, config: StreamingConfig, *,
              clock: Clock | None = None) -> web.Application:
    """The application; its cleanup context runs the stats sampling loop."""
    clock = clock or RealClock()
    collector = StatsCollector(handler, config.node_name, clock=clock,
                               interval=config.stats_interval)
    app = web.Application(middlewares=[_authorize(config.allowed_users)])

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def exec_(request: web.Request) -> web.StreamResponse:
        return await serve_remote_command(request, handler, _pod(request),
                                          request.match_info["container"], attach=False)

    async def attach(request: web.Request) -> web.StreamResponse:
        return await serve_remote_command(request, handler, _pod(request),
                                          request.match_info["container"], attach=True)

    async def port_forward(request: web.Request) -> web.StreamResponse:
        return await serve_port_forward(request, handler, _pod(request))

    async def logs(request: web.Request) -> web.StreamResponse:
        return await serve_logs(request, handler, _pod(request),
                                request.match_info["container"], clock)

    pod = "{namespace}/{pod}"
    r = app.router
    r.add_get(HEALTHZ_PATH, healthz)
    r.add_get(SUMMARY_PATH, collector.serve)
    r.add_get(f"/containerLogs/{pod}/{{container}}", logs)
    for method in ("GET", "POST"):
        for prefix, view in (("/exec", exec_), ("/attach", attach)):
            r.add_route(method, f"{prefix}/{pod}/{{uid}}/{{container}}", view)
            r.add_route(method, f"{prefix}/{pod}/{{container}}", view)
        r.add_route(method, f"/portForward/{pod}/{{uid}}", port_forward)
        r.add_route(method, f"/portForward/{pod}", port_forward)

    async def sampling(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(collector.run(), name="stats-sampling")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(sampling)
    return app


class StreamingServer:
    """The streaming server on ``host:port`` (0: any free port; :attr:`port` says which)::

        async with StreamingServer(handler, StreamingConfig("n1"),
                                   tls=serving_context(node_serving_paths(certs, "n1")),
                                   host="127.0.0.1", port=10250) as server:
            ...  # serving until the block ends; open streams are closed then
    """

    def __init__(self, handler: StreamHandler, config: StreamingConfig, *,
                 tls: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0,
                 clock: Clock | None = None) -> None:
        self._app = build_app(handler, config, clock=clock)
        self._tls, self._host, self.port = tls, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        # handler_cancellation: a client that goes away cancels its handler (and the exec)
        self._runner = web.AppRunner(self._app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self.port, ssl_context=self._tls,
                           reuse_address=True)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
