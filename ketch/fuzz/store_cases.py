"""Malformed CBOR for the store's endpoints: random bytes, truncated and bit-flipped encodings
of valid requests, valid CBOR of the wrong shape (Hypothesis values: wrong types, huge and
negative integers, unknown fields, deep nesting, tags, indefinite lengths), and requests
that are right but for one field.  Membership changes only ever get garbage, so no fuzz
input can remove a replica."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cbor2
from hypothesis import strategies as st

from .api_cases import draw

__all__ = ["WRITES", "StoreReq", "store_requests"]


@dataclass
class StoreReq:
    family: str
    method: str
    path: str
    body: bytes

    def describe(self) -> str:
        return f"[{self.family}] {self.method} {self.path} body[{len(self.body)}]={self.body[:120]!r}"


_VALID: dict[str, dict[str, Any]] = {
    "/v1/kv/range": {"key": b"fz/", "range_end": b"fz0", "limit": 5},
    "/v1/kv/txn": {"compare": [{"key": b"fz/a", "target": "version", "result": "equal",
                                "value": 0}],
                   "success": [{"put": {"key": b"fz/a", "value": b"v"}}],
                   "failure": [{"range": {"key": b"fz/a"}}]},
    "/v1/kv/batch": {"ops": [{"range": {"key": b"fz/a"}},
                             {"txn": {"success": [{"put": {"key": b"fz/b", "value": b"v"}}]}}]},
    "/v1/watch": {"key": b"fz/", "range_end": b"fz0", "start_revision": 1},
    "/v1/lease/grant": {"ttl": 60},
    "/v1/lease/revoke": {"id": 1},
    "/v1/lease/keepalive": {"id": 1},
    "/v1/lease/timetolive": {"id": 1, "keys": True},
    "/v1/lease/leases": {},
    "/v1/maintenance/compact": {"revision": 1},
}
#: endpoints that can change the store
WRITES = frozenset({"/v1/kv/txn", "/v1/kv/batch", "/v1/lease/grant", "/v1/lease/revoke",
                    "/v1/lease/keepalive", "/v1/maintenance/compact", "/v1/members/add",
                    "/v1/members/remove"})
_GARBAGE_ONLY = ("/v1/members/add", "/v1/members/remove")
_GETS = ("/v1/status", "/v1/members", "/health", "/metrics", "/v1/maintenance/snapshot")

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.binary(max_size=20)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["key", "range_end", "revision", "limit", "compare", "success",
                         "failure", "ops", "txn", "range", "put", "delete_range", "value",
                         "lease", "id", "ttl", "keys", "start_revision", "request_id",
                         "target", "result", "name", "raft", "client", "prev_kv", "x"])
        | st.text(max_size=5) | st.integers(), kids, max_size=5),
    max_leaves=15)


def _mutate(value: Any, rng: random.Random, junk: Any) -> Any:
    """``value`` with one leaf (or key) replaced by ``junk``."""
    if isinstance(value, dict) and value:
        k = rng.choice(list(value))
        out = dict(value)
        if rng.random() < 0.2:
            out[f"{k}_"] = junk
        else:
            out[k] = _mutate(value[k], rng, junk)
        return out
    if isinstance(value, list) and value:
        i = rng.randrange(len(value))
        return [*value[:i], _mutate(value[i], rng, junk), *value[i + 1:]]
    return junk


def _special(rng: random.Random) -> bytes:
    return rng.choice([
        b"\x81" * 100_000 + b"\x00",                     # nested arrays, 100,000 deep
        b"\xa1\x61k" * 50_000 + b"\x00",                 # nested maps
        b"\xd8\x1e" * 10_000 + b"\x00",                  # nested tags
        b"\x9f" * 1000,                                  # unterminated indefinite arrays
        b"\x5f\x41a\x41b",                               # unterminated indefinite bytes
        b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff",         # uint64 max
        b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00",         # NaN
        b"\xc2\x59\xff\xff" + b"\xff" * 200,             # truncated bignum
        b"\xbb\xff\xff\xff\xff\xff\xff\xff\xff",         # a map claiming 2**64 pairs
        b"\xd9\xd9\xf7\xa0",                             # self-described CBOR of {}
        b"\xa1\xa0\x00",                                 # a map as a map key
        b"\xff", b"", b"\x00",
    ])


def store_requests(total: int, seed: int) -> Iterator[StoreReq]:
    rng = random.Random(seed)
    paths = [*_VALID, *_GARBAGE_ONLY]
    batch = 500
    for round_ in range(max(1, total // batch)):
        values = draw(cbor_values, batch // 2, seed * 7919 + round_)
        blobs = draw(st.binary(max_size=200), batch // 4, seed * 104729 + round_)
        out: list[StoreReq] = []
        for v in values:
            path = rng.choice(paths)
            if path in _VALID and rng.random() < 0.6:
                v = _mutate(_VALID[path], rng, v)
                family = "mutated"
            else:
                family = "shape"
            try:
                out.append(StoreReq(family, "POST", path, cbor2.dumps(v)))
            except (ValueError, TypeError, OverflowError):
                continue
        for b in blobs:
            out.append(StoreReq("bytes", "POST", rng.choice(paths), b))
        while len(out) < batch:
            path = rng.choice(list(_VALID))
            good = cbor2.dumps(_VALID[path])
            kind = rng.random()
            if kind < 0.3:
                body, family = good[: rng.randrange(len(good))], "truncated"
            elif kind < 0.6:
                i = rng.randrange(len(good))
                body, family = good[:i] + bytes([good[i] ^ (1 << rng.randrange(8))]) + \
                    good[i + 1:], "bitflip"
            elif kind < 0.7:
                body, family = _special(rng), "special"
            elif kind < 0.8:
                body, family = good, "wrong-method"
                out.append(StoreReq(family, rng.choice(["GET", "PUT", "DELETE"]), path, body))
                continue
            elif kind < 0.9:
                out.append(StoreReq("get-with-body", "GET", rng.choice(_GETS), _special(rng)))
                continue
            else:
                body, family = good, "unknown-path"
                path = rng.choice(["/v1/kv", "/v1/kv/range/x", "/v2/kv/range", "/", "/v1/../x"])
            out.append(StoreReq(family, "POST", path, body))
        rng.shuffle(out)
        yield from out
