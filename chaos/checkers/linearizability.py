"""Is the key-value history linearizable?  A Wing & Gong search with Porcupine's memoization.

Role in the data flow: reads a `chaos.history.History` (put/get/cas/delete ops) after a run and
answers "ok", "illegal" or "unknown".  Keys are independent registers (P-compositionality), so
the history is split by key and each key is searched on its own.

Search (per key): every op contributes a call entry at ``invoke`` and a return entry at
``complete`` (+inf when the outcome is unknown), sorted by time with calls before returns at
equal times (touching intervals count as concurrent).  Depth-first: take the first call entry
before the first return entry whose op the model accepts in the current state, lift it and its
return out of the doubly-linked list, and start again from the head; meeting a return entry
means the op it closes could not be placed, so undo the last choice and try the next entry.
A (linearized-set bitset, register value) pair already explored is never explored again.
Two exact reductions on top (each argued where it is coded): a legal read is linearized as soon
as it is callable (`_Search`), and unknown writes are bounded or dropped when the rest of the
history pins them down (`register.simplify`).

Cost: linear in the ops of a key that are mostly sequential; exponential in the number of writes
open at once on one key.  Spread the workload over many keys and write unique values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from chaos.history import Op, Value

from .register import REGISTER_KINDS, RegisterOp, compile_op, explain, simplify, step
from .result import CheckResult, Verdict

__all__ = ["Counterexample", "LinearizabilityResult", "check_linearizable"]

KeyVerdict = Literal["ok", "illegal", "unknown"]
_CHECK_EVERY = 0x3FF  # look at the clock once per 1,024 search steps


@dataclass(frozen=True)
class Counterexample:
    """Why one key is not linearizable.

    ``prefix`` is the longest sequence of that key's ops the search could linearize (in that
    order), ``state`` the register's value after it, and ``unplaced`` the ops that had to come
    next (invoked before every remaining op returned) with the reason each could not.
    """

    key: str
    prefix: tuple[Op, ...]
    state: Value
    unplaced: tuple[tuple[Op, str], ...]

    def lines(self, *, prefix_tail: int = 10) -> list[str]:
        shown = self.prefix[-prefix_tail:]
        out = [f"key {self.key!r}: longest linearizable prefix has {len(self.prefix)} ops"]
        if len(shown) < len(self.prefix):
            out.append(f"  … {len(self.prefix) - len(shown)} earlier ops")
        out += [f"  {op.describe()}" for op in shown]
        out.append(f"  → register holds {self.state!r}; none of these can come next:")
        out += [f"  ✗ {op.describe()}: {why}" for op, why in self.unplaced]
        return out


@dataclass(frozen=True)
class LinearizabilityResult:
    """The verdict over all keys: "illegal" if any key is, else "unknown" if any key timed out."""

    verdict: KeyVerdict
    per_key: dict[str, KeyVerdict]
    counterexamples: dict[str, Counterexample]
    ops_checked: int
    counts: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def counterexample(self) -> Counterexample | None:
        """The counterexample of the first illegal key (by key order), if any."""
        return next(iter(self.counterexamples.values()), None)

    def as_check_result(self) -> CheckResult:
        """The common report shape: "illegal" becomes "violation", with counterexample lines."""
        verdict: Verdict = "violation" if self.verdict == "illegal" else self.verdict
        lines = [line for ce in self.counterexamples.values() for line in ce.lines()]
        timed_out = sorted(k for k, v in self.per_key.items() if v == "unknown")
        if timed_out:
            lines.append(f"undecided (timed out) keys: {timed_out[:20]}")
        counts = {"ops_checked": self.ops_checked, "keys": len(self.per_key), **self.counts}
        return CheckResult("linearizable", verdict, lines, counts)


def check_linearizable(
    history: Iterable[Op],
    *,
    timeout: float = 10.0,
    per_key_timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LinearizabilityResult:
    """Check the put/get/cas/delete ops of ``history``; other kinds are ignored (counted).

    Never longer than about ``timeout`` seconds of ``clock``.  Every key first gets up to
    ``per_key_timeout`` (default ``timeout / 10``); keys still undecided then share what is
    left, so one pathological key cannot hide an illegal one.  A key that runs out of time is
    "unknown" — never "ok".  ``ops_checked`` counts the ops searched (after dropping failed
    ops, unknown reads and unknown writes `register.simplify` proved irrelevant; see
    ``counts``).  Raises ValueError on ops the workload recorded wrongly.
    """
    started = clock()
    deadline = started + timeout
    by_key, counts = _partition(history)
    first_budget = timeout / 10 if per_key_timeout is None else per_key_timeout
    per_key: dict[str, KeyVerdict] = {}
    prefixes: dict[str, list[int]] = {}
    for key in sorted(by_key):
        limit = min(deadline, clock() + first_budget)
        per_key[key], prefixes[key] = _search(by_key[key], limit, clock)
    undecided = [k for k in sorted(by_key) if per_key[k] == "unknown"]
    for n, key in enumerate(undecided):
        share = (deadline - clock()) / (len(undecided) - n)
        if share > first_budget:
            per_key[key], prefixes[key] = _search(by_key[key], clock() + share, clock)
    examples = {
        key: _counterexample(key, by_key[key], prefixes[key])
        for key in sorted(by_key)
        if per_key[key] == "illegal"
    }
    verdicts = set(per_key.values())
    verdict: KeyVerdict = (
        "illegal" if "illegal" in verdicts else "unknown" if "unknown" in verdicts else "ok"
    )
    checked = sum(len(rops) for rops in by_key.values())
    return LinearizabilityResult(verdict, per_key, examples, checked, counts, clock() - started)


def _partition(history: Iterable[Op]) -> tuple[dict[str, list[RegisterOp]], dict[str, int]]:
    """Register ops per key, plus counts of what was dropped and why."""
    by_key: dict[str, list[RegisterOp]] = {}
    counts = {"failed_dropped": 0, "unknown_reads_dropped": 0, "unknown_writes": 0, "ignored": 0}
    for op in history:
        if op.kind not in REGISTER_KINDS:
            counts["ignored"] += 1
            continue
        rop = compile_op(op)
        if rop is None:
            counts["failed_dropped" if op.status == "fail" else "unknown_reads_dropped"] += 1
            continue
        counts["unknown_writes"] += rop.complete == math.inf
        by_key.setdefault(rop.op.key or "", []).append(rop)
    counts["unknown_writes_bounded"] = counts["unknown_writes_dropped"] = 0
    for key, rops in by_key.items():
        by_key[key], bounded, dropped = simplify(rops)
        counts["unknown_writes_bounded"] += bounded
        counts["unknown_writes_dropped"] += dropped
    return by_key, counts


def _linked_entries(rops: list[RegisterOp]) -> tuple[list[int], list[int], list[int], list[int]]:
    """The time-ordered entry list as arrays indexed by node (node 0 is the head).

    Returns (next, prev, match, op index): ``match`` is the return node of a call node and -1
    for a return node; the last node's next is -1.
    """
    order = sorted(
        [(r.invoke, 0, i) for i, r in enumerate(rops)]
        + [(r.complete, 1, i) for i, r in enumerate(rops)]
    )
    size = len(order) + 1
    nxt = list(range(1, size)) + [-1]
    prv = list(range(-1, size - 1))
    match = [-1] * size
    opidx = [-1] * size
    call_node: dict[int, int] = {}
    for node, (_, is_return, i) in enumerate(order, start=1):
        opidx[node] = i
        if is_return:
            match[call_node[i]] = node
        else:
            call_node[i] = node
    return nxt, prv, match, opidx


def _search(
    rops: list[RegisterOp], deadline: float, clock: Callable[[], float]
) -> tuple[KeyVerdict, list[int]]:
    """Search one key; returns the verdict and the longest linearized prefix (op indices)."""
    return _Search(rops).run(deadline, clock)


class _Search:
    """The depth-first search over one key's entry list (see the module docstring).

    On top of Porcupine: entering a configuration, a read-only op (`RegisterOp.read_only`)
    that is callable and legal is linearized at once, and if that leads nowhere the
    configuration itself is abandoned.  Sound and complete: in any valid completion that read
    can be moved to the front — it does not change the value, and nothing still unplaced
    returned before it was invoked, or its call would not be callable.  This keeps concurrent
    reads from multiplying the subsets the memo must tell apart.
    """

    def __init__(self, rops: list[RegisterOp]) -> None:
        self.rops = rops
        self.nxt, self.prv, self.match, self.opidx = _linked_entries(rops)
        self.read_only = [r.read_only for r in rops]
        self.state: Value = None
        self.linearized = 0
        self.seen: set[tuple[int, Value]] = set()
        self.calls: list[tuple[int, Value, bool]] = []  # (call node, state before, forced)
        self.best: list[int] = []

    def run(self, deadline: float, clock: Callable[[], float]) -> tuple[KeyVerdict, list[int]]:
        nxt, match, opidx, rops = self.nxt, self.match, self.opidx, self.rops
        node = self._enter()
        steps = 0
        while nxt[0] != -1:
            steps += 1
            if not steps & _CHECK_EVERY and clock() > deadline:
                return "unknown", self.best
            if node == -1 or match[node] < 0:  # a dead configuration, or an unplaceable op
                node = self._backtrack()
            elif self.read_only[opidx[node]]:  # _enter found no legal read here
                node = nxt[node]
            else:
                legal, after = step(rops[opidx[node]], self.state)
                if legal and self._push(node, after, forced=False):
                    node = self._enter()
                else:
                    node = nxt[node]
            if node == -2:
                return "illegal", self.best
        return "ok", [opidx[n] for n, _, _ in self.calls]

    def _enter(self) -> int:
        """Force every callable legal read; the node to scan from, or -1 if this is dead."""
        nxt, match, opidx, rops = self.nxt, self.match, self.opidx, self.rops
        node = nxt[0]
        while node != -1 and match[node] >= 0:
            i = opidx[node]
            if self.read_only[i] and step(rops[i], self.state)[0]:
                if not self._push(node, self.state, forced=True):
                    return -1
                node = nxt[0]
            else:
                node = nxt[node]
        return nxt[0]

    def _push(self, node: int, after: Value, *, forced: bool) -> bool:
        """Linearize the op of call ``node``; False if that configuration was explored."""
        grown = self.linearized | (1 << self.opidx[node])
        if (grown, after) in self.seen:
            return False
        self.seen.add((grown, after))
        self.calls.append((node, self.state, forced))
        self.state, self.linearized = after, grown
        _lift(self.nxt, self.prv, node, self.match[node])
        return True

    def _backtrack(self) -> int:
        """Undo choices up to the last unforced one; the node to resume at, -2 if none left."""
        calls = self.calls
        if len(calls) > len(self.best):
            self.best = [self.opidx[n] for n, _, _ in calls]
        while calls:
            node, self.state, forced = calls.pop()
            self.linearized &= ~(1 << self.opidx[node])
            _unlift(self.nxt, self.prv, node, self.match[node])
            if not forced:
                return self.nxt[node]
        return -2


def _lift(nxt: list[int], prv: list[int], call: int, ret: int) -> None:
    nxt[prv[call]] = nxt[call]
    prv[nxt[call]] = prv[call]  # a call is always followed by at least its own return
    nxt[prv[ret]] = nxt[ret]
    if nxt[ret] != -1:
        prv[nxt[ret]] = prv[ret]


def _unlift(nxt: list[int], prv: list[int], call: int, ret: int) -> None:
    nxt[prv[ret]] = ret
    if nxt[ret] != -1:
        prv[nxt[ret]] = ret
    nxt[prv[call]] = call
    prv[nxt[call]] = call


def _counterexample(key: str, rops: list[RegisterOp], prefix: list[int]) -> Counterexample:
    """Replay the longest prefix and name the ops that had to come next."""
    state: Value = None
    for i in prefix:
        state = step(rops[i], state)[1]
    placed = set(prefix)
    rest = [i for i in range(len(rops)) if i not in placed]
    first_return = min(rops[i].complete for i in rest)
    due = sorted((i for i in rest if rops[i].invoke <= first_return), key=lambda i: rops[i].invoke)
    return Counterexample(
        key,
        tuple(rops[i].op for i in prefix),
        state,
        tuple((rops[i].op, explain(rops[i], state)) for i in due),
    )
