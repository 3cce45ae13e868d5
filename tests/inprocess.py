"""The fast test tier: a real apiserver (the whole pipeline, watch cache and all) over an
in-memory store, served with real TLS on a loopback port inside the test's own event loop,
and :mod:`control.client` clients of it with real certificates.

A controller, the scheduler or a client-library feature is tested against it in milliseconds;
the real-process tests (``ketch up``, kubectl) stay few and broad.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from certs.layout import (
    CertPaths,
    admin_paths,
    controller_manager_paths,
    init_cluster_certs,
    issue_node,
    node_paths,
    scheduler_paths,
    service_account_key,
)
from control.api.errors import AlreadyExists
from control.apiserver.__main__ import serving_context
from control.apiserver.app import ServerConfig, build_app
from control.apiserver.bootstrap import SYSTEM_NAMESPACES
from control.apiserver.serviceaccounts.tokens import TokenIssuer
from control.apiserver.state import APIState
from control.client import ApiClient, ClientConfig
from control.client.resources import SERVICEACCOUNTS
from store.memory import MemoryStore

__all__ = ["InProcessAPI", "make_certs", "serve_api"]


def make_certs(directory: Path) -> Path:
    """A cluster PKI in ``directory`` (idempotent; shared by a whole test session)."""
    init_cluster_certs(directory, replicas=["s1"])
    return directory


@dataclass
class InProcessAPI:
    url: str
    certs: Path
    store: MemoryStore
    state: APIState
    app: web.Application

    def config(self, paths: CertPaths | None = None, *, user: str = "") -> ClientConfig:
        return ClientConfig.from_cert_paths(self.url, paths or admin_paths(self.certs),
                                            user=user or "admin")

    def client(self, paths: CertPaths | None = None, **kw: object) -> ApiClient:
        """A client (``async with`` it) as admin, or as the identity in ``paths``."""
        return ApiClient(self.config(paths), **kw)  # type: ignore[arg-type]

    def controller_manager(self, **kw: object) -> ApiClient:
        return self.client(controller_manager_paths(self.certs), **kw)

    def scheduler(self, **kw: object) -> ApiClient:
        return self.client(scheduler_paths(self.certs), **kw)

    def node(self, name: str, **kw: object) -> ApiClient:
        issue_node(self.certs, name)
        return self.client(node_paths(self.certs, name), **kw)


@asynccontextmanager
async def serve_api(certs: Path, *, progress_interval: float = 0.2,
                    bootstrap: bool = True) -> AsyncIterator[InProcessAPI]:
    """An apiserver over a fresh :class:`MemoryStore`, ready when the block starts."""
    store = MemoryStore(progress_interval=progress_interval)
    state = APIState.build(store, tokens=TokenIssuer(  # type: ignore[arg-type]
        service_account_key(certs)))
    app = build_app(state, ServerConfig(server_address="127.0.0.1:0", bootstrap=bootstrap))
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5, access_log=None,
                           handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=serving_context(str(certs)))
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    served = InProcessAPI(f"https://127.0.0.1:{port}", certs, store, state, app)
    try:
        if bootstrap:
            await _default_accounts(served)
        yield served
    finally:
        await runner.cleanup()
        await store.close()


async def _default_accounts(api: InProcessAPI) -> None:
    """The ``default`` ServiceAccount of each system namespace, as the controller-manager's
    serviceaccount controller would have made them (no controller runs here unless a test
    starts one; pods need their account to be admitted)."""
    async with api.client() as admin:
        for ns in SYSTEM_NAMESPACES:
            try:
                await admin.create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                     "metadata": {"name": "default"}}, ns)
            except AlreadyExists:
                pass
