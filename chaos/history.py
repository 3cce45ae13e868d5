"""The recorded history of a chaos run: what clients asked, what they were told, and when.

Role in the data flow: the workload and the fault scheduler fill one `History` while the cluster
is being hurt; the checkers in `chaos.checkers` read it afterwards and never change it.

Operation contract (what the workload records and the checkers rely on):

- ``invoke`` / ``complete`` are seconds on ONE monotonic clock shared by every client of the run
  (real-time order between clients is what linearizability is about).
- ``status`` is "ok" (the answer arrived), "fail" (a definite error: the op did NOT take effect)
  or "unknown" (timeout, connection cut, outcome_unknown: it MAY have taken effect, at any time
  after ``invoke``).  An op still pending when the run ends has ``complete`` None and status
  "unknown".  Never record an indeterminate outcome as "fail".
- Inputs and outputs per kind (values are ``str`` or ``bytes``; None means "absent"):
  put ``{"value", "lease"?}`` → ``{"revision"}``; get ``{"serializable"?}`` →
  ``{"value", "revision", "mod_revision"?}``; cas ``{"expected", "value"}`` →
  ``{"succeeded", "revision"}``; delete ``{}`` → ``{"deleted": 0|1, "revision"}``;
  txn ``{"ops": [{"type": "put"|"delete", "key", "value"?, "lease"?}]}`` →
  ``{"succeeded", "revision"}``.  ``"revision"`` is always the answer's header revision.

Cluster runs (``--cluster``) add what the whole cluster did: ``runs`` (every container
process from the nodes' run records: the truth of what ran), ``writes`` (every write request
of the leader-elected components, with identity and lease term), ``observations`` (object
changes seen through watches), ``components`` (what the run did to each process: start, kill,
pause...) and ``convergence`` (per fault, when the cluster was whole again after the heal).

File format (`History.to_jsonl`): UTF-8 JSON Lines.  The first line is
``{"record": "header", "format": "ketch-chaos-history", "version": 2}``; every other line is
one record tagged by ``"record"``: "op", "watch", "fault", "leader", "revision", "lease", "run",
"write", "obs", "component" or "convergence", whose other fields are the dataclass fields
below (version 1 tagged them by ``"type"``, which an observation's own ``type`` overwrote).
A ``bytes`` value anywhere is written as the object ``{"$b64": "<standard base64>"}`` so bytes
and str survive the round trip exactly; tuples come back as lists inside op inputs/outputs;
dict keys must be strings.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "STATUSES",
    "ComponentEvent",
    "ComponentWrite",
    "Convergence",
    "FaultRecord",
    "History",
    "LeaderObservation",
    "LeaseRecord",
    "Observation",
    "Op",
    "ProcessRun",
    "RevisionObservation",
    "Status",
    "Value",
    "WatchEvent",
    "WatchRecord",
]

Status = Literal["ok", "fail", "unknown"]
STATUSES: tuple[str, ...] = ("ok", "fail", "unknown")
Value = str | bytes | None
FORMAT = "ketch-chaos-history"
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Op:
    """One client operation.  Frozen: completing an op replaces it in the `History`."""

    id: int
    client: int
    kind: str
    key: str | None
    input: dict[str, Any]
    invoke: float
    complete: float | None = None
    status: Status = "unknown"
    output: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # ids are unique within a history; the dicts are not hashable
        return hash(self.id)

    @property
    def pending(self) -> bool:
        return self.complete is None

    def describe(self) -> str:
        """One readable line, e.g. ``#7 c2 put 'k' {'value': 'a'} [1.000, 1.250] ok {...}``."""
        end = "…" if self.complete is None else f"{self.complete:.6f}"
        return (
            f"#{self.id} c{self.client} {self.kind} {self.key!r} {self.input} "
            f"[{self.invoke:.6f}, {end}] {self.status} {self.output}"
        )


class WatchEvent(NamedTuple):
    """One event as a watcher received it; events of one txn share a revision."""

    revision: int
    type: str  # "put" | "delete"
    key: str
    value: Value


@dataclass
class WatchRecord:
    """What one watch stream delivered, in arrival order, across its reconnects.

    ``range_end`` follows the store: None = the single ``key``; "\\0" = every key ≥ ``key``;
    otherwise [key, range_end).  ``start_revision`` 0 means "from whatever was current".
    """

    client: int
    key: str
    range_end: str | None
    start_revision: int
    events: list[WatchEvent] = field(default_factory=list)
    reconnects: int = 0

    def record_event(self, revision: int, type: str, key: str, value: Value) -> None:
        self.events.append(WatchEvent(revision, type, key, value))

    def covers(self, key: str) -> bool:
        if self.range_end is None:
            return key == self.key
        if self.range_end == "\0":
            return key >= self.key
        return self.key <= key < self.range_end


@dataclass
class FaultRecord:
    """One injected fault; ``healed_at`` stays None if it was never healed."""

    name: str
    target: str
    injected_at: float
    healed_at: float | None = None


@dataclass(frozen=True)
class LeaderObservation:
    """What a member's status said at ``observed_at``: its term and whether it led."""

    observed_at: float
    member: str
    term: int
    is_leader: bool


@dataclass(frozen=True)
class RevisionObservation:
    """A member's applied revision at ``observed_at``; ``incarnation`` counts its restarts."""

    observed_at: float
    member: str
    revision: int
    incarnation: int = 0


@dataclass(frozen=True)
class LeaseRecord:
    """One lease's life as the workload saw it (times on the history clock).

    ``keepalive_invokes`` lists only ACKNOWLEDGED keepalives (an unknown one may not have been
    applied, so counting it could accuse the store wrongly).  ``expired_observed_at`` is when
    the workload first learned the keys were gone — the COMPLETION time of the read that found
    them absent, or the arrival of the delete event — so the expiry happened at or before it;
    None if it never saw them go.
    """

    lease_id: int
    ttl: float
    grant_invoke: float
    keepalive_invokes: tuple[float, ...] = ()
    expired_observed_at: float | None = None


@dataclass(frozen=True)
class ProcessRun:
    """One container process as its node's run record tells it (``node.runtime.runrecord``):
    alive over [``start``, ``end``] on the history clock (over-stated, never under-stated);
    ``end`` None when no exit was recorded (still running when the record was read)."""

    node: str
    namespace: str
    pod: str
    uid: str
    container: str
    pid: int
    start: float
    end: float | None = None
    code: int | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def overlaps(self, other: ProcessRun) -> bool:
        inf = float("inf")
        return self.start < (other.end or inf) and other.start < (self.end or inf)


@dataclass(frozen=True)
class ComponentWrite:
    """One write request a leader-elected component sent (``control.client.writelog``);
    ``code`` 0: no answer (its outcome is unknown)."""

    component: str
    identity: str
    term: int | None
    method: str
    what: str
    code: int
    invoke: float
    complete: float


@dataclass(frozen=True)
class Observation:
    """One change of an object seen through a watch (``type`` ADDED, MODIFIED, DELETED) at
    ``at``, its ``rv`` and the few fields the checkers read (``data``)."""

    at: float
    resource: str
    type: str
    rv: int
    namespace: str
    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ComponentEvent:
    """What the run did to a component's process: start, kill, sigstop, sigcont, stop."""

    at: float
    component: str
    event: str
    detail: str = ""


@dataclass
class Convergence:
    """After fault number ``fault`` (index in ``History.faults``) was healed: when the
    cluster was whole again (None: not within the wait), and what was still wrong then;
    ``trail``: what kept it from being whole, each time that changed ([seconds after the
    heal, the first few problems]), so a slow convergence says what it waited on."""

    fault: int
    healed_at: float
    converged_at: float | None
    problems: list[str] = field(default_factory=list)
    trail: list[list[Any]] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return None if self.converged_at is None else self.converged_at - self.healed_at


class History:
    """An append-only record of ops and observations, safe to fill from threads or one loop.

    Ops are numbered 0, 1, 2, … in invoke order; iteration yields them in that order.  The
    clock (injected) is only read when ``at`` is not given.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next_id = 0
        self._ops: dict[int, Op] = {}
        self.watches: list[WatchRecord] = []
        self.faults: list[FaultRecord] = []
        self.leaders: list[LeaderObservation] = []
        self.revisions: list[RevisionObservation] = []
        self.leases: list[LeaseRecord] = []
        self.runs: list[ProcessRun] = []
        self.writes: list[ComponentWrite] = []
        self.observations: list[Observation] = []
        self.components: list[ComponentEvent] = []
        self.convergence: list[Convergence] = []

    # -- recording ---------------------------------------------------------------------------

    def record_invoke(
        self,
        client: int,
        kind: str,
        key: str | None = None,
        input: Mapping[str, Any] | None = None,
        *,
        at: float | None = None,
    ) -> int:
        """Record the start of an op (status "unknown" until completed) and return its id."""
        t = self._clock() if at is None else at
        with self._lock:
            op_id, self._next_id = self._next_id, self._next_id + 1
            self._ops[op_id] = Op(op_id, client, kind, key, dict(input or {}), t)
        return op_id

    def record_complete(
        self,
        op_id: int,
        status: Status,
        output: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> Op:
        """Record how op ``op_id`` ended; raises ValueError on a bad status or a second call."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        t = self._clock() if at is None else at
        with self._lock:
            op = self._ops[op_id]
            if op.complete is not None:
                raise ValueError(f"op #{op_id} already completed")
            done = dataclasses.replace(op, complete=t, status=status, output=dict(output or {}))
            self._ops[op_id] = done
        return done

    def add_op(self, op: Op) -> None:
        """Insert a finished op as is (loading, tests); its id must be new."""
        with self._lock:
            if op.id in self._ops:
                raise ValueError(f"duplicate op id {op.id}")
            self._ops[op.id] = op
            self._next_id = max(self._next_id, op.id + 1)

    @classmethod
    def from_ops(cls, ops: Iterable[Op]) -> History:
        history = cls()
        for op in ops:
            history.add_op(op)
        return history

    # -- reading -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Op]:
        with self._lock:
            ops = sorted(self._ops.values(), key=lambda o: o.id)
        return iter(ops)

    def __len__(self) -> int:
        return len(self._ops)

    def __getitem__(self, op_id: int) -> Op:
        return self._ops[op_id]

    def ops(
        self, *, kind: str | None = None, key: str | None = None, status: str | None = None
    ) -> list[Op]:
        """The ops matching every filter given, in id order."""
        return [
            op
            for op in self
            if (kind is None or op.kind == kind)
            and (key is None or op.key == key)
            and (status is None or op.status == status)
        ]

    def keys(self) -> list[str]:
        return sorted({op.key for op in self if op.key is not None})

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts by kind × status; an op never completed counts under "pending"."""
        counts: dict[str, dict[str, int]] = {}
        for op in self:
            column = "pending" if op.complete is None else op.status
            row = counts.setdefault(op.kind, {})
            row[column] = row.get(column, 0) + 1
        return counts

    def format_summary(self) -> str:
        columns = ("ok", "fail", "unknown", "pending")
        lines = [f"{'kind':<16}" + "".join(f"{c:>9}" for c in columns)]
        for kind, row in sorted(self.summary().items()):
            lines.append(f"{kind:<16}" + "".join(f"{row.get(c, 0):>9}" for c in columns))
        return "\n".join(lines)

    # -- files -------------------------------------------------------------------------------

    def to_jsonl(self, path: str | Path) -> None:
        """Write the whole history to ``path`` in the format of the module docstring."""
        lines = [json.dumps({"record": "header", "format": FORMAT,
                             "version": FORMAT_VERSION})]
        for tag, records in self._record_lists():
            for record in records:
                body = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
                lines.append(json.dumps({"record": tag, **_encode(body)}, allow_nan=False))
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def from_jsonl(cls, path: str | Path) -> History:
        """Read a file written by `to_jsonl`; raises ValueError on an unknown format or record."""
        history = cls()
        lists = dict(history._record_lists())
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            data = _decode(json.loads(line))
            tag = data.pop("record", None)
            if tag == "header":
                if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
                    raise ValueError(f"line {number}: not a {FORMAT} v{FORMAT_VERSION} file")
            elif tag == "op":
                history.add_op(Op(**data))
            elif tag in _RECORD_CLASSES:
                lists[tag].append(_RECORD_CLASSES[tag](**_fix_record(tag, data)))
            else:
                raise ValueError(f"line {number}: unknown record type {tag!r}")
        return history

    def _record_lists(self) -> list[tuple[str, list[Any]]]:
        return [
            ("op", list(self)),
            ("watch", self.watches),
            ("fault", self.faults),
            ("leader", self.leaders),
            ("revision", self.revisions),
            ("lease", self.leases),
            ("run", self.runs),
            ("write", self.writes),
            ("obs", self.observations),
            ("component", self.components),
            ("convergence", self.convergence),
        ]


_RECORD_CLASSES: dict[str, Callable[..., Any]] = {
    "watch": WatchRecord,
    "fault": FaultRecord,
    "leader": LeaderObservation,
    "revision": RevisionObservation,
    "lease": LeaseRecord,
    "run": ProcessRun,
    "write": ComponentWrite,
    "obs": Observation,
    "component": ComponentEvent,
    "convergence": Convergence,
}


def _fix_record(tag: str, data: dict[str, Any]) -> dict[str, Any]:
    """Turn JSON lists back into the tuples a record type expects."""
    if tag == "watch":
        data["events"] = [WatchEvent(*event) for event in data.get("events", [])]
    elif tag == "lease":
        data["keepalive_invokes"] = tuple(data.get("keepalive_invokes", ()))
    return data


def _encode(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return {"$b64": base64.b64encode(obj).decode("ascii")}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise TypeError(f"history dict keys must be str, not {k!r}")
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1 and "$b64" in obj:
            return base64.b64decode(obj["$b64"], validate=True)
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj
