"""The sequential specification of one key: a register holding a value, or None when absent.

Role in the data flow: `chaos.checkers.linearizability` turns each recorded put/get/cas/delete
into a `RegisterOp` here and asks `step` whether it may happen in a given state.  Unknown
outcomes are modelled as unconstrained outputs: the op may take effect (and then does exactly
what it would have done) — "never" is covered by linearizing it last.

An unknown write stays concurrent with everything after it, which is what makes searches
explode; `simplify` applies two reductions that keep the verdict exactly (proofs in its doc).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from chaos.history import Op, Value

__all__ = ["FREE", "REGISTER_KINDS", "RegisterOp", "compile_op", "explain", "simplify", "step"]

REGISTER_KINDS = frozenset({"put", "get", "cas", "delete"})


class _Free:
    """The output of an op whose answer was never seen: anything goes."""

    def __repr__(self) -> str:
        return "FREE"


FREE: Any = _Free()


@dataclass(frozen=True, slots=True)
class RegisterOp:
    """A history op reduced to what the register model needs.

    ``arg`` is the put value or the cas expected value, ``new`` the cas new value, ``out`` the
    observed output (get: the value; cas: succeeded; delete: whether it removed the key) or
    FREE.  ``complete`` is +inf for an op whose outcome is unknown.
    """

    op: Op
    kind: str
    arg: Value
    new: Value
    out: Any
    invoke: float
    complete: float

    @property
    def read_only(self) -> bool:
        """Whenever legal, it leaves the value as it was: an ok get, failed cas, no-op delete."""
        return self.out is not FREE and (self.kind == "get" or self.out is False)


def compile_op(op: Op) -> RegisterOp | None:
    """The register view of ``op``, or None when it says nothing about the register.

    None for kinds other than put/get/cas/delete, for "fail" ops (they did not happen) and for
    unknown gets (no effect, no constraint).  Raises ValueError on an op the workload recorded
    wrongly (an ok get without "value", a put without a value, a non-hashable value, …).
    """
    if op.kind not in REGISTER_KINDS or op.status == "fail":
        return None
    if op.key is None:
        raise ValueError(f"{op.kind} without a key: {op.describe()}")
    known = op.status == "ok" and op.complete is not None
    if op.kind == "get" and not known:
        return None
    arg: Value = None
    new: Value = None
    if op.kind == "put":
        arg = _need(op, op.input, "value")
    elif op.kind == "cas":
        arg, new = op.input.get("expected"), _need(op, op.input, "value")
    out = _observed(op) if known else FREE
    for value in (arg, new, out):
        _hashable(op, value)
    complete = op.complete if known and op.complete is not None else math.inf
    return RegisterOp(op, op.kind, arg, new, out, op.invoke, complete)


def step(rop: RegisterOp, state: Value) -> tuple[bool, Value]:
    """May ``rop`` happen when the register holds ``state``?  Returns (legal, next state)."""
    kind = rop.kind
    if kind == "put":
        return True, rop.arg
    if kind == "get":
        return rop.out == state, state
    if kind == "cas":
        matches = state == rop.arg
        if rop.out is not FREE and rop.out != matches:
            return False, state
        return True, (rop.new if matches else state)
    if rop.out is not FREE and rop.out != (state is not None):
        return False, None
    return True, None


def explain(rop: RegisterOp, state: Value) -> str:
    """Why ``rop`` cannot follow ``state`` directly (or that it could), for counterexamples."""
    legal, _ = step(rop, state)
    if legal:
        return f"could follow {state!r}, but every order that places it leads to a dead end"
    if rop.kind == "get":
        return f"read {rop.out!r} but the register held {state!r}"
    if rop.kind == "cas":
        said = "succeeded" if rop.out else "failed"
        return f"cas(expected={rop.arg!r}) {said} but the register held {state!r}"
    return f"delete reported deleted={int(rop.out)} but the register held {state!r}"


def simplify(rops: list[RegisterOp]) -> tuple[list[RegisterOp], int, int]:
    """Shrink the unknown put/cas writes of one key; returns (ops, bounded, dropped).

    Let ``P`` be an unknown write of value ``v``; an "observer" of ``v`` is an ok get that
    returned ``v`` or an ok cas that succeeded expecting ``v``.

    - Bound: if ``P`` is the only op writing ``v`` and some observer completed at or after
      ``P``'s invoke, ``P`` took effect before the earliest such observer completed, in every
      valid linearization; so its return moves from +inf to that time.
    - Drop: if nothing observes ``v``, no cas (ok or unknown) expects ``v``, and no ok failed
      cas or ok removing delete completed at or after ``P``'s invoke, then removing ``P`` from
      a valid linearization leaves one: until the next write only failed cas ops and unknown
      no-op cas ops can follow ``P``; the former are excluded, the latter can be moved last.
    """
    written = Counter(r.arg if r.kind == "put" else r.new for r in rops if r.kind != "get")
    observed: dict[Value, list[float]] = {}
    expected = {r.arg for r in rops if r.kind == "cas"}
    presence_seen = -math.inf  # the last completion of an op that saw "present, not v"
    for r in rops:
        if r.out is not FREE and (r.kind == "get" or (r.kind == "cas" and r.out)):
            observed.setdefault(r.out if r.kind == "get" else r.arg, []).append(r.complete)
        if r.out is not FREE and (
            (r.kind == "cas" and not r.out) or (r.kind == "delete" and r.out)
        ):
            presence_seen = max(presence_seen, r.complete)
    kept: list[RegisterOp] = []
    bounded = dropped = 0
    for r in rops:
        value = r.arg if r.kind == "put" else r.new
        if r.complete != math.inf or r.kind not in ("put", "cas"):
            kept.append(r)
        elif value in observed:
            later = [t for t in observed[value] if t >= r.invoke]
            if written[value] == 1 and later:
                r = dataclasses.replace(r, complete=min(later))
                bounded += 1
            kept.append(r)
        elif value in expected or presence_seen >= r.invoke:
            kept.append(r)
        else:
            dropped += 1
    return kept, bounded, dropped


def _observed(op: Op) -> Any:
    if op.kind == "get":
        return _need(op, op.output, "value")
    if op.kind == "cas":
        return bool(_need(op, op.output, "succeeded"))
    if op.kind == "delete":
        return bool(_need(op, op.output, "deleted"))
    return FREE


def _need(op: Op, where: dict[str, Any], name: str) -> Any:
    if name not in where:
        raise ValueError(f"{op.kind} op lacks {name!r}: {op.describe()}")
    return where[name]


def _hashable(op: Op, value: Any) -> None:
    try:
        hash(value)
    except TypeError:
        raise ValueError(f"unhashable value {value!r} in {op.describe()}") from None
