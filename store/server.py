"""The replica's HTTPS API: CBOR in, CBOR out, mutual TLS, one handler per endpoint.

Request path: TLS (any client certificate completes the handshake) → ``_authenticate``
middleware (a missing, foreign, expired or not-yet-valid certificate: 401 ``unauthenticated``,
logged, before anything is read; :mod:`certs.clientauth`) → ``_errors`` middleware (StoreError → status + ``{"error": ...}``, metrics) → handler: decode and
validate the body (bad input is refused before anything is proposed) → :class:`StoreNode`
(proposer for writes, state lock for reads).  Writes on a follower are forwarded to the leader by
the Raft layer; reads are answered locally (after a barrier unless ``serializable``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import struct
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import cbor2
from aiohttp import web

from certs.authority import CertsError
from certs.tls import peer_identity

from . import errors
from .config import Member
from .metrics import StoreMetrics
from .node import StoreNode
from .requests import validate_command, validate_range
from .watching import END


def _range(machine: Any, *, req: dict[str, Any]) -> Any:
    return machine.range(req)

__all__ = ["MAX_BODY", "build_app"]

MAX_BODY = 2 * 2**20
MAX_BATCH_OPS = 1024
CBOR = "application/cbor"
NODE: web.AppKey[StoreNode] = web.AppKey("node", StoreNode)
METRICS: web.AppKey[StoreMetrics] = web.AppKey("metrics", StoreMetrics)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _cbor(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=cbor2.dumps(data), status=status, content_type=CBOR)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        data = cbor2.loads(raw) if raw else {}
    except Exception as e:  # noqa: BLE001 - cbor2 raises several types on malformed input
        raise errors.InvalidRequest(f"request body is not valid CBOR: {e}") from None
    if not isinstance(data, dict):
        raise errors.InvalidRequest("request body must be a CBOR map")
    return data


def _rid(body: dict[str, Any]) -> dict[str, Any]:
    rid = body.pop("request_id", None)
    return {} if rid is None else {"rid": rid}


log = logging.getLogger("store")
# Each TLS connection's verdict, reached once: True, or why its certificate was refused.
_VERDICTS: weakref.WeakKeyDictionary[ssl.SSLObject, bool | str] = weakref.WeakKeyDictionary()


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Fail closed: only a connection with a valid client certificate from the cluster CA
    reaches a handler; any other gets the typed ``unauthenticated`` error (401)."""
    transport = request.transport
    ssl_obj = transport.get_extra_info("ssl_object") if transport else None
    verdict = _VERDICTS.get(ssl_obj) if ssl_obj is not None else None
    if verdict is None:
        try:
            peer_identity(ssl_obj)
            verdict = True
        except CertsError as e:
            verdict = str(e)
            peer = transport.get_extra_info("peername") if transport else None
            log.warning("refused a request from %s (%s %s): %s", peer, request.method,
                        request.path, verdict)
        if ssl_obj is not None:
            _VERDICTS[ssl_obj] = verdict
    if verdict is not True:
        err = errors.Unauthenticated(f"Unauthorized: {verdict}")
        return _cbor({"error": err.to_wire()}, err.http_status)
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    start = time.perf_counter()
    code = "ok"
    try:
        return await handler(request)
    except errors.StoreError as e:
        code = e.code
        return _cbor({"error": e.to_wire()}, e.http_status)
    except web.HTTPRequestEntityTooLarge:
        code = errors.TooLarge.code
        err: errors.StoreError = errors.TooLarge(f"request body over {MAX_BODY} bytes")
        return _cbor({"error": err.to_wire()}, err.http_status)
    except web.HTTPException as e:
        code = str(e.status)
        err = errors.InvalidRequest(f"{e.reason}: {request.method} {request.path}")
        return _cbor({"error": err.to_wire()}, e.status)
    finally:
        metrics.observe(request.path, code, time.perf_counter() - start)


# --- kv ---------------------------------------------------------------------------------------


async def kv_range(request: web.Request) -> web.Response:
    node = request.app[NODE]
    req = validate_range(await _body(request))
    if req.pop("serializable"):
        return _cbor(node.read(lambda m: m.range(req)))
    return _cbor(await node.read_linearizable(lambda m: m.range(req)))


async def kv_txn(request: web.Request) -> web.Response:
    body = await _body(request)
    rid = _rid(body)
    cmd = validate_command({"t": "txn", "req": body, **rid})
    return _cbor(await request.app[NODE].write(cmd))


async def kv_batch(request: web.Request) -> web.Response:
    """Many independent kv operations in one HTTP request (the client library coalesces
    concurrent calls).  ``{"ops": [{"txn": TxnRequest + request_id} | {"range": RangeRequest}]}``
    answers ``{"results": [{"ok": answer} | {"error": {...}}]}`` in order.  Each op succeeds or
    fails on its own, exactly as if sent alone; the writes share a Raft entry and the
    linearizable reads share one barrier."""
    node = request.app[NODE]
    ops = (await _body(request)).get("ops")
    if not isinstance(ops, list) or len(ops) > MAX_BATCH_OPS:
        raise errors.InvalidRequest(f"ops must be a list of at most {MAX_BATCH_OPS} operations")
    results: list[Any] = [None] * len(ops)
    writes: list[tuple[int, dict[str, Any]]] = []
    reads: list[tuple[int, dict[str, Any]]] = []
    for i, op in enumerate(ops):
        try:
            if not isinstance(op, dict) or len(op) != 1:
                raise errors.InvalidRequest("each op must be a map with one key: txn or range")
            if "txn" in op and isinstance(op["txn"], dict):
                body = dict(op["txn"])
                writes.append((i, validate_command({"t": "txn", "req": body, **_rid(body)})))
            elif "range" in op:
                reads.append((i, validate_range(op["range"])))
            else:
                raise errors.InvalidRequest(f"unknown batch op {sorted(op)}")
        except errors.StoreError as e:
            results[i] = e
    pending: list[Awaitable[Any]] = (
        [node.proposer.write_many([cmd for _, cmd in writes])] if writes else [])
    linearizable = [(i, r) for i, r in reads if not r.pop("serializable")]
    if linearizable:
        pending.append(node.read_barrier())
    outcome = await asyncio.gather(*pending, return_exceptions=True)
    if writes:
        written = outcome[0]
        for (i, _), res in zip(writes, written if isinstance(written, list) else
                               [written] * len(writes), strict=True):
            results[i] = res
    barrier_error = outcome[-1] if linearizable and isinstance(outcome[-1], BaseException) else None
    lin = {i for i, _ in linearizable}
    for i, req in reads:
        if i in lin and barrier_error is not None:
            results[i] = barrier_error
            continue
        try:
            results[i] = node.read(functools.partial(_range, req=req))
        except errors.StoreError as e:
            results[i] = e
    return _cbor({"results": [
        {"error": r.to_wire()} if isinstance(r, errors.StoreError) else {"ok": r} for r in results
    ]})


# --- leases -----------------------------------------------------------------------------------


def _lease_command(kind: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        node = request.app[NODE]
        body = await _body(request)
        cmd: dict[str, Any] = {"t": kind, **_rid(body)}
        for k, v in body.items():
            if k not in ("id", "ttl"):
                raise errors.InvalidRequest(f"unknown field {k!r} in {kind}")
            cmd[k] = v
        if kind == "lease_grant":
            cmd.setdefault("id", 0)
        if kind in ("lease_grant", "lease_keepalive"):
            cmd["now"] = node.clock()
        return _cbor(await node.write(validate_command(cmd)))

    return handler


async def lease_timetolive(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await _body(request)
    lease_id, keys = body.get("id"), body.get("keys", False)
    now = node.clock()
    return _cbor(await node.read_linearizable(lambda m: m.time_to_live(lease_id, now, keys)))


async def lease_list(request: web.Request) -> web.Response:
    return _cbor(await request.app[NODE].read_linearizable(lambda m: m.leases()))


# --- maintenance and status -------------------------------------------------------------------


async def compact(request: web.Request) -> web.Response:
    body = await _body(request)
    cmd = validate_command({"t": "compact", "revision": body.get("revision"), **_rid(body)})
    return _cbor(await request.app[NODE].write(cmd))


async def snapshot(request: web.Request) -> web.Response:
    node = request.app[NODE]
    data = node.read(lambda m: cbor2.dumps(m.dump()))
    return web.Response(body=data, content_type=CBOR)


async def status(request: web.Request) -> web.Response:
    return _cbor(request.app[NODE].status())


async def members(request: web.Request) -> web.Response:
    return _cbor({"members": request.app[NODE].status()["members"]})


def _member_change(op: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        body = await _body(request)
        allowed = {"name", "raft", "client"} if op == "add" else {"name"}
        if set(body) - allowed or not all(isinstance(body.get(k), str) and body[k]
                                          for k in allowed):
            raise errors.InvalidRequest(f"member {op} takes string fields {sorted(allowed)}")
        member = Member(body["name"], body.get("raft", ""), body.get("client", ""))
        return _cbor({"members": await request.app[NODE].change_members(op, member)})

    return handler


async def health(request: web.Request) -> web.Response:
    """Healthy = this replica can get a command committed within a second (etcd's /health
    does a linearizable read for the same reason)."""
    node = request.app[NODE]
    try:
        await node.proposer.barrier(timeout=1.0)
    except errors.StoreError as e:
        return web.json_response({"health": False, "reason": e.message}, status=503)
    return web.json_response({"health": True})


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": content_type})


# --- watch ------------------------------------------------------------------------------------


def _frame(item: dict[str, Any]) -> bytes:
    data = cbor2.dumps(item)
    return struct.pack(">I", len(data)) + data


async def watch(request: web.Request) -> web.StreamResponse:
    """A long-lived stream of length-prefixed CBOR frames: events, progress notifications, and
    at most one error, after which the stream ends.  Clients resume from the revision after the
    last one they saw whenever a stream ends."""
    node = request.app[NODE]
    body = await _body(request)
    allowed = {"key", "range_end", "start_revision", "prev_kv", "progress_notify"}
    if set(body) - allowed:
        raise errors.InvalidRequest(
            f"unknown watch fields {sorted(repr(k) for k in set(body) - allowed)}")
    req = validate_range({"key": body.get("key"), "range_end": body.get("range_end")})
    start = body.get("start_revision", 0)
    if type(start) is not int or start < 0:
        raise errors.InvalidRequest("start_revision must be a non-negative integer")
    watcher = node.hub.add(req["key"], req["range_end"], start, bool(body.get("prev_kv", False)))
    progress = bool(body.get("progress_notify", True))
    resp = web.StreamResponse(headers={"Content-Type": "application/cbor-seq"})
    try:
        await resp.prepare(request)
        await resp.write(_frame({"header": {"revision": node.hub.revision}, "created": True}))
        while True:
            try:
                item = await asyncio.wait_for(watcher.queue.get(), node.cfg.progress_interval)
            except TimeoutError:
                # The timeout may fire just as a frame is queued: that frame goes first, as a
                # progress revision promises the client every event up to it was sent.
                if progress and watcher.queue.empty():
                    rev = max(node.hub.revision, watcher.next_rev - 1)
                    await resp.write(_frame({"header": {"revision": rev}, "progress": True}))
                continue
            if item is END:
                break
            watcher.pending -= 1
            await resp.write(_frame(item))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        node.hub.remove(watcher)
    return resp


def build_app(node: StoreNode, *, metrics_: StoreMetrics | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_authenticate, _errors])
    app[NODE] = node
    app[METRICS] = metrics_ or StoreMetrics(node)
    app.router.add_post("/v1/kv/range", kv_range)
    app.router.add_post("/v1/kv/txn", kv_txn)
    app.router.add_post("/v1/kv/batch", kv_batch)
    app.router.add_post("/v1/watch", watch)
    app.router.add_post("/v1/lease/grant", _lease_command("lease_grant"))
    app.router.add_post("/v1/lease/revoke", _lease_command("lease_revoke"))
    app.router.add_post("/v1/lease/keepalive", _lease_command("lease_keepalive"))
    app.router.add_post("/v1/lease/timetolive", lease_timetolive)
    app.router.add_post("/v1/lease/leases", lease_list)
    app.router.add_post("/v1/maintenance/compact", compact)
    app.router.add_get("/v1/maintenance/snapshot", snapshot)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/members", members)
    app.router.add_post("/v1/members/add", _member_change("add"))
    app.router.add_post("/v1/members/remove", _member_change("remove"))
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app
