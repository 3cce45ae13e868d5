"""The store's client library: the API of docs/store-api.md as async methods.

Callers (the apiserver, the CLI, the benchmark) see plain answer maps and the typed errors of
:mod:`store.errors`.  Which replica answers is hidden: :mod:`store.transport` sends each call
to the last known leader, retries across leader changes with the same request id (so every
write is applied at most once), and raises :class:`~store.errors.OutcomeUnknown`, never a plain
failure, when a write may or may not have been applied.  Definite errors (``invalid_request``,
``too_large``, ``lease_not_found``, ``compacted``, ...) raise at once.  Watches resume across
broken streams and replica changes without losing or repeating an event
(:mod:`store.client_wire`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

import aiohttp
import cbor2

from certs.layout import CertPaths
from store.client_wire import WatchCursor, prefix_end, resuming_watch
from store.transport import Transport

__all__ = ["KeyValueStore", "StoreClient", "prefix_end"]


class KeyValueStore(Protocol):
    """What the apiserver needs of a store: :class:`StoreClient` over the network, or
    :class:`store.memory.MemoryStore` in process (the fast test tier)."""

    async def txn(self, compare: Sequence[dict[str, Any]], success: Sequence[dict[str, Any]],
                  failure: Sequence[dict[str, Any]] = ()) -> dict[str, Any]: ...

    async def get(self, key: bytes, *, range_end: bytes | None = None, revision: int = 0,
                  limit: int = 0, keys_only: bool = False, count_only: bool = False,
                  serializable: bool = False) -> dict[str, Any]: ...

    def watch(self, key: bytes, *, range_end: bytes | None = None, start_revision: int = 0,
              prev_kv: bool = False, progress_notify: bool = True
              ) -> AsyncIterator[dict[str, Any]]: ...


class StoreClient:
    """A client of one store cluster, given the client URLs of (some of) its replicas.

    One aiohttp session (opened on first use inside the running loop, closed by :meth:`close`
    or ``async with``) keeps up to 1,000 connections alive.  ``timeout`` bounds each call as a
    whole; one attempt gets at most ``attempt_timeout`` (default ``timeout / 2``), so a hung
    replica still leaves time to try another; at most ``max_retries`` retries.  ``client_id``
    names this client in request ids and must not be shared by two live clients; the default is
    random, and sequence numbers start at the wall clock in microseconds, so a restarted client
    reusing an id does not collide with its earlier requests.  A watch keeps reconnecting for up
    to ``watch_retry_deadline`` seconds, and treats ``watch_idle_timeout`` seconds of silence
    (with progress notifications on) as a dead stream.  With ``coalesce`` (the default), txns
    and ranges issued in the same loop iteration share one ``/v1/kv/batch`` request
    (:mod:`store.coalescing`); each still succeeds, fails or is retried on its own.
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
        coalesce: bool = True,
    ) -> None:
        self._t = Transport(
            endpoints, tls=tls, timeout=timeout, client_id=client_id, max_retries=max_retries,
            attempt_timeout=attempt_timeout, coalesce=coalesce,
        )
        self._ends = self._t.ends
        self._watch_deadline = watch_retry_deadline
        self._watch_idle = watch_idle_timeout

    @property
    def client_id(self) -> str:
        return self._t.client_id

    @property
    def endpoints(self) -> list[str]:
        return list(self._ends.urls)

    @property
    def leader(self) -> str | None:
        """The client URL of the last known leader, or None; calls go there first."""
        return self._ends.leader

    async def close(self) -> None:
        """Close every connection.  The client may be used again afterwards (it reopens)."""
        await self._t.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- key-value ---------------------------------------------------------------------------

    async def txn(
        self,
        compare: Sequence[dict[str, Any]],
        success: Sequence[dict[str, Any]],
        failure: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """One transaction; the answer ``{"header", "succeeded", "responses"}``."""
        body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        return await self._t.kv("txn", body, len(cbor2.dumps(body)) if self._t.batching else 0)

    async def put(
        self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False
    ) -> dict[str, Any]:
        """Set ``key``; the answer ``{"header", "prev_kv": KeyValue|None}``."""
        op: dict[str, Any] = {"key": key, "value": value}
        if lease:
            op["lease"] = lease
        if prev_kv:
            op["prev_kv"] = True
        body = {"compare": [], "success": [{"put": op}], "failure": []}
        ans = await self._t.kv("txn", body, len(key) + len(value) + 64)
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
        return await self._t.kv("range", body, len(key) + len(range_end or b"") + 64)

    async def delete(
        self, key: bytes, *, range_end: bytes | None = None, prev_kv: bool = False
    ) -> dict[str, Any]:
        """Delete a key or a range; the answer ``{"header", "deleted", "prev_kvs"}``."""
        op: dict[str, Any] = {"key": key}
        if range_end is not None:
            op["range_end"] = range_end
        if prev_kv:
            op["prev_kv"] = True
        body = {"compare": [], "success": [{"delete_range": op}], "failure": []}
        ans = await self._t.kv("txn", body, len(key) + len(range_end or b"") + 64)
        resp = ans["responses"][0]["delete_range"]
        return {"header": ans["header"], "deleted": resp["deleted"],
                "prev_kvs": resp.get("prev_kvs", [])}

    # --- leases and maintenance --------------------------------------------------------------

    async def lease_grant(self, ttl: int, id: int = 0) -> dict[str, Any]:
        """A new lease (``id`` 0: the store picks one); ``{"header", "id", "ttl"}``."""
        return await self._t.rpc("/v1/lease/grant", {"ttl": ttl, "id": id}, write=True, rid=True)

    async def lease_revoke(self, id: int) -> dict[str, Any]:
        """End a lease and delete its keys (one revision)."""
        return await self._t.rpc("/v1/lease/revoke", {"id": id}, write=True, rid=True)

    async def lease_keepalive(self, id: int) -> dict[str, Any]:
        """Renew a lease; ``{"header", "id", "ttl"}``."""
        return await self._t.rpc("/v1/lease/keepalive", {"id": id}, write=True, rid=True)

    async def lease_timetolive(self, id: int, keys: bool = False) -> dict[str, Any]:
        return await self._t.rpc("/v1/lease/timetolive", {"id": id, "keys": keys})

    async def leases(self) -> dict[str, Any]:
        return await self._t.rpc("/v1/lease/leases", {})

    async def compact(self, revision: int) -> dict[str, Any]:
        """Forget history below ``revision``; reads and watches below it get Compacted."""
        body = {"revision": revision}
        return await self._t.rpc("/v1/maintenance/compact", body, write=True, rid=True)

    async def snapshot(self, *, timeout: float = 120.0) -> bytes:
        """The full state as CBOR bytes, from the first replica that serves it."""
        return await self._t.call("/v1/maintenance/snapshot", timeout=timeout)

    async def members(self) -> dict[str, Any]:
        """``{"members": [{"name", "raft", "client"}]}`` as a replica sees the cluster."""
        return await self._t.rpc("/v1/members")

    async def member_add(self, name: str, raft: str, client: str) -> dict[str, Any]:
        """Add a member (the leader changes the Raft configuration, then records the list);
        ``{"members"}``.  Start the new replica's process with the new member list."""
        body = {"name": name, "raft": raft, "client": client}
        return await self._t.rpc("/v1/members/add", body, write=True)

    async def member_remove(self, name: str) -> dict[str, Any]:
        """Remove a member (not the current leader); ``{"members"}``."""
        return await self._t.rpc("/v1/members/remove", {"name": name}, write=True)

    async def status(self, endpoint: str | None = None) -> dict[str, Any]:
        """``/v1/status`` of ``endpoint`` only (no retries), or of the first replica that
        answers.  The leader it names becomes the preferred endpoint."""
        if endpoint is None:
            st = await self._t.rpc("/v1/status")
        else:
            st = await self._t.status_of(endpoint.rstrip("/"), self._t.timeout)
        self._ends.learn(st.get("leader_client"))
        return st

    async def member_status(
        self, *, timeout: float | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """Every endpoint's status, asked concurrently, by endpoint URL in endpoint order;
        None for one that did not answer.  The leader of the highest term named becomes the
        preferred endpoint."""
        t = timeout or self._t.attempt_timeout
        urls = self._ends.urls
        got = await asyncio.gather(*(self._t.status_of(u, t) for u in urls),
                                   return_exceptions=True)
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
        was already delivered (:class:`~store.client_wire.WatchCursor`), so every event
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
            total=None, sock_connect=self._t.attempt_timeout,
            sock_read=self._watch_idle if progress_notify else None,
        )
        frames = resuming_watch(self._t.open, self._ends, request, WatchCursor(start_revision),
                                timeout=timeout, retry_deadline=self._watch_deadline)
        async with contextlib.aclosing(frames):
            async for frame in frames:
                yield frame
