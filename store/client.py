"""The store's client library: CBOR over mutual-TLS HTTPS, leader-aware, safe to retry.

Callers (the apiserver, the CLI, the benchmark) see plain answer maps (docs/store-api.md) and
the typed errors of :mod:`store.errors`.  The client hides which replica is the leader: it
remembers the last known leader URL and sends everything there first; a connection error, a
503 ``unavailable`` or a 421 ``not_leader`` sends the request on to the next endpoint after a
short capped exponential backoff (25 ms doubling to 500 ms), within ``max_retries`` retries and
the call's ``timeout``.

Every write carries a fresh request id ``[client_id, seq]`` that is reused across its retries,
so the store applies it at most once.  When the retries run out and some attempt may have
reached the store (the connection broke after sending, a timeout, a 504 answer) the write
raises :class:`~store.errors.OutcomeUnknown`, never a plain failure.  Definite errors
(``invalid_request``, ``too_large``, ``lease_not_found``, ``compacted``, ...) raise at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp
import cbor2

from certs.layout import CertPaths
from certs.tls import client_context
from store.client_wire import BROKEN, HEADERS, NOT_SENT, WatchCursor, error_of, resuming_watch
from store.endpoints import Endpoints, backoff_delay
from store.errors import NotLeader, OutcomeUnknown, RequestExpired, StoreError, Unavailable

__all__ = ["StoreClient", "prefix_end"]

_PROBE_INTERVAL = 1.0


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix`` (etcd's rule):
    the prefix with its last byte below 0xff incremented; ``b"\\0"`` (every key) if none is."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


class StoreClient:
    """A client of one store cluster, given the client URLs of (some of) its replicas.

    One aiohttp session (opened on first use inside the running loop, closed by :meth:`close`
    or ``async with``) keeps up to 1,000 connections alive.  ``timeout`` bounds each call as a
    whole; one attempt gets at most ``attempt_timeout`` (default ``timeout / 2``), so a hung
    replica still leaves time to try another.  ``client_id`` names this client in request ids
    and must not be shared by two live clients; the default is random, and sequence numbers
    start at the wall clock in microseconds, so a restarted client reusing an id does not
    collide with its earlier requests.  A watch keeps reconnecting for up to
    ``watch_retry_deadline`` seconds, and treats ``watch_idle_timeout`` seconds of silence
    (with progress notifications on) as a dead stream.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: CertPaths,
        timeout: float = 5.0,
        client_id: str | None = None,
        max_retries: int = 8,
        attempt_timeout: float | None = None,
        watch_retry_deadline: float = 60.0,
        watch_idle_timeout: float = 30.0,
    ) -> None:
        self._ends = Endpoints(endpoints)
        self.client_id = client_id or f"{socket.gethostname()}/{os.getpid()}/{os.urandom(6).hex()}"
        self._ssl = client_context(tls)
        self._timeout = timeout
        self._attempt_timeout = attempt_timeout or timeout / 2
        self._max_retries = max_retries
        self._watch_deadline = watch_retry_deadline
        self._watch_idle = watch_idle_timeout
        self._seq = itertools.count(time.time_ns() // 1000)
        self._session: aiohttp.ClientSession | None = None
        self._probe_after = 0.0

    @property
    def endpoints(self) -> list[str]:
        return list(self._ends.urls)

    @property
    def leader(self) -> str | None:
        """The client URL of the last known leader, or None; calls go there first."""
        return self._ends.leader

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=1000, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._attempt_timeout),
            )
        return self._session

    async def close(self) -> None:
        """Close every connection.  The client may be used again afterwards (it reopens)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _probe_leader(self) -> None:
        """With no leader known, ask every replica where it is and stop at the first answer
        that names one; at most once a second (concurrent calls go on meanwhile)."""
        loop = asyncio.get_running_loop()
        if len(self._ends.urls) < 2 or loop.time() < self._probe_after:
            return
        self._probe_after = loop.time() + _PROBE_INTERVAL
        t = min(1.0, self._attempt_timeout)
        tasks = [asyncio.ensure_future(self._status_of(u, t)) for u in self._ends.urls]
        try:
            for next_answer in asyncio.as_completed(tasks):
                try:
                    st = await next_answer
                except Exception:  # noqa: BLE001, S112 - a replica that cannot say is skipped
                    continue
                if st.get("leader_client"):
                    self._ends.learn(st["leader_client"])
                    return
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- the one request path ----------------------------------------------------------------

    async def _call(
        self,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        write: bool = False,
        rid: bool = False,
        timeout: float | None = None,
    ) -> bytes:
        """POST ``body`` (GET when None) with retries and return the raw 200 answer.

        ``write``: a failure after sending leaves the outcome unknown; ``rid``: the body gets a
        request id, the same on every retry.  A definite error answer raises its typed error at
        once; when the attempts run out, a write that may have been applied raises
        OutcomeUnknown and anything else Unavailable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or self._timeout)
        per_try = self._attempt_timeout if timeout is None else timeout / 2
        if rid:
            assert body is not None
            body["request_id"] = [self.client_id, next(self._seq)]
        data = None if body is None else cbor2.dumps(body)
        method = "GET" if body is None else "POST"
        session = self._open()
        if self._ends.leader is None:
            await self._probe_leader()
        url = self._ends.first()
        unknown = redirected = False
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
                self._ends.failed(url)
            except BROKEN as e:
                unknown = unknown or write
                last = f"{url}: {type(e).__name__} {e}".rstrip()
                self._ends.failed(url)
            else:
                if status == 200:
                    return payload
                err = error_of(status, payload)
                last = f"{url}: {err.code}: {err.message}"
                if isinstance(err, NotLeader):
                    hint = err.details.get("leader")
                    self._ends.failed(url)
                    self._ends.learn(hint)
                    if self._ends.leader not in (None, url) and not redirected:
                        url, redirected = self._ends.leader, True
                        continue  # the leader was named: go there at once
                elif isinstance(err, OutcomeUnknown):
                    unknown = unknown or write
                elif not isinstance(err, Unavailable):
                    if unknown and isinstance(err, RequestExpired):
                        raise OutcomeUnknown(last, request_id=body and body.get("request_id"))
                    raise err
                else:
                    self._ends.failed(url)
            redirected = False
            url = self._ends.after(url)
            if retry < self._max_retries:
                await asyncio.sleep(min(backoff_delay(retry), max(0.0, deadline - loop.time())))
        if unknown:
            raise OutcomeUnknown(f"{path}: the write may or may not have been applied; last "
                                 f"error {last}", request_id=body and body.get("request_id"))
        raise Unavailable(f"{path}: no replica could serve the request; last error {last}")

    async def _rpc(self, path: str, body: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        payload = await self._call(path, body, **kw)
        try:
            answer = cbor2.loads(payload)
        except Exception as e:  # cbor2 raises several types
            raise StoreError(f"{path}: unreadable answer ({e})") from e
        if not isinstance(answer, dict):
            raise StoreError(f"{path}: the answer is not a map: {answer!r:.200}")
        return answer

    # --- key-value ---------------------------------------------------------------------------

    async def txn(
        self,
        compare: Sequence[dict[str, Any]],
        success: Sequence[dict[str, Any]],
        failure: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """One transaction; the answer ``{"header", "succeeded", "responses"}``."""
        body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        return await self._rpc("/v1/kv/txn", body, write=True, rid=True)

    async def put(
        self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False
    ) -> dict[str, Any]:
        """Set ``key``; the answer ``{"header", "prev_kv": KeyValue|None}``."""
        op: dict[str, Any] = {"key": key, "value": value}
        if lease:
            op["lease"] = lease
        if prev_kv:
            op["prev_kv"] = True
        ans = await self.txn((), ({"put": op},))
        return {"header": ans["header"], "prev_kv": ans["responses"][0]["put"].get("prev_kv")}

    async def get(
        self,
        key: bytes,
        *,
        range_end: bytes | None = None,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        serializable: bool = False,
    ) -> dict[str, Any]:
        """Read a key or a range; the answer ``{"header", "kvs", "count", "more"}``."""
        body: dict[str, Any] = {"key": key}
        for name, v in (("range_end", range_end), ("revision", revision), ("limit", limit),
                        ("keys_only", keys_only), ("count_only", count_only),
                        ("serializable", serializable)):
            if v:
                body[name] = v
        return await self._rpc("/v1/kv/range", body)

    async def delete(
        self, key: bytes, *, range_end: bytes | None = None, prev_kv: bool = False
    ) -> dict[str, Any]:
        """Delete a key or a range; the answer ``{"header", "deleted", "prev_kvs"}``."""
        op: dict[str, Any] = {"key": key}
        if range_end is not None:
            op["range_end"] = range_end
        if prev_kv:
            op["prev_kv"] = True
        ans = await self.txn((), ({"delete_range": op},))
        resp = ans["responses"][0]["delete_range"]
        return {"header": ans["header"], "deleted": resp["deleted"],
                "prev_kvs": resp.get("prev_kvs", [])}

    # --- leases and maintenance --------------------------------------------------------------
    # keepalive and compact are idempotent and the server takes no request id for them.

    async def lease_grant(self, ttl: int, id: int = 0) -> dict[str, Any]:
        """A new lease (``id`` 0: the store picks one); ``{"header", "id", "ttl"}``."""
        return await self._rpc("/v1/lease/grant", {"ttl": ttl, "id": id}, write=True, rid=True)

    async def lease_revoke(self, id: int) -> dict[str, Any]:
        """End a lease and delete its keys (one revision)."""
        return await self._rpc("/v1/lease/revoke", {"id": id}, write=True, rid=True)

    async def lease_keepalive(self, id: int) -> dict[str, Any]:
        """Renew a lease; ``{"header", "id", "ttl"}``."""
        return await self._rpc("/v1/lease/keepalive", {"id": id}, write=True)

    async def lease_timetolive(self, id: int, keys: bool = False) -> dict[str, Any]:
        return await self._rpc("/v1/lease/timetolive", {"id": id, "keys": keys})

    async def leases(self) -> dict[str, Any]:
        return await self._rpc("/v1/lease/leases", {})

    async def compact(self, revision: int) -> dict[str, Any]:
        """Forget history below ``revision``; reads and watches below it get Compacted."""
        return await self._rpc("/v1/maintenance/compact", {"revision": revision}, write=True)

    async def snapshot(self, *, timeout: float = 120.0) -> bytes:
        """The full state as CBOR bytes, from the first replica that serves it."""
        return await self._call("/v1/maintenance/snapshot", timeout=timeout)

    async def members(self) -> dict[str, Any]:
        """``{"members": [{"name", "raft", "client"}]}`` as a replica sees the cluster."""
        return await self._rpc("/v1/members")

    async def status(self, endpoint: str | None = None) -> dict[str, Any]:
        """``/v1/status`` of ``endpoint`` only (no retries), or of the first replica that
        answers.  The leader it names becomes the preferred endpoint."""
        if endpoint is None:
            st = await self._rpc("/v1/status")
        else:
            st = await self._status_of(endpoint.rstrip("/"), self._timeout)
        self._ends.learn(st.get("leader_client"))
        return st

    async def _status_of(self, url: str, timeout: float) -> dict[str, Any]:
        session = self._open()
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

    async def member_status(
        self, *, timeout: float | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """Every endpoint's status, asked concurrently, by endpoint URL in endpoint order;
        None for one that did not answer.  The leader of the highest term named becomes the
        preferred endpoint."""
        t = timeout or self._attempt_timeout
        urls = self._ends.urls
        got = await asyncio.gather(*(self._status_of(u, t) for u in urls), return_exceptions=True)
        out = {u: (s if isinstance(s, dict) else None) for u, s in zip(urls, got, strict=True)}
        answers = sorted((s for s in out.values() if s is not None),
                         key=lambda s: (s.get("term", 0), bool(s.get("is_leader"))))
        for s in answers:
            self._ends.learn(s.get("leader_client"))
        return out

    # --- watch -------------------------------------------------------------------------------

    async def watch(
        self,
        key: bytes,
        *,
        range_end: bytes | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = True,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every change to the key or range from ``start_revision`` (0: from now), as frames
        ``{"header", "events"}`` and ``{"header", "progress": True}``.

        A broken stream, a replica going away, a 503 or a silent stream is hidden: the watch
        resumes on the next replica from the last delivered revision + 1 and drops whatever
        was already delivered (:class:`~store.watch_client.WatchCursor`), so every event
        arrives once and in order.  Raises Compacted when the revision to resume from is gone
        (the caller must re-read), Unavailable after ``watch_retry_deadline`` seconds without a
        stream, and any other definite error as it comes.
        """
        if start_revision <= 0:
            now = await self.get(key, range_end=range_end, count_only=True)
            start_revision = now["header"]["revision"] + 1
        request = {"key": key, "range_end": range_end, "prev_kv": prev_kv,
                   "progress_notify": progress_notify}
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._attempt_timeout,
            sock_read=self._watch_idle if progress_notify else None,
        )
        frames = resuming_watch(self._open, self._ends, request, WatchCursor(start_revision),
                                timeout=timeout, retry_deadline=self._watch_deadline)
        async with contextlib.aclosing(frames):
            async for frame in frames:
                yield frame
