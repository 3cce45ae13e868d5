"""What a recorded op wrote, or may have written: the shared vocabulary of the write checkers.

Role in the data flow: `lost_writes`, `watch_checker` and `revisions_monotonic` read ops
through these helpers so that they agree on what "acknowledged", "may have happened" and
"the revision of a write" mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from chaos.history import Op, Value

__all__ = [
    "WRITE_KINDS",
    "Effect",
    "acknowledged",
    "effects",
    "effects_of",
    "may_follow",
    "write_revision",
]

WRITE_KINDS = frozenset({"put", "cas", "delete", "txn"})


@dataclass(frozen=True)
class Effect:
    """One key changed by one op: a put of ``value`` (with ``lease``, 0 = none) or a delete.

    ``certain`` when the client was told it happened: a put of an ok put/cas/txn, or the
    removal reported by an ok delete.  A delete inside a txn is never certain (the key may
    have been absent), nor is anything an unknown op may have done.
    """

    op: Op
    type: str  # "put" | "delete"
    key: str
    value: Value
    lease: int
    certain: bool


def effects(op: Op) -> list[Effect]:
    """The key changes ``op`` made (status ok) or may have made (status unknown).

    Empty for failed ops, non-write kinds, an ok cas/txn that did not succeed and an ok delete
    that removed nothing.  An unknown cas/txn may have succeeded, an unknown delete may have
    removed the key, so they contribute their effects.
    """
    if op.kind not in WRITE_KINDS or op.status == "fail":
        return []
    ok = op.status == "ok" and op.complete is not None
    if op.kind == "put":
        return [_put(op, op.key, op.input.get("value"), op.input.get("lease"))]
    if op.kind == "delete":
        return [] if ok and not op.output.get("deleted") else [_delete(op, op.key)]
    if ok and not op.output.get("succeeded"):
        return []
    if op.kind == "cas":
        return [_put(op, op.key, op.input.get("value"), op.input.get("lease"))]
    return list(_txn_effects(op))


def acknowledged(op: Op) -> bool:
    """The client was told this op changed at least one key (so it took a new revision)."""
    return any(e.certain for e in effects(op))


def write_revision(op: Op) -> int | None:
    """The revision an acknowledged write took, when its answer carried one."""
    revision = op.output.get("revision") if acknowledged(op) else None
    return revision if isinstance(revision, int) else None


def may_follow(later: Op, earlier: Op) -> bool:
    """Could ``later`` have taken effect after ``earlier``?

    By revisions when both are acknowledged writes that carry one; otherwise by real time:
    yes unless ``later`` completed (for sure) before ``earlier`` was invoked.
    """
    r_later, r_earlier = write_revision(later), write_revision(earlier)
    if r_later is not None and r_earlier is not None:
        return r_later > r_earlier
    if later.status != "ok" or later.complete is None:
        return True
    return later.complete >= earlier.invoke


def effects_of(ops: Iterable[Op]) -> Iterator[Effect]:
    for op in ops:
        yield from effects(op)


def _put(op: Op, key: str | None, value: Value, lease: object) -> Effect:
    lease_id = lease if isinstance(lease, int) else 0
    return Effect(op, "put", _key(op, key), value, lease_id, _answered(op))


def _delete(op: Op, key: str | None) -> Effect:
    return Effect(op, "delete", _key(op, key), None, 0, _answered(op) and op.kind == "delete")


def _answered(op: Op) -> bool:
    return op.status == "ok" and op.complete is not None


def _txn_effects(op: Op) -> Iterator[Effect]:
    for sub in op.input.get("ops", []):
        if sub.get("type") == "put":
            yield _put(op, sub.get("key"), sub.get("value"), sub.get("lease"))
        elif sub.get("type") == "delete":
            yield _delete(op, sub.get("key"))


def _key(op: Op, key: str | None) -> str:
    if key is None:
        raise ValueError(f"write without a key: {op.describe()}")
    return key
