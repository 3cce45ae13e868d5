"""A small async JSON client for the apiserver over real HTTPS with a client certificate.

``await c.get(path)`` and friends return a :class:`Reply` that unpacks as ``(status, body)``
(the body is the decoded JSON, or the text when it is not JSON) and also carries the response
headers.  :meth:`APIClient.watch` opens a watch stream whose events are read one JSON line at
a time with a deadline, so a test never hangs on a stream that stays silent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from certs.layout import CertPaths
from certs.tls import client_context

__all__ = ["APIClient", "Reply", "WatchStream", "poll_async"]

JSON = "application/json"


@dataclass
class Reply:
    """One response: ``status, body = reply``; ``headers`` for Warning, Content-Type, ..."""

    status: int
    body: Any
    headers: CIMultiDictProxy[str] = field(
        default_factory=lambda: CIMultiDictProxy(CIMultiDict()))

    def __iter__(self) -> Iterator[Any]:
        return iter((self.status, self.body))


def _payload(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class WatchStream:
    """The events of one open watch response, one JSON object per line."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.status = resp.status
        self.headers = resp.headers

    async def next(self, timeout: float = 15.0) -> dict[str, Any] | None:
        """The next event, or None when the server ended the stream; TimeoutError if nothing
        arrives within ``timeout`` seconds."""
        line = await asyncio.wait_for(self.resp.content.readline(), timeout)
        if not line:
            return None
        return json.loads(line)

    async def collect(self, until: Callable[[list[dict[str, Any]]], bool], *,
                      timeout: float = 20.0) -> list[dict[str, Any]]:
        """Events until ``until(events)`` holds (or the stream ends); TimeoutError after
        ``timeout`` seconds in all."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not until(events):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"watch condition not met in {timeout}s; got {events}")
            ev = await self.next(left)
            if ev is None:
                break
            events.append(ev)
        return events


class APIClient:
    """An aiohttp session to ``base_url`` presenting the certificate in ``paths``."""

    def __init__(self, base_url: str, paths: CertPaths) -> None:
        self.base_url = base_url.rstrip("/")
        self._ssl = client_context(paths)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use `async with APIClient(...)`"
        return self._session

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str | None = JSON, params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None,
                      timeout: float = 30.0) -> Reply:
        """``content_type=None`` sends no Content-Type header at all (as the Python client
        does for some bodies)."""
        hdrs = dict(headers or {})
        skip: tuple[str, ...] = ()
        data = _payload(body)
        if data is not None:
            if content_type is None:
                skip = ("Content-Type",)
            else:
                hdrs["Content-Type"] = content_type
        async with self.session.request(
                method, self.base_url + path, data=data, params=params, headers=hdrs,
                skip_auto_headers=skip,
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            raw = await resp.read()
            try:
                decoded: Any = json.loads(raw) if raw else None
            except ValueError:
                decoded = raw.decode(errors="replace")
            return Reply(resp.status, decoded, resp.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> Reply:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> Reply:
        return await self.request("PUT", path, body, **kw)

    async def patch(self, path: str, body: Any, *,
                    content_type: str | None = "application/merge-patch+json",
                    **kw: Any) -> Reply:
        return await self.request("PATCH", path, body, content_type=content_type, **kw)

    async def delete(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.request("DELETE", path, body, **kw)

    @asynccontextmanager
    async def watch(self, path: str, params: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None) -> AsyncIterator[WatchStream]:
        """A watch of ``path`` (``watch=true`` is added); closed when the block ends."""
        query = {"watch": "true", **(params or {})}
        async with self.session.get(self.base_url + path, params=query,
                                    headers=dict(headers or {})) as resp:
            yield WatchStream(resp)


async def poll_async(probe: Callable[[], Any], *, timeout: float = 20.0,
                     interval: float = 0.05) -> Any:
    """Await ``probe()`` until it returns something truthy without raising; else
    TimeoutError naming the last error."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await probe()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - "eventually succeeds": keep the last cause
            last = e
        await asyncio.sleep(interval)
    raise TimeoutError(f"condition not met in {timeout}s (last error: {last!r})")
