"""The REST client every component but the apiserver uses: JSON dicts over HTTPS with the
component's client certificate (no generated model classes on the hot path).

One :class:`ApiClient` owns one aiohttp session (pooled keep-alive connections) to one or more
apiservers.  Every non-2xx answer becomes the API error it stands for, once, here
(:func:`control.api.errors.from_status`): callers catch ``NotFound``, ``Conflict``,
``AlreadyExists``, ``Forbidden``, ``Invalid``, ``Gone``/``Expired``, ``TooManyRequests``,
``Timeout``, ``ServiceUnavailable``.

Retries (within the request's deadline, with jittered exponential back-off):

* a connection that could not be made (the request was never sent) — any verb, on the next
  apiserver: this is the failover when one dies;
* an answer of 429 or 503 (the server did nothing) — any verb, after ``Retry-After``;
* a lost answer, 500 or 504 — only for safe requests: reads, PUTs that carry a
  resourceVersion (a replay is refused with 409), DELETEs, and merge/strategic/apply patches
  (declarative: a replay yields the same object).  For anything else the caller gets
  :class:`~control.client.errors.OutcomeUnknown`: the write may have happened.

``qps``/``burst`` bound the request rate like client-go's (0: unbounded).  ``fence``, when
given, is asked before every write; a False answer raises
:class:`~control.client.errors.NotLeading` without sending — how a leader-elected component
that lost its lease stops writing at once.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp

from control.api.clock import Clock, RealClock
from control.api.errors import APIError, from_status

from .config import ClientConfig
from .errors import Congested, NotLeading, OutcomeUnknown, Unreachable
from .ratelimit import Backoff, TokenBucket
from .resources import Resource

__all__ = ["APPLY", "JSON_PATCH", "MERGE", "STRATEGIC", "ApiClient", "RawReply", "RequestHook",
           "WatchEvent"]

log = logging.getLogger("ketch.client")

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
_PATCH_TYPES = {"merge": MERGE, "strategic": STRATEGIC, "json": JSON_PATCH, "apply": APPLY}
_RETRY_ALWAYS = (429, 503)
_RETRY_IF_SAFE = (500, 502, 504)

#: Called after every request: (method, resource or path, HTTP code or 0, seconds).
RequestHook = Callable[[str, str, int, float], None]


@dataclass(frozen=True)
class RawReply:
    """An answer as it came: HTTP status, body bytes, headers."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: ``type`` ADDED, MODIFIED, DELETED or BOOKMARK, and the object."""

    type: str
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


class ApiClient:
    """A client of the apiservers in ``config``; use ``async with`` (or :meth:`close`)."""

    def __init__(self, config: ClientConfig, *, user_agent: str = "ketch", qps: float = 0,
                 burst: int = 0, timeout: float = 30.0, attempt_timeout: float = 10.0,
                 max_connections: int = 100, clock: Clock | None = None,
                 fence: Callable[[], bool] | None = None,
                 on_request: RequestHook | None = None, retries: bool = True) -> None:
        if not config.servers:
            raise ValueError("no apiserver URL in the client configuration")
        self.config = config
        self.user_agent = user_agent
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.clock = clock or RealClock()
        self.fence = fence
        self.on_request = on_request
        self.retries = retries  # False: one attempt, every failure a data point (benchmarks)
        self._limiter = TokenBucket(qps, burst or max(1, int(qps)), clock=self.clock)
        self._max_connections = max_connections
        # A request waits for a free connection here, before its attempt's timer starts:
        # waiting in aiohttp's pool would count against the attempt, and a burst of a node's
        # pod work then timed out in the client's own queue (see :meth:`raw`).
        self._slots = asyncio.Semaphore(max_connections) if max_connections > 0 else None
        self._session: aiohttp.ClientSession | None = None
        self._stream_session: aiohttp.ClientSession | None = None
        self._current = 0  # index of the apiserver that answered last

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pool requests share: at most ``max_connections`` (a request waits for a free
        one rather than paying a TLS handshake in a burst), idle ones kept 60 s (client-go's
        transport keeps them 90 s; the apiserver closes them after 75 s)."""
        if self._session is None or self._session.closed:
            self._session = self._new_session(self._max_connections, keepalive=60.0)
        return self._session

    @property
    def stream_session(self) -> aiohttp.ClientSession:
        """The pool of streams (watches, logs): each holds its connection for its life, so
        they are not counted against the requests' limit (a full pool of watches would
        starve every request)."""
        if self._stream_session is None or self._stream_session.closed:
            self._stream_session = self._new_session(0, keepalive=15.0)
        return self._stream_session

    def _new_session(self, limit: int, *, keepalive: float) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self.config.ssl, limit=limit, limit_per_host=0,
                                         keepalive_timeout=keepalive,
                                         enable_cleanup_closed=True)
        return aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": self.user_agent,
                                          "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None))

    async def close(self) -> None:
        for session in (self._session, self._stream_session):
            if session is not None:
                await session.close()
        self._session = self._stream_session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def unfenced(self) -> ApiClient:
        """This client without its write fence, sharing its connections (the leader elector's
        own Lease writes must go out whether or not it currently leads)."""
        twin = copy.copy(self)
        twin.fence = None
        twin._session = self.session
        twin._stream_session = self.stream_session
        return twin

    @property
    def server(self) -> str:
        """The apiserver requests go to first."""
        return self.config.servers[self._current % len(self.config.servers)]

    # --- verbs -----------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str = "", *,
                  subresource: str = "", params: Mapping[str, str] | None = None
                  ) -> dict[str, Any]:
        return await self.request("GET", res.path(namespace, name, subresource), params=params,
                                  what=str(res))

    async def list(self, res: Resource, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_: str = "",
                   resource_version: str = "", resource_version_match: str = ""
                   ) -> dict[str, Any]:
        """One page of the list (``items``, ``metadata.resourceVersion`` and ``continue``)."""
        params = _params(labelSelector=label_selector, fieldSelector=field_selector,
                         limit=str(limit) if limit else "", resourceVersion=resource_version,
                         resourceVersionMatch=resource_version_match,
                         **{"continue": continue_})
        return await self.request("GET", res.path(namespace), params=params, what=str(res))

    async def list_all(self, res: Resource, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = 500
                       ) -> tuple[builtins.list[dict[str, Any]], str]:
        """Every item, following ``continue`` pages of one snapshot; and that snapshot's
        resourceVersion (where a watch that misses nothing starts)."""
        items: builtins.list[dict[str, Any]] = []
        token, rv = "", ""
        while True:
            page = await self.list(res, namespace, label_selector=label_selector,
                                   field_selector=field_selector, limit=page_size,
                                   continue_=token)
            items.extend(page.get("items") or ())
            meta = page.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion") or "")
            token = str(meta.get("continue") or "")
            if not token:
                return items, rv

    async def create(self, res: Resource, obj: dict[str, Any], namespace: str = "", *,
                     subresource: str = "", name: str = "", field_manager: str = "",
                     dry_run: bool = False) -> dict[str, Any]:
        """POST ``obj`` (into ``namespace``, default the object's own); with ``subresource``
        (``binding``, ``eviction``) to ``name``'s subresource."""
        ns = namespace or (obj.get("metadata") or {}).get("namespace") or ""
        params = _params(fieldManager=field_manager, dryRun="All" if dry_run else "")
        return await self.request("POST", res.path(ns, name, subresource), body=obj,
                                  params=params, what=str(res))

    async def update(self, res: Resource, obj: dict[str, Any], *, subresource: str = "",
                     field_manager: str = "") -> dict[str, Any]:
        """PUT ``obj`` (namespace and name from its metadata).  With a resourceVersion in it
        the write is a compare-and-swap (409 Conflict if the object changed since)."""
        meta = obj.get("metadata") or {}
        path = res.path(meta.get("namespace") or "", meta.get("name") or "", subresource)
        return await self.request("PUT", path, body=obj, params=_params(
            fieldManager=field_manager), what=str(res), safe=bool(meta.get("resourceVersion")))

    async def update_status(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.update(res, obj, subresource="status")

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str = "", *,
                    patch_type: str = "merge", subresource: str = "", field_manager: str = "",
                    force: bool = False) -> dict[str, Any]:
        """PATCH with ``patch_type`` ``merge``, ``strategic``, ``json`` or ``apply`` (server-side
        apply needs ``field_manager``)."""
        ctype = _PATCH_TYPES[patch_type]
        params = _params(fieldManager=field_manager, force="true" if force else "")
        return await self.request("PATCH", res.path(namespace, name, subresource), body=patch,
                                  params=params, content_type=ctype, what=str(res),
                                  safe=patch_type != "json")

    async def delete(self, res: Resource, name: str, namespace: str = "", *,
                     propagation_policy: str = "", grace_period_seconds: int | None = None,
                     preconditions: Mapping[str, str] | None = None) -> dict[str, Any]:
        """DELETE; ``preconditions`` (``uid``, ``resourceVersion``) make it conditional."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            body["preconditions"] = dict(preconditions)
        return await self.request("DELETE", res.path(namespace, name), body=body,
                                  what=str(res), safe=True)

    # --- watch -----------------------------------------------------------------------------

    async def watch(self, res: Resource, namespace: str = "", *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "",
                    allow_bookmarks: bool = True, send_initial_events: bool = False,
                    timeout_seconds: int | None = None, idle_timeout: float = 60.0
                    ) -> AsyncIterator[WatchEvent]:
        """The events of one watch stream, until the server ends it (then the caller resumes
        from the last resourceVersion it saw).  An ERROR event raises its error (410 Expired:
        relist); a stream silent for ``idle_timeout`` seconds (bookmarks come every few seconds
        from an idle store) raises :class:`OutcomeUnknown` as a dead connection."""
        params = _params(watch="true", resourceVersion=resource_version,
                         labelSelector=label_selector, fieldSelector=field_selector,
                         allowWatchBookmarks="true" if allow_bookmarks else "",
                         timeoutSeconds=str(timeout_seconds) if timeout_seconds else "")
        if send_initial_events:
            params.update(sendInitialEvents="true", resourceVersionMatch="NotOlderThan")
        resp = await self.open_stream(res.path(namespace), params, what=str(res))
        try:
            while True:
                try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                    async with asyncio.timeout(idle_timeout):
                        line = await resp.content.readline()
                except TimeoutError:
                    raise OutcomeUnknown(f"watch of {res} silent for {idle_timeout:.0f}s")
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
                    raise OutcomeUnknown(f"watch of {res} broke: {e}") from None
                if not line:
                    return
                try:
                    ev = json.loads(line)
                except ValueError:
                    raise OutcomeUnknown(f"watch of {res} sent a line that is not JSON") from None
                typ, obj = ev.get("type"), ev.get("object") or {}
                if typ == "ERROR":
                    raise from_status(int(obj.get("code") or 500), obj)
                yield WatchEvent(str(typ), obj)
        finally:
            resp.release()

    async def open_stream(self, path: str, params: Mapping[str, str] | None = None, *,
                          what: str = "", server: int | None = None,
                          headers: Mapping[str, str] | None = None,
                          raise_for_status: bool = True) -> aiohttp.ClientResponse:
        """Open a streaming GET (a watch, a log) with the read retries (failover, 429/503
        after Retry-After); the caller reads the response and releases it.  With
        ``raise_for_status=False`` a non-2xx answer is returned, not raised."""
        deadline = self.clock.monotonic() + self.timeout
        backoff = Backoff()
        while True:
            base = self.server if server is None else self.config.servers[
                server % len(self.config.servers)]
            try:
                # the answer's head within an attempt (a request lost in a partition is
                # never answered); the stream itself may then stay quiet as long as it likes
                async with asyncio.timeout(self.attempt_timeout):
                    resp = await self.stream_session.get(
                        base + path, params=params, headers=headers,
                        timeout=aiohttp.ClientTimeout(total=None))
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                if server is None:
                    self._failover(base)
                err: APIError = Unreachable(f"{base}: {e}")
                if not self.retries:
                    raise err from None
            else:
                if resp.status < 300 or not raise_for_status:
                    return resp
                body = await resp.read()
                resp.release()
                err = _error(resp.status, body)
                if not self.retries or resp.status not in _RETRY_ALWAYS + _RETRY_IF_SAFE:
                    raise err
            await self._pause(err, backoff, deadline)

    # --- the one request path -----------------------------------------------------------------

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Mapping[str, str] | None = None,
                      content_type: str = "application/json", what: str = "",
                      safe: bool | None = None, server: int | None = None) -> Any:
        """Send one request with the retries the module docstring describes; the decoded JSON
        answer, or the error it stands for.  ``server`` pins it to that apiserver (index into
        the configured URLs; no failover)."""
        reply = await self.raw(method, path, body=body, params=params,
                               content_type=content_type, what=what, safe=safe, server=server)
        if reply.status >= 300:
            raise _error(reply.status, reply.body)
        return json.loads(reply.body) if reply.body else {}

    async def raw(self, method: str, path: str, *, body: Any = None,
                  params: Mapping[str, str] | None = None,
                  content_type: str = "application/json", what: str = "",
                  safe: bool | None = None, server: int | None = None,
                  headers: Mapping[str, str] | None = None,
                  timeout: float | None = None) -> RawReply:
        """Like :meth:`request`, but the answer as it came (status, body bytes, headers) for
        callers that examine HTTP itself (tests of the apiserver, benchmarks, chaos).  Only a
        failure to get any answer raises; the retries are the same."""
        write = method not in ("GET", "HEAD")
        if write and self.fence is not None and not self.fence():
            raise NotLeading(f"{method} {path}")
        if safe is None:
            safe = not write
        data = None if body is None else (
            body if isinstance(body, bytes) else body.encode() if isinstance(body, str)
            else json.dumps(body).encode())
        hdrs = dict(headers or {})
        skip: tuple[str, ...] = ()
        if data is not None and content_type:
            hdrs.setdefault("Content-Type", content_type)
        elif data is not None:
            skip = ("Content-Type",)  # send none at all, as some clients do
        deadline = self.clock.monotonic() + (timeout or self.timeout)
        backoff = Backoff()
        while True:
            await self._limiter.wait()
            if write and self.fence is not None and not self.fence():
                raise NotLeading(f"{method} {path}")
            base = self.server if server is None else self.config.servers[
                server % len(self.config.servers)]
            try:
                async with self._slot(method, path, deadline):
                    started = self.clock.monotonic()
                    limit = aiohttp.ClientTimeout(total=max(0.1, min(
                        timeout or self.attempt_timeout, deadline - started)))
                    async with self.session.request(method, base + path, params=params,
                                                    data=data, headers=hdrs,
                                                    skip_auto_headers=skip,
                                                    timeout=limit) as resp:
                        reply = RawReply(resp.status, await resp.read(), resp.headers)
            except aiohttp.ClientConnectorError as e:
                if server is None:
                    self._failover(base)
                err: APIError = Unreachable(f"{base}: {e}")
                if not self.retries:
                    raise err from None
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                    TimeoutError) as e:
                if server is None:
                    self._failover(base)
                err = OutcomeUnknown(f"{method} {base}{path}: {type(e).__name__} {e}")
                if not safe or not self.retries:
                    self._observe(method, what or path, 0, started)
                    raise err from None
            else:
                self._observe(method, what or path, reply.status, started)
                code = reply.status
                if code < 300 or not self.retries or (
                        code not in _RETRY_ALWAYS and not (safe and code in _RETRY_IF_SAFE)):
                    return reply
                err = _error(code, reply.body)
            await self._pause(err, backoff, deadline)

    @contextlib.asynccontextmanager
    async def _slot(self, method: str, path: str, deadline: float) -> AsyncIterator[None]:
        """One of the ``max_connections`` request slots, waited for until ``deadline``
        (:class:`~control.client.errors.Congested` then: the request was not sent)."""
        if self._slots is None:
            yield
            return
        try:
            async with asyncio.timeout(max(0.0, deadline - self.clock.monotonic())):
                await self._slots.acquire()
        except TimeoutError:
            raise Congested(f"{method} {path}: all {self._max_connections} connections stayed "
                            "busy until the request's deadline") from None
        try:
            yield
        finally:
            self._slots.release()

    async def _pause(self, err: APIError, backoff: Backoff, deadline: float) -> None:
        """Sleep before the next attempt, or raise ``err`` when the deadline leaves no room."""
        delay = backoff.next()
        retry_after = err.details.get("retryAfterSeconds") if err.code in _RETRY_ALWAYS else 0
        if isinstance(retry_after, int) and retry_after > 0:
            delay = max(delay, min(float(retry_after), 5.0) * random.uniform(0.8, 1.0))
        if self.clock.monotonic() + delay >= deadline:
            raise err
        log.debug("retrying in %.2fs after %s", delay, err)
        await self.clock.sleep(delay)

    def _failover(self, server: str) -> None:
        if self.server == server and len(self.config.servers) > 1:
            self._current = (self._current + 1) % len(self.config.servers)
            log.info("apiserver %s unreachable; now using %s", server, self.server)

    def _observe(self, method: str, what: str, code: int, started: float) -> None:
        if self.on_request is not None:
            self.on_request(method, what, code, self.clock.monotonic() - started)


def _params(**kw: str) -> dict[str, str]:
    return {k: v for k, v in kw.items() if v}


def _error(code: int, raw: bytes) -> APIError:
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw
    return from_status(code, body)
