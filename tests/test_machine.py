"""Table-driven tests of the store's state machine against docs/store-api.md."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from store.errors import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    LeaseNotFound,
    RequestExpired,
    StoreError,
    TooLarge,
)
from store.kv import Event, KeyValue
from store.machine import Machine
from store.requests import MAX_KEY_BYTES, MAX_TXN_OPS, MAX_VALUE_BYTES

# -- command builders ---------------------------------------------------------------------


def put(key: bytes, value: bytes = b"v", *, lease: int = 0, prev_kv: bool = False) -> dict:
    return {"put": {"key": key, "value": value, "lease": lease, "prev_kv": prev_kv}}


def delete(key: bytes, range_end: bytes | None = None, *, prev_kv: bool = False) -> dict:
    return {"delete_range": {"key": key, "range_end": range_end, "prev_kv": prev_kv}}


def rng(key: bytes, range_end: bytes | None = None, **kw: Any) -> dict:
    return {"range": {"key": key, "range_end": range_end, **kw}}


def cmp(key: bytes, target: str, result: str, value: Any, range_end: bytes | None = None) -> dict:
    c = {"key": key, "target": target, "result": result, "value": value}
    if range_end is not None:
        c["range_end"] = range_end
    return c


def txn(*success: dict, compare: tuple = (), failure: tuple = (), rid: Any = None) -> dict:
    cmd: dict[str, Any] = {
        "t": "txn",
        "req": {"compare": list(compare), "success": list(success), "failure": list(failure)},
    }
    if rid is not None:
        cmd["rid"] = rid
    return cmd


def grant(ttl: int = 10, id: int = 0, now: float = 100.0, rid: Any = None) -> dict:
    cmd: dict[str, Any] = {"t": "lease_grant", "id": id, "ttl": ttl, "now": now}
    if rid is not None:
        cmd["rid"] = rid
    return cmd


def run(m: Machine, *cmds: dict) -> list[Any]:
    return [m.apply(c)[0] for c in cmds]


def keys_of(answer: dict) -> list[bytes]:
    return [kv["key"] for kv in answer["kvs"]]


# -- every error case: raises the right class and changes nothing -------------------------

BIG_KEY = b"k" * (MAX_KEY_BYTES + 1)
BIG_VALUE = b"v" * (MAX_VALUE_BYTES + 1)
SETUP = [grant(id=7), txn(put(b"a", b"1")), txn(put(b"a", b"2")), {"t": "compact", "revision": 2}]


def _req(**req: Any) -> dict:
    return {"t": "txn", "req": req}


ERRORS = [
    pytest.param([], InvalidRequest, id="command-not-a-map"),
    pytest.param({"req": {}}, InvalidRequest, id="command-without-t"),
    pytest.param({"t": "frobnicate"}, InvalidRequest, id="unknown-command"),
    pytest.param({"t": 5}, InvalidRequest, id="t-not-a-string"),
    pytest.param({"t": "barrier", "x": 1}, InvalidRequest, id="unknown-command-field"),
    pytest.param({"t": "txn", "req": []}, InvalidRequest, id="txn-req-not-a-map"),
    pytest.param({"t": "txn"}, InvalidRequest, id="txn-req-missing"),
    pytest.param(_req(success=[], extra=1), InvalidRequest, id="txn-unknown-field"),
    pytest.param(_req(compare={}), InvalidRequest, id="compare-not-a-list"),
    pytest.param(_req(success=[{"get": {"key": b"a"}}]), InvalidRequest, id="unknown-op"),
    pytest.param(_req(success=[{**put(b"a"), **rng(b"a")}]), InvalidRequest, id="two-ops-in-one"),
    pytest.param(_req(success=["put"]), InvalidRequest, id="op-not-a-map"),
    pytest.param(_req(success=[{"put": {"value": b"v"}}]), InvalidRequest, id="put-key-missing"),
    pytest.param(txn(put("a")), InvalidRequest, id="put-key-str"),  # type: ignore[arg-type]
    pytest.param(txn(put(b"")), InvalidRequest, id="put-key-empty"),
    pytest.param(txn(put(BIG_KEY)), TooLarge, id="put-key-too-large"),
    pytest.param(txn(put(b"a", BIG_VALUE)), TooLarge, id="put-value-too-large"),
    pytest.param(txn(put(b"a", "v")), InvalidRequest, id="put-value-str"),  # type: ignore[arg-type]
    pytest.param(
        _req(success=[{"put": {"key": b"a", "value": b"", "ignore_value": True}}]),
        InvalidRequest,
        id="put-unknown-field",
    ),
    pytest.param(txn(put(b"a", lease=-1)), InvalidRequest, id="put-lease-negative"),
    pytest.param(txn(put(b"a", lease=True)), InvalidRequest, id="put-lease-bool"),
    pytest.param(txn(put(b"a", prev_kv=1)), InvalidRequest, id="put-prev-kv-int"),  # type: ignore[arg-type]
    pytest.param(txn(delete(b"a", "b")), InvalidRequest, id="delete-range-end-str"),  # type: ignore[arg-type]
    pytest.param(txn(delete(b"a", BIG_KEY)), TooLarge, id="delete-range-end-too-large"),
    pytest.param(
        txn(*[put(b"k%d" % i) for i in range(MAX_TXN_OPS + 1)]), TooLarge, id="too-many-ops"
    ),
    pytest.param(
        txn(compare=tuple(cmp(b"a", "version", ">", -1) for _ in range(MAX_TXN_OPS + 1))),
        TooLarge,
        id="too-many-compares",
    ),
    pytest.param(
        txn(failure=tuple(rng(b"a") for _ in range(MAX_TXN_OPS + 1))),
        TooLarge,
        id="too-many-failure-ops",
    ),
    pytest.param(
        txn(put(b"a", b"x" * MAX_VALUE_BYTES), put(b"b", b"x" * MAX_VALUE_BYTES)),
        TooLarge,
        id="txn-over-request-limit",
    ),
    pytest.param(txn(put(b"a"), put(b"a")), InvalidRequest, id="duplicate-put-key"),
    pytest.param(txn(put(b"ab"), delete(b"a", b"b")), InvalidRequest, id="put-in-deleted-range"),
    pytest.param(txn(compare=(cmp(b"a", "size", "==", 1),)), InvalidRequest, id="compare-target"),
    pytest.param(txn(compare=(cmp(b"a", "version", ">=", 1),)), InvalidRequest, id="compare-op"),
    pytest.param(
        txn(compare=(cmp(b"a", "version", "==", b"1"),)), InvalidRequest, id="compare-version-bytes"
    ),
    pytest.param(
        txn(compare=(cmp(b"a", "value", "==", 1),)), InvalidRequest, id="compare-value-int"
    ),
    pytest.param(txn(compare=(cmp(b"", "version", "==", 0),)), InvalidRequest, id="compare-key"),
    pytest.param(txn(rng(b"a", limit=-1)), InvalidRequest, id="range-limit-negative"),
    pytest.param(txn(rng(b"a", revision=-1)), InvalidRequest, id="range-revision-negative"),
    pytest.param(txn(rng(b"a", count_only=1)), InvalidRequest, id="range-count-only-int"),
    pytest.param(txn(rng(b"a", sort_order=1)), InvalidRequest, id="range-unknown-field"),
    pytest.param(txn(put(b"a", lease=99)), LeaseNotFound, id="put-lease-missing"),
    pytest.param(txn(put(b"z"), put(b"y", lease=99)), LeaseNotFound, id="lease-missing-after-put"),
    pytest.param(txn(put(b"z"), rng(b"a", revision=99)), FutureRevision, id="range-future-in-txn"),
    pytest.param(txn(put(b"z"), rng(b"a", revision=1)), Compacted, id="range-compacted-in-txn"),
    pytest.param(txn(rid=["c"]), InvalidRequest, id="rid-short"),
    pytest.param(txn(rid=["c", -1]), InvalidRequest, id="rid-negative-seq"),
    pytest.param(txn(rid=[1, 2]), InvalidRequest, id="rid-client-int"),
    pytest.param(txn(rid=["", 1]), InvalidRequest, id="rid-client-empty"),
    pytest.param(
        {"t": "lease_expire", "now": 1.0, "rid": ["c", 1]},
        InvalidRequest,
        id="rid-on-lease-expire",
    ),
    pytest.param(grant(ttl=0), InvalidRequest, id="grant-ttl-zero"),
    pytest.param(grant(ttl=9_000_000_001), TooLarge, id="grant-ttl-too-large"),
    pytest.param(grant(ttl=True), InvalidRequest, id="grant-ttl-bool"),
    pytest.param(grant(now="now"), InvalidRequest, id="grant-now-str"),  # type: ignore[arg-type]
    pytest.param(grant(now=float("nan")), InvalidRequest, id="grant-now-nan"),
    pytest.param({"t": "lease_grant", "ttl": 5}, InvalidRequest, id="grant-now-missing"),
    pytest.param(grant(id=7), InvalidRequest, id="grant-id-exists"),
    pytest.param(grant(id=-3), InvalidRequest, id="grant-id-negative"),
    pytest.param({"t": "lease_revoke", "id": 8}, LeaseNotFound, id="revoke-missing"),
    pytest.param({"t": "lease_revoke"}, InvalidRequest, id="revoke-id-missing"),
    pytest.param(
        {"t": "lease_keepalive", "id": 8, "now": 1.0}, LeaseNotFound, id="keepalive-missing"
    ),
    pytest.param({"t": "lease_expire"}, InvalidRequest, id="expire-now-missing"),
    pytest.param(
        {"t": "lease_promote", "now": 1.0, "extend": -1},
        InvalidRequest,
        id="promote-extend-negative",
    ),
    pytest.param({"t": "compact", "revision": 99}, FutureRevision, id="compact-future"),
    pytest.param({"t": "compact", "revision": 2}, Compacted, id="compact-again"),
    pytest.param({"t": "compact", "revision": 1}, Compacted, id="compact-below"),
    pytest.param({"t": "compact", "revision": -1}, InvalidRequest, id="compact-negative"),
    pytest.param({"t": "batch", "cmds": {}}, InvalidRequest, id="batch-cmds-not-a-list"),
]


@pytest.mark.parametrize(("cmd", "error"), ERRORS)
def test_failing_command_raises_and_changes_nothing(cmd: Any, error: type[StoreError]) -> None:
    m = Machine()
    run(m, *SETUP)
    before = m.dump()
    with pytest.raises(error) as info:
        m.apply(cmd)
    assert type(info.value) is error
    assert m.dump() == before


RANGE_ERRORS = [
    pytest.param({"key": b"a", "revision": 99}, FutureRevision, id="future"),
    pytest.param({"key": b"a", "revision": 1}, Compacted, id="compacted"),
    pytest.param({"key": b""}, InvalidRequest, id="empty-key"),
    pytest.param({"key": BIG_KEY}, TooLarge, id="key-too-large"),
    pytest.param({"key": b"a", "limit": "2"}, InvalidRequest, id="limit-str"),
    pytest.param({"key": b"a", "bogus": 1}, InvalidRequest, id="unknown-field"),
    pytest.param([b"a"], InvalidRequest, id="not-a-map"),
]


@pytest.mark.parametrize(("req", "error"), RANGE_ERRORS)
def test_range_errors(req: Any, error: type[StoreError]) -> None:
    m = Machine()
    run(m, *SETUP)
    with pytest.raises(error):
        m.range(req)


def test_compacted_error_says_compact_revision() -> None:
    m = Machine()
    run(m, *SETUP)
    with pytest.raises(Compacted) as info:
        m.range({"key": b"a", "revision": 1})
    assert info.value.details["compact_revision"] == 2
    with pytest.raises(Compacted) as info:
        m.events_since(1)
    assert info.value.details["compact_revision"] == 2


# -- limits at the boundary are accepted ---------------------------------------------------


@pytest.mark.parametrize(
    "cmd",
    [
        pytest.param(txn(put(b"k" * MAX_KEY_BYTES)), id="key-at-limit"),
        pytest.param(txn(put(b"a", b"v" * MAX_VALUE_BYTES)), id="value-at-limit"),
        pytest.param(txn(*[put(b"k%d" % i) for i in range(MAX_TXN_OPS)]), id="ops-at-limit"),
        pytest.param(grant(ttl=9_000_000_000), id="ttl-at-limit"),
        pytest.param(grant(ttl=1), id="ttl-min"),
        pytest.param(grant(now=5), id="now-int"),
        pytest.param(txn(), id="empty-txn"),
        pytest.param({"t": "txn", "req": {}}, id="txn-lists-default"),
        pytest.param(
            {"t": "txn", "req": {"success": [put(b"a")], "request_id": ["c", 1]}},
            id="request-id-in-body",
        ),
        pytest.param(txn(put(b"a"), delete(b"b"), delete(b"a\0", b"c")), id="disjoint-put-delete"),
    ],
)
def test_accepted_at_limits(cmd: dict) -> None:
    Machine().apply(cmd)


# -- range -------------------------------------------------------------------------------

RANGE_KEYS = [b"a", b"ab", b"abc", b"b", b"c", b"d\xff"]

RANGES = [
    pytest.param({"key": b"ab"}, [b"ab"], False, id="single"),
    pytest.param({"key": b"zz"}, [], False, id="single-missing"),
    pytest.param({"key": b"a", "range_end": b"b"}, [b"a", b"ab", b"abc"], False, id="prefix"),
    pytest.param({"key": b"\0", "range_end": b"\0"}, RANGE_KEYS, False, id="all"),
    pytest.param({"key": b"b", "range_end": b"\0"}, [b"b", b"c", b"d\xff"], False, id="from-key"),
    pytest.param(
        {"key": b"a", "range_end": b"c"}, [b"a", b"ab", b"abc", b"b"], False, id="half-open"
    ),
    pytest.param({"key": b"c", "range_end": b"a"}, [], False, id="end-before-key"),
    pytest.param({"key": b"ab", "range_end": b""}, [b"ab"], False, id="empty-end-is-single"),
    pytest.param(
        {"key": b"\0", "range_end": b"\0", "limit": 2}, [b"a", b"ab"], True, id="limit-cuts"
    ),
    pytest.param(
        {"key": b"a", "range_end": b"b", "limit": 3}, RANGE_KEYS[:3], False, id="limit-fits"
    ),
]


@pytest.mark.parametrize(("req", "keys", "more"), RANGES)
def test_range(req: dict, keys: list[bytes], more: bool) -> None:
    m = Machine()
    run(m, txn(*[put(k, k.upper()) for k in RANGE_KEYS]), txn(put(b"gone")), txn(delete(b"gone")))
    answer = m.range(req)
    assert keys_of(answer) == keys
    assert answer["more"] is more
    assert answer["header"] == {"revision": 4}
    expected_count = len(m.range({**req, "limit": 0})["kvs"])
    assert answer["count"] == expected_count
    assert all(kv["value"] == kv["key"].upper() for kv in answer["kvs"])


def test_range_count_only_and_keys_only() -> None:
    m = Machine()
    run(m, txn(*[put(k, b"value") for k in RANGE_KEYS]))
    everything = {"key": b"\0", "range_end": b"\0"}
    counted = m.range({**everything, "count_only": True, "limit": 1})
    assert counted["kvs"] == [] and counted["count"] == len(RANGE_KEYS) and not counted["more"]
    keys = m.range({**everything, "keys_only": True})
    assert keys_of(keys) == RANGE_KEYS and {kv["value"] for kv in keys["kvs"]} == {b""}


def test_range_at_past_revisions() -> None:
    m = Machine()
    run(
        m,
        txn(put(b"a", b"1")),  # 2
        txn(put(b"a", b"2")),  # 3
        txn(delete(b"a")),  # 4
        txn(put(b"a", b"3")),  # 5
    )
    expected = {
        1: None,
        2: (b"1", 2, 2, 1),
        3: (b"2", 2, 3, 2),
        4: None,
        5: (b"3", 5, 5, 1),
        0: (b"3", 5, 5, 1),
    }
    for revision, want in expected.items():
        kvs = m.range({"key": b"a", "revision": revision})["kvs"]
        got = [
            (kv["value"], kv["create_revision"], kv["mod_revision"], kv["version"]) for kv in kvs
        ]
        assert got == ([] if want is None else [want]), revision


# -- txn: compares, responses ---------------------------------------------------------------

COMPARES = [
    pytest.param(cmp(b"missing", "version", "==", 0), True, id="missing-version-zero"),
    pytest.param(cmp(b"missing", "create_revision", "==", 0), True, id="missing-create-zero"),
    pytest.param(cmp(b"missing", "mod_revision", "<", 1), True, id="missing-mod-zero"),
    pytest.param(cmp(b"missing", "lease", "==", 0), True, id="missing-lease-zero"),
    pytest.param(cmp(b"missing", "value", "==", b""), False, id="missing-value-eq-false"),
    pytest.param(cmp(b"missing", "value", "!=", b"x"), False, id="missing-value-ne-false"),
    pytest.param(cmp(b"a", "value", "==", b"one"), True, id="value-eq"),
    pytest.param(cmp(b"a", "value", "<", b"onf"), True, id="value-lt-bytes"),
    pytest.param(cmp(b"a", "value", ">", b"onf"), False, id="value-gt-bytes"),
    pytest.param(cmp(b"a", "version", "==", 2), True, id="version"),
    pytest.param(cmp(b"a", "create_revision", "==", 2), True, id="create-revision"),
    pytest.param(cmp(b"a", "mod_revision", ">", 2), True, id="mod-revision"),
    pytest.param(cmp(b"a", "mod_revision", "!=", 3), False, id="mod-revision-ne"),
    pytest.param(cmp(b"b", "lease", "==", 1), True, id="lease"),
    pytest.param(cmp(b"a", "version", ">", 0, b"c"), True, id="range-all-match"),
    pytest.param(cmp(b"a", "lease", "==", 1, b"c"), False, id="range-one-fails"),
    pytest.param(cmp(b"x", "version", "==", 0, b"y"), True, id="empty-range-zero-kv"),
    pytest.param(cmp(b"x", "value", "==", b"", b"y"), False, id="empty-range-value-false"),
]


@pytest.mark.parametrize(("compare", "succeeded"), COMPARES)
def test_compare(compare: dict, succeeded: bool) -> None:
    m = Machine()
    run(
        m,
        grant(),
        txn(put(b"a", b"zero")),  # 2
        txn(put(b"a", b"one"), put(b"b", b"bee", lease=1)),  # 3
    )
    result, _ = m.apply(txn(put(b"s"), compare=(compare,), failure=(put(b"f"),)))
    assert result["succeeded"] is succeeded
    assert keys_of(m.range({"key": b"s" if succeeded else b"f"})) != []


def test_txn_responses_and_own_writes() -> None:
    m = Machine()
    run(m, txn(put(b"a", b"1"), put(b"b", b"2")))
    result, events = m.apply(
        txn(
            put(b"a", b"3", prev_kv=True),
            put(b"n", b"new", prev_kv=True),
            put(b"b", b"4"),
            rng(b"a", b"z"),
            delete(b"c", b"d", prev_kv=True),
        )
    )
    assert result["header"] == {"revision": 3} and result["succeeded"] is True
    r = result["responses"]
    assert r[0]["put"]["prev_kv"]["value"] == b"1"
    assert r[1]["put"]["prev_kv"] is None
    assert r[2]["put"]["prev_kv"] is None  # not asked for
    assert [kv["value"] for kv in r[3]["range"]["kvs"]] == [b"3", b"4", b"new"]
    assert r[3]["range"]["header"] == {"revision": 3}
    assert r[4] == {"delete_range": {"deleted": 0, "prev_kvs": []}}
    assert [e.revision for e in events] == [3, 3, 3]
    result, events = m.apply(txn(delete(b"a", b"c", prev_kv=True)))
    assert result["responses"][0]["delete_range"]["deleted"] == 2
    assert [kv["key"] for kv in result["responses"][0]["delete_range"]["prev_kvs"]] == [b"a", b"b"]
    tomb = events[0].kv
    assert (events[0].type, tomb.key, tomb.value, tomb.version, tomb.mod_revision) == (
        "delete",
        b"a",
        b"",
        0,
        4,
    )
    assert events[0].prev_kv is not None and events[0].prev_kv.value == b"3"


# -- revision counting ----------------------------------------------------------------------

REVISIONS = [
    pytest.param([txn(put(b"a"))], 1, id="put"),
    pytest.param([txn(put(b"a"), put(b"b"), put(b"c"))], 1, id="three-puts-one-txn"),
    pytest.param([txn(rng(b"a"))], 0, id="range-only"),
    pytest.param([txn(delete(b"missing"))], 0, id="delete-nothing"),
    pytest.param([txn(put(b"a")), txn(delete(b"a"))], 2, id="put-then-delete"),
    pytest.param([txn(compare=(cmp(b"a", "version", "==", 9),))], 0, id="empty-failure-branch"),
    pytest.param([grant(), {"t": "lease_keepalive", "id": 1, "now": 5.0}], 0, id="lease-no-write"),
    pytest.param(
        [{"t": "barrier"}, {"t": "lease_promote", "now": 1.0, "extend": 2.0}], 0, id="barrier"
    ),
    pytest.param([grant(), {"t": "lease_revoke", "id": 1}], 0, id="revoke-no-keys"),
    pytest.param(
        [grant(), txn(put(b"a", lease=1), put(b"b", lease=1)), {"t": "lease_revoke", "id": 1}],
        2,
        id="revoke-with-keys-one-revision",
    ),
    pytest.param(
        [
            grant(ttl=5),
            grant(ttl=6),
            txn(put(b"a", lease=1), put(b"b", lease=2)),
            {"t": "lease_expire", "now": 200.0},
        ],
        2,
        id="expire-two-leases-one-revision",
    ),
    pytest.param(
        [{"t": "batch", "cmds": [txn(put(b"a")), txn(rng(b"a")), txn(put(b"b"))]}],
        2,
        id="batch-each-write-own-revision",
    ),
]


@pytest.mark.parametrize(("cmds", "bump"), REVISIONS)
def test_revision_counting(cmds: list[dict], bump: int) -> None:
    m = Machine()
    assert m.revision == 1
    run(m, *cmds)
    assert m.revision == 1 + bump


# -- exactly-once ---------------------------------------------------------------------------


def test_dedup_returns_first_result() -> None:
    m = Machine()
    first, events = m.apply(txn(put(b"a", b"1"), rid=["c", 1]))
    assert events
    again, events = m.apply(txn(put(b"a", b"other"), rid=["c", 1]))
    assert again == first and events == [] and m.revision == 2
    assert m.range({"key": b"a"})["kvs"][0]["value"] == b"1"
    other_client, _ = m.apply(txn(put(b"a", b"2"), rid=["d", 1]))
    assert other_client["header"]["revision"] == 3


def test_dedup_remembers_errors() -> None:
    m = Machine()
    with pytest.raises(LeaseNotFound):
        m.apply(txn(put(b"a", lease=1), rid=["c", 1]))
    m.apply(grant())
    with pytest.raises(LeaseNotFound):
        m.apply(txn(put(b"a", lease=1), rid=["c", 1]))
    assert m.revision == 1
    grant_first, _ = m.apply(grant(rid=["c", 2]))
    assert m.apply(grant(rid=["c", 2]))[0] == grant_first and m.leases()["leases"] == [
        {"id": 1},
        {"id": 2},
    ]


def test_dedup_window() -> None:
    m = Machine(dedup_seqs=4, dedup_clients=2)
    for seq in range(6):
        m.apply(txn(put(b"k%d" % seq), rid=["c", seq]))
    with pytest.raises(RequestExpired):
        m.apply(txn(put(b"k0"), rid=["c", 0]))
    with pytest.raises(RequestExpired):
        m.apply(txn(put(b"k1"), rid=["c", 1]))
    revision = m.revision
    assert m.apply(txn(put(b"k5"), rid=["c", 5]))[0]["header"]["revision"] == revision
    assert m.revision == revision
    # clients beyond the window are forgotten oldest-first ("c" wrote least recently)
    m.apply(txn(put(b"x"), rid=["d", 0]))
    m.apply(txn(put(b"y"), rid=["e", 0]))
    m.apply(txn(put(b"k5"), rid=["c", 5]))
    assert m.revision == revision + 3


# -- batch ------------------------------------------------------------------------------------


def test_batch_isolation() -> None:
    m = Machine()
    result, events = m.apply(
        {
            "t": "batch",
            "cmds": [
                txn(put(b"a")),
                {"t": "nope"},
                txn(put(b"b"), put(b"c", lease=42)),
                {"t": "batch", "cmds": []},
                txn(put(b"d"), rid=["c", 1]),
                txn(put(b"d", b"again"), rid=["c", 1]),
            ],
        }
    )
    assert [next(iter(r)) for r in result] == ["ok", "err", "err", "err", "ok", "ok"]
    assert result[1]["err"]["code"] == "invalid_request"
    assert result[2]["err"]["code"] == "lease_not_found"
    assert result[4] == result[5]
    assert m.revision == 3 and [e.kv.key for e in events] == [b"a", b"d"]
    assert keys_of(m.range({"key": b"\0", "range_end": b"\0"})) == [b"a", b"d"]


# -- leases ------------------------------------------------------------------------------------


def test_lease_lifecycle() -> None:
    m = Machine()
    assert run(m, grant(ttl=10), grant(ttl=20, id=9), grant(ttl=30)) == [
        {"header": {"revision": 1}, "id": 1, "ttl": 10},
        {"header": {"revision": 1}, "id": 9, "ttl": 20},
        {"header": {"revision": 1}, "id": 2, "ttl": 30},
    ]
    run(m, txn(put(b"a", lease=1), put(b"b", lease=1), put(b"c", lease=9)))
    ttl = m.time_to_live(1, 104.5, True)
    assert ttl == {
        "header": {"revision": 2},
        "id": 1,
        "ttl": 5,
        "granted_ttl": 10,
        "keys": [b"a", b"b"],
    }
    run(m, txn(put(b"b", lease=9)), txn(put(b"c")))  # move b to lease 9; detach c
    assert m.time_to_live(1, 100, True)["keys"] == [b"a"]
    assert m.time_to_live(9, 100, True)["keys"] == [b"b"]
    assert m.time_to_live(9, 100, False)["keys"] == []
    run(m, {"t": "lease_keepalive", "id": 1, "now": 150.0})
    assert m.time_to_live(1, 150.0, False)["ttl"] == 10
    run(m, {"t": "lease_promote", "now": 150.0, "extend": 5.0})
    assert [m.time_to_live(i, 150.0, False)["ttl"] for i in (1, 9, 2)] == [15, 25, 35]
    assert m.leases_due(170.0) == [1]
    result, events = m.apply({"t": "lease_expire", "now": 170.0})
    assert result == {"header": {"revision": 5}, "expired": [1]}
    assert [(e.type, e.kv.key, e.revision) for e in events] == [("delete", b"a", 5)]
    result, events = m.apply({"t": "lease_revoke", "id": 9})
    assert [(e.type, e.kv.key, e.prev_kv.lease) for e in events] == [("delete", b"b", 9)]  # type: ignore[union-attr]
    assert m.time_to_live(9, 0, True) == {
        "header": {"revision": 6},
        "id": 9,
        "ttl": -1,
        "granted_ttl": 0,
        "keys": [],
    }
    assert m.leases() == {"header": {"revision": 6}, "leases": [{"id": 2}]}
    assert keys_of(m.range({"key": b"\0", "range_end": b"\0"})) == [b"c"]


def test_deleted_key_leaves_its_lease() -> None:
    m = Machine()
    run(m, grant(), txn(put(b"a", lease=1)), txn(delete(b"a")), txn(put(b"a")))
    assert m.time_to_live(1, 100, True)["keys"] == []
    _, events = m.apply({"t": "lease_revoke", "id": 1})
    assert events == [] and keys_of(m.range({"key": b"a"})) == [b"a"]


# -- compaction and events ---------------------------------------------------------------------


def test_compaction() -> None:
    m = Machine()
    run(
        m,
        txn(put(b"a", b"1")),  # 2
        txn(put(b"b", b"1")),  # 3
        txn(put(b"a", b"2")),  # 4
        txn(delete(b"b")),  # 5
        txn(put(b"c", b"1")),  # 6
    )
    reads = {r: m.range({"key": b"\0", "range_end": b"\0", "revision": r}) for r in (4, 5, 6)}
    assert run(m, {"t": "compact", "revision": 4}) == [{"header": {"revision": 6}}]
    assert m.compact_revision == 4
    for r, answer in reads.items():
        assert m.range({"key": b"\0", "range_end": b"\0", "revision": r}) == answer
    with pytest.raises(Compacted):
        m.range({"key": b"a", "revision": 3})
    assert [e.revision for e in m.events_since(4)] == [4, 5, 6]
    with pytest.raises(Compacted):
        m.events_since(3)
    run(m, {"t": "compact", "revision": 6})
    assert m.range({"key": b"b", "revision": 6})["kvs"] == []
    assert m.dump()["kv"]["keys"] == [
        [b"a", [[b"2", 2, 4, 2, 0]]],
        [b"c", [[b"1", 6, 6, 1, 0]]],
    ]


def test_events_since_and_history_cap() -> None:
    m = Machine(event_history=3)
    assert m.events_since(0) == []
    run(m, *[txn(put(b"k", b"%d" % i)) for i in range(5)])  # revisions 2..6
    assert [e.revision for e in m.events_since(4)] == [4, 5, 6]
    assert m.events_since(7) == []
    with pytest.raises(Compacted) as info:
        m.events_since(3)
    assert info.value.details["compact_revision"] == 4


def test_event_log_trims_in_chunks() -> None:
    m = Machine(event_history=10)
    for i in range(10_000):
        m.apply(txn(put(b"k%d" % (i % 7))))
    assert [e.revision for e in m.events_since(m.revision - 9)] == list(
        range(m.revision - 9, m.revision + 1)
    )
    assert len(m.dump()["events"]["events"]) == 10


# -- snapshots -------------------------------------------------------------------------------


def _plain(x: Any) -> bool:
    if isinstance(x, dict):
        return all(type(k) is str and _plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_plain(v) for v in x)
    return x is None or type(x) in (str, int, float, bytes, bool)


def test_dump_load_round_trip() -> None:
    m = Machine(event_history=50, dedup_seqs=8, dedup_clients=4)
    run(
        m,
        grant(rid=["c", 0]),
        grant(ttl=3, id=77),
        txn(put(b"a", lease=1), put(b"b", lease=77), rid=["c", 1]),
        txn(put(b"a", b"2"), rid=["c", 2]),
        txn(delete(b"b")),
        {"t": "compact", "revision": 3},
        txn(put(b"c")),
    )
    with pytest.raises(LeaseNotFound):
        m.apply(txn(put(b"x", lease=5), rid=["d", 9]))
    dump = m.dump()
    assert _plain(dump)
    copy = Machine.load(cbor2.loads(cbor2.dumps(dump)))
    assert copy.dump() == dump
    assert (copy.revision, copy.compact_revision) == (m.revision, m.compact_revision)
    follow_up = [
        txn(put(b"a", b"3")),
        txn(put(b"a", b"2"), rid=["c", 2]),
        grant(),
        {"t": "lease_expire", "now": 1000.0},
        txn(rng(b"\0", b"\0", revision=3)),
    ]
    for cmd in follow_up:
        assert copy.apply(cmd) == m.apply(cmd)
    with pytest.raises(LeaseNotFound):
        copy.apply(txn(put(b"x"), rid=["d", 9]))
    assert copy.events_since(3) == m.events_since(3)
    assert copy.dump() == m.dump()


def test_wire_round_trip() -> None:
    kv = KeyValue(b"k", b"v", 2, 3, 2, 0)
    assert KeyValue.from_wire(kv.to_wire()) == kv
    event = Event("put", kv, KeyValue(b"k", b"u", 2, 2, 1, 0))
    assert Event.from_wire(event.to_wire()) == event and event.revision == 3
    tomb = Event("delete", KeyValue(b"k", b"", 0, 4, 0, 0), kv)
    assert Event.from_wire(cbor2.loads(cbor2.dumps(tomb.to_wire()))) == tomb
    with pytest.raises(InvalidRequest):
        KeyValue.from_wire({"key": b"k"})
    with pytest.raises(InvalidRequest):
        Event.from_wire({"type": "update"})


@pytest.mark.parametrize(
    "cmd",
    [
        pytest.param(txn(put(b"a"), rng(b"a", b"\0"), delete(b"b"), rid=["c", 3]), id="txn"),
        pytest.param(
            txn(compare=(cmp(b"a", "version", "==", 0),), failure=(put(b"x"),)), id="compare"
        ),
        pytest.param(grant(rid=["c", 4]), id="lease-grant"),
        pytest.param({"t": "lease_promote", "now": 1, "extend": 0.5}, id="promote"),
        pytest.param({"t": "batch", "cmds": [txn(put(b"a")), {"t": "barrier"}]}, id="batch"),
    ],
)
def test_validated_commands_are_stable_log_entries(cmd: dict) -> None:
    """The server validates before proposing and the log carries the validated form as CBOR:
    validating again is the identity and applying it is the same as applying the original."""
    from store.requests import validate_command

    once = validate_command(cmd)
    logged = cbor2.loads(cbor2.dumps(once))
    assert validate_command(logged) == validate_command(once) == once
    assert Machine().apply(logged) == Machine().apply(cmd)


def test_time_to_live_rejects_bad_arguments() -> None:
    m = Machine()
    for args in [("1", 0.0, False), (1, None, False), (1, 0.0, "yes")]:
        with pytest.raises(InvalidRequest):
            m.time_to_live(*args)  # type: ignore[arg-type]
