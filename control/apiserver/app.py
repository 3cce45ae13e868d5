"""The apiserver application: routes, startup (store client, watch cache, bootstrap) and the
non-resource endpoints (version, health, metrics, discovery, OpenAPI).

Startup order: open the store client, start the watch cache and wait until it has listed,
write the bootstrap objects that are missing (namespaces, RBAC policy), then serve.  Every
apiserver does the same, so several can run side by side against one store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import logging
import platform
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest

from control.api.errors import APIError
from control.apiserver.openapi import openapi_document, openapi_root
from control.apiserver.openapi.v2 import v2_document
from control.apiserver.rbac import UserInfo

from . import discovery
from .bootstrap import bootstrap
from .codec import dumps, respond
from .crd.catalog import CRD_PREFIX
from .crd.controller import CRDController
from .endpoints_reconciler import EndpointReconciler
from .flowcontrol import FlowControl, flow_control
from .pipeline import INFO, USER, Metrics, TokenAuthenticator, pipeline
from .resources import handle_resource
from .serviceaccounts.tokenrequest import discovery_document
from .state import APIState

__all__ = ["ServerConfig", "build_app"]

log = logging.getLogger("ketch.apiserver")

GIT_VERSION = "v1.37.0-ketch"


@dataclass(frozen=True)
class ServerConfig:
    server_address: str = "127.0.0.1:6443"
    bootstrap: bool = True
    #: Seats of API priority and fairness (kube's --max-requests-inflight plus
    #: --max-mutating-requests-inflight, 600 there): fewer here, as one Python event loop
    #: serves far fewer requests at once (see :mod:`.flowcontrol`).
    max_requests_inflight: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


def _package_version() -> str:
    try:
        return importlib.metadata.version("ketch")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "0.1.0"


def _version() -> dict[str, Any]:
    return {"major": "1", "minor": "37", "gitVersion": GIT_VERSION,
            "gitCommit": _package_version(), "gitTreeState": "clean",
            "buildDate": "2026-11-25T00:00:00Z", "goVersion": f"python{platform.python_version()}",
            "compiler": "cpython", "platform": f"{platform.system().lower()}/"
            f"{platform.machine().replace('x86_64', 'amd64')}"}


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain")


async def _non_resource(request: web.Request, api: APIState, cfg: ServerConfig,
                        metrics: Metrics) -> web.StreamResponse:
    path = request.path.rstrip("/") or "/"
    accept = request.headers.get("Accept", "")
    if path == "/version":
        return respond(_version())
    if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/",
                                                                      "/readyz/")):
        if path.startswith("/readyz"):
            failed = _readiness_failures(api, request.app[_TASKS])
            if failed:
                return _text("".join(f"[-]{f}\n" for f in failed) + "readyz check failed", 500)
        return _text("ok")
    if path.startswith(("/.well-known/", "/openid/")):
        found = discovery_document(api, path, api.server_url or f"https://{cfg.server_address}")
        if found is not None:
            return found
    if path == "/metrics":
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": "text/plain; version=0.0.4"})
    if path in ("/api", "/apis"):
        custom = api.catalog.documents()
        if discovery.wants_aggregated(accept):
            doc = discovery.aggregated(path == "/api")
            if path == "/apis" and custom.aggregated:
                doc = {**doc, "items": [*doc["items"], *custom.aggregated]}
            return web.Response(body=dumps(doc),
                                headers={"Content-Type": discovery.AGGREGATED_TYPE})
        if path == "/api":
            return respond(discovery.api_versions(cfg.server_address))
        groups = discovery.api_group_list()
        if custom.group_list:
            groups = {**groups, "groups": [*groups["groups"], *custom.group_list]}
        return respond(groups)
    parts = path.strip("/").split("/")
    if parts[0] in ("api", "apis") and len(parts) in (2, 3):
        group, version = ("", parts[1]) if parts[0] == "api" else (
            parts[1], parts[2] if len(parts) == 3 else "")
        listed = discovery.resource_list(group, version) if version else None
        if listed is None and version:
            listed = api.catalog.documents().resource_lists.get((group, version))
        if listed is not None:
            return respond(listed)
    if path == "/openapi/v2":
        swagger, content_type = v2_document(accept)
        return web.Response(body=swagger, headers={"Content-Type": content_type})
    if path == "/openapi/v3" or path.startswith("/openapi/v3/"):
        body = _openapi(api, path[len("/openapi/v3/"):])
        if body is not None:
            return web.Response(body=body, content_type="application/json")
    raise APIError(404, "NotFound", "the server could not find the requested resource")


def _token_authenticator(api: APIState) -> TokenAuthenticator | None:
    """Bearer tokens checked against this apiserver's key and its cache (the service
    account and bound object must still exist); None without a key (tokens refused)."""
    issuer = api.tokens
    if issuer is None:
        return None

    async def check(token: str) -> UserInfo:
        return await issuer.authenticate(token, api.view.get_fresh, api.inputs.now())

    return check


#: The app's API priority and fairness (its levels, for in-process tests).
FLOW_CONTROL: web.AppKey[FlowControl] = web.AppKey("flow_control", FlowControl)
_TASKS: web.AppKey[list[asyncio.Task[None]]] = web.AppKey("background_tasks", list)


def _readiness_failures(api: APIState, tasks: list[asyncio.Task[None]]) -> list[str]:
    """Why this apiserver is not ready: a cache that has not listed yet, or a background task
    (the watch cache's feed) that has ended: nothing restarts them, so a
    process whose feed died must stop taking traffic rather than serve a frozen cache."""
    failed = []
    if not api.cache.ready.is_set():
        failed.append("informer-sync failed: watch cache not ready")
    for t in tasks:
        if t.done():
            why = "cancelled" if t.cancelled() else repr(t.exception())
            failed.append(f"poststarthook/{t.get_name()} failed: the task ended ({why})")
    return failed


def _openapi(api: APIState, gv_path: str) -> bytes | None:
    """An OpenAPI document: the built-in ones (static), the custom group versions' (rebuilt
    when the CRDs change), or the root listing both."""
    custom = api.catalog.documents().openapi
    if not gv_path:
        if not custom:
            return _openapi_bytes("")
        root = openapi_root()
        paths = {**root["paths"], **{p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"}
                                     for p, (_, h) in custom.items()}}
        return dumps({**root, "paths": paths})
    found = custom.get(gv_path.strip("/"))
    return found[0] if found is not None else _openapi_bytes(gv_path)


@functools.cache
def _openapi_bytes(gv_path: str) -> bytes | None:
    """The encoded OpenAPI documents (static: encoded once, ~280 KB for api/v1)."""
    doc = openapi_root() if not gv_path else openapi_document(gv_path)
    return None if doc is None else dumps(doc)


def build_app(api: APIState, cfg: ServerConfig | None = None) -> web.Application:
    """The aiohttp application over ``api``; its cleanup context starts and stops the watch
    cache (the caller owns the store client)."""
    cfg = cfg or ServerConfig()
    metrics = Metrics()
    metrics.watchers.set_function(lambda: api.cache.watcher_count)
    api.watch_delivered = metrics.watch_delivered
    flow = FlowControl(cfg.max_requests_inflight, registry=metrics.registry)
    app = web.Application(middlewares=[pipeline(api.authorizer, metrics,
                                                 tokens=_token_authenticator(api)),
                                       flow_control(flow, INFO, USER)],
                          client_max_size=4 * 1024 * 1024)
    app[FLOW_CONTROL] = flow

    async def handler(request: web.Request) -> web.StreamResponse:
        info = request[INFO]
        if info.is_resource_request:
            return await handle_resource(request, api, info, request[USER])
        return await _non_resource(request, api, cfg, metrics)

    app.router.add_route("*", "/{tail:.*}", handler)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        tasks = app[_TASKS]
        tasks.append(asyncio.create_task(api.cache.run(), name="watch-cache"))
        tasks[0].add_done_callback(_log_end)
        try:
            ready = asyncio.create_task(api.cache.ready.wait())
            await asyncio.wait([ready, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
            if tasks[0].done():
                ready.cancel()
                tasks[0].result()  # the cache died before it was ready: say why
            api.catalog.load(o for _, o in api.cache.snapshot(CRD_PREFIX)[0])
            if cfg.bootstrap:
                await bootstrap(api)
            crds = asyncio.create_task(CRDController(api, api.catalog).run(),
                                       name="crd-controller")
            crds.add_done_callback(_log_end)
            tasks.append(crds)
            if cfg.bootstrap and not cfg.server_address.endswith(":0"):
                endpoints = asyncio.create_task(
                    EndpointReconciler(api, cfg.server_address).run(),
                    name="kubernetes-endpoints")
                endpoints.add_done_callback(_log_end)
                tasks.append(endpoints)
            yield
        finally:
            api.cache.close()
            if api.kubelet is not None:
                await api.kubelet.close()
            for t in tasks:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)

    app[_TASKS] = []
    app.cleanup_ctx.append(lifecycle)
    return app


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        log.error("background task %s ended: %r; /readyz now fails", task.get_name(),
                  task.exception())
