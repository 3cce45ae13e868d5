"""How a request reaches the store: the leader first, retries, request ids, coalescing.

:class:`Transport` is the request path under :class:`store.client.StoreClient`: one aiohttp
session with mutual TLS and CBOR bodies; the last known leader first (from a status or a
``not_leader`` answer; with none known, the replicas are asked, at most once a second); a
connection error, a 503 or a 421 sends the request on to the next endpoint after a short capped
exponential backoff (:func:`store.endpoints.backoff_delay`), within ``max_retries`` retries and
the call's ``timeout``.

Every write carries a fresh request id ``[client_id, seq]`` that is reused across its retries,
so the store applies it at most once.  When the retries run out and some attempt may have
reached the store (the connection broke after sending, a timeout, a 504 answer) the write
raises :class:`~store.errors.OutcomeUnknown`, never a plain failure.  Definite errors
(``invalid_request``, ``too_large``, ``lease_not_found``, ``compacted``, ...) raise at once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import cbor2

from certs.layout import CertPaths
from certs.tls import client_context
from store.client_wire import BROKEN, HEADERS, NOT_SENT, error_of
from store.coalescing import BatchFailed, Coalescer
from store.endpoints import Endpoints, backoff_delay
from store.errors import (
    NotLeader,
    OutcomeUnknown,
    RequestExpired,
    StoreError,
    Unavailable,
    from_wire,
)

__all__ = ["Transport"]

_PROBE_INTERVAL = 1.0
_ALONE_BYTES = 256 * 1024  # bigger ops are never coalesced
_RETRYABLE = (NotLeader, Unavailable, OutcomeUnknown)


class Transport:
    """The request path of one client; see the module docstring and StoreClient for the
    parameters.  ``ends`` is the endpoint bookkeeping (shared with the client's watches)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: CertPaths,
        timeout: float,
        client_id: str | None,
        max_retries: int,
        attempt_timeout: float | None,
        coalesce: bool,
    ) -> None:
        self.ends = Endpoints(endpoints)
        self.client_id = client_id or f"{socket.gethostname()}/{os.getpid()}/{os.urandom(6).hex()}"
        self._ssl = client_context(tls)
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout or timeout / 2
        self._max_retries = max_retries
        self._seq = itertools.count(time.time_ns() // 1000)
        self._session: aiohttp.ClientSession | None = None
        self._probe_after = 0.0
        self._coalescer = Coalescer(self._send_batch)
        self.batching = coalesce

    def next_request_id(self) -> list[Any]:
        return [self.client_id, next(self._seq)]

    def open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=1000, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.attempt_timeout),
            )
        return self._session

    async def close(self) -> None:
        """Close every connection.  The client may be used again afterwards (it reopens)."""
        await self._coalescer.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def probe_leader(self) -> None:
        """With no leader known, ask every replica where it is and stop at the first answer
        that names one; at most once a second (concurrent calls go on meanwhile)."""
        loop = asyncio.get_running_loop()
        if len(self.ends.urls) < 2 or loop.time() < self._probe_after:
            return
        self._probe_after = loop.time() + _PROBE_INTERVAL
        t = min(1.0, self.attempt_timeout)
        tasks = [asyncio.ensure_future(self.status_of(u, t)) for u in self.ends.urls]
        try:
            for next_answer in asyncio.as_completed(tasks):
                try:
                    st = await next_answer
                except Exception:  # noqa: BLE001, S112 - a replica that cannot say is skipped
                    continue
                if st.get("leader_client"):
                    self.ends.learn(st["leader_client"])
                    return
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def call(
        self,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        write: bool = False,
        rid: bool = False,
        unknown: bool = False,
        timeout: float | None = None,
    ) -> bytes:
        """POST ``body`` (GET when None) with retries and return the raw 200 answer.

        ``write``: a failure after sending leaves the outcome unknown; ``rid``: the body gets a
        request id, the same on every retry; ``unknown``: an earlier attempt (in a batch) may
        have been applied.  A definite error answer raises its typed error at
        once; when the attempts run out, a write that may have been applied raises
        OutcomeUnknown and anything else Unavailable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or self.timeout)
        per_try = self.attempt_timeout if timeout is None else timeout / 2
        if rid:
            assert body is not None
            body["request_id"] = self.next_request_id()
        data = None if body is None else cbor2.dumps(body)
        method = "GET" if body is None else "POST"
        session = self.open()
        if self.ends.leader is None:
            await self.probe_leader()
        url = self.ends.first()
        redirected = False
        last = "the call's deadline passed before any attempt"
        for retry in range(self._max_retries + 1):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(min(remaining, per_try)):
                    async with session.request(method, url + path, data=data, headers=HEADERS) as r:
                        payload, status = await r.read(), r.status
            except NOT_SENT as e:
                last = f"{url}: cannot connect ({e})"
                self.ends.failed(url)
            except BROKEN as e:
                unknown = unknown or write
                last = f"{url}: {type(e).__name__} {e}".rstrip()
                self.ends.failed(url)
            else:
                if status == 200:
                    return payload
                err = error_of(status, payload)
                last = f"{url}: {err.code}: {err.message}"
                if isinstance(err, NotLeader):
                    hint = err.details.get("leader")
                    self.ends.failed(url)
                    self.ends.learn(hint)
                    if self.ends.leader not in (None, url) and not redirected:
                        url, redirected = self.ends.leader, True
                        continue  # the leader was named: go there at once
                elif isinstance(err, OutcomeUnknown):
                    unknown = unknown or write
                elif not isinstance(err, Unavailable):
                    if unknown and isinstance(err, RequestExpired):
                        raise OutcomeUnknown(last, request_id=body and body.get("request_id"))
                    raise err
                else:
                    self.ends.failed(url)
            redirected = False
            url = self.ends.after(url)
            if retry < self._max_retries:
                await asyncio.sleep(min(backoff_delay(retry), max(0.0, deadline - loop.time())))
        if unknown:
            raise OutcomeUnknown(f"{path}: the write may or may not have been applied; last "
                                 f"error {last}", request_id=body and body.get("request_id"))
        raise Unavailable(f"{path}: no replica could serve the request; last error {last}")

    async def rpc(
        self, path: str, body: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        payload = await self.call(path, body, **kw)
        try:
            answer = cbor2.loads(payload)
        except Exception as e:  # cbor2 raises several types
            raise StoreError(f"{path}: unreadable answer ({e})") from e
        if not isinstance(answer, dict):
            raise StoreError(f"{path}: the answer is not a map: {answer!r:.200}")
        return answer

    async def kv(self, kind: str, body: dict[str, Any], size: int) -> dict[str, Any]:
        """A ``txn`` or ``range``: coalesced with concurrent ones when batching is on; alone,
        with the same request id, when that is off, the op is big, or the batch failed."""
        write = kind == "txn"
        if write:
            body["request_id"] = self.next_request_id()
        unknown = False
        if self.batching and size <= _ALONE_BYTES:
            try:
                res = await self._coalescer.submit({kind: body}, size)
            except BatchFailed as e:
                unknown = e.sent and write
            else:
                if "ok" in res:
                    return res["ok"]
                err = from_wire(res.get("error"))
                if not isinstance(err, _RETRYABLE):
                    raise err
                unknown = isinstance(err, OutcomeUnknown) and write
        path = "/v1/kv/txn" if write else "/v1/kv/range"
        return await self.rpc(path, body, write=write, unknown=unknown)

    async def _send_batch(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One attempt at ``/v1/kv/batch`` on the preferred replica; BatchFailed otherwise."""
        if self.ends.leader is None:
            await self.probe_leader()
        url = self.ends.first()
        try:
            async with asyncio.timeout(self.attempt_timeout):
                async with self.open().post(url + "/v1/kv/batch", headers=HEADERS,
                                             data=cbor2.dumps({"ops": ops})) as r:
                    payload, status = await r.read(), r.status
        except NOT_SENT as e:
            self.ends.failed(url)
            raise BatchFailed(f"{url}: cannot connect ({e})", sent=False) from e
        except BROKEN as e:
            self.ends.failed(url)
            raise BatchFailed(f"{url}: {type(e).__name__} {e}", sent=True) from e
        if status == 200:
            results = cbor2.loads(payload).get("results")
            return results if isinstance(results, list) else []
        err = error_of(status, payload)
        if isinstance(err, NotLeader | Unavailable):
            self.ends.failed(url)
            self.ends.learn(err.details.get("leader"))
        elif status in (404, 405):
            self.batching = False  # a server without /v1/kv/batch
        raise BatchFailed(f"{url}: {err.code}: {err.message}", sent=isinstance(err, OutcomeUnknown))

    async def status_of(self, url: str, timeout: float) -> dict[str, Any]:
        session = self.open()
        try:
            async with asyncio.timeout(timeout):
                async with session.get(url + "/v1/status", headers=HEADERS) as r:
                    payload, status = await r.read(), r.status
        except BROKEN as e:
            raise Unavailable(f"{url}: {type(e).__name__} {e}".rstrip()) from e
        if status != 200:
            raise error_of(status, payload)
        answer = cbor2.loads(payload)
        if not isinstance(answer, dict):
            raise StoreError(f"{url}/v1/status: the answer is not a map")
        return answer
