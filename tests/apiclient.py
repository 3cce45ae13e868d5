"""The test suite's view of the apiserver over real HTTPS with a client certificate: the shared
API client (:class:`control.client.ApiClient`) without retries, answering with what came over
the wire, so tests can assert codes, headers and bodies exactly.

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
from control.client import ApiClient, ClientConfig

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
    """The shared client to ``base_url`` presenting the certificate in ``paths``."""

    def __init__(self, base_url: str, paths: CertPaths) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = ApiClient(ClientConfig.from_cert_paths(self.base_url, paths),
                                retries=False, timeout=30.0, attempt_timeout=30.0)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        return self.client.session

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str | None = JSON, params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None,
                      timeout: float = 30.0) -> Reply:
        """``content_type=None`` sends no Content-Type header at all (as the Python client
        does for some bodies)."""
        raw = await self.client.raw(method, path, body=body, params=params,
                                    content_type=content_type or "", headers=headers,
                                    timeout=timeout, safe=True)
        try:
            decoded: Any = json.loads(raw.body) if raw.body else None
        except ValueError:
            decoded = raw.body.decode(errors="replace")
        return Reply(raw.status, decoded, raw.headers)  # type: ignore[arg-type]

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
        resp = await self.client.open_stream(path, query, headers=headers,
                                             raise_for_status=False)
        try:
            yield WatchStream(resp)
        finally:
            resp.release()


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
