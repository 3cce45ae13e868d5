"""store.client against a scripted in-process store over real mutual TLS.

Three aiohttp servers (s1, s2, s3) share one :class:`FakeStore` whose per-replica plans say how
each request is answered: applied, refused (421/503/504/400), applied and then the connection
dropped, or hung.  The fake deduplicates by request id like the real state machine, so the
tests can tell "applied once" from "applied twice".  Pure pieces (backoff, prefix_end,
Endpoints, WatchCursor) are table-driven at the end.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
import pytest
from aiohttp import web

from certs.layout import init_cluster_certs, store_client_paths, store_replica_paths
from certs.tls import server_context
from store.client import StoreClient, prefix_end
from store.client_wire import WatchCursor
from store.endpoints import BACKOFF_CAP, Endpoints, backoff_delay
from store.errors import (
    Compacted,
    InvalidRequest,
    OutcomeUnknown,
    StoreError,
    TooLarge,
    Unavailable,
)

NAMES = ("s1", "s2", "s3")


@dataclass
class FakeStore:
    """Plans per replica: a list of actions used up one per request, then ``default``."""

    urls: dict[str, str] = field(default_factory=dict)
    plans: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n in NAMES})
    default: str = "ok"
    status_leader: str | None = None
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    applied: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    revision: int = 1

    def txn_calls(self, path: str = "/v1/kv/txn") -> list[tuple[str, dict[str, Any]]]:
        return [(n, b) for n, p, b in self.calls if p == path]

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        rid = tuple(body["request_id"])
        if rid not in self.applied:  # exactly once, like the state machine
            self.revision += 1
            self.applied[rid] = {"header": {"revision": self.revision}, "succeeded": True,
                                 "responses": [{"put": {"prev_kv": None}}]}
        return self.applied[rid]


def _cbor(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=cbor2.dumps(data), status=status, content_type="application/cbor")


def _error(code: str, status: int, **details: Any) -> web.Response:
    return _cbor({"error": {"code": code, "message": f"fake {code}", **details}}, status)


def _frame(item: dict[str, Any]) -> bytes:
    data = cbor2.dumps(item)
    return struct.pack(">I", len(data)) + data


def _event(rev: int, key: bytes = b"k") -> dict[str, Any]:
    kv = {"key": key, "value": b"v%d" % rev, "create_revision": rev, "mod_revision": rev,
          "version": 1, "lease": 0}
    return {"type": "put", "kv": kv, "prev_kv": None}


def _app(name: str, fake: FakeStore) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = cbor2.loads(raw) if raw else {}
        fake.calls.append((name, request.path, body))
        if request.path == "/v1/status":  # not scripted
            leader = fake.status_leader
            return _cbor({"name": name, "is_leader": leader == name, "term": 1,
                          "leader": leader, "leader_client": fake.urls.get(leader or "")})
        plan = fake.plans[name]
        action = plan.pop(0) if plan else fake.default
        if request.path == "/v1/watch":
            return await _watch(request, action)
        if request.path == "/v1/kv/batch" and action == "missing":
            return _error("invalid_request", 404)
        if request.path == "/v1/kv/batch" and action in ("ok", "apply_then_drop"):
            results = [_batch_result(op) for op in body["ops"]]
            if action == "ok":
                return _cbor({"results": results})
        elif action in ("ok", "apply_then_drop"):
            answer = (fake.apply(body) if request.path == "/v1/kv/txn"
                      else {"header": {"revision": fake.revision}, "kvs": [], "count": 0,
                            "more": False})
            if action == "ok":
                return _cbor(answer)
        if action in ("drop", "apply_then_drop"):
            assert request.transport is not None
            request.transport.abort()  # the client sent everything; no answer comes
            await asyncio.sleep(1)
            return web.Response()
        if action == "hang":
            await asyncio.sleep(30)
        if action == "not_leader":
            return _error("not_leader", 421, leader=fake.urls["s2"])
        if action == "not_leader_unknown":
            return _error("not_leader", 421, leader=None)
        if action == "unavailable":
            return _error("unavailable", 503)
        if action == "outcome_unknown":
            return _error("outcome_unknown", 504)
        if action == "invalid":
            return _error("invalid_request", 400)
        raise AssertionError(f"unknown action {action!r}")

    def _batch_result(op: dict[str, Any]) -> dict[str, Any]:
        if "range" in op:
            return {"ok": {"header": {"revision": fake.revision}, "kvs": [], "count": 0,
                           "more": False}}
        if op["txn"]["success"][0]["put"]["key"] == b"bad":
            return {"error": {"code": "too_large", "message": "fake"}}
        if op["txn"]["success"][0]["put"]["key"] == b"busy":
            return {"error": {"code": "unavailable", "message": "fake"}}
        return {"ok": fake.apply(op["txn"])}

    async def _watch(request: web.Request, script: Any) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/cbor-seq"})
        await resp.prepare(request)
        for step in script:
            if step == "cut":  # half a frame, then the connection dies
                await resp.write(struct.pack(">I", 100) + b"partial")
                assert request.transport is not None
                request.transport.abort()
                return resp
            await resp.write(_frame(step))
        return resp  # a clean end of stream

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.fixture(scope="module")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    init_cluster_certs(d, replicas=NAMES)
    return d


@pytest.fixture
async def fake(certs_dir: Path) -> AsyncIterator[FakeStore]:
    store = FakeStore()
    runners = []
    for name in NAMES:
        runner = web.AppRunner(_app(name, store), shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0,
                           ssl_context=server_context(store_replica_paths(certs_dir, name)))
        await site.start()
        port = runner.addresses[0][1]
        store.urls[name] = f"https://127.0.0.1:{port}"
        runners.append(runner)
    yield store
    for runner in runners:
        await runner.cleanup()


def _client(fake: FakeStore, certs_dir: Path, **kw: Any) -> StoreClient:
    """A client without coalescing unless asked: most tests are about the single-op path."""
    kw.setdefault("coalesce", False)
    return StoreClient([fake.urls[n] for n in NAMES], tls=store_client_paths(certs_dir), **kw)


# --- leader handling ---------------------------------------------------------------------------


async def test_not_leader_redirects_at_once_and_is_remembered(fake: FakeStore, certs_dir: Path):
    fake.plans["s1"] = ["not_leader"]
    async with _client(fake, certs_dir) as c:
        ans = await c.put(b"a", b"1")
        assert c.leader == fake.urls["s2"]
        await c.put(b"b", b"2")
    assert ans["header"]["revision"] == 2
    assert [n for n, _ in fake.txn_calls()] == ["s1", "s2", "s2"]


async def test_status_probe_finds_the_leader_before_the_first_write(
    fake: FakeStore, certs_dir: Path
):
    fake.status_leader = "s3"
    async with _client(fake, certs_dir) as c:
        await c.put(b"a", b"1")
    assert [n for n, _ in fake.txn_calls()] == ["s3"]


async def test_unavailable_rotates_through_endpoints_with_the_same_request_id(
    fake: FakeStore, certs_dir: Path
):
    fake.plans["s1"] = ["unavailable"]
    fake.plans["s2"] = ["not_leader_unknown"]
    async with _client(fake, certs_dir) as c:
        await c.put(b"a", b"1")
    calls = fake.txn_calls()
    assert [n for n, _ in calls] == ["s1", "s2", "s3"]
    assert len({tuple(b["request_id"]) for _, b in calls}) == 1


async def test_refused_everywhere_is_unavailable_not_unknown(fake: FakeStore, certs_dir: Path):
    fake.default = "unavailable"
    async with _client(fake, certs_dir, max_retries=3) as c:
        with pytest.raises(Unavailable):
            await c.put(b"a", b"1")
    assert len(fake.txn_calls()) == 4
    assert fake.applied == {}


async def test_dropped_after_sending_is_outcome_unknown(fake: FakeStore, certs_dir: Path):
    fake.default = "apply_then_drop"
    async with _client(fake, certs_dir, max_retries=2) as c:
        with pytest.raises(OutcomeUnknown) as info:
            await c.put(b"a", b"1")
    calls = fake.txn_calls()
    assert len(calls) == 3
    rids = {tuple(b["request_id"]) for _, b in calls}
    assert len(rids) == 1 and len(fake.applied) == 1  # retried, applied once
    assert tuple(info.value.details["request_id"]) in rids


async def test_dropped_then_retried_returns_the_first_result(fake: FakeStore, certs_dir: Path):
    fake.plans["s1"] = ["apply_then_drop"]
    async with _client(fake, certs_dir) as c:
        ans = await c.put(b"a", b"1")
    calls = fake.txn_calls()
    assert [n for n, _ in calls] == ["s1", "s2"]
    assert calls[0][1]["request_id"] == calls[1][1]["request_id"]
    assert ans["header"]["revision"] == 2 and fake.revision == 2  # applied exactly once


async def test_a_hung_write_is_outcome_unknown(fake: FakeStore, certs_dir: Path):
    fake.default = "hang"
    async with _client(fake, certs_dir, timeout=0.6, attempt_timeout=0.2) as c:
        with pytest.raises(OutcomeUnknown):
            await c.put(b"a", b"1")


async def test_504_is_retried_and_the_retry_decides(fake: FakeStore, certs_dir: Path):
    fake.plans["s1"] = ["outcome_unknown"]
    async with _client(fake, certs_dir) as c:
        await c.put(b"a", b"1")
    assert [n for n, _ in fake.txn_calls()] == ["s1", "s2"]


async def test_definite_errors_raise_at_once(fake: FakeStore, certs_dir: Path):
    fake.default = "invalid"
    async with _client(fake, certs_dir) as c:
        with pytest.raises(InvalidRequest):
            await c.put(b"a", b"1")
    assert len(fake.txn_calls()) == 1


async def test_reads_are_retried_and_never_outcome_unknown(fake: FakeStore, certs_dir: Path):
    fake.plans["s1"] = ["drop"]
    async with _client(fake, certs_dir, max_retries=2) as c:
        assert (await c.get(b"a"))["count"] == 0
        fake.default = "drop"
        with pytest.raises(Unavailable):
            await c.get(b"a")


async def test_every_write_gets_a_fresh_increasing_request_id(fake: FakeStore, certs_dir: Path):
    async with _client(fake, certs_dir, client_id="me") as c:
        for i in range(3):
            await c.put(b"k", b"%d" % i)
        await c.lease_grant(10)
        await c.lease_keepalive(1)
        await c.lease_revoke(1)
        await c.compact(2)
        await c.get(b"k")
    writes = [b for _, p, b in fake.calls if p != "/v1/kv/range" and p != "/v1/status"]
    assert all("request_id" in b for b in writes) and len(writes) == 7
    assert not any("request_id" in b for _, p, b in fake.calls if p == "/v1/kv/range")
    rids = [b["request_id"] for b in writes]
    assert [r[0] for r in rids] == ["me"] * 7
    assert [r[1] for r in rids] == sorted({r[1] for r in rids})


# --- coalescing ----------------------------------------------------------------------------------


def _paths(fake: FakeStore) -> list[str]:
    return [p for _, p, _ in fake.calls if p != "/v1/status"]


async def test_concurrent_calls_share_one_batch(fake: FakeStore, certs_dir: Path):
    async with _client(fake, certs_dir, coalesce=True) as c:
        puts = await asyncio.gather(*(c.put(b"k%d" % i, b"v") for i in range(20)))
        gets = await asyncio.gather(c.get(b"k1"), c.get(b"k2"))
        alone = await c.put(b"k", b"v")
    assert _paths(fake) == ["/v1/kv/batch"] * 3
    assert sorted(p["header"]["revision"] for p in puts) == list(range(2, 22))
    assert [g["count"] for g in gets] == [0, 0] and alone["header"]["revision"] == 22
    ops = fake.txn_calls("/v1/kv/batch")[0][1]["ops"]
    assert len({tuple(op["txn"]["request_id"]) for op in ops}) == 20


async def test_a_broken_batch_is_retried_op_by_op_with_the_same_ids(
    fake: FakeStore, certs_dir: Path
):
    fake.plans["s1"] = ["apply_then_drop"]
    async with _client(fake, certs_dir, coalesce=True) as c:
        puts = await asyncio.gather(*(c.put(b"k%d" % i, b"v") for i in range(3)))
    assert _paths(fake) == ["/v1/kv/batch"] + ["/v1/kv/txn"] * 3
    assert fake.revision == 4  # three writes, each applied once
    batch_ids = {tuple(op["txn"]["request_id"]) for op in fake.calls[-4][2]["ops"]}
    assert {tuple(b["request_id"]) for _, b in fake.txn_calls()} == batch_ids
    assert sorted(p["header"]["revision"] for p in puts) == [2, 3, 4]


async def test_one_op_failing_in_a_batch_fails_alone(fake: FakeStore, certs_dir: Path):
    async with _client(fake, certs_dir, coalesce=True) as c:
        ok, bad, busy = await asyncio.gather(
            c.put(b"good", b"v"), c.put(b"bad", b"v"), c.put(b"busy", b"v"),
            return_exceptions=True)
    assert isinstance(ok, dict) and isinstance(bad, TooLarge)
    assert isinstance(busy, dict)  # retryable: sent again alone, and it went through
    assert _paths(fake) == ["/v1/kv/batch", "/v1/kv/txn"]


async def test_a_server_without_batches_turns_coalescing_off(fake: FakeStore, certs_dir: Path):
    fake.plans["s1"] = ["missing"]
    async with _client(fake, certs_dir, coalesce=True) as c:
        await asyncio.gather(c.put(b"a", b"1"), c.put(b"b", b"2"))
        await asyncio.gather(c.put(b"a", b"1"), c.put(b"b", b"2"))
    assert _paths(fake) == ["/v1/kv/batch"] + ["/v1/kv/txn"] * 4


# --- watch ---------------------------------------------------------------------------------------


async def _collect(c: StoreClient, start: int, until: int) -> list[dict[str, Any]]:
    out = []
    async for frame in c.watch(b"k", start_revision=start):
        out.append(frame)
        if frame["header"]["revision"] >= until and frame.get("events"):
            return out
    raise AssertionError("the watch ended")


async def test_watch_resumes_after_a_cut_without_duplicates(fake: FakeStore, certs_dir: Path):
    created = {"header": {"revision": 6}, "created": True}
    fake.status_leader = "s1"
    fake.plans["s1"] = [[created, {"header": {"revision": 5}, "events": [_event(5)]},
                         {"header": {"revision": 6}, "events": [_event(6)]}, "cut"]]
    fake.plans["s2"] = [[created, {"header": {"revision": 8}, "events": [_event(6), _event(7)]},
                         {"header": {"revision": 8}, "progress": True},
                         {"header": {"revision": 6}, "progress": True},  # behind: dropped
                         {"header": {"revision": 9}, "events": [_event(9)]}]]
    async with _client(fake, certs_dir) as c:
        frames = await asyncio.wait_for(_collect(c, 5, 9), 10)
    revs = [e["kv"]["mod_revision"] for f in frames for e in f.get("events", ())]
    assert revs == [5, 6, 7, 9]
    assert [f["header"]["revision"] for f in frames if f.get("progress")] == [8]
    starts = [(n, b["start_revision"]) for n, p, b in fake.calls if p == "/v1/watch"]
    assert starts == [("s1", 5), ("s2", 7)]


async def test_watch_raises_compacted(fake: FakeStore, certs_dir: Path):
    fake.default = [{"error": {"code": "compacted", "message": "gone", "compact_revision": 4}}]
    async with _client(fake, certs_dir) as c:
        with pytest.raises(Compacted) as info:
            await _collect(c, 2, 3)
    assert info.value.details["compact_revision"] == 4


async def test_watch_from_now_starts_after_the_current_revision(fake: FakeStore, certs_dir: Path):
    fake.revision = 10
    fake.plans["s1"] = ["ok", [{"header": {"revision": 11}, "events": [_event(11)]}]]
    fake.status_leader = "s1"
    async with _client(fake, certs_dir) as c:
        frames = await asyncio.wait_for(_collect(c, 0, 11), 10)
    assert [f["events"][0]["kv"]["mod_revision"] for f in frames] == [11]
    assert [b["start_revision"] for _, p, b in fake.calls if p == "/v1/watch"] == [11]


# --- pure pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry", "jitter", "expected"),
    [
        pytest.param(0, 1.0, 0.025, id="first"),
        pytest.param(1, 1.0, 0.05, id="doubles"),
        pytest.param(4, 1.0, 0.4, id="fifth"),
        pytest.param(5, 1.0, BACKOFF_CAP, id="capped"),
        pytest.param(1000, 1.0, BACKOFF_CAP, id="stays-capped"),
        pytest.param(0, 0.0, 0.0125, id="jitter-halves"),
    ],
)
def test_backoff_delay(retry: int, jitter: float, expected: float):
    assert backoff_delay(retry, jitter=jitter) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        pytest.param(b"foo", b"fop", id="simple"),
        pytest.param(b"a\xff", b"b", id="carry"),
        pytest.param(b"\xff\xff", b"\0", id="all-ff"),
        pytest.param(b"", b"\0", id="empty"),
    ],
)
def test_prefix_end(prefix: bytes, end: bytes):
    assert prefix_end(prefix) == end


def test_endpoints_prefer_the_leader_and_move_on_from_failures():
    e = Endpoints(["https://a/", "https://b", "https://c"])
    assert e.first() == "https://a"
    e.failed("https://a")
    assert e.first() == "https://b" and e.after("https://b") == "https://c"
    e.learn("https://c/")
    assert e.first() == "https://c" and e.after("https://a") == "https://c"
    e.failed("https://c")
    assert e.leader is None and e.after("https://c") == "https://a"
    e.learn(None)
    assert e.leader is None


def test_watch_cursor_drops_what_was_delivered():
    cur = WatchCursor(5)
    assert cur.accept({"header": {"revision": 6}, "created": True}) is None
    got = cur.accept({"header": {"revision": 6}, "events": [_event(4), _event(5), _event(6)]})
    assert got is not None and [e["kv"]["mod_revision"] for e in got["events"]] == [5, 6]
    assert cur.accept({"header": {"revision": 6}, "events": [_event(6)]}) is None
    assert cur.accept({"header": {"revision": 5}, "progress": True}) is None
    assert cur.accept({"header": {"revision": 9}, "progress": True}) is not None
    assert cur.next_start == 10
    with pytest.raises(ValueError):
        WatchCursor(0)


def test_errors_from_answers_keep_their_class():
    from store.client_wire import error_of

    assert isinstance(error_of(503, b"not cbor"), Unavailable)
    assert type(error_of(500, b"\xff")) is StoreError
    err = error_of(410, cbor2.dumps({"error": {"code": "compacted", "message": "m",
                                               "compact_revision": 3}}))
    assert isinstance(err, Compacted) and err.details == {"compact_revision": 3}
