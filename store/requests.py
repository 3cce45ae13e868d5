"""Validation of requests and Raft commands, as decoded from CBOR, against docs/store-api.md.

Every validator takes the decoded map, checks types, fields and limits, and returns a NEW
plain dict with defaults filled in (the input is never mutated).  Validated requests stay
plain dicts because the state machine's apply is a hot path.  Failures raise
`InvalidRequest` (wrong type, unknown op or field, missing field, empty key) or `TooLarge`
(a documented limit), always before anything has changed.
"""

from __future__ import annotations

import math
from typing import Any

from store.errors import InvalidRequest, TooLarge

__all__ = [
    "COMMAND_TYPES",
    "MAX_KEY_BYTES",
    "MAX_LEASE_ID",
    "MAX_LEASE_TTL",
    "MAX_REQUEST_BYTES",
    "MAX_TXN_OPS",
    "MAX_VALUE_BYTES",
    "MIN_LEASE_TTL",
    "validate_command",
    "validate_range",
    "validate_rid",
    "validate_txn",
]

MAX_KEY_BYTES = 3072
MAX_VALUE_BYTES = 1_572_864
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_TXN_OPS = 128
MIN_LEASE_TTL = 1
MAX_LEASE_TTL = 9_000_000_000
MAX_LEASE_ID = 2**63 - 1  # etcd lease ids are int64

_RANGE_FIELDS = frozenset(
    ("key", "range_end", "revision", "limit", "count_only", "keys_only", "serializable")
)
_TXN_FIELDS = frozenset(("compare", "success", "failure", "request_id"))
_COMPARE_FIELDS = frozenset(("key", "range_end", "target", "result", "value"))
_PUT_FIELDS = frozenset(("key", "value", "lease", "prev_kv"))
_DELETE_FIELDS = frozenset(("key", "range_end", "prev_kv"))
_TARGETS = ("value", "version", "create_revision", "mod_revision", "lease")
_RESULTS = ("==", "!=", "<", ">")


def _fields(d: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    if type(d) is not dict:
        raise InvalidRequest(f"{what} must be a map, got {type(d).__name__}")
    if not d.keys() <= allowed:
        unknown = ", ".join(sorted(repr(k) for k in d if k not in allowed))
        raise InvalidRequest(f"unknown field(s) in {what}: {unknown}")
    return d


def _key(v: Any, what: str = "key") -> bytes:
    if type(v) is not bytes:
        raise InvalidRequest(f"{what} must be bytes, got {type(v).__name__}")
    n = len(v)
    if n == 0:
        raise InvalidRequest(f"{what} must not be empty")
    if n > MAX_KEY_BYTES:
        raise TooLarge(f"{what} is {n} bytes, over {MAX_KEY_BYTES}", limit=MAX_KEY_BYTES)
    return v


def _range_end(v: Any) -> bytes | None:
    """None and b"" (etcd's unset range_end) both mean "the single key"."""
    if v is None:
        return None
    if type(v) is not bytes:
        raise InvalidRequest(f"range_end must be bytes or None, got {type(v).__name__}")
    if len(v) > MAX_KEY_BYTES:
        raise TooLarge(f"range_end is {len(v)} bytes, over {MAX_KEY_BYTES}", limit=MAX_KEY_BYTES)
    return v or None


def _value(v: Any, what: str = "value") -> bytes:
    if type(v) is not bytes:
        raise InvalidRequest(f"{what} must be bytes, got {type(v).__name__}")
    if len(v) > MAX_VALUE_BYTES:
        raise TooLarge(f"{what} is {len(v)} bytes, over {MAX_VALUE_BYTES}", limit=MAX_VALUE_BYTES)
    return v


def _int(v: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    if type(v) is not int:
        raise InvalidRequest(f"{what} must be an integer, got {type(v).__name__}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InvalidRequest(f"{what} {v} out of range [{lo}, {hi}]")
    return v


def _bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise InvalidRequest(f"{what} must be a boolean, got {type(v).__name__}")
    return v


def _number(v: Any, what: str, lo: float | None = None) -> float:
    if type(v) not in (int, float) or not math.isfinite(v):
        raise InvalidRequest(f"{what} must be a finite number, got {v!r:.50}")
    if lo is not None and v < lo:
        raise InvalidRequest(f"{what} {v} below {lo}")
    return v


def _list(v: Any, what: str) -> list[Any] | tuple[Any, ...]:
    if type(v) not in (list, tuple):
        raise InvalidRequest(f"{what} must be a list, got {type(v).__name__}")
    if len(v) > MAX_TXN_OPS:
        raise TooLarge(f"{what} has {len(v)} entries, over {MAX_TXN_OPS}", limit=MAX_TXN_OPS)
    return v


def _ttl(v: Any) -> int:
    ttl = _int(v, "ttl")
    if ttl > MAX_LEASE_TTL:
        raise TooLarge(f"ttl {ttl} over {MAX_LEASE_TTL}", limit=MAX_LEASE_TTL)
    if ttl < MIN_LEASE_TTL:
        raise InvalidRequest(f"ttl {ttl} below {MIN_LEASE_TTL}")
    return ttl


def validate_range(d: Any) -> dict[str, Any]:
    """A RangeRequest with every field present (defaults filled)."""
    _fields(d, _RANGE_FIELDS, "range request")
    get = d.get
    return {
        "key": _key(get("key")),
        "range_end": _range_end(get("range_end")),
        "revision": _int(get("revision", 0), "revision", 0),
        "limit": _int(get("limit", 0), "limit", 0),
        "count_only": _bool(get("count_only", False), "count_only"),
        "keys_only": _bool(get("keys_only", False), "keys_only"),
        "serializable": _bool(get("serializable", False), "serializable"),
    }


def _compare(c: Any) -> dict[str, Any]:
    _fields(c, _COMPARE_FIELDS, "compare")
    target, result = c.get("target"), c.get("result")
    if type(target) is not str or target not in _TARGETS:
        raise InvalidRequest(f"compare target must be one of {_TARGETS}, got {target!r:.50}")
    if type(result) is not str or result not in _RESULTS:
        raise InvalidRequest(f"compare result must be one of {_RESULTS}, got {result!r:.50}")
    if target == "value":
        value: bytes | int = _value(c.get("value"), "compare value")
    else:
        value = _int(c.get("value"), f"compare value for target {target!r}")
    return {
        "key": _key(c.get("key")),
        "range_end": _range_end(c.get("range_end")),
        "target": target,
        "result": result,
        "value": value,
    }


def _op(op: Any) -> dict[str, Any]:
    if type(op) is not dict or len(op) != 1:
        raise InvalidRequest("an op must be a map with exactly one of put, delete_range, range")
    ((kind, body),) = op.items()
    if kind == "put":
        _fields(body, _PUT_FIELDS, "put")
        get = body.get
        return {
            "put": {
                "key": _key(get("key")),
                "value": _value(get("value")),
                "lease": _int(get("lease", 0), "lease", 0, MAX_LEASE_ID),
                "prev_kv": _bool(get("prev_kv", False), "prev_kv"),
            }
        }
    if kind == "delete_range":
        _fields(body, _DELETE_FIELDS, "delete_range")
        get = body.get
        return {
            "delete_range": {
                "key": _key(get("key")),
                "range_end": _range_end(get("range_end")),
                "prev_kv": _bool(get("prev_kv", False), "prev_kv"),
            }
        }
    if kind == "range":
        return {"range": validate_range(body)}
    raise InvalidRequest(f"unknown op {kind!r:.50}")


def _in_range(key: bytes, start: bytes, end: bytes | None) -> bool:
    if end is None:
        return key == start
    return start <= key and (end == b"\0" or key < end)


def _ops(v: Any, what: str) -> tuple[list[dict[str, Any]], int]:
    """Validated ops and the bytes their puts carry.  Like etcd, a branch may not put the
    same key twice nor put a key that one of its deletes covers (one revision per txn holds
    at most one version per key)."""
    ops = [_op(op) for op in _list(v, what)]
    size = 0
    puts: dict[bytes, None] = {}
    deletes: list[tuple[bytes, bytes | None]] = []
    for op in ops:
        put = op.get("put")
        if put is not None:
            key = put["key"]
            if key in puts:
                raise InvalidRequest(f"duplicate key given in txn request ({what})")
            puts[key] = None
            size += len(key) + len(put["value"])
        elif "delete_range" in op:
            d = op["delete_range"]
            deletes.append((d["key"], d["range_end"]))
    if deletes:
        for key in puts:
            if any(_in_range(key, start, end) for start, end in deletes):
                raise InvalidRequest(f"duplicate key given in txn request ({what})")
    return ops, size


def validate_txn(d: Any) -> dict[str, Any]:
    """A Txn with compare/success/failure lists present (default empty), each ≤ MAX_TXN_OPS.

    A ``request_id`` field (the HTTP body's) is checked and dropped: deduplication works on
    the command's ``rid``.  The keys and values the txn carries (compares and both branches'
    puts) must total ≤ MAX_REQUEST_BYTES, a lower bound of the encoded body's size.
    """
    _fields(d, _TXN_FIELDS, "txn")
    if d.get("request_id") is not None:
        validate_rid(d["request_id"])
    compare = [_compare(c) for c in _list(d.get("compare", []), "compare")]
    success, s_size = _ops(d.get("success", []), "success")
    failure, f_size = _ops(d.get("failure", []), "failure")
    c_size = sum(
        len(c["key"]) + (len(c["value"]) if c["target"] == "value" else 0) for c in compare
    )
    size = c_size + s_size + f_size
    if size > MAX_REQUEST_BYTES:
        raise TooLarge(
            f"txn carries {size} bytes, over {MAX_REQUEST_BYTES}", limit=MAX_REQUEST_BYTES
        )
    return {"compare": compare, "success": success, "failure": failure}


def validate_rid(v: Any) -> tuple[str, int]:
    """A request id ``[client: str, seq: int ≥ 0]`` as a (client, seq) tuple."""
    if type(v) not in (list, tuple) or len(v) != 2:
        raise InvalidRequest("request id must be [client, seq]")
    client, seq = v
    if type(client) is not str or not client:
        raise InvalidRequest("request id client must be a non-empty string")
    return client, _int(seq, "request id seq", 0)


def _rid(cmd: dict[str, Any]) -> tuple[str, int] | None:
    rid = cmd.get("rid")
    return None if rid is None else validate_rid(rid)


def _txn(c: dict[str, Any]) -> dict[str, Any]:
    return {"t": "txn", "req": validate_txn(c.get("req")), "rid": _rid(c)}


def _lease_grant(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "t": "lease_grant",
        "id": _int(c.get("id", 0), "lease id", 0, MAX_LEASE_ID),
        "ttl": _ttl(c.get("ttl")),
        "now": _number(c.get("now"), "now"),
        "rid": _rid(c),
    }


def _lease_revoke(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "t": "lease_revoke",
        "id": _int(c.get("id"), "lease id", 0, MAX_LEASE_ID),
        "rid": _rid(c),
    }


def _lease_keepalive(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "t": "lease_keepalive",
        "id": _int(c.get("id"), "lease id", 0, MAX_LEASE_ID),
        "now": _number(c.get("now"), "now"),
        "rid": _rid(c),
    }


def _lease_expire(c: dict[str, Any]) -> dict[str, Any]:
    return {"t": "lease_expire", "now": _number(c.get("now"), "now")}


def _lease_promote(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "t": "lease_promote",
        "now": _number(c.get("now"), "now"),
        "extend": _number(c.get("extend"), "extend", 0),
    }


def _compact(c: dict[str, Any]) -> dict[str, Any]:
    return {"t": "compact", "revision": _int(c.get("revision"), "revision", 0), "rid": _rid(c)}


def _barrier(c: dict[str, Any]) -> dict[str, Any]:
    return {"t": "barrier"}


def _batch(c: dict[str, Any]) -> dict[str, Any]:
    cmds = c.get("cmds")
    if type(cmds) not in (list, tuple):
        raise InvalidRequest("batch cmds must be a list")
    return {"t": "batch", "cmds": cmds}


def _members(c: dict[str, Any]) -> dict[str, Any]:
    members = _list(c.get("members"), "members")
    if not members or len(members) > 16:
        raise InvalidRequest("members must list 1 to 16 members")
    out = []
    for m in members:
        _fields(m, _MEMBER_FIELDS, "member")
        for f in ("name", "raft", "client"):
            if type(m.get(f)) is not str or not m[f]:
                raise InvalidRequest(f"member {f} must be a non-empty string")
        out.append({"name": m["name"], "raft": m["raft"], "client": m["client"]})
    if len({m["name"] for m in out}) != len(out) or len({m["raft"] for m in out}) != len(out):
        raise InvalidRequest("member names and raft addresses must be unique")
    return {"t": "members", "members": out}


_MEMBER_FIELDS = frozenset(("name", "raft", "client"))

_COMMANDS = {
    "members": (_members, frozenset(("t", "members")), "members command"),
    "txn": (_txn, frozenset(("t", "req", "rid")), "txn command"),
    "lease_grant": (
        _lease_grant,
        frozenset(("t", "id", "ttl", "now", "rid")),
        "lease_grant command",
    ),
    "lease_revoke": (_lease_revoke, frozenset(("t", "id", "rid")), "lease_revoke command"),
    "lease_keepalive": (_lease_keepalive, frozenset(("t", "id", "now", "rid")), "lease_keepalive command"),
    "lease_expire": (_lease_expire, frozenset(("t", "now")), "lease_expire command"),
    "lease_promote": (_lease_promote, frozenset(("t", "now", "extend")), "lease_promote command"),
    "compact": (_compact, frozenset(("t", "revision", "rid")), "compact command"),
    "barrier": (_barrier, frozenset(("t",)), "barrier command"),
    "batch": (_batch, frozenset(("t", "cmds")), "batch command"),
}
COMMAND_TYPES = tuple(_COMMANDS)


def validate_command(cmd: Any) -> dict[str, Any]:
    """A command of the Raft log, normalized: every field present, ``rid`` a (client, seq)
    tuple or None for the commands that may carry one.

    For a batch only the envelope is checked (``cmds`` is a list): each inner command is
    validated on its own when applied, so one bad command fails alone.
    """
    if type(cmd) is not dict:
        raise InvalidRequest(f"command must be a map, got {type(cmd).__name__}")
    t = cmd.get("t")
    entry = _COMMANDS.get(t) if type(t) is str else None
    if entry is None:
        raise InvalidRequest(f"unknown command type {t!r:.50}")
    validate, allowed, what = entry
    _fields(cmd, allowed, what)
    return validate(cmd)
