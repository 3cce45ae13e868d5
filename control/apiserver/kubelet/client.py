"""The apiserver's client of the node agents' streaming servers: TLS verified against the
cluster CA (the agent's serving certificate must name the address dialled), presenting the
apiserver's own kubelet-client certificate, which is the only identity an agent accepts.

Failures to reach an agent become the API error kube-apiserver answers with (500, ``error
dialing backend: …``), raised before anything has been sent to the caller, so an exec whose
agent is down is a refused upgrade and kubectl shows the message.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp

from control.api.errors import APIError, ServiceUnavailable
from control.api.streamproto.options import HEALTHZ_PATH

from .location import Endpoint

__all__ = ["KubeletClient", "dial_error", "require"]

Query = Sequence[tuple[str, str]]


def dial_error(endpoint: Endpoint, cause: BaseException | str) -> APIError:
    """kube-apiserver's answer when the node's agent cannot be reached (reason Unknown)."""
    if isinstance(cause, asyncio.TimeoutError):
        cause = f"dial tcp {endpoint.host}:{endpoint.port}: i/o timeout"
    return APIError(500, "", f"error dialing backend: {cause}")


class KubeletClient:
    """One connection pool to every agent; :meth:`close` it when the apiserver stops.

    ``connect_timeout`` bounds connecting (TCP and TLS); streams themselves never time out
    here (an exec or a followed log lasts as long as its client wants).
    """

    def __init__(self, tls: ssl.SSLContext, *, connect_timeout: float = 5.0) -> None:
        self._tls = tls
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout,
                                              sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._tls, limit=0),
                timeout=self._timeout, auto_decompress=False)
        return self._session

    async def ws_connect(self, endpoint: Endpoint, path: str, query: Query,
                         protocol: str) -> aiohttp.ClientWebSocketResponse:
        """A WebSocket to the agent speaking exactly ``protocol``; APIError when the agent
        cannot be reached or does not upgrade with it."""
        try:
            ws = await self._client().ws_connect(
                endpoint.url(path), params=list(query), protocols=(protocol,),
                autoping=True, max_msg_size=4 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as e:
            raise dial_error(endpoint, f"the node agent of {endpoint.node} refused the "
                             f"upgrade: {e.status} {e.message}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise dial_error(endpoint, e) from None
        if ws.protocol != protocol:
            await ws.close()
            raise dial_error(endpoint, f"the node agent of {endpoint.node} answered without "
                             f"the {protocol} protocol")
        return ws

    @asynccontextmanager
    async def get(self, endpoint: Endpoint, path: str, query: Query = (), *,
                  timeout: float | None = None) -> AsyncIterator[aiohttp.ClientResponse]:
        """``GET path`` on the agent; the response is the caller's to read within the block.
        ``timeout`` (seconds) bounds the whole exchange when given."""
        limit = None if timeout is None else aiohttp.ClientTimeout(total=timeout)
        try:
            resp = await self._client().get(endpoint.url(path), params=list(query),
                                            timeout=limit or self._timeout)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise dial_error(endpoint, e) from None
        try:
            yield resp
        finally:
            resp.release()

    async def probe(self, endpoint: Endpoint) -> None:
        """Reach the agent's ``/healthz``: the same APIError a real request would get when it
        cannot be reached (the SPDY fallback answers with it)."""
        async with self.get(endpoint, HEALTHZ_PATH, timeout=5.0) as resp:
            if resp.status != 200:
                raise dial_error(endpoint, f"the node agent of {endpoint.node} answered "
                                 f"{resp.status} to /healthz")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def require(client: KubeletClient | None) -> KubeletClient:
    """The apiserver's kubelet client; 503 when it was started without one."""
    if client is None:
        raise ServiceUnavailable("this apiserver has no kubelet client certificate "
                                 "(apiserver-kubelet-client.crt): it cannot reach node agents")
    return client
