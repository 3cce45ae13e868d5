"""No acknowledged write is lost: the final state still shows it, or something later replaced it.

Role in the data flow: after the faults stop and the cluster settles, the runner reads every
key once (linearizably) into ``final_state`` and hands it here with the history.

Rules, per acknowledged write ``W`` of key ``k`` (status ok and the answer said it changed ``k``):

- with revisions (``W`` answered ``{"revision": r}`` and the final read gave ``mod_revision``
  ``m``): a put is lost if ``m < r`` (a key's mod_revision only grows, a delete then re-create
  ends above ``r``); if ``m == r`` the value must be the one ``W`` wrote.  An acknowledged
  delete is lost if the key is present with ``m < r``.
- without revisions: the final value must be ``W``'s or one written by a write (ok or unknown)
  that may have come after ``W`` (`writes.may_follow`).
- a key absent at the end is explained only by a delete (ok or unknown) that may follow ``W``,
  or by a lease: ``W`` itself or a later write attached the key to one (expiry deletes it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chaos.history import Op, Value

from .result import CheckResult, verdict_of
from .writes import Effect, effects_of, may_follow, write_revision

__all__ = ["lost_writes"]


@dataclass(frozen=True)
class _Final:
    present: bool
    value: Value
    mod_revision: int | None


def lost_writes(history: Iterable[Op], final_state: Mapping[str, Any]) -> CheckResult:
    """Check every acknowledged write against ``final_state``.

    ``final_state`` maps key → ``(value, mod_revision)`` (preferred) or key → value; a key that
    is missing (or maps to None) is absent.  Keys that no op wrote are not judged.  Verdict
    "unknown" when the history acknowledged no write at all.
    """
    by_key: dict[str, list[Effect]] = {}
    for effect in effects_of(history):
        by_key.setdefault(effect.key, []).append(effect)
    counts = dict.fromkeys(
        ("acknowledged_puts", "acknowledged_deletes", "visible", "replaced", "gone", "lost"), 0
    )
    violations: list[str] = []
    for key in sorted(by_key):
        final = _final(final_state.get(key))
        for effect in by_key[key]:
            if not effect.certain:
                continue
            judge = _judge_put if effect.type == "put" else _judge_delete
            outcome = judge(effect, by_key[key], final)
            counts["acknowledged_puts" if effect.type == "put" else "acknowledged_deletes"] += 1
            if outcome.startswith("LOST"):
                counts["lost"] += 1
                violations.append(f"key {key!r}: {outcome[5:]}")
            elif outcome in counts:
                counts[outcome] += 1
    checked = counts["acknowledged_puts"] + counts["acknowledged_deletes"]
    return CheckResult("lost_writes", verdict_of(violations, checked), violations, counts)


def _final(entry: Any) -> _Final:
    if entry is None:
        return _Final(False, None, None)
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], int | None):
        return _Final(entry[0] is not None, entry[0], entry[1])
    return _Final(True, entry, None)


def _judge_put(w: Effect, others: list[Effect], final: _Final) -> str:
    """ "visible", "replaced", "gone" or "LOST <why>"."""
    r = write_revision(w.op)
    what = f"acknowledged {w.op.kind} #{w.op.id} of {w.value!r}" + (f" at rev {r}" if r else "")
    if not final.present:
        if w.lease or _any_later(w, others, lambda e: e.type == "delete" or bool(e.lease)):
            return "gone"
        return f"LOST {what}: the key is absent and no delete or lease can explain it"
    if r is not None and final.mod_revision is not None:
        if final.mod_revision < r:
            return f"LOST {what}: the key's final mod_revision is {final.mod_revision}"
        if final.mod_revision == r and final.value != w.value:
            return f"LOST {what}: rev {r} holds {final.value!r} instead"
        return "visible" if final.mod_revision == r else "replaced"
    if final.value == w.value:
        return "visible"
    if _any_later(w, others, lambda e: e.type == "put" and e.value == final.value):
        return "replaced"
    return f"LOST {what}: final value {final.value!r} was not written by any later write"


def _judge_delete(w: Effect, others: list[Effect], final: _Final) -> str:
    """An acknowledged removal must not be undone except by a write after it."""
    if not final.present:
        return "gone"
    r = write_revision(w.op)
    what = f"acknowledged delete #{w.op.id}" + (f" at rev {r}" if r else "")
    if r is not None and final.mod_revision is not None:
        if final.mod_revision < r:
            return f"LOST {what}: the key is back with mod_revision {final.mod_revision}"
        return "replaced"
    if _any_later(w, others, lambda e: e.type == "put" and e.value == final.value):
        return "replaced"
    return f"LOST {what}: the key is back with {final.value!r}, written by no later write"


def _any_later(w: Effect, others: list[Effect], wanted: Any) -> bool:
    return any(e.op.id != w.op.id and wanted(e) and may_follow(e.op, w.op) for e in others)
