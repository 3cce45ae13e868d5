"""What the API checkers share: the final state read after the heal, and an index of the
history's API writes by object and resourceVersion (see :mod:`chaos.checkers.api` for the
vocabulary)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chaos.history import Op, Value

__all__ = ["API_WRITES", "EVENT_OF", "WATCH_KINDS", "ApiFinalState", "Index", "Write",
           "by_watcher", "ops_of", "show"]

API_WRITES = frozenset({"api_create", "api_update", "api_patch", "api_delete"})
WATCH_KINDS = frozenset({"api_relist", "api_watch_event", "api_watch_bookmark",
                         "api_watch_error"})
EVENT_OF = {"api_create": "ADDED", "api_update": "MODIFIED", "api_patch": "MODIFIED",
            "api_delete": "DELETED"}

@dataclass(frozen=True)
class ApiFinalState:
    """What the API showed after the heal: one consistent list (``list_rv``, name → (value,
    rv)), a GET of each object (name → (value, rv), None for 404) and the watchers that never
    reached ``list_rv`` (id → highest rv seen)."""

    list_rv: int
    listed: Mapping[str, tuple[Value, int | None]]
    objects: Mapping[str, tuple[Value, int | None] | None]
    lagging: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Write:
    op: Op
    name: str
    deletes: bool
    value: Value
    rv: int | None  # acknowledged writes only


@dataclass
class Index:
    """The API writes of a history, indexed the ways the checkers need."""

    names: set[str]
    writes: dict[str, list[Write]]  # name -> writes that may have happened, by invoke
    acked: list[Write]  # acknowledged, with a known rv, sorted by rv
    by_rv: dict[int, Write]
    delete_rvs: dict[str, set[int]]

    def may_have_written(self, name: str, value: Value) -> bool:
        return any(not w.deletes and w.value == value for w in self.writes.get(name, ()))

    def unknown_put(self, name: str, value: Value) -> bool:
        return any(not w.deletes and w.value == value and w.op.status == "unknown"
                   for w in self.writes.get(name, ()))

    def any_delete(self, name: str) -> bool:
        return any(w.deletes for w in self.writes.get(name, ()))

    @classmethod
    def of(cls, ops: list[Op]) -> Index:
        names = {op.key for op in ops if op.kind == "api_create" and op.key}
        delete_rvs: dict[str, set[int]] = {}
        for op in ops:
            if op.kind == "api_watch_event" and op.output.get("type") == "DELETED" and op.key:
                delete_rvs.setdefault(op.key, set()).add(op.output["rv"])
        writes: dict[str, list[Write]] = {}
        for op in ops:
            if op.kind not in API_WRITES or op.status == "fail" or op.key not in names:
                continue
            assert op.key is not None
            deletes = op.kind == "api_delete"
            rv: int | None = None
            if op.status == "ok":
                if deletes:
                    seen = delete_rvs.get(op.key, set())
                    rv = next(iter(seen)) if len(seen) == 1 else None
                else:
                    rv = op.output.get("rv")
            writes.setdefault(op.key, []).append(
                Write(op, op.key, deletes, None if deletes else op.input.get("value"), rv))
        acked = sorted((w for ws in writes.values() for w in ws if w.rv is not None),
                       key=lambda w: w.rv or 0)
        return cls(names, writes, acked, {w.rv: w for w in acked if w.rv is not None},
                   delete_rvs)


def ops_of(history: Iterable[Op]) -> list[Op]:
    return sorted(history, key=lambda o: o.id)


def show(op: Op) -> str:
    return f"{op.kind} #{op.id} (client {op.client}) of {op.key!r}"



def by_watcher(ops: list[Op]) -> dict[int, list[Op]]:
    out: dict[int, list[Op]] = {}
    for op in ops:
        if op.kind in WATCH_KINDS and op.status == "ok":
            if op.kind == "api_relist" and not isinstance(op.output.get("rv"), int):
                continue
            out.setdefault(op.client, []).append(op)
    return out
